//! Accepting outbound messages: the rows a send writes (contact,
//! conversation, message, first timeline entry, usage counter), and a writer
//! that coalesces the inserts of concurrent requests into one transaction —
//! one commit (one fsync) for many sends, each request still acknowledged
//! only after its rows are durable.
use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::contacts::{ContactRow, ConversationRow, touch_conversation, upsert_contact};
use super::messages::{MessageRow, NewMessageEvent};
use super::phones::{PhoneRow, WabaRow};
use super::schema::{
    contacts, conversations, message_events, messages, phone_numbers, usage_counters, wabas,
};
use super::{Store, StoreError, StoreResult};
use crate::domain::identity::Identity;

/// The channel the dispatchers listen on.
pub const DISPATCH_CHANNEL: &str = "wagate_dispatch";

/// An accepted send, ready to store.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub id: Uuid,
    pub org_id: Uuid,
    pub phone_id: Uuid,
    pub batch_id: Option<Uuid>,
    pub kind: String,
    pub content: serde_json::Value,
    /// The Graph request body.
    pub payload: serde_json::Value,
    pub recipient: String,
    pub identity: Identity,
    /// `queued` or `scheduled`.
    pub status: &'static str,
    pub send_at: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub created_at: DateTime<Utc>,
}

pub type Accepted = (MessageRow, ContactRow);

/// Writes accepted sends on the caller's connection (inside its transaction).
pub async fn insert_outbound(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
) -> StoreResult<Vec<Accepted>> {
    let mut out = Vec::with_capacity(items.len());
    let mut usage: HashMap<Uuid, i64> = HashMap::new();
    let mut immediate = false;
    for item in items {
        let contact = upsert_contact(conn, item.org_id, item.phone_id, &item.identity).await?;
        let conv = touch_conversation(
            conn,
            item.org_id,
            item.phone_id,
            contact.id,
            item.created_at,
            false,
        )
        .await?;
        let row = MessageRow {
            id: item.id,
            org_id: item.org_id,
            phone_id: item.phone_id,
            conversation_id: Some(conv.id),
            contact_id: Some(contact.id),
            direction: "outbound".into(),
            kind: item.kind.clone(),
            content: item.content.clone(),
            payload: item.payload.clone(),
            status: item.status.to_owned(),
            recipient: Some(item.recipient.clone()),
            wamid: None,
            batch_id: item.batch_id,
            send_at: item.send_at,
            next_attempt_at: Some(item.send_at.unwrap_or(item.created_at)),
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
            warnings: serde_json::json!(item.warnings),
            meta_timestamp: None,
            created_at: item.created_at,
            updated_at: item.created_at,
        };
        diesel::insert_into(messages::table)
            .values(&row)
            .execute(conn)
            .await?;
        let mut event = NewMessageEvent::new(&row, item.status, "api");
        event.at = item.created_at;
        diesel::insert_into(message_events::table)
            .values(&event)
            .execute(conn)
            .await?;
        *usage.entry(item.org_id).or_default() += 1;
        immediate |= item.status == "queued";
        out.push((row, contact));
    }
    let period = month_start(Utc::now());
    for (org_id, n) in usage {
        diesel::insert_into(usage_counters::table)
            .values((
                usage_counters::org_id.eq(org_id),
                usage_counters::period.eq(period),
                usage_counters::messages.eq(n),
            ))
            .on_conflict((usage_counters::org_id, usage_counters::period))
            .do_update()
            .set(usage_counters::messages.eq(usage_counters::messages + n))
            .execute(conn)
            .await?;
    }
    if immediate {
        // One notification per transaction wakes the dispatchers of every instance.
        diesel::sql_query(format!("SELECT pg_notify('{DISPATCH_CHANNEL}', '')"))
            .execute(conn)
            .await?;
    }
    Ok(out)
}

fn month_start(t: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap_or(t.date_naive())
}

type Job = (NewOutbound, oneshot::Sender<StoreResult<Accepted>>);

/// Coalesces concurrent sends into shared transactions.
#[derive(Clone)]
pub struct OutboundWriter {
    tx: mpsc::Sender<Job>,
}

/// Most sends written in one transaction.
const MAX_BATCH: usize = 256;

impl OutboundWriter {
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                write_batch(&store, batch).await;
            }
        });
        Self { tx }
    }

    /// Stores one send; returns once it is committed.
    pub async fn insert(&self, item: NewOutbound) -> StoreResult<Accepted> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((item, ack))
            .await
            .map_err(|_| StoreError::Unavailable("the outbound writer stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the outbound writer stopped".into()))?
    }
}

async fn write_batch(store: &Store, batch: Vec<Job>) {
    let items: Vec<NewOutbound> = batch.iter().map(|(i, _)| i.clone()).collect();
    let result = match store.conn().await {
        Ok(mut conn) => {
            conn.transaction::<_, StoreError, _>(async |c| insert_outbound(c, &items).await)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(rows) => {
            for ((_, ack), row) in batch.into_iter().zip(rows) {
                let _ = ack.send(Ok(row));
            }
        }
        // One bad row must not fail its neighbours: write them one by one.
        Err(_) if batch.len() > 1 => {
            for (item, ack) in batch {
                let one = match store.conn().await {
                    Ok(mut conn) => conn
                        .transaction::<_, StoreError, _>(async |c| {
                            insert_outbound(c, std::slice::from_ref(&item)).await
                        })
                        .await
                        .and_then(|mut v| {
                            v.pop()
                                .ok_or_else(|| StoreError::Unavailable("nothing written".into()))
                        }),
                    Err(e) => Err(e),
                };
                let _ = ack.send(one);
            }
        }
        Err(e) => {
            if let Some((_, ack)) = batch.into_iter().next() {
                let _ = ack.send(Err(e));
            }
        }
    }
}

impl Store {
    /// The phone to send from: the one named (of this organization), or the
    /// organization's default; with its WABA.
    pub async fn sending_phone(
        &self,
        org_id: Uuid,
        phone_id: Option<Uuid>,
    ) -> StoreResult<Option<(PhoneRow, WabaRow)>> {
        let mut conn = self.conn().await?;
        let mut q = phone_numbers::table
            .inner_join(wabas::table)
            .filter(phone_numbers::org_id.eq(org_id))
            .into_boxed();
        q = match phone_id {
            Some(id) => q.filter(phone_numbers::id.eq(id)),
            None => q.filter(phone_numbers::is_default),
        };
        Ok(q.select((PhoneRow::as_select(), WabaRow::as_select()))
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// The conversation a recipient already has with the phone, if any.
    pub async fn conversation_for(
        &self,
        phone_id: Uuid,
        identity: &Identity,
    ) -> StoreResult<Option<ConversationRow>> {
        let mut conn = self.conn().await?;
        let mut q = conversations::table
            .inner_join(contacts::table)
            .filter(conversations::phone_id.eq(phone_id))
            .into_boxed();
        q = match (&identity.bsuid, &identity.wa_id) {
            (Some(b), _) => q.filter(contacts::bsuid.eq(b.clone())),
            (None, Some(w)) => q.filter(contacts::wa_id.eq(w.clone())),
            (None, None) => return Ok(None),
        };
        Ok(q.select(ConversationRow::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// The wamid of a message of the organization, by wagate id.
    pub async fn message_wamid(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<Option<String>>> {
        let mut conn = self.conn().await?;
        Ok(messages::table
            .filter(messages::org_id.eq(org_id))
            .filter(messages::id.eq(id))
            .select(messages::wamid)
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Messages of the organization by id, with their contacts, in the given order.
    pub async fn messages_by_ids(&self, org_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<Accepted>> {
        let mut conn = self.conn().await?;
        let rows: Vec<(MessageRow, ContactRow)> = messages::table
            .inner_join(contacts::table.on(contacts::id.nullable().eq(messages::contact_id)))
            .filter(messages::org_id.eq(org_id))
            .filter(messages::id.eq_any(ids))
            .select((MessageRow::as_select(), ContactRow::as_select()))
            .load(&mut conn)
            .await?;
        let mut by_id: HashMap<Uuid, Accepted> = rows.into_iter().map(|r| (r.0.id, r)).collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Moves a message from `from` to `to` (retry: failed -> queued; cancel:
    /// scheduled -> failed) with a timeline entry. `None` when the message
    /// does not exist; `Some(Err(status))` when it is in another status.
    pub async fn transition(
        &self,
        org_id: Uuid,
        id: Uuid,
        from: &'static str,
        to: &'static str,
        error_message: Option<&str>,
        note: &str,
    ) -> StoreResult<Option<Result<MessageRow, String>>> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, StoreError, _>(async |c| {
            let current: Option<MessageRow> = messages::table
                .filter(messages::org_id.eq(org_id))
                .filter(messages::id.eq(id))
                .select(MessageRow::as_select())
                .for_update()
                .first(c)
                .await
                .optional()?;
            let Some(current) = current else {
                return Ok(None);
            };
            if current.status != from || current.direction != "outbound" {
                return Ok(Some(Err(current.status)));
            }
            let now = Utc::now();
            let requeue = to == "queued";
            let updated: MessageRow = diesel::update(messages::table.find(id))
                .set((
                    messages::status.eq(to),
                    messages::next_attempt_at.eq(requeue.then_some(now)),
                    messages::error_code.eq(None::<i64>),
                    messages::error_title.eq(None::<String>),
                    messages::error_details.eq(None::<String>),
                    messages::error_message.eq(error_message),
                    messages::unknown_since.eq(None::<DateTime<Utc>>),
                    messages::unknown_reason.eq(None::<String>),
                    messages::updated_at.eq(now),
                ))
                .returning(MessageRow::as_returning())
                .get_result(c)
                .await?;
            let mut event = NewMessageEvent::new(&updated, to, "api");
            event.error_message = error_message.map(str::to_owned);
            event.note = Some(note.to_owned());
            diesel::insert_into(message_events::table)
                .values(&event)
                .execute(c)
                .await?;
            if requeue {
                diesel::sql_query(format!("SELECT pg_notify('{DISPATCH_CHANNEL}', '')"))
                    .execute(c)
                    .await?;
            }
            Ok(Some(Ok(updated)))
        })
        .await
    }
}
