//! Events to customers: the transactional outbox of outgoing webhooks.
//!
//! Code that changes something customers hear about (a message received,
//! sent or updated, a phone connected) calls [`record_event`] on its own
//! connection, inside its own transaction: the event and one pending
//! delivery per subscribed endpoint commit with the change, or not at all.
//! The delivery worker (`crate::delivery`) builds the envelope
//! `{"id","event","timestamp","organizationId","data"}` when it sends.
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{
    Array, HasSqlType, Jsonb, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreResult;

/// A message was received from a contact.
pub const MESSAGE_RECEIVED: &str = "message.received";
/// A message was sent to a contact (Meta accepted it).
pub const MESSAGE_SENT: &str = "message.sent";
/// A message's status changed (delivered, read, failed).
pub const MESSAGE_STATUS_UPDATED: &str = "message.status_updated";
/// A phone number was connected (onboarding).
pub const PHONE_NUMBER_CONNECTED: &str = "phone_number.connected";
/// A phone number's health snapshot changed (quality, limits, capabilities).
pub const PHONE_NUMBER_HEALTH_UPDATED: &str = "phone_number.health_updated";
/// Meta approved, rejected, paused or disabled a message template.
pub const TEMPLATE_STATUS_UPDATED: &str = "template.status_updated";
/// Sent only by the test call to one endpoint; cannot be subscribed to.
pub const WEBHOOK_TEST: &str = "webhook.test";
/// Subscribes an endpoint to every event.
pub const ALL_EVENTS: &str = "*";

/// The events an endpoint can subscribe to, in catalog order.
pub const SUBSCRIBABLE: [&str; 6] = [
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_STATUS_UPDATED,
    PHONE_NUMBER_CONNECTED,
    PHONE_NUMBER_HEALTH_UPDATED,
    TEMPLATE_STATUS_UPDATED,
];

/// The channel the delivery worker listens on.
pub const NOTIFY_CHANNEL: &str = "wagate_webhooks";

/// The events the forward URL (`PUT /auth/me/webhook`) receives: delivery statuses.
pub const FORWARDED: [&str; 2] = [MESSAGE_SENT, MESSAGE_STATUS_UPDATED];

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: Uuid,
    /// Internal WABA id, for WABA-scoped endpoints; None when the event
    /// belongs to no WABA (only unscoped endpoints receive it then).
    pub waba_id: Option<Uuid>,
    /// One of the constants above ("message.received", ...).
    pub event: &'static str,
    /// The event's `data` object, as customers receive it.
    pub data: serde_json::Value,
}

/// Records the event and one pending delivery per active endpoint of the org
/// that subscribes to it (its events list contains it or "*"; unscoped
/// endpoints get everything in the org, WABA-scoped ones only that WABA's
/// events), which includes the organization's forward URL for status events.
/// Runs on the caller's connection, inside the caller's transaction, so the
/// event commits with the change that caused it. Returns the event id.
///
/// One round trip. When a delivery was queued it also wakes the delivery
/// workers with a `pg_notify`, which PostgreSQL sends once per transaction
/// however many events it records (and not at all when nobody listens for
/// this event, so organizations without webhooks pay no commit-time lock).
pub async fn record_event(conn: &mut AsyncPgConnection, ev: NewEvent) -> StoreResult<Uuid> {
    record_event_at(conn, ev, Utc::now()).await
}

/// [`record_event`] with an explicit event time.
pub async fn record_event_at(
    conn: &mut AsyncPgConnection,
    ev: NewEvent,
    at: DateTime<Utc>,
) -> StoreResult<Uuid> {
    debug_assert!(
        SUBSCRIBABLE.contains(&ev.event),
        "unknown event {}",
        ev.event
    );
    let id = super::new_id();
    CachedSql::new(
        "WITH ev AS (
            INSERT INTO webhook_events (id, org_id, waba_id, event, data, created_at)
            VALUES ($1, $2, $3, $4, $5, $6)
         ),
         d AS (
            INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event, trigger, next_attempt_at)
            SELECT gen_random_uuid(), e.org_id, e.id, $1, $4, 'event', now()
            FROM webhook_endpoints e
            WHERE e.org_id = $2 AND e.is_active
              AND (e.events @> ARRAY[$4] OR e.events @> ARRAY['*'])
              AND (e.waba_id IS NULL OR e.waba_id = $3)
            RETURNING 1
         )
         SELECT CASE WHEN count(*) > 0 THEN pg_notify('wagate_webhooks', '') END FROM d",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<SqlUuid, _>(ev.org_id)
    .bind::<Nullable<SqlUuid>, _>(ev.waba_id)
    .bind::<Text, _>(ev.event)
    .bind::<Jsonb, _>(ev.data)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await?;
    Ok(id)
}

/// [`record_event`] for many events at once, in one statement (for callers
/// that batch, e.g. a webhook processor handling many Meta notifications in
/// one transaction). Same rules; event times are now, a microsecond apart in
/// the given order. Returns the event ids in order.
pub async fn record_events(
    conn: &mut AsyncPgConnection,
    events: Vec<NewEvent>,
) -> StoreResult<Vec<Uuid>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let base = Utc::now();
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut orgs = Vec::with_capacity(n);
    let mut wabas = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for (i, ev) in events.into_iter().enumerate() {
        debug_assert!(
            SUBSCRIBABLE.contains(&ev.event),
            "unknown event {}",
            ev.event
        );
        ids.push(super::new_id());
        orgs.push(ev.org_id);
        wabas.push(ev.waba_id);
        names.push(ev.event);
        data.push(ev.data);
        times.push(base + chrono::Duration::microseconds(i64::try_from(i).unwrap_or(0)));
    }
    CachedSql::new(
        "WITH ev AS (
            INSERT INTO webhook_events (id, org_id, waba_id, event, data, created_at)
            SELECT * FROM unnest($1, $2, $3, $4, $5, $6)
            RETURNING id, org_id, waba_id, event
         ),
         d AS (
            INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event, trigger, next_attempt_at)
            SELECT gen_random_uuid(), e.org_id, e.id, ev.id, ev.event, 'event', now()
            FROM ev JOIN webhook_endpoints e
              ON e.org_id = ev.org_id AND e.is_active
             AND (e.events @> ARRAY[ev.event] OR e.events @> ARRAY['*'])
             AND (e.waba_id IS NULL OR e.waba_id = ev.waba_id)
            RETURNING 1
         )
         SELECT CASE WHEN count(*) > 0 THEN pg_notify('wagate_webhooks', '') END FROM d",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<SqlUuid>, _>(orgs)
    .bind::<Array<Nullable<SqlUuid>>, _>(wabas)
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Jsonb>, _>(data)
    .bind::<Array<Timestamptz>, _>(times)
    .execute(conn)
    .await?;
    Ok(ids)
}

/// A raw SQL statement that is prepared once per connection and reused:
/// diesel's `sql_query` is parsed and planned by PostgreSQL on every call,
/// which costs more than the work itself for the small, hot statements of
/// the outbox and the delivery worker. `$1`..`$n` in the text refer to the
/// binds in the order they were added; each occurrence is sent as its own
/// parameter.
pub(crate) struct CachedSql<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn PushBind + Send + 'a>>,
}

pub(crate) trait PushBind {
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

struct Bound<ST, U>(U, PhantomData<fn() -> ST>);

impl<ST, U> PushBind for Bound<ST, U>
where
    Pg: HasSqlType<ST>,
    U: ToSql<ST, Pg>,
{
    fn push<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<ST, U>(&self.0)
    }
}

impl<'a> CachedSql<'a> {
    pub(crate) fn new(sql: &'static str) -> Self {
        Self {
            sql,
            binds: Vec::new(),
        }
    }

    pub(crate) fn bind<ST, U>(mut self, value: U) -> Self
    where
        Pg: HasSqlType<ST>,
        U: ToSql<ST, Pg> + Send + 'a,
        ST: 'a,
    {
        self.binds.push(Box::new(Bound(value, PhantomData)));
        self
    }
}

impl QueryFragment<Pg> for CachedSql<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(i) = rest.find('$') {
            let digits = rest[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                out.push_sql(&rest[..=i]);
                rest = &rest[i + 1..];
                continue;
            }
            out.push_sql(&rest[..i]);
            let bind = rest[i + 1..i + 1 + digits]
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| self.binds.get(n))
                .ok_or_else(|| {
                    diesel::result::Error::QueryBuilderError(
                        format!("no bind for placeholder ${}", &rest[i + 1..i + 1 + digits]).into(),
                    )
                })?;
            bind.push(&mut out)?;
            rest = &rest[i + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl QueryId for CachedSql<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for CachedSql<'_> {
    type SqlType = Untyped;
}
