//! The dispatcher's SQL: claiming due messages per phone at the phone's pace
//! (GCRA state in `phone_pacing`, so the pace holds across
//! instances) and each recipient's pair rate (`pair_pacing`), recording
//! outcomes fenced by the lease token, and settling lost leases.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::contacts::ContactRow;
use super::events::CachedSql;
use super::messages::{MessageRow, MetaFailure, NewMessageEvent, insert_events, message_columns};
use super::phones::{PhoneRow, WabaRow};
use super::schema::{
    contacts, messages, orphan_statuses, pair_pacing, phone_numbers, phone_pacing, wabas,
};
use super::{Store, StoreError, StoreResult};

const DUE: [&str; 3] = ["queued", "scheduled", "retrying"];

/// Pacing rules for one claim.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How far ahead to hand out send slots.
    pub window: Duration,
    pub lease: Duration,
    /// Meta's pair rate: one message per `pair_period` per recipient, with
    /// bursts up to `pair_burst`.
    pub pair_period: Duration,
    pub pair_burst: i32,
}

/// A claimed message and the instant it may be sent.
pub struct Claimed {
    pub message: MessageRow,
    pub slot: DateTime<Utc>,
}

pub struct PhoneClaim {
    pub phone: PhoneRow,
    pub waba: WabaRow,
    pub messages: Vec<Claimed>,
}

/// What happened to one dispatch attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        wamid: String,
    },
    /// Retry later (transient error, throttling).
    Retry {
        at: DateTime<Utc>,
        failure: super::messages::MetaFailure,
    },
    Failed(super::messages::MetaFailure),
    /// The request may have reached Meta: wait for a status webhook.
    Unknown {
        note: String,
    },
    /// Not attempted (shutdown): back to the queue.
    Released,
}

impl Store {
    /// Phones with messages due now: one index probe per phone (a
    /// `DISTINCT` over the due messages would read the whole backlog).
    pub async fn due_phones(&self, limit: i64) -> StoreResult<Vec<Uuid>> {
        let mut conn = self.conn().await?;
        // The status list is literal so that the partial index on due
        // messages matches whatever plan is cached. The probe is a LATERAL
        // `ORDER BY … LIMIT 1`, whatever the statistics: an `EXISTS`, planned
        // while the table looked empty, stayed a hash join over every due
        // message (3 ms a scan under a backlog of 60,000).
        Ok(CachedSql::new(
            "SELECT p.id FROM phone_numbers p
              CROSS JOIN LATERAL (SELECT 1 FROM messages m
                                   WHERE m.phone_id = p.id
                                     AND m.status IN ('queued', 'scheduled', 'retrying')
                                     AND m.next_attempt_at <= $1
                                   ORDER BY m.next_attempt_at LIMIT 1) due
              LIMIT $2",
        )
        .bind::<Timestamptz, _>(Utc::now())
        .bind::<BigInt, _>(limit)
        .load::<Id>(&mut conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
    }

    /// Claims the messages of one phone that fit in its pace for the next
    /// window, under a lease; defers those over a recipient's pair rate.
    pub async fn claim_phone(
        &self,
        phone_id: Uuid,
        pace: Pace,
        max: i64,
    ) -> StoreResult<Option<PhoneClaim>> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| claim_phone_on(c, phone_id, pace, max).await)
            .await
    }
}

/// `RETURNING` of an update that only reports which rows it changed.
#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Records dispatch outcomes on the caller's transaction; returns the rows
/// that became `sent` or `failed`, with their contacts, for events. Each
/// update is fenced by the lease token. A fixed number of statements per
/// kind of outcome, whatever the batch size: one set-based update per kind
/// present and one timeline insert.
pub async fn record_outcomes(
    conn: &mut AsyncPgConnection,
    results: &[(MessageRow, Outcome)],
) -> StoreResult<Vec<(MessageRow, Option<ContactRow>)>> {
    let now = Utc::now();
    let mut sent = Vec::new();
    let mut retry = Vec::new();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    let mut released = Vec::new();
    for (msg, outcome) in results {
        let Some(token) = msg.lease_token else {
            continue;
        };
        match outcome {
            Outcome::Sent { wamid } => sent.push((msg, token, wamid.as_str())),
            Outcome::Retry { at, failure } => retry.push((msg, token, *at, failure)),
            Outcome::Failed(failure) => failed.push((msg, token, failure)),
            Outcome::Unknown { note } => unknown.push((msg, token, note.as_str())),
            Outcome::Released => released.push((msg, token)),
        }
    }
    let event = |msg: &MessageRow, status: &str| {
        let mut e = NewMessageEvent::new(msg, status, "dispatcher");
        e.attempt = Some(msg.attempts);
        e
    };
    let with_failure = |mut e: NewMessageEvent, f: &MetaFailure| {
        e.error_code = f.code;
        e.error_title = f.title.clone();
        e.error_details = f.details.clone();
        e.error_message = Some(f.message.clone());
        e
    };
    // Timeline entries are written together, one statement for the batch.
    let mut events: Vec<NewMessageEvent> = Vec::new();
    let mut changed: Vec<MessageRow> = Vec::new();

    if !sent.is_empty() {
        let rows: Vec<MessageRow> = CachedSql::new(concat!(
            "UPDATE messages m SET status = 'sent', wamid = u.wamid, lease_until = NULL,
                    lease_token = NULL, next_attempt_at = NULL, updated_at = $4
               FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(id, token, wamid)
              WHERE m.id = u.id AND m.lease_token = u.token AND m.status = 'processing'
             RETURNING ",
            message_columns!()
        ))
        .bind::<Array<SqlUuid>, _>(sent.iter().map(|s| s.0.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(sent.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(sent.iter().map(|s| s.2).collect::<Vec<_>>())
        .bind::<Timestamptz, _>(now)
        .load(conn)
        .await?;
        let done: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        for (msg, _, _) in &sent {
            if done.contains(&msg.id) {
                events.push(event(msg, "sent"));
            }
        }
        changed.extend(rows);
        let lost: Vec<_> = sent.iter().filter(|s| !done.contains(&s.0.id)).collect();
        if !lost.is_empty() {
            // The lease was lost while Meta was answering: Meta's definite
            // answer still settles a message nobody else has sent since.
            let late: Vec<MessageRow> = CachedSql::new(concat!(
                "UPDATE messages m SET status = 'sent', wamid = u.wamid, unknown_since = NULL,
                        unknown_reason = NULL, next_attempt_at = NULL, updated_at = $3
                   FROM unnest($1::uuid[], $2::text[]) AS u(id, wamid)
                  WHERE m.id = u.id AND m.status = 'processing'
                    AND m.unknown_reason = 'lease_expired'
                 RETURNING ",
                message_columns!()
            ))
            .bind::<Array<SqlUuid>, _>(lost.iter().map(|s| s.0.id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(lost.iter().map(|s| s.2).collect::<Vec<_>>())
            .bind::<Timestamptz, _>(now)
            .load(conn)
            .await?;
            let settled: HashSet<Uuid> = late.iter().map(|r| r.id).collect();
            for (msg, _, _) in &lost {
                if settled.contains(&msg.id) {
                    let mut e = event(msg, "sent");
                    e.note = Some("Meta answered after the lease had expired".into());
                    events.push(e);
                }
            }
            changed.extend(late);
            // The others: a status webhook got there first; keep the wamid.
            let rest: Vec<_> = lost.iter().filter(|s| !settled.contains(&s.0.id)).collect();
            if !rest.is_empty() {
                CachedSql::new(
                    "UPDATE messages m SET wamid = u.wamid
                       FROM unnest($1::uuid[], $2::text[]) AS u(id, wamid)
                      WHERE m.id = u.id AND m.wamid IS NULL",
                )
                .bind::<Array<SqlUuid>, _>(rest.iter().map(|s| s.0.id).collect::<Vec<_>>())
                .bind::<Array<Text>, _>(rest.iter().map(|s| s.2).collect::<Vec<_>>())
                .execute(conn)
                .await?;
            }
        }
    }

    if !retry.is_empty() {
        let done: HashSet<Uuid> = CachedSql::new(
            "UPDATE messages m SET status = 'retrying', next_attempt_at = u.at, lease_until = NULL,
                    lease_token = NULL, updated_at = $4
               FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS u(id, token, at)
              WHERE m.id = u.id AND m.lease_token = u.token AND m.status = 'processing'
             RETURNING m.id",
        )
        .bind::<Array<SqlUuid>, _>(retry.iter().map(|r| r.0.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(retry.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(retry.iter().map(|r| r.2).collect::<Vec<_>>())
        .bind::<Timestamptz, _>(now)
        .load::<Id>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        for (msg, _, at, failure) in &retry {
            if done.contains(&msg.id) {
                let mut e = with_failure(event(msg, "retrying"), failure);
                e.note = Some(format!(
                    "next attempt at {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ));
                events.push(e);
            }
        }
    }

    if !failed.is_empty() {
        let rows: Vec<MessageRow> = CachedSql::new(concat!(
            "UPDATE messages m SET status = 'failed', error_code = u.code, error_title = u.title,
                    error_details = u.details, error_message = u.message, lease_until = NULL,
                    lease_token = NULL, next_attempt_at = NULL, updated_at = $7
               FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], $6::text[])
                    AS u(id, token, code, title, details, message)
              WHERE m.id = u.id AND m.lease_token = u.token AND m.status = 'processing'
             RETURNING ",
            message_columns!()
        ))
        .bind::<Array<SqlUuid>, _>(failed.iter().map(|f| f.0.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(failed.iter().map(|f| f.1).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(failed.iter().map(|f| f.2.code).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            failed
                .iter()
                .map(|f| f.2.title.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            failed
                .iter()
                .map(|f| f.2.details.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            failed
                .iter()
                .map(|f| f.2.message.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Timestamptz, _>(now)
        .load(conn)
        .await?;
        let done: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
        for (msg, _, failure) in &failed {
            if done.contains(&msg.id) {
                events.push(with_failure(event(msg, "failed"), failure));
            }
        }
        changed.extend(rows);
    }

    if !unknown.is_empty() {
        let done: HashSet<Uuid> = CachedSql::new(
            "UPDATE messages m SET unknown_since = $3, unknown_reason = 'timeout', lease_until = NULL,
                    lease_token = NULL, updated_at = $3
               FROM unnest($1::uuid[], $2::uuid[]) AS u(id, token)
              WHERE m.id = u.id AND m.lease_token = u.token AND m.status = 'processing'
             RETURNING m.id",
        )
        .bind::<Array<SqlUuid>, _>(unknown.iter().map(|u| u.0.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(unknown.iter().map(|u| u.1).collect::<Vec<_>>())
        .bind::<Timestamptz, _>(now)
        .load::<Id>(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
        for (msg, _, note) in &unknown {
            if done.contains(&msg.id) {
                let mut e = event(msg, "processing");
                e.note = Some((*note).to_owned());
                events.push(e);
            }
        }
    }

    if !released.is_empty() {
        // Not attempted: the attempt is handed back with the message.
        CachedSql::new(
            "UPDATE messages m SET status = CASE WHEN m.attempts - m.attempts_before_retry > 1
                                            THEN 'retrying' ELSE 'queued' END,
                    attempts = m.attempts - 1, next_attempt_at = $3, lease_until = NULL,
                    lease_token = NULL, updated_at = $3
               FROM unnest($1::uuid[], $2::uuid[]) AS u(id, token)
              WHERE m.id = u.id AND m.lease_token = u.token AND m.status = 'processing'",
        )
        .bind::<Array<SqlUuid>, _>(released.iter().map(|r| r.0.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(released.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind::<Timestamptz, _>(now)
        .execute(conn)
        .await?;
    }

    insert_events(conn, &events).await?;
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    let contacts_by_id: HashMap<Uuid, ContactRow> = contacts::table
        .filter(
            contacts::id.eq_any(
                changed
                    .iter()
                    .filter_map(|m| m.contact_id)
                    .collect::<Vec<_>>(),
            ),
        )
        .select(ContactRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    Ok(changed
        .into_iter()
        .map(|m| {
            let c = m.contact_id.and_then(|id| contacts_by_id.get(&id).cloned());
            (m, c)
        })
        .collect())
}

impl Store {
    /// Settles dispatches whose lease ran out (a crashed or stopped worker):
    /// first they wait for a status webhook (the request may have reached
    /// Meta); after `crash_grace` without one they are sent again. Sends with
    /// an unknown outcome after a timeout fail after `timeout_grace`.
    /// Returns how many messages were requeued.
    pub async fn settle_leases(
        &self,
        crash_grace: Duration,
        timeout_grace: Duration,
    ) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let now = Utc::now();
        // Each status change commits with its timeline entry.
        conn.transaction::<_, StoreError, _>(async |c| {
            let lost: Vec<MessageRow> = diesel::update(
                messages::table
                    .filter(messages::status.eq("processing"))
                    .filter(messages::lease_until.lt(now))
                    .filter(messages::unknown_since.is_null()),
            )
            .set((
                messages::unknown_since.eq(now),
                messages::unknown_reason.eq("lease_expired"),
                messages::lease_until.eq(None::<DateTime<Utc>>),
                messages::lease_token.eq(None::<Uuid>),
            ))
            .returning(MessageRow::as_returning())
            .get_results(c)
            .await?;
            record_settled(c, &lost, "processing", |e, _| {
                e.note = Some(
                    "lease expired before the outcome was recorded: waiting for Meta's status webhook"
                        .into(),
                );
            })
            .await?;
            let requeued: Vec<MessageRow> = diesel::update(
                messages::table
                    .filter(messages::status.eq("processing"))
                    .filter(messages::unknown_reason.eq("lease_expired"))
                    .filter(messages::unknown_since.lt(now - crash_grace))
                    .filter(messages::wamid.is_null()),
            )
            .set((
                messages::status.eq("retrying"),
                messages::next_attempt_at.eq(now),
                messages::unknown_since.eq(None::<DateTime<Utc>>),
                messages::unknown_reason.eq(None::<String>),
                messages::updated_at.eq(now),
            ))
            .returning(MessageRow::as_returning())
            .get_results(c)
            .await?;
            record_settled(c, &requeued, "retrying", |e, _| {
                e.note = Some("no status from Meta after the lost lease: the request never reached Meta; sending again".into());
            })
            .await?;
            let expired: Vec<MessageRow> = diesel::update(
                messages::table
                    .filter(messages::status.eq("processing"))
                    .filter(messages::unknown_reason.eq("timeout"))
                    .filter(messages::unknown_since.lt(now - timeout_grace)),
            )
            .set((
                messages::status.eq("failed"),
                messages::error_message.eq("outcome unknown: Meta did not answer and sent no status; the message may have been delivered. Retry to send it again."),
                messages::error_title.eq("OUTCOME_UNKNOWN"),
                messages::unknown_since.eq(None::<DateTime<Utc>>),
                messages::unknown_reason.eq(None::<String>),
                messages::updated_at.eq(now),
            ))
            .returning(MessageRow::as_returning())
            .get_results(c)
            .await?;
            record_settled(c, &expired, "failed", |e, m| {
                e.error_message = m.error_message.clone();
                e.error_title = m.error_title.clone();
            })
            .await?;
            Ok(requeued.len())
        })
        .await
    }

    /// Forgets pair pacing that no longer restrains anything (a theoretical
    /// arrival time in the past counts as now), so the table holds only the
    /// recipients messaged within the last pair period or so.
    pub async fn prune_pair_pacing(&self) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        Ok(CachedSql::new("DELETE FROM pair_pacing WHERE tat < now()")
            .execute(&mut conn)
            .await?)
    }

    /// Delays every due message to one recipient of a phone (Meta answered
    /// 131056 for the pair), and moves the pair's pacing forward.
    /// `conversation_id` is the throttled message's: the recipient's other
    /// messages are found through it, not among every due message of the
    /// phone, a backlog that may be a campaign's hundred thousand.
    pub async fn defer_pair(
        &self,
        phone_id: Uuid,
        conversation_id: Option<Uuid>,
        recipient: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        match conversation_id {
            // The conversation's messages by its index, then each by its
            // key: a shape with no filter the phone's due index could serve,
            // which a planner without statistics would otherwise scan.
            Some(c) => {
                CachedSql::new(
                    "UPDATE messages SET next_attempt_at = $1
                      WHERE id = ANY(ARRAY(SELECT id FROM messages WHERE conversation_id = $2))
                        AND recipient = $3
                        AND status IN ('queued', 'scheduled', 'retrying')
                        AND next_attempt_at < $1",
                )
                .bind::<Timestamptz, _>(until)
                .bind::<SqlUuid, _>(c)
                .bind::<Text, _>(recipient)
                .execute(&mut conn)
                .await?;
            }
            None => {
                diesel::update(
                    messages::table
                        .filter(messages::phone_id.eq(phone_id))
                        .filter(messages::recipient.eq(recipient))
                        .filter(messages::status.eq_any(DUE))
                        .filter(messages::next_attempt_at.lt(until)),
                )
                .set(messages::next_attempt_at.eq(until))
                .execute(&mut conn)
                .await?;
            }
        }
        diesel::insert_into(pair_pacing::table)
            .values((
                pair_pacing::phone_id.eq(phone_id),
                pair_pacing::recipient.eq(recipient),
                pair_pacing::tat.eq(until),
            ))
            .on_conflict((pair_pacing::phone_id, pair_pacing::recipient))
            .do_update()
            .set(pair_pacing::tat.eq(until))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Pauses a phone's pace (Meta answered 130429 for the number).
    pub async fn slow_phone(&self, phone_id: Uuid, until: DateTime<Utc>) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::insert_into(phone_pacing::table)
            .values((
                phone_pacing::phone_id.eq(phone_id),
                phone_pacing::tat.eq(until),
            ))
            .on_conflict(phone_pacing::phone_id)
            .do_update()
            .set(
                phone_pacing::tat.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                    "GREATEST(phone_pacing.tat, excluded.tat)",
                )),
            )
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

/// The dispatcher's timeline entry for each settled message, as `note` fills it in.
async fn record_settled(
    conn: &mut AsyncPgConnection,
    settled: &[MessageRow],
    status: &str,
    note: impl Fn(&mut NewMessageEvent, &MessageRow),
) -> StoreResult<()> {
    let events: Vec<NewMessageEvent> = settled
        .iter()
        .map(|m| {
            let mut e = NewMessageEvent::new(m, status, "dispatcher");
            note(&mut e, m);
            e
        })
        .collect();
    insert_events(conn, &events).await
}

/// Locks the phone's pacing row (created on first use) and returns its
/// theoretical arrival time: claims for one phone queue here, across
/// instances, while the phone row itself stays unlocked (every accepted
/// send's foreign key check reads it).
async fn lock_pacing(c: &mut AsyncPgConnection, phone_id: Uuid) -> StoreResult<DateTime<Utc>> {
    Ok(diesel::insert_into(phone_pacing::table)
        .values((
            phone_pacing::phone_id.eq(phone_id),
            phone_pacing::tat.eq(diesel::dsl::now),
        ))
        .on_conflict(phone_pacing::phone_id)
        .do_update()
        // A no-op update: locks the row and returns it.
        .set(phone_pacing::tat.eq(phone_pacing::tat))
        .returning(phone_pacing::tat)
        .get_result(c)
        .await?)
}

/// A due message and its recipient's pair pacing state.
#[derive(QueryableByName)]
struct Candidate {
    #[diesel(embed)]
    message: MessageRow,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pair_tat: Option<DateTime<Utc>>,
}

/// One phone's due messages, oldest first, locked, with their recipients'
/// pair pacing: `$1` the phone, `$2` now, `$3` how many. Public for the
/// test that checks its plan.
///
/// The recipients' pair pacing comes with the messages, probed per
/// message claimed. A subquery, not a join: with a join, a planner
/// without statistics (a table that grew since autovacuum last analysed
/// it) hashed every due message and sorted them all before the LIMIT,
/// 0.2–1.8 s a claim under a backlog of 170,000. With nothing but the
/// messages to order, the due index gives the order and the scan stops
/// at the LIMIT.
#[doc(hidden)]
pub const CLAIM_CANDIDATES: &str = concat!(
    "SELECT ",
    message_columns!(),
    ", (SELECT p.tat FROM pair_pacing p
          WHERE p.phone_id = m.phone_id AND p.recipient = m.recipient) AS pair_tat
       FROM messages m
      WHERE m.phone_id = $1 AND m.status IN ('queued', 'scheduled', 'retrying')
        AND m.next_attempt_at <= $2
      ORDER BY m.next_attempt_at, m.id
      LIMIT $3
      FOR UPDATE OF m SKIP LOCKED"
);

async fn claim_phone_on(
    c: &mut AsyncPgConnection,
    phone_id: Uuid,
    pace: Pace,
    max: i64,
) -> StoreResult<Option<PhoneClaim>> {
    let Some((phone, waba)) = phone_numbers::table
        .inner_join(wabas::table)
        .filter(phone_numbers::id.eq(phone_id))
        .select((PhoneRow::as_select(), WabaRow::as_select()))
        .first::<(PhoneRow, WabaRow)>(c)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let tat = lock_pacing(c, phone_id).await?;
    let now = Utc::now();
    let mps = i64::from(phone.throughput_mps.max(1));
    let interval = Duration::microseconds(1_000_000 / mps);
    let base = tat.max(now);
    let budget = ((now + pace.window - base).num_microseconds().unwrap_or(0)
        / interval.num_microseconds().unwrap_or(1))
    .clamp(0, max);
    let empty = |phone, waba| {
        Ok(Some(PhoneClaim {
            phone,
            waba,
            messages: Vec::new(),
        }))
    };
    if budget == 0 {
        return empty(phone, waba);
    }
    let candidates: Vec<Candidate> = CachedSql::new(CLAIM_CANDIDATES)
        .bind::<SqlUuid, _>(phone_id)
        .bind::<Timestamptz, _>(now)
        .bind::<BigInt, _>(budget)
        .load(c)
        .await?;
    if candidates.is_empty() {
        return empty(phone, waba);
    }

    // Pair pacing: GCRA per recipient.
    let tolerance = pace.pair_period * (pace.pair_burst - 1).max(0);
    let mut pair_tat: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut allowed = Vec::new();
    let mut deferred: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    for Candidate {
        message: m,
        pair_tat: stored,
    } in candidates
    {
        let Some(r) = m.recipient.clone() else {
            // No recipient known: no pair to pace.
            allowed.push(m);
            continue;
        };
        let t = pair_tat.get(&r).copied().or(stored).unwrap_or(now).max(now);
        if t - tolerance <= now {
            pair_tat.insert(r, t + pace.pair_period);
            allowed.push(m);
        } else {
            deferred.push((m.id, t - tolerance));
        }
    }
    // Sorted, so concurrent writers of pair rows lock them in one order.
    let mut touched: Vec<(String, DateTime<Utc>)> = pair_tat.into_iter().collect();
    touched.sort();
    let token = Uuid::new_v4();
    let ids: Vec<Uuid> = allowed.iter().map(|m| m.id).collect();
    // Every allowed message is locked by us, so all of them are claimed.
    let n = i32::try_from(ids.len()).unwrap_or(i32::MAX);
    // One statement: the claim under a lease with its timeline entries, the
    // phone's and the recipients' pacing, and the deferrals.
    let mut claimed: Vec<MessageRow> = CachedSql::new(concat!(
        "WITH c AS (
            UPDATE messages m SET status = 'processing', attempts = m.attempts + 1,
                   lease_until = $3, lease_token = $2, updated_at = $4
             WHERE m.id = ANY($1)
            RETURNING ",
        message_columns!(),
        "
         ),
         e AS (
            INSERT INTO message_events (org_id, message_id, status, at, attempt, source)
            SELECT c.org_id, c.id, 'processing', $4, c.attempts, 'dispatcher' FROM c
         ),
         d AS (
            UPDATE messages m SET next_attempt_at = u.at
              FROM unnest($5::uuid[], $6::timestamptz[]) AS u(id, at)
             WHERE m.id = u.id
         ),
         pp AS (
            INSERT INTO pair_pacing (phone_id, recipient, tat)
            SELECT $7, u.recipient, u.tat FROM unnest($8::text[], $9::timestamptz[]) AS u(recipient, tat)
            ON CONFLICT (phone_id, recipient) DO UPDATE SET tat = excluded.tat
         ),
         ph AS (
            UPDATE phone_pacing SET tat = $10 WHERE phone_id = $7 AND $11
         )
         SELECT * FROM c ORDER BY next_attempt_at, id"
    ))
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<SqlUuid, _>(token)
    .bind::<Timestamptz, _>(now + pace.lease)
    .bind::<Timestamptz, _>(now)
    .bind::<Array<SqlUuid>, _>(deferred.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(deferred.iter().map(|d| d.1).collect::<Vec<_>>())
    .bind::<SqlUuid, _>(phone_id)
    .bind::<Array<Text>, _>(touched.iter().map(|t| t.0.as_str()).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(touched.iter().map(|t| t.1).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(base + interval * n)
    .bind::<Bool, _>(n > 0)
    .load(c)
    .await?;
    claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
    let messages = claimed
        .into_iter()
        .enumerate()
        .map(|(i, message)| Claimed {
            slot: base + interval * i32::try_from(i).unwrap_or(i32::MAX),
            message,
        })
        .collect();
    Ok(Some(PhoneClaim {
        phone,
        waba,
        messages,
    }))
}

/// Which of these wamids have early statuses waiting (one query for a batch,
/// so sends without any pay nothing more).
pub async fn wamids_with_orphans(
    conn: &mut AsyncPgConnection,
    wamids: &[String],
) -> StoreResult<std::collections::HashSet<String>> {
    if wamids.is_empty() {
        return Ok(Default::default());
    }
    Ok(orphan_statuses::table
        .filter(orphan_statuses::wamid.eq_any(wamids))
        .select(orphan_statuses::wamid)
        .distinct()
        .load::<String>(conn)
        .await?
        .into_iter()
        .collect())
}
