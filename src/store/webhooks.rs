//! Outgoing webhook endpoints, their deliveries and the attempt log.
//!
//! Deliveries are claimed with `FOR UPDATE SKIP LOCKED` under a lease: a
//! claimed delivery carries a `lease_token` and its `next_attempt_at` moves
//! to the end of the lease, so a crashed worker's delivery is due again then.
//! Every later write is fenced by the token. A claim takes at most
//! `per_endpoint` deliveries in flight per endpoint (counted over every
//! instance), oldest due first, so one slow receiver cannot take every slot.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Bytea, Double, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::events::CachedSql;
use super::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_old_secrets};
use super::{PageRequest, Store, StoreError, StoreResult};

pub const KIND_ENDPOINT: &str = "endpoint";
pub const KIND_FORWARD: &str = "forward";

pub const TRIGGER_EVENT: &str = "event";
pub const TRIGGER_REPLAY: &str = "replay";
pub const TRIGGER_TEST: &str = "test";

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_FAILED: &str = "failed";

pub const OUTCOME_SUCCEEDED: &str = "succeeded";
pub const OUTCOME_RETRYING: &str = "retrying";
pub const OUTCOME_FAILED: &str = "failed";

/// Rotated-out secrets that may still sign at once.
pub const MAX_OLD_SECRETS: i64 = 10;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg))]
pub struct EndpointRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub waba_id: Option<Uuid>,
    pub kind: String,
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<String>,
    pub is_active: bool,
    pub secret_enc: Vec<u8>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Fields of a PATCH; `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub is_active: Option<bool>,
    pub description: Option<Option<String>>,
    pub waba_id: Option<Option<Uuid>>,
    /// A rotation: the new secret; the current one keeps signing until `old_expires_at`.
    pub rotate: Option<Rotation>,
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub new_secret_enc: Vec<u8>,
    pub old_expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum UpdateOutcome {
    Updated(Box<EndpointRow>),
    NotFound,
    /// Too many rotated-out secrets still in force.
    TooManyOldSecrets,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    pub trigger: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_token: Option<Uuid>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::pg::Pg))]
pub struct AttemptRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub endpoint_id: Uuid,
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    pub trigger: String,
    pub attempt: i32,
    pub url: String,
    pub status_code: Option<i32>,
    pub duration_ms: i32,
    pub response: Option<String>,
    pub error: Option<String>,
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A delivery a worker holds, with everything needed to send it.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub org_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub endpoint_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub event_id: Uuid,
    #[diesel(sql_type = Text)]
    pub event: String,
    #[diesel(sql_type = Text)]
    pub trigger: String,
    /// This attempt's number (1-based).
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = SqlUuid)]
    pub lease_token: Uuid,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Bool)]
    pub is_active: bool,
    #[diesel(sql_type = Bytea)]
    pub secret_enc: Vec<u8>,
    /// Rotated-out secrets still in force, newest first.
    #[diesel(sql_type = Array<Bytea>)]
    pub old_secrets: Vec<Vec<u8>>,
    #[diesel(sql_type = Text)]
    pub data: String,
    #[diesel(sql_type = Timestamptz)]
    pub event_at: DateTime<Utc>,
}

/// What one attempt came to; written back in batches.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub attempt: AttemptRow,
    pub lease_token: Uuid,
    /// Deactivate the endpoint, for this reason (it answered 410 Gone).
    pub deactivate: Option<String>,
}

/// The selection of events a range replay sends.
#[derive(Debug, Clone)]
pub struct ReplayRange {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub only_failed: bool,
}

impl Store {
    pub async fn insert_endpoint(&self, row: &EndpointRow) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::insert_into(webhook_endpoints::table)
            .values(row)
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn get_endpoint(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<EndpointRow>> {
        let mut conn = self.conn().await?;
        Ok(webhook_endpoints::table
            .filter(webhook_endpoints::org_id.eq(org_id))
            .filter(webhook_endpoints::id.eq(id))
            .select(EndpointRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    pub async fn list_endpoints(
        &self,
        org_id: Uuid,
        page: PageRequest,
    ) -> StoreResult<(Vec<EndpointRow>, i64)> {
        let mut conn = self.conn().await?;
        let total = webhook_endpoints::table
            .filter(webhook_endpoints::org_id.eq(org_id))
            .count()
            .get_result(&mut conn)
            .await?;
        let rows = webhook_endpoints::table
            .filter(webhook_endpoints::org_id.eq(org_id))
            .order((webhook_endpoints::created_at.desc(), webhook_endpoints::id))
            .limit(page.limit)
            .offset(page.offset())
            .select(EndpointRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    /// Until when each endpoint's rotated-out secrets still sign (the latest expiry).
    pub async fn old_secret_expiries(
        &self,
        endpoint_ids: &[Uuid],
    ) -> StoreResult<Vec<(Uuid, DateTime<Utc>)>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = webhook_old_secrets::table
            .filter(webhook_old_secrets::endpoint_id.eq_any(endpoint_ids))
            .filter(webhook_old_secrets::expires_at.gt(diesel::dsl::now))
            .group_by(webhook_old_secrets::endpoint_id)
            .select((
                webhook_old_secrets::endpoint_id,
                diesel::dsl::max(webhook_old_secrets::expires_at),
            ))
            .load(&mut conn)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| at.map(|at| (id, at)))
            .collect())
    }

    /// Rotated-out secrets of an endpoint still in force, newest first.
    pub async fn old_secrets(&self, endpoint_id: Uuid) -> StoreResult<Vec<Vec<u8>>> {
        let mut conn = self.conn().await?;
        Ok(webhook_old_secrets::table
            .filter(webhook_old_secrets::endpoint_id.eq(endpoint_id))
            .filter(webhook_old_secrets::expires_at.gt(diesel::dsl::now))
            .order(webhook_old_secrets::expires_at.desc())
            .select(webhook_old_secrets::secret_enc)
            .load(&mut conn)
            .await?)
    }

    /// Applies a PATCH in one transaction. Deactivating fails the pending
    /// deliveries; a rotation keeps the current secret signing until the
    /// rotation's expiry.
    pub async fn update_endpoint(
        &self,
        org_id: Uuid,
        id: Uuid,
        changes: EndpointChanges,
    ) -> StoreResult<UpdateOutcome> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| {
            let Some(current) = webhook_endpoints::table
                .filter(webhook_endpoints::org_id.eq(org_id))
                .filter(webhook_endpoints::id.eq(id))
                .select(EndpointRow::as_select())
                .for_update()
                .first(c)
                .await
                .optional()?
            else {
                return Ok(UpdateOutcome::NotFound);
            };
            let mut row = current.clone();
            if let Some(rotation) = &changes.rotate {
                let in_force: i64 = webhook_old_secrets::table
                    .filter(webhook_old_secrets::endpoint_id.eq(id))
                    .filter(webhook_old_secrets::expires_at.gt(diesel::dsl::now))
                    .count()
                    .get_result(c)
                    .await?;
                if in_force >= MAX_OLD_SECRETS {
                    return Ok(UpdateOutcome::TooManyOldSecrets);
                }
                diesel::insert_into(webhook_old_secrets::table)
                    .values((
                        webhook_old_secrets::endpoint_id.eq(id),
                        webhook_old_secrets::secret_enc.eq(&current.secret_enc),
                        webhook_old_secrets::expires_at.eq(rotation.old_expires_at),
                    ))
                    .execute(c)
                    .await?;
                // Expired ones are of no use any more.
                diesel::delete(
                    webhook_old_secrets::table
                        .filter(webhook_old_secrets::endpoint_id.eq(id))
                        .filter(webhook_old_secrets::expires_at.le(diesel::dsl::now)),
                )
                .execute(c)
                .await?;
                row.secret_enc = rotation.new_secret_enc.clone();
            }
            if let Some(url) = changes.url {
                row.url = url;
            }
            if let Some(events) = changes.events {
                row.events = events;
            }
            if let Some(d) = changes.description {
                row.description = d;
            }
            if let Some(w) = changes.waba_id {
                row.waba_id = w;
            }
            if let Some(active) = changes.is_active {
                row.is_active = active;
                if active {
                    row.disabled_reason = None;
                }
            }
            row.updated_at = Utc::now();
            diesel::update(webhook_endpoints::table.find(id))
                .set((
                    webhook_endpoints::url.eq(&row.url),
                    webhook_endpoints::events.eq(&row.events),
                    webhook_endpoints::description.eq(&row.description),
                    webhook_endpoints::waba_id.eq(row.waba_id),
                    webhook_endpoints::is_active.eq(row.is_active),
                    webhook_endpoints::disabled_reason.eq(&row.disabled_reason),
                    webhook_endpoints::secret_enc.eq(&row.secret_enc),
                    webhook_endpoints::updated_at.eq(row.updated_at),
                ))
                .execute(c)
                .await?;
            if current.is_active && !row.is_active {
                fail_pending_on(c, id, "the endpoint was deactivated").await?;
            }
            Ok(UpdateOutcome::Updated(Box::new(row)))
        })
        .await
    }

    /// Deletes the endpoint with its deliveries and log; returns it.
    pub async fn delete_endpoint(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<EndpointRow>> {
        let mut conn = self.conn().await?;
        Ok(diesel::delete(
            webhook_endpoints::table
                .filter(webhook_endpoints::org_id.eq(org_id))
                .filter(webhook_endpoints::id.eq(id)),
        )
        .returning(EndpointRow::as_returning())
        .get_result(&mut conn)
        .await
        .optional()?)
    }

    /// The organization's forward URL, if set.
    pub async fn get_forward(&self, org_id: Uuid) -> StoreResult<Option<EndpointRow>> {
        let mut conn = self.conn().await?;
        Ok(webhook_endpoints::table
            .filter(webhook_endpoints::org_id.eq(org_id))
            .filter(webhook_endpoints::kind.eq(KIND_FORWARD))
            .select(EndpointRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Sets the forward URL: creates the forward endpoint from `row`, or
    /// gives the existing one `row`'s URL and events (the forwarded ones,
    /// whatever a PATCH made of them; and its secret, when
    /// `replace_secret`) and reactivates it.
    pub async fn upsert_forward(
        &self,
        row: &EndpointRow,
        replace_secret: bool,
    ) -> StoreResult<EndpointRow> {
        let mut conn = self.conn().await?;
        let rows = CachedSql::new(
            "INSERT INTO webhook_endpoints
                (id, org_id, waba_id, kind, url, description, events, is_active, secret_enc,
                 disabled_reason, created_at, updated_at)
             VALUES ($1, $2, NULL, 'forward', $3, $4, $5, true, $6, NULL, $7, $7)
             ON CONFLICT (org_id) WHERE kind = 'forward' DO UPDATE SET
                url = excluded.url,
                events = excluded.events,
                is_active = true,
                disabled_reason = NULL,
                secret_enc = CASE WHEN $8 THEN excluded.secret_enc ELSE webhook_endpoints.secret_enc END,
                updated_at = excluded.updated_at
             RETURNING *",
        )
        .bind::<SqlUuid, _>(row.id)
        .bind::<SqlUuid, _>(row.org_id)
        .bind::<Text, _>(&row.url)
        .bind::<Nullable<Text>, _>(&row.description)
        .bind::<Array<Text>, _>(&row.events)
        .bind::<Bytea, _>(&row.secret_enc)
        .bind::<Timestamptz, _>(row.updated_at)
        .bind::<Bool, _>(replace_secret)
        .load::<EndpointByName>(&mut conn)
        .await?;
        rows.into_iter()
            .next()
            .map(EndpointRow::from)
            .ok_or(StoreError::Query(diesel::result::Error::NotFound))
    }

    /// Removes the forward URL; false when there was none.
    pub async fn delete_forward(&self, org_id: Uuid) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let n = diesel::delete(
            webhook_endpoints::table
                .filter(webhook_endpoints::org_id.eq(org_id))
                .filter(webhook_endpoints::kind.eq(KIND_FORWARD)),
        )
        .execute(&mut conn)
        .await?;
        Ok(n > 0)
    }

    /// An endpoint's attempts, newest first.
    pub async fn list_attempts(
        &self,
        org_id: Uuid,
        endpoint_id: Uuid,
        event_id: Option<Uuid>,
        page: PageRequest,
    ) -> StoreResult<(Vec<AttemptRow>, i64)> {
        let mut conn = self.conn().await?;
        let filtered = || {
            let mut q = webhook_attempts::table
                .filter(
                    webhook_attempts::endpoint_id
                        .nullable()
                        .eq(own_endpoint(org_id, endpoint_id)),
                )
                .into_boxed();
            if let Some(e) = event_id {
                // By the event's deliveries (their index), then each
                // delivery's attempts (theirs): attempts have no event
                // index, and a filter on the event alone read every attempt
                // of the endpoint, with statistics or without.
                use diesel::sql_types::{Bool, Uuid as SqlUuid};
                q = q
                    .filter(
                        diesel::dsl::sql::<Bool>(
                            "webhook_attempts.delivery_id = ANY(ARRAY(
                                SELECT d.id FROM webhook_deliveries d WHERE d.event_id = ",
                        )
                        .bind::<SqlUuid, _>(e)
                        .sql("))"),
                    )
                    .filter(webhook_attempts::event_id.eq(e));
            }
            q
        };
        let total = filtered().count().get_result(&mut conn).await?;
        if page.beyond(total) {
            return Ok((Vec::new(), total));
        }
        let rows = filtered()
            .order((
                webhook_attempts::created_at.desc(),
                webhook_attempts::attempt.desc(),
                webhook_attempts::id,
            ))
            .limit(page.limit)
            .offset(page.offset())
            .select(AttemptRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    /// An endpoint's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        org_id: Uuid,
        endpoint_id: Uuid,
        status: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<(Vec<DeliveryRow>, i64)> {
        let mut conn = self.conn().await?;
        let filtered = || {
            let mut q = webhook_deliveries::table
                .filter(
                    webhook_deliveries::endpoint_id
                        .nullable()
                        .eq(own_endpoint(org_id, endpoint_id)),
                )
                .into_boxed();
            if let Some(s) = status {
                q = q.filter(webhook_deliveries::status.eq(s.to_owned()));
            }
            q
        };
        let total = filtered().count().get_result(&mut conn).await?;
        if page.beyond(total) {
            return Ok((Vec::new(), total));
        }
        let rows = filtered()
            .order((
                webhook_deliveries::created_at.desc(),
                webhook_deliveries::id,
            ))
            .limit(page.limit)
            .offset(page.offset())
            .select(DeliveryRow::as_select())
            .load(&mut conn)
            .await?;
        Ok((rows, total))
    }

    /// Queues one event of the organization again to one endpoint. None
    /// when the organization has no such event, or it is outside the
    /// endpoint's WABA scope.
    pub async fn replay_event(
        &self,
        org_id: Uuid,
        endpoint_id: Uuid,
        event_id: Uuid,
    ) -> StoreResult<Option<Uuid>> {
        let mut conn = self.conn().await?;
        let delivery = CachedSql::new(
            "WITH d AS (
                INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event, trigger)
                SELECT gen_random_uuid(), ev.org_id, ep.id, ev.id, ev.event, 'replay'
                FROM webhook_events ev
                JOIN webhook_endpoints ep ON ep.org_id = ev.org_id AND ep.id = $2
                WHERE ev.org_id = $1 AND ev.id = $3
                  AND (ep.waba_id IS NULL OR ep.waba_id = ev.waba_id)
                RETURNING id
             )
             SELECT d.id, pg_notify('wagate_webhooks', '') AS note FROM d",
        )
        .bind::<SqlUuid, _>(org_id)
        .bind::<SqlUuid, _>(endpoint_id)
        .bind::<SqlUuid, _>(event_id)
        .get_result::<IdRow>(&mut conn)
        .await
        .optional()?;
        Ok(delivery.map(|d| d.id))
    }

    /// Queues again, to one endpoint, every event of a time range that the
    /// endpoint subscribes to (and is in its WABA scope); with `only_failed`,
    /// only those whose delivery to it failed and has not succeeded since.
    /// Returns how many were queued. An event's deliveries are read by the
    /// event alone (`OFFSET 0` keeps the endpoint out of that probe):
    /// beside the endpoint's index, a planner without statistics read
    /// every delivery of the endpoint for each event (8.7 s for an hour of
    /// events against 237,000 deliveries).
    pub async fn replay_range(
        &self,
        org_id: Uuid,
        endpoint_id: Uuid,
        range: &ReplayRange,
    ) -> StoreResult<i64> {
        let mut conn = self.conn().await?;
        let row = CachedSql::new(
            "WITH d AS (
                INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event, trigger)
                SELECT gen_random_uuid(), ev.org_id, ep.id, ev.id, ev.event, 'replay'
                FROM webhook_endpoints ep
                JOIN webhook_events ev ON ev.org_id = ep.org_id
                WHERE ep.org_id = $1 AND ep.id = $2
                  AND ev.created_at >= $3 AND ev.created_at < $4
                  AND (ep.events @> ARRAY[ev.event] OR ep.events @> ARRAY['*'])
                  AND (ep.waba_id IS NULL OR ep.waba_id = ev.waba_id)
                  AND (NOT $5 OR (
                        EXISTS (SELECT 1 FROM (SELECT f.endpoint_id, f.status FROM webhook_deliveries f
                                               WHERE f.event_id = ev.id OFFSET 0) f
                                WHERE f.endpoint_id = ep.id AND f.status = 'failed')
                    AND NOT EXISTS (SELECT 1 FROM (SELECT s.endpoint_id, s.status FROM webhook_deliveries s
                                                   WHERE s.event_id = ev.id OFFSET 0) s
                                WHERE s.endpoint_id = ep.id AND s.status <> 'failed')))
                ORDER BY ev.created_at, ev.id
                RETURNING 1
             )
             SELECT count(*) AS n,
                    CASE WHEN count(*) > 0 THEN pg_notify('wagate_webhooks', '') END AS note
             FROM d",
        )
        .bind::<SqlUuid, _>(org_id)
        .bind::<SqlUuid, _>(endpoint_id)
        .bind::<Timestamptz, _>(range.since)
        .bind::<Timestamptz, _>(range.until)
        .bind::<Bool, _>(range.only_failed)
        .get_result::<CountRow>(&mut conn)
        .await?;
        Ok(row.n)
    }

    /// Records a `webhook.test` event for one endpoint and its delivery,
    /// already leased to the caller (who makes the one attempt itself).
    pub async fn insert_test_delivery(
        &self,
        endpoint: &EndpointRow,
        event: &str,
        data: serde_json::Value,
        lease: std::time::Duration,
    ) -> StoreResult<ClaimedDelivery> {
        let mut conn = self.conn().await?;
        let event_id = Uuid::new_v4();
        let rows = CachedSql::new(
            "WITH ev AS (
                INSERT INTO webhook_events (id, org_id, waba_id, event, data, created_at)
                VALUES ($1, $2, $3, $4, $5, now())
                RETURNING id, data, created_at
             ),
             d AS (
                INSERT INTO webhook_deliveries
                    (id, org_id, endpoint_id, event_id, event, trigger, attempts, lease_token, next_attempt_at)
                VALUES (gen_random_uuid(), $2, $6, $1, $4, 'test', 1, gen_random_uuid(),
                        now() + make_interval(secs => $7))
                RETURNING *
             )
             SELECT d.id, d.org_id, d.endpoint_id, d.event_id, d.event, d.trigger, d.attempts,
                    d.lease_token, ep.url, ep.is_active, ep.secret_enc,
                    ARRAY(SELECT s.secret_enc FROM webhook_old_secrets s
                          WHERE s.endpoint_id = ep.id AND s.expires_at > now()
                          ORDER BY s.expires_at DESC) AS old_secrets,
                    ev.data::text AS data, ev.created_at AS event_at
             FROM d, ev, webhook_endpoints ep
             WHERE ep.id = $6",
        )
        .bind::<SqlUuid, _>(event_id)
        .bind::<SqlUuid, _>(endpoint.org_id)
        .bind::<Nullable<SqlUuid>, _>(endpoint.waba_id)
        .bind::<Text, _>(event)
        .bind::<Jsonb, _>(data)
        .bind::<SqlUuid, _>(endpoint.id)
        .bind::<Double, _>(lease.as_secs_f64())
        .load::<ClaimedDelivery>(&mut conn)
        .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Query(diesel::result::Error::NotFound))
    }

    /// Claims up to `limit` due deliveries, at most `per_endpoint` in flight
    /// per endpoint, for `lease`.
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        per_endpoint: i64,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut conn = self.conn().await?;
        Ok(CachedSql::new(
            "WITH RECURSIVE eps AS (
                (SELECT endpoint_id FROM webhook_deliveries
                 WHERE status = 'pending' ORDER BY endpoint_id LIMIT 1)
                UNION ALL
                SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                        WHERE d.status = 'pending' AND d.endpoint_id > eps.endpoint_id
                        ORDER BY d.endpoint_id LIMIT 1)
                FROM eps WHERE eps.endpoint_id IS NOT NULL
             ),
             inflight AS (
                SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
                WHERE status = 'pending' AND lease_token IS NOT NULL AND next_attempt_at > now()
                GROUP BY endpoint_id
             ),
             picked AS (
                SELECT c.id, c.next_attempt_at FROM eps
                LEFT JOIN inflight f ON f.endpoint_id = eps.endpoint_id
                CROSS JOIN LATERAL (
                    SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                    WHERE d.endpoint_id = eps.endpoint_id AND d.status = 'pending'
                      AND d.next_attempt_at <= now()
                    ORDER BY d.next_attempt_at
                    LIMIT GREATEST($2 - COALESCE(f.n, 0), 0)
                    FOR UPDATE SKIP LOCKED
                ) c
                WHERE eps.endpoint_id IS NOT NULL
                ORDER BY c.next_attempt_at
                LIMIT $1
             ),
             claimed AS (
                UPDATE webhook_deliveries d
                SET attempts = d.attempts + 1,
                    lease_token = gen_random_uuid(),
                    next_attempt_at = now() + make_interval(secs => $3),
                    updated_at = now()
                WHERE d.id = ANY(ARRAY(SELECT id FROM picked))
                RETURNING d.*
             )
             SELECT c.id, c.org_id, c.endpoint_id, c.event_id, c.event, c.trigger, c.attempts,
                    c.lease_token, ep.url, ep.is_active, ep.secret_enc,
                    ARRAY(SELECT s.secret_enc FROM webhook_old_secrets s
                          WHERE s.endpoint_id = ep.id AND s.expires_at > now()
                          ORDER BY s.expires_at DESC) AS old_secrets,
                    ev.data::text AS data, ev.created_at AS event_at
             FROM claimed c
             JOIN webhook_endpoints ep ON ep.id = c.endpoint_id
             JOIN webhook_events ev ON ev.id = c.event_id",
        )
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(per_endpoint)
        .bind::<Double, _>(lease.as_secs_f64())
        .load::<ClaimedDelivery>(&mut conn)
        .await?)
    }

    /// Writes a batch of attempt results: each delivery (if its lease still
    /// holds) moves to its outcome and every attempt goes into the log, in
    /// one statement. Endpoints to deactivate (they answered 410 Gone) are
    /// deactivated, with their reason, in the same transaction.
    pub async fn complete_deliveries(&self, results: &[AttemptResult]) -> StoreResult<()> {
        if results.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let deactivate: Vec<(Uuid, &str)> = results
            .iter()
            .filter_map(|r| Some((r.attempt.endpoint_id, r.deactivate.as_deref()?)))
            .collect();
        if deactivate.is_empty() {
            return complete_on(&mut conn, results).await;
        }
        conn.transaction::<_, StoreError, _>(async |c| {
            complete_on(c, results).await?;
            // wagate's own deactivation (410 Gone): the pending deliveries fail.
            for (endpoint_id, reason) in &deactivate {
                diesel::update(webhook_endpoints::table.find(endpoint_id))
                    .set((
                        webhook_endpoints::is_active.eq(false),
                        webhook_endpoints::disabled_reason.eq(reason),
                        webhook_endpoints::updated_at.eq(diesel::dsl::now),
                    ))
                    .execute(c)
                    .await?;
                fail_pending_on(c, *endpoint_id, "the endpoint was deactivated").await?;
            }
            Ok(())
        })
        .await
    }

    /// Deliveries by status, over every endpoint (for the benchmark and operators).
    pub async fn count_deliveries(&self, status: &str) -> StoreResult<i64> {
        let mut conn = self.conn().await?;
        Ok(webhook_deliveries::table
            .filter(webhook_deliveries::status.eq(status.to_owned()))
            .count()
            .get_result(&mut conn)
            .await?)
    }
}

/// Fails the endpoint's pending deliveries that no worker holds.
async fn fail_pending_on(
    c: &mut AsyncPgConnection,
    endpoint_id: Uuid,
    why: &str,
) -> StoreResult<()> {
    diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
            .filter(webhook_deliveries::status.eq(STATUS_PENDING))
            .filter(
                webhook_deliveries::lease_token
                    .is_null()
                    .or(webhook_deliveries::next_attempt_at.le(diesel::dsl::now)),
            ),
    )
    .set((
        webhook_deliveries::status.eq(STATUS_FAILED),
        webhook_deliveries::last_error.eq(why),
        webhook_deliveries::lease_token.eq(None::<Uuid>),
        webhook_deliveries::updated_at.eq(diesel::dsl::now),
        webhook_deliveries::completed_at.eq(diesel::dsl::now),
    ))
    .execute(c)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `RETURNING *` of webhook_endpoints, read by column name.
#[derive(QueryableByName)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointByName {
    id: Uuid,
    org_id: Uuid,
    waba_id: Option<Uuid>,
    kind: String,
    url: String,
    description: Option<String>,
    events: Vec<String>,
    is_active: bool,
    secret_enc: Vec<u8>,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<EndpointByName> for EndpointRow {
    fn from(e: EndpointByName) -> Self {
        EndpointRow {
            id: e.id,
            org_id: e.org_id,
            waba_id: e.waba_id,
            kind: e.kind,
            url: e.url,
            description: e.description,
            events: e.events,
            is_active: e.is_active,
            secret_enc: e.secret_enc,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// One statement: the deliveries' new state (fenced by their lease) and the
/// attempt log rows of the deliveries that still exist, from column arrays.
async fn complete_on(c: &mut AsyncPgConnection, results: &[AttemptResult]) -> StoreResult<()> {
    if results.is_empty() {
        return Ok(());
    }
    let a = |f: fn(&AttemptRow) -> Uuid| results.iter().map(|r| f(&r.attempt)).collect::<Vec<_>>();
    let ids = a(|r| r.id);
    let org_ids = a(|r| r.org_id);
    let endpoint_ids = a(|r| r.endpoint_id);
    let delivery_ids = a(|r| r.delivery_id);
    let event_ids = a(|r| r.event_id);
    let tokens: Vec<Uuid> = results.iter().map(|r| r.lease_token).collect();
    let text =
        |f: fn(&AttemptRow) -> &str| results.iter().map(|r| f(&r.attempt)).collect::<Vec<_>>();
    let events = text(|r| &r.event);
    let triggers = text(|r| &r.trigger);
    let urls = text(|r| &r.url);
    let outcomes = text(|r| &r.outcome);
    let attempts: Vec<i32> = results.iter().map(|r| r.attempt.attempt).collect();
    let codes: Vec<Option<i32>> = results.iter().map(|r| r.attempt.status_code).collect();
    let durations: Vec<i32> = results.iter().map(|r| r.attempt.duration_ms).collect();
    let responses: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.attempt.response.as_deref())
        .collect();
    let errors: Vec<Option<&str>> = results.iter().map(|r| r.attempt.error.as_deref()).collect();
    let next: Vec<Option<DateTime<Utc>>> =
        results.iter().map(|r| r.attempt.next_attempt_at).collect();
    let started: Vec<DateTime<Utc>> = results.iter().map(|r| r.attempt.created_at).collect();
    CachedSql::new(
        "WITH r AS (
            SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
              AS r(id, org_id, endpoint_id, delivery_id, event_id, event, trigger, attempt, url,
                   status_code, duration_ms, response, error, outcome, next_attempt_at, created_at, token)
         ),
         u AS (
            UPDATE webhook_deliveries d SET
                status = CASE r.outcome WHEN 'retrying' THEN 'pending' ELSE r.outcome END,
                next_attempt_at = COALESCE(r.next_attempt_at, now()),
                lease_token = NULL,
                last_status_code = r.status_code,
                last_error = r.error,
                updated_at = now(),
                completed_at = CASE WHEN r.outcome = 'retrying' THEN NULL ELSE now() END
            FROM r
            WHERE d.id = ANY($4) AND d.id = r.delivery_id AND d.lease_token = r.token
         )
         INSERT INTO webhook_attempts
            (id, org_id, endpoint_id, delivery_id, event_id, event, trigger, attempt, url,
             status_code, duration_ms, response, error, outcome, next_attempt_at, created_at)
         SELECT id, org_id, endpoint_id, delivery_id, event_id, event, trigger, attempt, url,
                status_code, duration_ms, response, error, outcome, next_attempt_at, created_at
         FROM r
         -- An attempt whose delivery was deleted meanwhile (its endpoint
         -- with it) has no log left to join: skipped, not a foreign-key
         -- failure of the whole batch. The lock waits out a delete in
         -- progress, then finds the row gone.
         WHERE EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = r.delivery_id FOR KEY SHARE)",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<SqlUuid>, _>(&org_ids)
    .bind::<Array<SqlUuid>, _>(&endpoint_ids)
    .bind::<Array<SqlUuid>, _>(&delivery_ids)
    .bind::<Array<SqlUuid>, _>(&event_ids)
    .bind::<Array<Text>, _>(&events)
    .bind::<Array<Text>, _>(&triggers)
    .bind::<Array<Int4>, _>(&attempts)
    .bind::<Array<Text>, _>(&urls)
    .bind::<Array<Nullable<Int4>>, _>(&codes)
    .bind::<Array<Int4>, _>(&durations)
    .bind::<Array<Nullable<Text>>, _>(&responses)
    .bind::<Array<Nullable<Text>>, _>(&errors)
    .bind::<Array<Text>, _>(&outcomes)
    .bind::<Array<Nullable<Timestamptz>>, _>(&next)
    .bind::<Array<Timestamptz>, _>(&started)
    .bind::<Array<SqlUuid>, _>(&tokens)
    .execute(c)
    .await?;
    Ok(())
}

/// The endpoint's id when it is the organization's (a scalar subquery): an
/// endpoint's rows are then filtered by the endpoint alone, which its index
/// serves in page order. Beside an organization filter, a planner without
/// statistics bitmap-scanned and sorted every row of the endpoint.
#[diesel::dsl::auto_type(no_type_alias)]
fn own_endpoint(org_id: Uuid, endpoint_id: Uuid) -> _ {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.eq(endpoint_id))
        .filter(webhook_endpoints::org_id.eq(org_id))
        .select(webhook_endpoints::id)
        .single_value()
}
