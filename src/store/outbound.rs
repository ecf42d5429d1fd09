//! Accepting outbound messages: the rows a send writes (contact,
//! conversation, message, first timeline entry, usage counter), and a writer
//! that coalesces the inserts of concurrent requests into one transaction —
//! one commit (one fsync) for many sends, each request still acknowledged
//! only after its rows are durable.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::contacts::{
    ContactRow, ConversationRow, contacts_matching, insert_contacts, upsert_conversations,
};
use super::messages::{MessageRow, NewMessageEvent, insert_sends};
use super::phones::{PhoneRow, WabaRow};
use super::schema::{contacts, conversations, message_events, messages, phone_numbers, wabas};
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
    /// Free-form messages: the 24-hour window is checked as the message is
    /// written, from the conversation the same batch touches.
    pub window_check: Option<WindowCheck>,
    pub created_at: DateTime<Utc>,
}

/// Checks that the conversation's 24-hour window is open at `at`; when it
/// is not, `warning(window end)` joins the message's warnings (the wording
/// is the domain's).
#[derive(Debug, Clone, Copy)]
pub struct WindowCheck {
    pub at: DateTime<Utc>,
    pub warning: fn(Option<DateTime<Utc>>) -> String,
}

pub type Accepted = (MessageRow, ContactRow);

/// Writes accepted sends on the caller's connection (inside its transaction)
/// with a fixed number of set-based statements, however many sends: the
/// contacts they name (found by phone, BSUID or identifier, created when
/// new), their conversations, the messages and their first timeline entries.
pub async fn insert_outbound(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
    notify: bool,
) -> StoreResult<Vec<Accepted>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let contacts = resolve_contacts(conn, items).await?;
    let conversations = touch_conversations(conn, items, &contacts).await?;
    let rows: Vec<MessageRow> = items
        .iter()
        .zip(&contacts)
        .map(|(item, contact)| {
            let conversation = conversations.get(&(item.phone_id, contact.id));
            let mut warnings = item.warnings.clone();
            if let Some(check) = item.window_check {
                let end = conversation.and_then(ConversationRow::window_expires_at);
                if end.is_none_or(|end| end <= check.at) {
                    warnings.push((check.warning)(end));
                }
            }
            MessageRow {
                id: item.id,
                conversation_id: conversation.map(|c| c.id),
                contact_id: Some(contact.id),
                kind: item.kind.clone(),
                content: item.content.clone(),
                payload: item.payload.clone(),
                recipient: Some(item.recipient.clone()),
                batch_id: item.batch_id,
                send_at: item.send_at,
                next_attempt_at: Some(item.send_at.unwrap_or(item.created_at)),
                warnings: serde_json::json!(warnings),
                ..MessageRow::new(
                    item.org_id,
                    item.phone_id,
                    "outbound",
                    item.status,
                    item.created_at,
                )
            }
        })
        .collect();
    let rows = insert_sends(conn, rows, "api").await?;
    if notify && items.iter().any(|i| i.status == "queued") {
        // Wakes the dispatchers of other instances (this one is woken in
        // process). NOTIFY serialises commits, so writers debounce it.
        diesel::sql_query(format!("SELECT pg_notify('{DISPATCH_CHANNEL}', '')"))
            .execute(conn)
            .await?;
    }
    Ok(rows.into_iter().zip(contacts).collect())
}

/// The contact of each item, in order: existing ones matched in their phone
/// inbox by phone (wa_id), BSUID or identifier; the others created.
async fn resolve_contacts(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
) -> StoreResult<Vec<ContactRow>> {
    let wanted: Vec<(Uuid, &Identity)> = items.iter().map(|i| (i.phone_id, &i.identity)).collect();
    let mut existing: Vec<ContactRow> = contacts_matching(conn, &wanted).await?;
    // Where several match, the oldest contact is the one.
    existing.sort_by_key(|c| c.created_at);
    let find = |pool: &[ContactRow], item: &NewOutbound| -> Option<ContactRow> {
        let ident = item.identity.identifier().map(|(id, _)| id);
        pool.iter()
            .find(|c| {
                c.phone_id == item.phone_id
                    && ((item.identity.bsuid.is_some() && c.bsuid == item.identity.bsuid)
                        || (item.identity.wa_id.is_some() && c.wa_id == item.identity.wa_id)
                        || ident.as_deref() == Some(c.identifier.as_str()))
            })
            .cloned()
    };
    let now = Utc::now();
    let mut missing: Vec<ContactRow> = Vec::new();
    for item in items {
        if find(&existing, item).is_some() || find(&missing, item).is_some() {
            continue;
        }
        if item.identity.identifier().is_none() {
            return Err(StoreError::Query(diesel::result::Error::QueryBuilderError(
                "a send without a recipient".into(),
            )));
        }
        missing.push(ContactRow::new(
            item.org_id,
            item.phone_id,
            &item.identity,
            now,
        ));
    }
    missing.sort_by(|a, b| (a.phone_id, &a.identifier).cmp(&(b.phone_id, &b.identifier)));
    let created: Vec<ContactRow> = if missing.is_empty() {
        Vec::new()
    } else {
        // A contact created concurrently elsewhere wins; we take its row.
        insert_contacts(conn, &missing).await?
    };
    items
        .iter()
        .map(|item| {
            find(&existing, item)
                .or_else(|| find(&created, item))
                .ok_or_else(|| StoreError::Query(diesel::result::Error::NotFound))
        })
        .collect()
}

/// Creates or moves forward the conversation of each (phone, contact);
/// returns them.
async fn touch_conversations(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
    contacts: &[ContactRow],
) -> StoreResult<HashMap<(Uuid, Uuid), ConversationRow>> {
    let mut latest: HashMap<(Uuid, Uuid), (Uuid, DateTime<Utc>)> = HashMap::new();
    for (item, c) in items.iter().zip(contacts) {
        let e = latest
            .entry((item.phone_id, c.id))
            .or_insert((item.org_id, item.created_at));
        e.1 = e.1.max(item.created_at);
    }
    let now = Utc::now();
    let mut keys: Vec<_> = latest.iter().collect();
    // One lock order for every writer, so concurrent upserts cannot deadlock.
    keys.sort_by_key(|(k, _)| **k);
    let rows: Vec<ConversationRow> = keys
        .into_iter()
        .map(|(&(phone_id, contact_id), &(org_id, at))| ConversationRow {
            id: super::new_id(),
            org_id,
            phone_id,
            contact_id,
            last_message_at: Some(at),
            last_inbound_at: None,
            unread_count: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
    let upserted = upsert_conversations(conn, &rows).await?;
    Ok(upserted
        .into_iter()
        .map(|c| ((c.phone_id, c.contact_id), c))
        .collect())
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
    /// `writers` transactions may be in flight at once; each takes whatever
    /// sends are waiting (up to 256) when it starts.
    /// `wake` is this instance's dispatcher, woken after each commit that
    /// queued messages; other instances hear a NOTIFY, sent at most every
    /// 50 ms.
    pub fn spawn(store: Store, wake: std::sync::Arc<tokio::sync::Notify>) -> Self {
        const WRITERS: usize = 4;
        let last_notify = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let (tx, rx) = mpsc::channel::<Job>(8192);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WRITERS {
            let rx = rx.clone();
            let store = store.clone();
            let wake = wake.clone();
            let last_notify = last_notify.clone();
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else {
                            return;
                        };
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let now = Utc::now().timestamp_millis();
                    let prev = std::sync::atomic::AtomicI64::load(
                        &last_notify,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let notify = now - prev >= 50
                        && last_notify
                            .compare_exchange(
                                prev,
                                now,
                                std::sync::atomic::Ordering::Relaxed,
                                std::sync::atomic::Ordering::Relaxed,
                            )
                            .is_ok();
                    let queued = batch.iter().any(|(i, _)| i.status == "queued");
                    write_batch(&store, batch, notify).await;
                    if queued {
                        wake.notify_one();
                    }
                }
            });
        }
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

/// [`insert_outbound`] in a transaction of its own whose statements run on
/// generic plans. The pool plans every execution (see `setup_connection`);
/// these statements have one plan whatever the data (inserts from `unnest`,
/// upserts on their unique key, contact probes through LATERAL index scans,
/// as on an empty table), and planning them was a third of their cost.
async fn insert_in_transaction(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
    notify: bool,
) -> StoreResult<Vec<Accepted>> {
    use diesel_async::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::begin_transaction_sql(
        conn,
        "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan",
    )
    .await?;
    match insert_outbound(conn, items, notify).await {
        Ok(rows) => {
            AnsiTransactionManager::commit_transaction(conn).await?;
            Ok(rows)
        }
        // As diesel's own `transaction`: the batch's error, unless the
        // rollback failed for another reason (the pool then drops the
        // connection, which the transaction manager marked broken).
        Err(e) => match AnsiTransactionManager::rollback_transaction(conn).await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

async fn write_batch(store: &Store, batch: Vec<Job>, notify: bool) {
    // Split rather than cloned: each send's content and Graph body are
    // JSON trees, and this runs for every accepted send.
    let (items, acks): (Vec<NewOutbound>, Vec<_>) = batch.into_iter().unzip();
    let result = match store.conn().await {
        Ok(mut conn) => insert_in_transaction(&mut conn, &items, notify).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(rows) => {
            for (ack, row) in acks.into_iter().zip(rows) {
                let _ = ack.send(Ok(row));
            }
        }
        // One bad row must not fail its neighbours: write them one by one.
        Err(_) if items.len() > 1 => {
            for (item, ack) in items.iter().zip(acks) {
                let one = match store.conn().await {
                    Ok(mut conn) => {
                        insert_in_transaction(&mut conn, std::slice::from_ref(item), true)
                            .await
                            .and_then(|mut v| {
                                v.pop().ok_or_else(|| {
                                    StoreError::Unavailable("nothing written".into())
                                })
                            })
                    }
                    Err(e) => Err(e),
                };
                let _ = ack.send(one);
            }
        }
        Err(e) => {
            if let Some(ack) = acks.into_iter().next() {
                let _ = ack.send(Err(e));
            }
        }
    }
}

impl Store {
    /// The phone to send from: the one named (of this organization), or the
    /// organization's default; with its WABA (served from memory while coherent).
    pub async fn sending_phone(
        &self,
        org_id: Uuid,
        phone_id: Option<Uuid>,
    ) -> StoreResult<Option<(PhoneRow, WabaRow)>> {
        self.caches
            .phones
            .get_or_read(&self.caches.invalidation, (org_id, phone_id), async || {
                let mut conn = self.conn().await?;
                // Two fixed queries rather than one boxed one: fixed queries
                // are prepared once per connection, boxed ones on every call.
                let q = phone_numbers::table
                    .inner_join(wabas::table)
                    .filter(phone_numbers::org_id.eq(org_id))
                    .select((PhoneRow::as_select(), WabaRow::as_select()));
                Ok(match phone_id {
                    Some(id) => q.filter(phone_numbers::id.eq(id)).first(&mut conn).await,
                    None => q.filter(phone_numbers::is_default).first(&mut conn).await,
                }
                .optional()?)
            })
            .await
    }

    /// The conversation a recipient already has with the phone, if any.
    pub async fn conversation_for(
        &self,
        phone_id: Uuid,
        identity: &Identity,
    ) -> StoreResult<Option<ConversationRow>> {
        let q = conversations::table
            .inner_join(contacts::table)
            .filter(conversations::phone_id.eq(phone_id))
            // Lets the contact lookups use their (phone_id, …) indexes.
            .filter(contacts::phone_id.eq(phone_id))
            .select(ConversationRow::as_select());
        let mut conn = self.conn().await?;
        // Fixed queries (prepared once per connection), not a boxed one.
        Ok(match (&identity.bsuid, &identity.wa_id) {
            (Some(b), _) => q.filter(contacts::bsuid.eq(b)).first(&mut conn).await,
            (None, Some(w)) => q.filter(contacts::wa_id.eq(w)).first(&mut conn).await,
            (None, None) => return Ok(None),
        }
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
            // A cancelled scheduled message retried before its sendAt
            // waits for it again.
            let (to, next_attempt_at) = match current.send_at.filter(|at| requeue && *at > now) {
                Some(at) => ("scheduled", Some(at)),
                None => (to, requeue.then_some(now)),
            };
            let updated: MessageRow = diesel::update(messages::table.find(id))
                .set((
                    messages::status.eq(to),
                    messages::next_attempt_at.eq(next_attempt_at),
                    // A retry gets a fresh attempt budget; the timeline keeps the old attempts.
                    messages::attempts.eq(if requeue { 0 } else { current.attempts }),
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
