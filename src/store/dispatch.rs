//! The dispatcher's SQL: claiming due messages per phone at the phone's pace
//! (GCRA state in `phone_pacing`, so the pace holds across
//! instances) and each recipient's pair rate (`pair_pacing`), recording
//! outcomes fenced by the lease token, and settling lost leases.
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::contacts::ContactRow;
use super::messages::{MessageRow, NewMessageEvent};
use super::phones::{PhoneRow, WabaRow};
use super::schema::{
    contacts, message_events, messages, orphan_statuses, pair_pacing, phone_numbers, phone_pacing,
    wabas,
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
        let due = messages::table
            .filter(messages::phone_id.eq(phone_numbers::id))
            .filter(messages::status.eq_any(DUE))
            .filter(messages::next_attempt_at.le(Utc::now()));
        Ok(phone_numbers::table
            .filter(diesel::dsl::exists(due))
            .select(phone_numbers::id)
            .limit(limit)
            .load(&mut conn)
            .await?)
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

/// Records dispatch outcomes on the caller's transaction; returns the rows
/// that became `sent` or `failed`, with their contacts, for events. Each update is fenced
/// by the lease token.
pub async fn record_outcomes(
    conn: &mut AsyncPgConnection,
    results: &[(MessageRow, Outcome)],
) -> StoreResult<Vec<(MessageRow, Option<ContactRow>)>> {
    let now = Utc::now();
    let mut sent = Vec::new();
    // Timeline entries are written together, one statement for the batch.
    let mut events: Vec<NewMessageEvent> = Vec::new();
    for (msg, outcome) in results {
        let Some(token) = msg.lease_token else {
            continue;
        };
        let fenced = messages::table
            .filter(messages::id.eq(msg.id))
            .filter(messages::lease_token.eq(token))
            .filter(messages::status.eq("processing"));
        let mut event = NewMessageEvent::new(msg, "processing", "dispatcher");
        event.attempt = Some(msg.attempts);
        match outcome {
            Outcome::Sent { wamid } => {
                let updated: Option<MessageRow> = diesel::update(fenced)
                    .set((
                        messages::status.eq("sent"),
                        messages::wamid.eq(wamid),
                        messages::lease_until.eq(None::<DateTime<Utc>>),
                        messages::lease_token.eq(None::<Uuid>),
                        messages::next_attempt_at.eq(None::<DateTime<Utc>>),
                        messages::updated_at.eq(now),
                    ))
                    .returning(MessageRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                match updated {
                    Some(row) => {
                        event.status = "sent".into();
                        events.push(event);
                        sent.push(row);
                    }
                    None => {
                        // The lease was lost while Meta was answering: Meta's definite
                        // answer still settles a message nobody else has sent since.
                        let late: Option<MessageRow> = diesel::update(
                            messages::table
                                .filter(messages::id.eq(msg.id))
                                .filter(messages::status.eq("processing"))
                                .filter(messages::unknown_reason.eq("lease_expired")),
                        )
                        .set((
                            messages::status.eq("sent"),
                            messages::wamid.eq(wamid),
                            messages::unknown_since.eq(None::<DateTime<Utc>>),
                            messages::unknown_reason.eq(None::<String>),
                            messages::next_attempt_at.eq(None::<DateTime<Utc>>),
                            messages::updated_at.eq(now),
                        ))
                        .returning(MessageRow::as_returning())
                        .get_result(conn)
                        .await
                        .optional()?;
                        match late {
                            Some(row) => {
                                event.status = "sent".into();
                                event.note =
                                    Some("Meta answered after the lease had expired".into());
                                events.push(event);
                                sent.push(row);
                            }
                            None => {
                                // A status webhook got there first: keep the wamid.
                                diesel::update(
                                    messages::table
                                        .filter(messages::id.eq(msg.id))
                                        .filter(messages::wamid.is_null()),
                                )
                                .set(messages::wamid.eq(wamid))
                                .execute(conn)
                                .await?;
                            }
                        }
                    }
                }
            }
            Outcome::Retry { at, failure } => {
                let n = diesel::update(fenced)
                    .set((
                        messages::status.eq("retrying"),
                        messages::next_attempt_at.eq(at),
                        messages::lease_until.eq(None::<DateTime<Utc>>),
                        messages::lease_token.eq(None::<Uuid>),
                        messages::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                if n > 0 {
                    event.status = "retrying".into();
                    event.error_code = failure.code;
                    event.error_title = failure.title.clone();
                    event.error_details = failure.details.clone();
                    event.error_message = Some(failure.message.clone());
                    event.note = Some(format!(
                        "next attempt at {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ));
                    events.push(event);
                }
            }
            Outcome::Failed(failure) => {
                let updated: Option<MessageRow> = diesel::update(fenced)
                    .set((
                        messages::status.eq("failed"),
                        messages::error_code.eq(failure.code),
                        messages::error_title.eq(&failure.title),
                        messages::error_details.eq(&failure.details),
                        messages::error_message.eq(&failure.message),
                        messages::lease_until.eq(None::<DateTime<Utc>>),
                        messages::lease_token.eq(None::<Uuid>),
                        messages::next_attempt_at.eq(None::<DateTime<Utc>>),
                        messages::updated_at.eq(now),
                    ))
                    .returning(MessageRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                if let Some(row) = updated {
                    event.status = "failed".into();
                    event.error_code = failure.code;
                    event.error_title = failure.title.clone();
                    event.error_details = failure.details.clone();
                    event.error_message = Some(failure.message.clone());
                    events.push(event);
                    sent.push(row);
                }
            }
            Outcome::Unknown { note } => {
                let n = diesel::update(fenced)
                    .set((
                        messages::unknown_since.eq(now),
                        messages::unknown_reason.eq("timeout"),
                        messages::lease_until.eq(None::<DateTime<Utc>>),
                        messages::lease_token.eq(None::<Uuid>),
                        messages::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
                if n > 0 {
                    event.note = Some(note.clone());
                    events.push(event);
                }
            }
            Outcome::Released => {
                let back = if msg.attempts > 1 {
                    "retrying"
                } else {
                    "queued"
                };
                diesel::update(fenced)
                    .set((
                        messages::status.eq(back),
                        messages::attempts.eq(msg.attempts - 1),
                        messages::next_attempt_at.eq(now),
                        messages::lease_until.eq(None::<DateTime<Utc>>),
                        messages::lease_token.eq(None::<Uuid>),
                        messages::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
    }
    if !events.is_empty() {
        diesel::insert_into(message_events::table)
            .values(&events)
            .execute(conn)
            .await?;
    }
    if sent.is_empty() {
        return Ok(Vec::new());
    }
    let contacts_by_id: HashMap<Uuid, ContactRow> = contacts::table
        .filter(contacts::id.eq_any(sent.iter().filter_map(|m| m.contact_id).collect::<Vec<_>>()))
        .select(ContactRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    Ok(sent
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
        .get_results(&mut conn)
        .await?;
        for m in &lost {
            let mut e = NewMessageEvent::new(m, "processing", "dispatcher");
            e.note = Some(
                "lease expired before the outcome was recorded: waiting for Meta's status webhook"
                    .into(),
            );
            diesel::insert_into(message_events::table)
                .values(&e)
                .execute(&mut conn)
                .await?;
        }
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
        .get_results(&mut conn)
        .await?;
        for m in &requeued {
            let mut e = NewMessageEvent::new(m, "retrying", "dispatcher");
            e.note = Some("no status from Meta after the lost lease: the request never reached Meta; sending again".into());
            diesel::insert_into(message_events::table)
                .values(&e)
                .execute(&mut conn)
                .await?;
        }
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
        .get_results(&mut conn)
        .await?;
        for m in &expired {
            let mut e = NewMessageEvent::new(m, "failed", "dispatcher");
            e.error_message = m.error_message.clone();
            e.error_title = m.error_title.clone();
            diesel::insert_into(message_events::table)
                .values(&e)
                .execute(&mut conn)
                .await?;
        }
        Ok(requeued.len())
    }

    /// Delays every due message to one recipient of a phone (Meta answered
    /// 131056 for the pair), and moves the pair's pacing forward.
    pub async fn defer_pair(
        &self,
        phone_id: Uuid,
        recipient: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
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
    if budget == 0 {
        return Ok(Some(PhoneClaim {
            phone,
            waba,
            messages: Vec::new(),
        }));
    }
    let candidates: Vec<MessageRow> = messages::table
        .filter(messages::phone_id.eq(phone_id))
        .filter(messages::status.eq_any(DUE))
        .filter(messages::next_attempt_at.le(now))
        .order((messages::next_attempt_at.asc(), messages::id.asc()))
        .limit(budget)
        .select(MessageRow::as_select())
        .for_update()
        .skip_locked()
        .load(c)
        .await?;
    if candidates.is_empty() {
        return Ok(Some(PhoneClaim {
            phone,
            waba,
            messages: Vec::new(),
        }));
    }

    // Pair pacing: GCRA per recipient.
    let recipients: Vec<String> = candidates
        .iter()
        .filter_map(|m| m.recipient.clone())
        .collect();
    let mut pair_tat: HashMap<String, DateTime<Utc>> = pair_pacing::table
        .filter(pair_pacing::phone_id.eq(phone_id))
        .filter(pair_pacing::recipient.eq_any(&recipients))
        .select((pair_pacing::recipient, pair_pacing::tat))
        .load::<(String, DateTime<Utc>)>(c)
        .await?
        .into_iter()
        .collect();
    let tolerance = pace.pair_period * (pace.pair_burst - 1).max(0);
    let mut allowed = Vec::new();
    let mut deferred: Vec<(Uuid, DateTime<Utc>)> = Vec::new();
    let mut touched: HashMap<String, DateTime<Utc>> = HashMap::new();
    for m in candidates {
        let r = m.recipient.clone().unwrap_or_default();
        let t = pair_tat.get(&r).copied().unwrap_or(now).max(now);
        if t - tolerance <= now {
            let next = t + pace.pair_period;
            pair_tat.insert(r.clone(), next);
            touched.insert(r, next);
            allowed.push(m);
        } else {
            deferred.push((m.id, t - tolerance));
        }
    }
    for (id, at) in &deferred {
        diesel::update(messages::table.find(*id))
            .set(messages::next_attempt_at.eq(*at))
            .execute(c)
            .await?;
    }
    for (r, t) in &touched {
        diesel::insert_into(pair_pacing::table)
            .values((
                pair_pacing::phone_id.eq(phone_id),
                pair_pacing::recipient.eq(r),
                pair_pacing::tat.eq(*t),
            ))
            .on_conflict((pair_pacing::phone_id, pair_pacing::recipient))
            .do_update()
            .set(pair_pacing::tat.eq(*t))
            .execute(c)
            .await?;
    }
    if allowed.is_empty() {
        return Ok(Some(PhoneClaim {
            phone,
            waba,
            messages: Vec::new(),
        }));
    }
    let token = Uuid::new_v4();
    let ids: Vec<Uuid> = allowed.iter().map(|m| m.id).collect();
    let mut claimed: Vec<MessageRow> =
        diesel::update(messages::table.filter(messages::id.eq_any(&ids)))
            .set((
                messages::status.eq("processing"),
                messages::attempts.eq(messages::attempts + 1),
                messages::lease_until.eq(now + pace.lease),
                messages::lease_token.eq(token),
                messages::updated_at.eq(now),
            ))
            .returning(MessageRow::as_returning())
            .get_results(c)
            .await?;
    claimed.sort_by_key(|m| (m.next_attempt_at, m.id));
    let events: Vec<NewMessageEvent> = claimed
        .iter()
        .map(|m| {
            let mut e = NewMessageEvent::new(m, "processing", "dispatcher");
            e.attempt = Some(m.attempts);
            e
        })
        .collect();
    diesel::insert_into(message_events::table)
        .values(&events)
        .execute(c)
        .await?;
    let n = i32::try_from(claimed.len()).unwrap_or(i32::MAX);
    diesel::update(phone_pacing::table.find(phone_id))
        .set(phone_pacing::tat.eq(base + interval * n))
        .execute(c)
        .await?;
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
