//! Messages (the dispatcher's outbox too) and their timeline.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::contacts::ContactRow;
use super::events::CachedSql;
use super::schema::{contacts, conversations, message_events, messages};
use super::{PageRequest, Store, StoreResult};

/// Every column of a message aliased `m`, named as [`MessageRow`]'s fields
/// (`type AS kind`), for raw statements that return rows by name.
macro_rules! message_columns {
    () => {
        "m.id, m.org_id, m.phone_id, m.conversation_id, m.contact_id, m.direction, \
         m.type AS kind, m.content, m.payload, m.status, m.recipient, m.wamid, m.batch_id, \
         m.send_at, m.next_attempt_at, m.attempts, m.lease_until, m.lease_token, \
         m.unknown_since, m.unknown_reason, m.error_code, m.error_title, m.error_details, \
         m.error_message, m.pricing, m.warnings, m.meta_timestamp, m.created_at, m.updated_at, \
         m.attempts_before_retry"
    };
}
pub(crate) use message_columns;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub phone_id: Uuid,
    pub conversation_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub direction: String,
    pub kind: String,
    pub content: serde_json::Value,
    pub payload: serde_json::Value,
    pub status: String,
    pub recipient: Option<String>,
    pub wamid: Option<String>,
    pub batch_id: Option<Uuid>,
    pub send_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub unknown_since: Option<DateTime<Utc>>,
    pub unknown_reason: Option<String>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_details: Option<String>,
    pub error_message: Option<String>,
    pub pricing: Option<serde_json::Value>,
    pub warnings: serde_json::Value,
    pub meta_timestamp: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `attempts` when the latest manual retry gave the message a fresh
    /// budget (0 before any): the dispatcher's bound counts from here, the
    /// timeline's attempt numbers go on.
    pub attempts_before_retry: i32,
}

#[derive(QueryableByName)]
struct InsertedId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Inserts received messages with one statement prepared once per
/// connection, however many rows: one array per column, unnested. (A
/// multi-row VALUES has 29 parameters a row, is built, parsed and planned
/// afresh for every row count, and costs more than the insert.) A message
/// whose (phone, wamid) is already stored is skipped (Meta redelivers):
/// returns only the rows inserted, as stored and in the caller's order, so
/// a redelivered message is processed once.
pub async fn insert_messages(
    conn: &mut AsyncPgConnection,
    rows: Vec<MessageRow>,
) -> StoreResult<Vec<MessageRow>> {
    use diesel::sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as U};
    // The columns in MessageRow's order.
    const SQL: &str = "INSERT INTO messages AS m (id, org_id, phone_id, conversation_id, \
         contact_id, direction, type, content, payload, status, recipient, wamid, batch_id, \
         send_at, next_attempt_at, attempts, lease_until, lease_token, unknown_since, \
         unknown_reason, error_code, error_title, error_details, error_message, pricing, \
         warnings, meta_timestamp, created_at, updated_at) \
         SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29) \
         ON CONFLICT DO NOTHING RETURNING m.id";
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&MessageRow) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let opt_uuid = |f: fn(&MessageRow) -> Option<Uuid>| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&MessageRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let opt_text = |f: fn(&MessageRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&MessageRow) -> Option<DateTime<Utc>>| rows.iter().map(f).collect::<Vec<_>>();
    let json = |f: fn(&MessageRow) -> &serde_json::Value| rows.iter().map(f).collect::<Vec<_>>();
    let q = CachedSql::new(SQL)
        .bind::<Array<U>, _>(col(|r| r.id))
        .bind::<Array<U>, _>(col(|r| r.org_id))
        .bind::<Array<U>, _>(col(|r| r.phone_id))
        .bind::<Array<Nullable<U>>, _>(opt_uuid(|r| r.conversation_id))
        .bind::<Array<Nullable<U>>, _>(opt_uuid(|r| r.contact_id))
        .bind::<Array<Text>, _>(text(|r| &r.direction))
        .bind::<Array<Text>, _>(text(|r| &r.kind))
        .bind::<Array<Jsonb>, _>(json(|r| &r.content))
        .bind::<Array<Jsonb>, _>(json(|r| &r.payload))
        .bind::<Array<Text>, _>(text(|r| &r.status))
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.recipient.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.wamid.as_deref()))
        .bind::<Array<Nullable<U>>, _>(opt_uuid(|r| r.batch_id))
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.send_at))
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.next_attempt_at))
        .bind::<Array<Int4>, _>(rows.iter().map(|r| r.attempts).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.lease_until))
        .bind::<Array<Nullable<U>>, _>(opt_uuid(|r| r.lease_token))
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.unknown_since))
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.unknown_reason.as_deref()))
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.error_code).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.error_title.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.error_details.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(opt_text(|r| r.error_message.as_deref()))
        .bind::<Array<Nullable<Jsonb>>, _>(
            rows.iter().map(|r| r.pricing.as_ref()).collect::<Vec<_>>(),
        )
        .bind::<Array<Jsonb>, _>(json(|r| &r.warnings))
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.meta_timestamp))
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>());
    let inserted: std::collections::HashSet<Uuid> = q
        .load::<InsertedId>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    // The rows as PostgreSQL keeps them (times to the microsecond), rather
    // than read back: RETURNING every column cost as much as the insert.
    Ok(rows
        .into_iter()
        .filter(|r| inserted.contains(&r.id))
        .map(MessageRow::into_stored)
        .collect())
}

impl MessageRow {
    /// A message with what every message has, and nothing yet beyond it: no
    /// contact or conversation, wamid, dispatch state, error or pricing.
    pub fn new(
        id: Uuid,
        org_id: Uuid,
        phone_id: Uuid,
        direction: &str,
        status: &str,
        created_at: DateTime<Utc>,
    ) -> Self {
        MessageRow {
            id,
            org_id,
            phone_id,
            conversation_id: None,
            contact_id: None,
            direction: direction.to_owned(),
            kind: "text".into(),
            content: serde_json::Value::Null,
            payload: serde_json::Value::Null,
            status: status.to_owned(),
            recipient: None,
            wamid: None,
            batch_id: None,
            send_at: None,
            next_attempt_at: None,
            attempts: 0,
            lease_until: None,
            lease_token: None,
            unknown_since: None,
            unknown_reason: None,
            error_code: None,
            error_title: None,
            error_details: None,
            error_message: None,
            pricing: None,
            warnings: serde_json::json!([]),
            meta_timestamp: None,
            created_at,
            updated_at: created_at,
            attempts_before_retry: 0,
        }
    }

    /// This row as PostgreSQL stores it: times to the microsecond
    /// (truncated, as diesel sends them).
    pub(super) fn into_stored(self) -> MessageRow {
        use chrono::SubsecRound;
        let t = |t: DateTime<Utc>| t.trunc_subsecs(6);
        let o = |t: Option<DateTime<Utc>>| t.map(|t| t.trunc_subsecs(6));
        MessageRow {
            send_at: o(self.send_at),
            next_attempt_at: o(self.next_attempt_at),
            lease_until: o(self.lease_until),
            unknown_since: o(self.unknown_since),
            meta_timestamp: o(self.meta_timestamp),
            created_at: t(self.created_at),
            updated_at: t(self.updated_at),
            ..self
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = message_events, check_for_backend(diesel::pg::Pg))]
pub struct MessageEventRow {
    pub id: i64,
    pub org_id: Uuid,
    pub message_id: Uuid,
    pub status: String,
    pub at: DateTime<Utc>,
    pub attempt: Option<i32>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_details: Option<String>,
    pub error_message: Option<String>,
    pub pricing: Option<serde_json::Value>,
    pub source: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = message_events)]
pub struct NewMessageEvent {
    pub org_id: Uuid,
    pub message_id: Uuid,
    pub status: String,
    pub at: DateTime<Utc>,
    pub attempt: Option<i32>,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub error_details: Option<String>,
    pub error_message: Option<String>,
    pub pricing: Option<serde_json::Value>,
    pub source: String,
    pub note: Option<String>,
}

impl NewMessageEvent {
    pub fn new(msg: &MessageRow, status: &str, source: &str) -> Self {
        NewMessageEvent {
            org_id: msg.org_id,
            message_id: msg.id,
            status: status.to_owned(),
            at: Utc::now(),
            attempt: None,
            error_code: None,
            error_title: None,
            error_details: None,
            error_message: None,
            pricing: None,
            source: source.to_owned(),
            note: None,
        }
    }
}

/// Adds entries to message timelines, in order, in one prepared statement
/// whatever their number (a multi-row insert is re-planned per row count).
pub async fn insert_events(
    conn: &mut AsyncPgConnection,
    events: &[NewMessageEvent],
) -> StoreResult<()> {
    use diesel::sql_types::{Array, BigInt, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as U};
    if events.is_empty() {
        return Ok(());
    }
    fn col<T>(events: &[NewMessageEvent], f: impl Fn(&NewMessageEvent) -> T) -> Vec<T> {
        events.iter().map(f).collect()
    }
    // unnest yields rows in array order, so ids follow the given order.
    CachedSql::new(
        "INSERT INTO message_events (org_id, message_id, status, at, attempt, error_code,
                                     error_title, error_details, error_message, pricing, source, note)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int4[],
                              $6::int8[], $7::text[], $8::text[], $9::text[], $10::jsonb[],
                              $11::text[], $12::text[])",
    )
    .bind::<Array<U>, _>(col(events, |e| e.org_id))
    .bind::<Array<U>, _>(col(events, |e| e.message_id))
    .bind::<Array<Text>, _>(col(events, |e| e.status.clone()))
    .bind::<Array<Timestamptz>, _>(col(events, |e| e.at))
    .bind::<Array<Nullable<Int4>>, _>(col(events, |e| e.attempt))
    .bind::<Array<Nullable<BigInt>>, _>(col(events, |e| e.error_code))
    .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.error_title.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.error_details.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.error_message.clone()))
    .bind::<Array<Nullable<Jsonb>>, _>(col(events, |e| e.pricing.clone()))
    .bind::<Array<Text>, _>(col(events, |e| e.source.clone()))
    .bind::<Array<Nullable<Text>>, _>(col(events, |e| e.note.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

/// Meta's error, as recorded on a failed message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaFailure {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub details: Option<String>,
    /// The reason in words (`errorMessage`).
    pub message: String,
}

/// A status change to apply to an outbound message.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub status: &'static str,
    pub at: DateTime<Utc>,
    pub wamid: Option<String>,
    pub failure: Option<MetaFailure>,
    pub pricing: Option<serde_json::Value>,
    /// "webhook" or "dispatcher".
    pub source: &'static str,
    pub note: Option<String>,
}

/// Order of the lifecycle for monotonic updates: a status never moves a
/// message backwards (`read` may come before `delivered`, `sent` after
/// `delivered`). `failed` applies to messages not yet delivered.
pub fn rank(status: &str) -> u8 {
    match status {
        "queued" | "scheduled" => 0,
        "processing" | "retrying" => 1,
        "sent" => 2,
        "delivered" => 3,
        "read" => 4,
        "failed" => 5,
        _ => 0,
    }
}

/// Whether `new` may replace `current`.
pub fn advances(current: &str, new: &str) -> bool {
    match new {
        "failed" => rank(current) < rank("delivered"),
        _ => current != "failed" && rank(new) > rank(current),
    }
}

/// Applies a status to a message (which the caller holds locked or has just
/// written): records it in the timeline once (webhook statuses are
/// deduplicated by (message, status)) and moves the message forward when the
/// lifecycle allows. Returns whether the message's status changed.
pub async fn apply_status(
    conn: &mut AsyncPgConnection,
    msg: &MessageRow,
    update: &StatusUpdate,
) -> StoreResult<bool> {
    let mut event = NewMessageEvent::new(msg, update.status, update.source);
    event.at = update.at;
    event.pricing = update.pricing.clone();
    event.note = update.note.clone();
    event.attempt = (update.source == "dispatcher").then_some(msg.attempts);
    if let Some(f) = &update.failure {
        event.error_code = f.code;
        event.error_title = f.title.clone();
        event.error_details = f.details.clone();
        event.error_message = Some(f.message.clone());
    }
    let recorded = diesel::insert_into(message_events::table)
        .values(&event)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if recorded == 0 {
        return Ok(false);
    }
    let now = Utc::now();
    if !advances(&msg.status, update.status) {
        // Still learn the wamid and pricing carried by a late status.
        if msg.wamid.is_none() && update.wamid.is_some() || update.pricing.is_some() {
            diesel::update(messages::table.find(msg.id))
                .set((
                    messages::wamid.eq(msg.wamid.clone().or(update.wamid.clone())),
                    messages::pricing.eq(update.pricing.clone().or(msg.pricing.clone())),
                    messages::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
        }
        return Ok(false);
    }
    let failure = update.failure.clone().unwrap_or_default();
    let failed = update.status == "failed";
    diesel::update(messages::table.find(msg.id))
        .set((
            messages::status.eq(update.status),
            messages::wamid.eq(msg.wamid.clone().or(update.wamid.clone())),
            messages::pricing.eq(update.pricing.clone().or(msg.pricing.clone())),
            messages::error_code.eq(if failed { failure.code } else { msg.error_code }),
            messages::error_title.eq(if failed {
                failure.title.clone()
            } else {
                msg.error_title.clone()
            }),
            messages::error_details.eq(if failed {
                failure.details.clone()
            } else {
                msg.error_details.clone()
            }),
            messages::error_message.eq(if failed {
                Some(failure.message.clone())
            } else {
                msg.error_message.clone()
            }),
            // A status from Meta settles a dispatch whose outcome was unknown.
            messages::unknown_since.eq(None::<DateTime<Utc>>),
            messages::unknown_reason.eq(None::<String>),
            messages::lease_until.eq(None::<DateTime<Utc>>),
            messages::lease_token.eq(None::<Uuid>),
            messages::next_attempt_at.eq(None::<DateTime<Utc>>),
            messages::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Filters of `GET /messages`.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<String>,
    pub phone_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub batch_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub direction: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

impl Store {
    /// A message of the organization, with its contact.
    pub async fn get_message(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<(MessageRow, Option<ContactRow>)>> {
        let mut conn = self.conn().await?;
        Ok(messages::table
            .left_join(contacts::table.on(contacts::id.nullable().eq(messages::contact_id)))
            .filter(messages::org_id.eq(org_id))
            .filter(messages::id.eq(id))
            .select((MessageRow::as_select(), Option::<ContactRow>::as_select()))
            .first(&mut conn)
            .await
            .optional()?)
    }

    pub async fn message_timeline(&self, message_id: Uuid) -> StoreResult<Vec<MessageEventRow>> {
        let mut conn = self.conn().await?;
        Ok(message_events::table
            .filter(message_events::message_id.eq(message_id))
            .order(message_events::id.asc())
            .select(MessageEventRow::as_select())
            .load(&mut conn)
            .await?)
    }

    /// Newest first.
    pub async fn list_messages(
        &self,
        org_id: Uuid,
        f: &MessageFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<(MessageRow, Option<ContactRow>)>, i64)> {
        let mut conn = self.conn().await?;
        let total = message_list(org_id, f)
            .count()
            .get_result(&mut conn)
            .await?;
        if page.beyond(total) {
            return Ok((Vec::new(), total));
        }
        let rows = message_page(org_id, f, page).load(&mut conn).await?;
        Ok((rows, total))
    }

    /// The plans of [`Store::list_messages`]' two queries (the count, then
    /// the page), as `EXPLAIN (ANALYZE, FORMAT JSON)` gives them.
    #[doc(hidden)]
    pub async fn explain_list_messages(
        &self,
        org_id: Uuid,
        f: &MessageFilter,
        page: PageRequest,
    ) -> StoreResult<[serde_json::Value; 2]> {
        use super::explain::Explain;
        let mut conn = self.conn().await?;
        let count = Explain(message_list(org_id, f).count())
            .get_result(&mut conn)
            .await?;
        let rows = Explain(message_page(org_id, f, page))
            .get_result(&mut conn)
            .await?;
        Ok([count, rows])
    }
}

type MessageList = diesel::dsl::IntoBoxed<
    'static,
    diesel::dsl::LeftJoinOn<
        messages::table,
        contacts::table,
        diesel::dsl::Eq<diesel::dsl::Nullable<contacts::id>, messages::contact_id>,
    >,
    diesel::pg::Pg,
>;

/// The organization's messages that `f` selects, with their contacts.
fn message_list(org_id: Uuid, f: &MessageFilter) -> MessageList {
    let mut q = messages::table
        .left_join(contacts::table.on(contacts::id.nullable().eq(messages::contact_id)))
        .into_boxed();
    // A conversation (a contact's messages are its conversation's) is
    // checked against the organization once, and its messages read by its
    // index in page order: beside an organization filter, a planner
    // without statistics would read the organization's whole index (and
    // messages have no index by contact at all).
    match (f.conversation_id, f.contact_id) {
        (None, None) => q = q.filter(messages::org_id.eq(org_id)),
        (Some(c), _) => {
            q = q.filter(
                messages::conversation_id
                    .eq(own_conversation(org_id, c))
                    .assume_not_null(),
            )
        }
        // The contact's conversation (one: it is its phone inbox's),
        // written out, as the outer query joins contacts already.
        (None, Some(c)) => {
            use diesel::sql_types::{Bool, Uuid as SqlUuid};
            q = q.filter(
                diesel::dsl::sql::<Bool>(
                    "messages.conversation_id = (
                        SELECT v.id FROM contacts o
                          JOIN conversations v
                            ON v.phone_id = o.phone_id AND v.contact_id = o.id
                         WHERE o.id = ",
                )
                .bind::<SqlUuid, _>(c)
                .sql(" AND o.org_id = ")
                .bind::<SqlUuid, _>(org_id)
                .sql(")"),
            )
        }
    }
    if let Some(s) = &f.status {
        q = q.filter(messages::status.eq(s.clone()));
    }
    if let Some(p) = f.phone_id {
        q = q.filter(messages::phone_id.eq(p));
    }
    if let Some(c) = f.contact_id {
        q = q.filter(messages::contact_id.eq(c));
    }
    if let Some(b) = f.batch_id {
        q = q.filter(messages::batch_id.eq(b));
    }
    if let Some(d) = &f.direction {
        q = q.filter(messages::direction.eq(d.clone()));
    }
    if let Some(t) = f.created_after {
        q = q.filter(messages::created_at.ge(t));
    }
    if let Some(t) = f.created_before {
        q = q.filter(messages::created_at.lt(t));
    }
    q
}

/// One page of [`message_list`], newest first.
fn message_page(
    org_id: Uuid,
    f: &MessageFilter,
    page: PageRequest,
) -> impl diesel_async::methods::LoadQuery<'static, AsyncPgConnection, (MessageRow, Option<ContactRow>)>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ Send
+ 'static {
    message_list(org_id, f)
        .order((messages::created_at.desc(), messages::id.desc()))
        .limit(page.limit)
        .offset(page.offset())
        .select((MessageRow::as_select(), Option::<ContactRow>::as_select()))
}

/// The conversation's id when it is the organization's (a scalar subquery).
#[diesel::dsl::auto_type(no_type_alias)]
fn own_conversation(org_id: Uuid, conversation_id: Uuid) -> _ {
    conversations::table
        .filter(conversations::id.eq(conversation_id))
        .filter(conversations::org_id.eq(org_id))
        .select(conversations::id)
        .single_value()
}

#[cfg(test)]
mod tests {
    use super::advances;

    #[test]
    fn statuses_never_move_backwards() {
        assert!(advances("processing", "sent"));
        assert!(advances("sent", "delivered"));
        assert!(advances("sent", "read"), "read may skip delivered");
        assert!(
            !advances("delivered", "sent"),
            "sent after delivered is ignored"
        );
        assert!(!advances("read", "delivered"));
        assert!(advances("sent", "failed"));
        assert!(advances("processing", "failed"));
        assert!(!advances("delivered", "failed"));
        assert!(!advances("failed", "sent"));
        assert!(!advances("read", "read"));
    }
}
