//! Contacts (per phone inbox) and conversations (per phone and contact).
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::events::CachedSql;
use super::schema::{contacts, conversations};
use super::{StoreError, StoreResult};
use crate::domain::identity::{ContactFields, Identity};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = contacts, check_for_backend(diesel::pg::Pg))]
pub struct ContactRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub phone_id: Uuid,
    pub identifier: String,
    pub identifier_type: String,
    pub wa_id: Option<String>,
    pub bsuid: Option<String>,
    pub parent_bsuid: Option<String>,
    pub username: Option<String>,
    pub profile_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ContactRow {
    /// A new contact of a phone's inbox, known by this identity.
    pub fn new(org_id: Uuid, phone_id: Uuid, identity: &Identity, now: DateTime<Utc>) -> Self {
        let (identifier, identifier_type) = identity
            .identifier()
            .unwrap_or_else(|| (String::new(), "phone"));
        ContactRow {
            id: super::new_id(),
            org_id,
            phone_id,
            identifier,
            identifier_type: identifier_type.to_owned(),
            wa_id: identity.wa_id.clone(),
            bsuid: identity.bsuid.clone(),
            parent_bsuid: identity.parent_bsuid.clone(),
            username: identity.username.clone(),
            profile_name: identity.profile_name.clone(),
            created_at: now,
            updated_at: now,
        }
    }

    pub fn identity(&self) -> Identity {
        Identity {
            wa_id: self.wa_id.clone(),
            bsuid: self.bsuid.clone(),
            parent_bsuid: self.parent_bsuid.clone(),
            username: self.username.clone(),
            profile_name: self.profile_name.clone(),
        }
    }

    /// The identity fields of the contract, for resources and events.
    pub fn fields(&self) -> ContactFields {
        let id = self.identity();
        ContactFields {
            contact_id: Some(self.id.to_string()),
            identifier: Some(self.identifier.clone()),
            identifier_type: Some(self.identifier_type.clone()),
            reply_to: id.reply_to(),
            phone: self.wa_id.clone(),
            name: self.profile_name.clone(),
            bsuid: self.bsuid.clone(),
            parent_bsuid: self.parent_bsuid.clone(),
            username: self.username.clone(),
        }
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
pub struct ConversationRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub phone_id: Uuid,
    pub contact_id: Uuid,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub unread_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// End of the 24-hour customer-service window that the customer's latest
/// message opened, if they ever wrote.
pub fn window_end(last_inbound_at: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    last_inbound_at.map(|t| t + chrono::Duration::hours(24))
}

impl ConversationRow {
    /// End of the 24-hour customer-service window, if it ever opened.
    pub fn window_expires_at(&self) -> Option<DateTime<Utc>> {
        window_end(self.last_inbound_at)
    }

    pub fn window_open(&self, now: DateTime<Utc>) -> bool {
        self.window_expires_at().is_some_and(|end| end > now)
    }
}

/// Finds the contact this identity belongs to in the phone's inbox (by BSUID,
/// then by phone) and fills in what it newly learned; or creates it. Runs on
/// the caller's connection and transaction.
pub async fn upsert_contact(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    phone_id: Uuid,
    identity: &Identity,
) -> StoreResult<ContactRow> {
    let Some((identifier, _)) = identity.identifier() else {
        return Err(StoreError::Query(diesel::result::Error::QueryBuilderError(
            "a contact needs a phone, a BSUID or a username".into(),
        )));
    };
    type Cond = Box<
        dyn BoxableExpression<contacts::table, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>,
    >;
    let mut matches: Cond = Box::new(contacts::identifier.eq(identifier.clone()));
    if let Some(b) = &identity.bsuid {
        matches = Box::new(matches.or(contacts::bsuid.eq(b.clone()).assume_not_null()));
    }
    if let Some(w) = &identity.wa_id {
        matches = Box::new(matches.or(contacts::wa_id.eq(w.clone()).assume_not_null()));
    }
    let q = contacts::table
        .filter(contacts::phone_id.eq(phone_id))
        .filter(matches);
    let existing: Option<ContactRow> = q
        .order(contacts::created_at.asc())
        .select(ContactRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let now = Utc::now();
    if let Some(c) = existing {
        let merged = identity.over(&c.identity());
        if merged == c.identity() {
            return Ok(c);
        }
        let (new_identifier, new_type) = merged
            .identifier()
            .unwrap_or((c.identifier.clone(), "phone"));
        let updated = diesel::update(contacts::table.find(c.id))
            .set((
                contacts::identifier.eq(&new_identifier),
                contacts::identifier_type.eq(new_type),
                contacts::wa_id.eq(&merged.wa_id),
                contacts::bsuid.eq(&merged.bsuid),
                contacts::parent_bsuid.eq(&merged.parent_bsuid),
                contacts::username.eq(&merged.username),
                contacts::profile_name.eq(&merged.profile_name),
                contacts::updated_at.eq(now),
            ))
            .returning(ContactRow::as_returning())
            .get_result(conn)
            .await;
        return match updated {
            Ok(row) => Ok(row),
            // Another contact already holds the new identifier: keep ours as it was.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(c),
            Err(e) => Err(e.into()),
        };
    }
    let row = ContactRow::new(org_id, phone_id, identity, now);
    // A concurrent insert of the same identifier wins; we take its row.
    diesel::insert_into(contacts::table)
        .values(&row)
        .on_conflict((contacts::phone_id, contacts::identifier))
        .do_update()
        .set(contacts::updated_at.eq(now))
        .returning(ContactRow::as_returning())
        .get_result(conn)
        .await
        .map_err(Into::into)
}

/// Every column of a contact aliased `c`, for raw statements.
macro_rules! contact_columns {
    () => {
        "c.id, c.org_id, c.phone_id, c.identifier, c.identifier_type, c.wa_id, c.bsuid, \
         c.parent_bsuid, c.username, c.profile_name, c.created_at, c.updated_at"
    };
}

/// The contacts matching (phone, identifier, BSUID, phone number) keys
/// `k`, aliased `c`: each key probes the three `(phone_id, …)` indexes from
/// a LATERAL subquery, so the plan stays a handful of index lookups per key
/// however stale the table's statistics (a plain join, planned while the
/// table looked small, scanned the whole inbox once per batch).
macro_rules! matching_contacts {
    () => {
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) k(phone_id, identifier, bsuid, wa_id) \
         CROSS JOIN LATERAL ( \
           SELECT * FROM contacts c WHERE c.phone_id = k.phone_id AND c.identifier = k.identifier \
           UNION ALL SELECT * FROM contacts c \
             WHERE c.phone_id = k.phone_id AND c.bsuid = k.bsuid AND c.bsuid IS NOT NULL \
           UNION ALL SELECT * FROM contacts c \
             WHERE c.phone_id = k.phone_id AND c.wa_id = k.wa_id AND c.wa_id IS NOT NULL \
           OFFSET 0) c"
    };
}

/// These contacts, in no particular order (an id not found is left out).
pub async fn contacts_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> StoreResult<Vec<ContactRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(contacts::table
        .filter(contacts::id.eq_any(ids))
        .select(ContactRow::as_select())
        .load(conn)
        .await?)
}

/// The contacts known in each (phone inbox, identity) pair: by the
/// identity's identifier, its BSUID or its phone number, in one prepared
/// statement whatever the number of pairs; each contact once, ordered by
/// id. Not locked: a batch that only reads a known contact must not
/// wait for another batch that reads it too; writers lock what they change.
pub async fn contacts_matching(
    conn: &mut AsyncPgConnection,
    wanted: &[(Uuid, &Identity)],
) -> StoreResult<Vec<ContactRow>> {
    const SQL: &str = concat!("SELECT ", contact_columns!(), matching_contacts!());
    load_matching(conn, SQL, wanted, |c: &ContactRow| c.id).await
}

/// A contact found for a send, with when its customer last wrote (from its
/// conversation, if it has one): the 24-hour window runs from there.
#[derive(Debug, Clone, QueryableByName)]
pub struct KnownContact {
    #[diesel(embed)]
    pub contact: ContactRow,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub last_inbound_at: Option<DateTime<Utc>>,
}

/// [`contacts_matching`], each with when its customer last wrote.
pub async fn contacts_with_windows(
    conn: &mut AsyncPgConnection,
    wanted: &[(Uuid, &Identity)],
) -> StoreResult<Vec<KnownContact>> {
    const SQL: &str = concat!(
        "SELECT ",
        contact_columns!(),
        ", v.last_inbound_at",
        matching_contacts!(),
        " LEFT JOIN conversations v ON v.phone_id = c.phone_id AND v.contact_id = c.id"
    );
    load_matching(conn, SQL, wanted, |k: &KnownContact| k.contact.id).await
}

/// Runs a statement built on [`matching_contacts!`] for these identities;
/// each contact once (it matches by several keys), ordered by its id.
async fn load_matching<T>(
    conn: &mut AsyncPgConnection,
    sql: &'static str,
    wanted: &[(Uuid, &Identity)],
    contact_id: fn(&T) -> Uuid,
) -> StoreResult<Vec<T>>
where
    T: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    use diesel::sql_types::{Array, Nullable, Text, Uuid as U};
    // (phone, identifier, BSUID, phone number)
    type Key<'a> = (Uuid, String, Option<&'a str>, Option<&'a str>);
    let mut keys: Vec<Key> = wanted
        .iter()
        .filter_map(|(phone_id, identity)| {
            let (identifier, _) = identity.identifier()?;
            Some((
                *phone_id,
                identifier,
                identity.bsuid.as_deref(),
                identity.wa_id.as_deref(),
            ))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = CachedSql::new(sql)
        .bind::<Array<U>, _>(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(keys.iter().map(|k| k.3).collect::<Vec<_>>())
        .load::<T>(conn)
        .await?;
    rows.sort_by_key(contact_id);
    rows.dedup_by_key(|r| contact_id(r));
    Ok(rows)
}

/// Creates the contacts bound by [`bind_contacts`] as `$1`..`$12`; a
/// contact another batch created meanwhile (same identifier) is returned as
/// that batch made it. Ends with `RETURNING `: the caller names the columns.
macro_rules! insert_contacts_returning {
    () => {
        "INSERT INTO contacts AS c (id, org_id, phone_id, identifier, identifier_type, wa_id, \
                                    bsuid, parent_bsuid, username, profile_name, created_at, \
                                    updated_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], \
                              $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], \
                              $11::timestamptz[], $12::timestamptz[]) \
         ON CONFLICT (phone_id, identifier) DO UPDATE SET updated_at = excluded.updated_at \
         RETURNING "
    };
}
pub(super) use insert_contacts_returning;

/// Binds `rows` as the twelve column arrays [`insert_contacts_returning!`]
/// reads, in the order given (callers sort them, so concurrent batches take
/// the same locks in the same order).
pub(super) fn bind_contacts<'a>(q: CachedSql<'a>, rows: &'a [ContactRow]) -> CachedSql<'a> {
    use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as U};
    let col = |f: fn(&ContactRow) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&ContactRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&ContactRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&ContactRow) -> DateTime<Utc>| rows.iter().map(f).collect::<Vec<_>>();
    q.bind::<Array<U>, _>(col(|r| r.id))
        .bind::<Array<U>, _>(col(|r| r.org_id))
        .bind::<Array<U>, _>(col(|r| r.phone_id))
        .bind::<Array<Text>, _>(text(|r| &r.identifier))
        .bind::<Array<Text>, _>(text(|r| &r.identifier_type))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.wa_id.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.bsuid.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.parent_bsuid.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.username.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt(|r| r.profile_name.as_deref()))
        .bind::<Array<Timestamptz>, _>(time(|r| r.created_at))
        .bind::<Array<Timestamptz>, _>(time(|r| r.updated_at))
}

/// Creates contacts in one statement, in the order given (callers sort
/// them, so concurrent batches take the same locks in the same order); a
/// contact another batch created meanwhile (same identifier) is returned as
/// that batch made it.
pub async fn insert_contacts(
    conn: &mut AsyncPgConnection,
    rows: &[ContactRow],
) -> StoreResult<Vec<ContactRow>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    const SQL: &str = concat!(insert_contacts_returning!(), contact_columns!());
    Ok(bind_contacts(CachedSql::new(SQL), rows)
        .load::<ContactRow>(conn)
        .await?)
}

/// Every column of a conversation aliased `v`, for raw statements.
macro_rules! conversation_columns {
    () => {
        "v.id, v.org_id, v.phone_id, v.contact_id, v.last_message_at, v.last_inbound_at, \
         v.unread_count, v.created_at, v.updated_at"
    };
}
pub(super) use conversation_columns;
