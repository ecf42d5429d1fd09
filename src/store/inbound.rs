//! Meta's webhook deliveries (stored raw before the 200, then processed in
//! the background), early statuses waiting for their message, template
//! records, and the notices Meta posts about WABAs and their phones.
//!
//! Functions taking a connection run inside the caller's transaction: the
//! processor applies a batch of deliveries and marks them processed in one
//! transaction, so a crash replays the whole batch or none of it.
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Double, Int4, Jsonb, Nullable, Text};
use diesel::sql_types::{Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::contacts::{ContactRow, ConversationRow, conversation_columns};
use super::events::CachedSql;
use super::messages::MessageRow;
use super::phones::{PhoneHealthUpdate, PhoneRow, WabaRow};
use super::schema::{
    contacts, conversations, inbound_webhooks, messages, orphan_statuses, phone_numbers, templates,
    waba_updates, wabas,
};
use super::{PageRequest, Store, StoreError, StoreResult};
use crate::domain::identity::Identity;

/// The channel that wakes inbound processors on every instance.
pub const NOTIFY_CHANNEL: &str = "wagate_inbound";

/// `inbound_webhooks.state`.
pub mod state {
    /// Stored, waiting to be processed (or to be retried after an error).
    pub const PENDING: &str = "pending";
    pub const PROCESSED: &str = "processed";
    /// Signed by Meta but not a webhook payload wagate can read.
    pub const UNPARSEABLE: &str = "unparseable";
    /// Names a phone number or WABA no organization has connected.
    pub const UNROUTED: &str = "unrouted";
    /// Processing failed on every attempt.
    pub const FAILED: &str = "failed";
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Stores raw bodies with one multi-row INSERT; returns their ids in order.
/// `notify` also wakes the processors of other instances (PostgreSQL sends
/// the notification at commit, once).
pub async fn insert_raw(
    conn: &mut AsyncPgConnection,
    bodies: &[&[u8]],
    notify: bool,
) -> StoreResult<Vec<i64>> {
    let mut ids: Vec<i64> = CachedSql::new(
        "WITH ins AS (
            INSERT INTO inbound_webhooks (body) SELECT b FROM unnest($1::bytea[]) AS u(b) RETURNING id
         ),
         n AS MATERIALIZED (SELECT CASE WHEN $2 THEN pg_notify('wagate_inbound', '') END AS x)
         SELECT ins.id FROM ins CROSS JOIN n",
    )
    .bind::<Array<Bytea>, _>(bodies)
    .bind::<Bool, _>(notify)
    .load::<Id>(conn)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    // Ids come from one sequence in insertion order.
    ids.sort_unstable();
    Ok(ids)
}

/// A delivery claimed for processing.
#[derive(Debug, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Bytea)]
    pub body: Vec<u8>,
    /// Including this one.
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
}

/// Claims up to `limit` pending deliveries, oldest first, under a lease
/// fenced by `token` (a short transaction of its own: SKIP LOCKED lets other
/// workers and instances claim the rest).
pub async fn claim(
    conn: &mut AsyncPgConnection,
    limit: i64,
    lease: Duration,
    token: Uuid,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let mut rows: Vec<ClaimedDelivery> = CachedSql::new(
        "UPDATE inbound_webhooks w
            SET attempts = w.attempts + 1,
                locked_until = now() + make_interval(secs => $2),
                lease_token = $3
           FROM (SELECT id FROM inbound_webhooks
                  WHERE state = 'pending' AND (locked_until IS NULL OR locked_until <= now())
                  ORDER BY id LIMIT $1
                  FOR UPDATE SKIP LOCKED) c
          WHERE w.id = c.id
      RETURNING w.id, w.body, w.attempts",
    )
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(lease.as_secs_f64())
    .bind::<SqlUuid, _>(token)
    .load(conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// How a claimed delivery ended.
#[derive(Debug, Clone)]
pub struct Finish {
    pub id: i64,
    pub state: &'static str,
    pub error: Option<String>,
    /// Meta phone number ids (and `waba:<id>` for WABAs) nobody owns.
    pub unrouted: Vec<String>,
}

/// Records outcomes of deliveries claimed under `token`; returns how many
/// were still ours.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    token: Uuid,
    items: &[Finish],
) -> StoreResult<usize> {
    if items.is_empty() {
        return Ok(0);
    }
    // Ragged text[] cannot be unnested: ids travel joined by a unit separator.
    const SEP: char = '\u{1f}';
    let ids: Vec<i64> = items.iter().map(|f| f.id).collect();
    let states: Vec<&str> = items.iter().map(|f| f.state).collect();
    let errors: Vec<Option<&str>> = items.iter().map(|f| f.error.as_deref()).collect();
    let unrouted: Vec<Option<String>> = items
        .iter()
        .map(|f| (!f.unrouted.is_empty()).then(|| f.unrouted.join(&SEP.to_string())))
        .collect();
    let n = CachedSql::new(
        "UPDATE inbound_webhooks w
            SET state = u.state, processed_at = now(), locked_until = NULL, lease_token = NULL,
                last_error = u.error, unrouted_phone_ids = string_to_array(u.unrouted, chr(31))
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(id, state, error, unrouted)
          WHERE w.id = u.id AND w.lease_token = $5",
    )
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Text>, _>(states)
    .bind::<Array<Nullable<Text>>, _>(errors)
    .bind::<Array<Nullable<Text>>, _>(unrouted)
    .bind::<SqlUuid, _>(token)
    .execute(conn)
    .await?;
    Ok(n)
}

/// A claimed delivery whose processing failed: pending again from
/// `retry_at`, or `failed` for good when `retry_at` is None.
pub async fn retry_later(
    conn: &mut AsyncPgConnection,
    token: Uuid,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    let (next_state, processed_at) = match retry_at {
        Some(_) => (state::PENDING, None),
        None => (state::FAILED, Some(Utc::now())),
    };
    diesel::update(inbound_webhooks::table)
        .filter(inbound_webhooks::id.eq(id))
        .filter(inbound_webhooks::lease_token.eq(token))
        .set((
            inbound_webhooks::state.eq(next_state),
            inbound_webhooks::locked_until.eq(retry_at),
            inbound_webhooks::lease_token.eq(None::<Uuid>),
            inbound_webhooks::last_error.eq(error),
            inbound_webhooks::processed_at.eq(processed_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored delivery, for operators (the body's size, not the body).
#[derive(Debug, Clone, QueryableByName)]
pub struct DeliverySummary {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub state: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub processed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Array<Text>>)]
    pub unrouted_phone_ids: Option<Vec<String>>,
    #[diesel(sql_type = Int4)]
    pub size: i32,
}

/// Phones of these Meta phone number ids (one owner each).
pub async fn phones_by_meta_ids(
    conn: &mut AsyncPgConnection,
    meta_ids: &[&str],
) -> StoreResult<Vec<PhoneRow>> {
    if meta_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(phone_numbers::table
        .filter(phone_numbers::meta_phone_number_id.eq_any(meta_ids))
        .select(PhoneRow::as_select())
        .load(conn)
        .await?)
}

/// Every organization's WABA with one of these Meta WABA ids (several
/// organizations may have connected the same WABA).
pub async fn wabas_by_meta_ids(
    conn: &mut AsyncPgConnection,
    meta_ids: &[&str],
) -> StoreResult<Vec<WabaRow>> {
    if meta_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(wabas::table
        .filter(wabas::meta_waba_id.eq_any(meta_ids))
        .order(wabas::created_at.asc())
        .select(WabaRow::as_select())
        .load(conn)
        .await?)
}

pub async fn phones_of_waba(
    conn: &mut AsyncPgConnection,
    waba_id: Uuid,
) -> StoreResult<Vec<PhoneRow>> {
    Ok(phone_numbers::table
        .filter(phone_numbers::waba_id.eq(waba_id))
        .order(phone_numbers::created_at.asc())
        .select(PhoneRow::as_select())
        .load(conn)
        .await?)
}

pub async fn phone(conn: &mut AsyncPgConnection, id: Uuid) -> StoreResult<Option<PhoneRow>> {
    Ok(phone_numbers::table
        .find(id)
        .select(PhoneRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Applies a health change to a phone and returns it as it now is.
pub async fn update_phone_health(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    update: &PhoneHealthUpdate,
) -> StoreResult<PhoneRow> {
    Ok(diesel::update(phone_numbers::table.find(phone_id))
        .set((update, phone_numbers::updated_at.eq(Utc::now())))
        .returning(PhoneRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Replaces a WABA's active restrictions (`[{"restriction_type", "expiration"}]`).
pub async fn set_restrictions(
    conn: &mut AsyncPgConnection,
    waba_id: Uuid,
    restrictions: &serde_json::Value,
) -> StoreResult<()> {
    diesel::update(wabas::table.find(waba_id))
        .set((
            wabas::restrictions.eq(restrictions),
            wabas::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The contact of a phone's inbox known by this BSUID, else by this phone
/// number, locked for the caller's transaction.
pub async fn lock_contact(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    wa_id: Option<&str>,
    bsuid: Option<&str>,
) -> StoreResult<Option<ContactRow>> {
    if let Some(b) = bsuid {
        let found = contacts::table
            .filter(contacts::phone_id.eq(phone_id))
            .filter(contacts::bsuid.eq(b).or(contacts::identifier.eq(b)))
            .order(contacts::created_at.asc())
            .select(ContactRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(w) = wa_id else {
        return Ok(None);
    };
    Ok(contacts::table
        .filter(contacts::phone_id.eq(phone_id))
        .filter(contacts::wa_id.eq(w).or(contacts::identifier.eq(w)))
        .order(contacts::created_at.asc())
        .select(ContactRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Gives `keep` a new identity (a new phone number or BSUID) without losing
/// its history. Another contact of the same inbox that already holds part of
/// the new identity (created from a message sent after the change but
/// processed before it) is merged into `keep`: its messages and its
/// conversation move over, and it is deleted. Returns `keep` as it now is
/// and the ids of the contacts merged into it.
pub async fn relink_contact(
    conn: &mut AsyncPgConnection,
    keep: &ContactRow,
    identity: &Identity,
) -> StoreResult<(ContactRow, Vec<Uuid>)> {
    let Some((identifier, identifier_type)) = identity.identifier() else {
        return Ok((keep.clone(), Vec::new()));
    };
    let others: Vec<ContactRow> =
        super::contacts::contacts_matching(conn, &[(keep.phone_id, identity)])
            .await?
            .into_iter()
            .filter(|c| c.id != keep.id)
            .collect();
    // Locked before they are merged away, in id order (as they come).
    let ids: Vec<Uuid> = others.iter().map(|c| c.id).collect();
    if !ids.is_empty() {
        contacts::table
            .filter(contacts::id.eq_any(&ids))
            .order(contacts::id)
            .select(contacts::id)
            .for_update()
            .load::<Uuid>(conn)
            .await?;
    }
    let mut merged = Vec::with_capacity(others.len());
    for other in &others {
        merge_contact(conn, keep.phone_id, keep.id, other.id).await?;
        merged.push(other.id);
    }
    let row = diesel::update(contacts::table.find(keep.id))
        .set((
            contacts::identifier.eq(&identifier),
            contacts::identifier_type.eq(identifier_type),
            contacts::wa_id.eq(&identity.wa_id),
            contacts::bsuid.eq(&identity.bsuid),
            contacts::parent_bsuid.eq(&identity.parent_bsuid),
            contacts::username.eq(&identity.username),
            contacts::profile_name.eq(&identity.profile_name),
            contacts::updated_at.eq(Utc::now()),
        ))
        .returning(ContactRow::as_returning())
        .get_result(conn)
        .await?;
    Ok((row, merged))
}

/// Moves `absorb`'s messages and conversation to `keep` (both of one
/// phone's inbox) and deletes it. A contact's messages are its
/// conversation's (every message with a contact is filed in the
/// conversation of its phone and contact), so they are found through the
/// conversation's index, never by a scan of every message.
async fn merge_contact(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    keep: Uuid,
    absorb: Uuid,
) -> StoreResult<()> {
    let convs: Vec<ConversationRow> = conversations::table
        .filter(conversations::phone_id.eq(phone_id))
        .filter(conversations::contact_id.eq_any([keep, absorb]))
        .order(conversations::id)
        .select(ConversationRow::as_select())
        .for_update()
        .load(conn)
        .await?;
    let kept = convs.iter().find(|c| c.contact_id == keep);
    let absorbed = convs.iter().find(|c| c.contact_id == absorb);
    match (kept, absorbed) {
        (Some(k), Some(a)) => {
            diesel::update(messages::table.filter(messages::conversation_id.eq(a.id)))
                .set((
                    messages::conversation_id.eq(k.id),
                    messages::contact_id.eq(keep),
                ))
                .execute(conn)
                .await?;
            diesel::update(conversations::table.find(k.id))
                .set((
                    conversations::last_message_at.eq(k.last_message_at.max(a.last_message_at)),
                    conversations::last_inbound_at.eq(k.last_inbound_at.max(a.last_inbound_at)),
                    conversations::unread_count.eq(k.unread_count + a.unread_count),
                    conversations::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            diesel::delete(conversations::table.find(a.id))
                .execute(conn)
                .await?;
        }
        (None, Some(a)) => {
            diesel::update(conversations::table.find(a.id))
                .set(conversations::contact_id.eq(keep))
                .execute(conn)
                .await?;
            diesel::update(messages::table.filter(messages::conversation_id.eq(a.id)))
                .set(messages::contact_id.eq(keep))
                .execute(conn)
                .await?;
        }
        // Without a conversation, `absorb` has no messages.
        _ => {}
    }
    diesel::delete(contacts::table.find(absorb))
        .execute(conn)
        .await?;
    Ok(())
}

/// The conversations of these (org, phone, contact) triples, created when
/// missing (with no messages yet: [`touch_conversations`] moves them on).
/// Existing ones are read, not locked, so batches sharing a conversation
/// only wait for each other at the touch, just before they commit.
pub async fn ensure_conversations(
    conn: &mut AsyncPgConnection,
    keys: &[(Uuid, Uuid, Uuid)],
) -> StoreResult<Vec<ConversationRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let rows: Vec<ConversationRow> = keys
        .iter()
        .map(|&(org_id, phone_id, contact_id)| ConversationRow {
            id: super::new_id(),
            org_id,
            phone_id,
            contact_id,
            last_message_at: None,
            last_inbound_at: None,
            unread_count: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
    CachedSql::new(
        "INSERT INTO conversations (id, org_id, phone_id, contact_id, created_at, updated_at)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[],
                              $6::timestamptz[])
         ON CONFLICT (phone_id, contact_id) DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.org_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.phone_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|r| r.contact_id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    // Joined pair by pair to the (phone_id, contact_id) index.
    Ok(CachedSql::new(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM unnest($1::uuid[], $2::uuid[]) k(phone_id, contact_id)
           JOIN conversations v ON v.phone_id = k.phone_id AND v.contact_id = k.contact_id",
    ))
    .bind::<Array<SqlUuid>, _>(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .load::<ConversationRow>(conn)
    .await?)
}

/// What new messages did to a conversation.
#[derive(Debug, Clone)]
pub struct ConversationTouch {
    pub id: Uuid,
    pub last_message_at: DateTime<Utc>,
    /// Latest message from the customer: the service window runs from it.
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub unread: i32,
}

/// Moves conversations forward (never backwards) in one statement.
pub async fn touch_conversations(
    conn: &mut AsyncPgConnection,
    touches: &[ConversationTouch],
) -> StoreResult<()> {
    if touches.is_empty() {
        return Ok(());
    }
    CachedSql::new(
        "UPDATE conversations c
            SET last_message_at = GREATEST(c.last_message_at, u.last_message_at),
                last_inbound_at = GREATEST(c.last_inbound_at, u.last_inbound_at),
                unread_count = c.unread_count + u.unread,
                updated_at = now()
           FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int4[])
                AS u(id, last_message_at, last_inbound_at, unread)
          WHERE c.id = u.id",
    )
    .bind::<Array<SqlUuid>, _>(touches.iter().map(|t| t.id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(
        touches
            .iter()
            .map(|t| t.last_message_at)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Timestamptz>>, _>(
        touches
            .iter()
            .map(|t| t.last_inbound_at)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Int4>, _>(touches.iter().map(|t| t.unread).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The outbound messages of a phone that statuses name, by wamid or by the
/// id wagate sent as `biz_opaque_callback_data`, locked in id order.
pub async fn lock_outbound(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    wamids: &[&str],
    ids: &[Uuid],
) -> StoreResult<Vec<MessageRow>> {
    if wamids.is_empty() && ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(messages::table
        .filter(messages::phone_id.eq(phone_id))
        .filter(messages::direction.eq("outbound"))
        .filter(
            messages::wamid
                .eq_any(wamids)
                .assume_not_null()
                .or(messages::id.eq_any(ids)),
        )
        .order(messages::id)
        .select(MessageRow::as_select())
        .for_update()
        .load(conn)
        .await?)
}

pub async fn lock_message(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> StoreResult<Option<MessageRow>> {
    Ok(messages::table
        .find(id)
        .select(MessageRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Keeps a status whose message is not known yet (a send whose wamid is not
/// recorded yet). Kept once per (phone, wamid, status).
pub async fn save_orphan(
    conn: &mut AsyncPgConnection,
    meta_phone_number_id: &str,
    wamid: &str,
    status: &serde_json::Value,
) -> StoreResult<()> {
    diesel::insert_into(orphan_statuses::table)
        .values((
            orphan_statuses::meta_phone_number_id.eq(meta_phone_number_id),
            orphan_statuses::wamid.eq(wamid),
            orphan_statuses::status.eq(status),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct OrphanStatus {
    #[diesel(sql_type = Jsonb)]
    status: serde_json::Value,
}

/// Removes and returns the statuses kept for this phone's wamid.
pub async fn take_orphans(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    wamid: &str,
) -> StoreResult<Vec<serde_json::Value>> {
    let rows: Vec<OrphanStatus> = CachedSql::new(
        "DELETE FROM orphan_statuses o USING phone_numbers p
          WHERE p.id = $1 AND o.meta_phone_number_id = p.meta_phone_number_id AND o.wamid = $2
      RETURNING o.status",
    )
    .bind::<SqlUuid, _>(phone_id)
    .bind::<Text, _>(wamid)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.status).collect())
}

/// A message template as Meta's template webhooks describe it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = templates, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct TemplateRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub waba_id: Uuid,
    pub meta_template_id: Option<String>,
    pub name: String,
    pub language: String,
    pub status: Option<String>,
    pub category: Option<String>,
    pub previous_category: Option<String>,
    pub quality_score: Option<String>,
    pub reason: Option<String>,
    pub status_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The WABA's template with this Meta id, else with this name and
/// language, locked for the caller's transaction.
pub async fn lock_template(
    conn: &mut AsyncPgConnection,
    waba_id: Uuid,
    meta_template_id: Option<&str>,
    name_language: Option<(&str, &str)>,
) -> StoreResult<Option<TemplateRow>> {
    if let Some(id) = meta_template_id {
        let found = templates::table
            .filter(templates::waba_id.eq(waba_id))
            .filter(templates::meta_template_id.eq(id))
            .select(TemplateRow::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some((name, language)) = name_language else {
        return Ok(None);
    };
    Ok(templates::table
        .filter(templates::waba_id.eq(waba_id))
        .filter(templates::name.eq(name))
        .filter(templates::language.eq(language))
        .select(TemplateRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Inserts or replaces a template record (by id).
pub async fn save_template(
    conn: &mut AsyncPgConnection,
    row: &TemplateRow,
) -> StoreResult<TemplateRow> {
    Ok(diesel::insert_into(templates::table)
        .values(row)
        .on_conflict(templates::id)
        .do_update()
        .set(row)
        .returning(TemplateRow::as_returning())
        .get_result(conn)
        .await?)
}

/// A notice Meta posted about a WABA or one of its phones.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = waba_updates, check_for_backend(diesel::pg::Pg))]
pub struct WabaUpdateRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub waba_id: Uuid,
    pub phone_id: Option<Uuid>,
    pub field: String,
    pub event: Option<String>,
    pub value: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub dedupe_key: String,
}

/// Records a notice once (by its dedupe key); returns whether it was new.
pub async fn insert_waba_update(
    conn: &mut AsyncPgConnection,
    row: &WabaUpdateRow,
) -> StoreResult<bool> {
    let n = diesel::insert_into(waba_updates::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n > 0)
}

impl Store {
    /// Stores raw webhook bodies durably (one statement, one commit).
    pub async fn insert_inbound(&self, bodies: &[&[u8]], notify: bool) -> StoreResult<Vec<i64>> {
        let mut conn = self.conn().await?;
        insert_raw(&mut conn, bodies, notify).await
    }

    pub async fn claim_inbound(
        &self,
        limit: i64,
        lease: Duration,
        token: Uuid,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut conn = self.conn().await?;
        claim(&mut conn, limit, lease, token).await
    }

    /// Deliveries that need an operator: unrouted, unparseable and failed,
    /// newest first.
    pub async fn inbound_problems(&self, limit: i64) -> StoreResult<Vec<DeliverySummary>> {
        let mut conn = self.conn().await?;
        Ok(diesel::sql_query(
            "SELECT id, received_at, state, attempts, processed_at, last_error, unrouted_phone_ids,
                    octet_length(body) AS size
               FROM inbound_webhooks
              WHERE state IN ('unparseable', 'unrouted', 'failed')
              ORDER BY received_at DESC, id DESC
              LIMIT $1",
        )
        .bind::<BigInt, _>(limit)
        .load(&mut conn)
        .await?)
    }

    pub async fn inbound_delivery(&self, id: i64) -> StoreResult<Option<DeliverySummary>> {
        let mut conn = self.conn().await?;
        Ok(diesel::sql_query(
            "SELECT id, received_at, state, attempts, processed_at, last_error, unrouted_phone_ids,
                    octet_length(body) AS size
               FROM inbound_webhooks WHERE id = $1",
        )
        .bind::<BigInt, _>(id)
        .get_result(&mut conn)
        .await
        .optional()?)
    }

    /// Queues a stored delivery to be processed again, whatever its state
    /// (processing is idempotent); wakes the processors. False if unknown.
    pub async fn reprocess_inbound(&self, id: i64) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| {
            let n = diesel::update(inbound_webhooks::table.find(id))
                .set((
                    inbound_webhooks::state.eq(state::PENDING),
                    inbound_webhooks::attempts.eq(0),
                    inbound_webhooks::locked_until.eq(None::<DateTime<Utc>>),
                    inbound_webhooks::lease_token.eq(None::<Uuid>),
                    inbound_webhooks::processed_at.eq(None::<DateTime<Utc>>),
                    inbound_webhooks::last_error.eq(None::<String>),
                    inbound_webhooks::unrouted_phone_ids.eq(None::<Vec<String>>),
                ))
                .execute(c)
                .await?;
            if n > 0 {
                diesel::sql_query("SELECT pg_notify('wagate_inbound', '')")
                    .execute(c)
                    .await?;
            }
            Ok(n > 0)
        })
        .await
    }

    /// Deliveries still waiting (the processing backlog).
    pub async fn inbound_backlog(&self) -> StoreResult<i64> {
        let mut conn = self.conn().await?;
        Ok(inbound_webhooks::table
            .filter(inbound_webhooks::state.eq(state::PENDING))
            .count()
            .get_result(&mut conn)
            .await?)
    }

    /// Housekeeping: forgets processed deliveries older than `processed`,
    /// problem deliveries older than `problems` and early statuses older than
    /// `orphans` (their send never committed), and drops expired account
    /// restrictions. Returns the rows removed.
    pub async fn inbound_housekeeping(
        &self,
        processed: chrono::Duration,
        problems: chrono::Duration,
        orphans: chrono::Duration,
    ) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let now = Utc::now();
        let mut n = diesel::delete(
            inbound_webhooks::table
                .filter(inbound_webhooks::state.eq(state::PROCESSED))
                .filter(inbound_webhooks::received_at.lt(now - processed)),
        )
        .execute(&mut conn)
        .await?;
        // The states literal, as the problems' partial index names them, so
        // the delete reads that index and not the whole table (`<> pending`
        // matched no index; processed rows went above, sooner).
        n += CachedSql::new(
            "DELETE FROM inbound_webhooks
              WHERE state IN ('unparseable', 'unrouted', 'failed') AND received_at < $1",
        )
        .bind::<Timestamptz, _>(now - problems)
        .execute(&mut conn)
        .await?;
        n += diesel::delete(
            orphan_statuses::table.filter(orphan_statuses::received_at.lt(now - orphans)),
        )
        .execute(&mut conn)
        .await?;
        diesel::sql_query(
            "UPDATE wabas SET restrictions = COALESCE((
                    SELECT jsonb_agg(r) FROM jsonb_array_elements(restrictions) r
                     WHERE NOT (jsonb_typeof(r -> 'expiration') = 'number'
                                AND (r ->> 'expiration')::numeric < extract(epoch FROM now()))
                ), '[]'::jsonb),
                updated_at = now()
              WHERE jsonb_typeof(restrictions) = 'array' AND restrictions <> '[]'::jsonb
                AND EXISTS (SELECT 1 FROM jsonb_array_elements(restrictions) r
                             WHERE jsonb_typeof(r -> 'expiration') = 'number'
                               AND (r ->> 'expiration')::numeric < extract(epoch FROM now()))",
        )
        .execute(&mut conn)
        .await?;
        Ok(n)
    }

    /// Notices about a WABA of the organization, newest first.
    pub async fn list_waba_updates(
        &self,
        org_id: Uuid,
        waba_id: Uuid,
        field: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<WabaUpdateRow>, i64)> {
        let mut conn = self.conn().await?;
        let filtered = || {
            let mut q = waba_updates::table
                .filter(waba_updates::org_id.eq(org_id))
                .filter(waba_updates::waba_id.eq(waba_id))
                .into_boxed();
            if let Some(f) = field {
                q = q.filter(waba_updates::field.eq(f.to_owned()));
            }
            q
        };
        let total = filtered().count().get_result(&mut conn).await?;
        if page.beyond(total) {
            return Ok((Vec::new(), total));
        }
        let rows = filtered()
            .order((waba_updates::received_at.desc(), waba_updates::id))
            .limit(page.limit)
            .offset(page.offset())
            .select(WabaUpdateRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }
}

/// Whether this phone already stored a message with this wamid.
pub async fn has_message(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    wamid: &str,
) -> StoreResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        messages::table
            .filter(messages::phone_id.eq(phone_id))
            .filter(messages::wamid.eq(wamid)),
    ))
    .get_result(conn)
    .await?)
}

pub async fn waba(conn: &mut AsyncPgConnection, id: Uuid) -> StoreResult<Option<WabaRow>> {
    Ok(wabas::table
        .find(id)
        .select(WabaRow::as_select())
        .first(conn)
        .await
        .optional()?)
}
