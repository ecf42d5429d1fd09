//! Accepting outbound messages: the rows a send writes (contact,
//! conversation, message, first timeline entry), and a writer that
//! coalesces the inserts of concurrent requests into one statement — one
//! commit (one fsync) for many sends, each request still acknowledged only
//! after its rows are durable. Sends with an Idempotency-Key join the same
//! batches, their keys claimed and recorded in the batch's transaction.
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::pooled_connection::PoolableConnection;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::contacts::{
    ContactRow, ConversationRow, KnownContact, bind_contacts, contacts_with_windows,
    insert_contacts_returning, window_end,
};
use super::events::CachedSql;
use super::idempotency::{self, Claim, KeyClaim};
use super::messages::{MessageRow, NewMessageEvent};
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

/// Writes accepted sends on the caller's connection with two statements,
/// however many sends: a read of the contacts they name (found by phone,
/// BSUID or identifier) with their windows, then one statement that creates
/// the new contacts, creates or moves forward the conversations, and inserts
/// the messages with their first timeline entries. That one statement is
/// atomic on its own, so the writer runs it outside a transaction (one
/// round trip); callers with a transaction of their own (idempotency keys,
/// bulk) run it inside theirs.
pub async fn insert_outbound(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
    notify: bool,
) -> StoreResult<Vec<Accepted>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let resolved = resolve_contacts(conn, items).await?;
    let rows: Vec<MessageRow> = items
        .iter()
        .zip(&resolved.contacts)
        .map(|(item, (contact, last_inbound_at))| {
            let mut warnings = item.warnings.clone();
            if let Some(check) = item.window_check {
                let end = window_end(*last_inbound_at);
                if end.is_none_or(|end| end <= check.at) {
                    warnings.push((check.warning)(end));
                }
            }
            MessageRow {
                contact_id: Some(contact.id),
                kind: item.kind.clone(),
                content: item.content.clone(),
                payload: item.payload.clone(),
                recipient: Some(item.recipient.clone()),
                batch_id: item.batch_id,
                send_at: item.send_at,
                // A sendAt that has passed takes its turn from now, not
                // ahead of the messages queued since.
                next_attempt_at: Some(
                    item.send_at
                        .map_or(item.created_at, |t| t.max(item.created_at)),
                ),
                warnings: serde_json::json!(warnings),
                ..MessageRow::new(
                    item.id,
                    item.org_id,
                    item.phone_id,
                    "outbound",
                    item.status,
                    item.created_at,
                )
            }
        })
        .collect();
    let identifiers: Vec<&str> = resolved
        .contacts
        .iter()
        .map(|(c, _)| c.identifier.as_str())
        .collect();
    let stored = write_sends(conn, &resolved.new, &identifiers, rows).await?;
    let mut contacts: Vec<ContactRow> = resolved.contacts.into_iter().map(|(c, _)| c).collect();
    // A contact another batch created first has that batch's row.
    let taken: Vec<Uuid> = stored
        .iter()
        .zip(&contacts)
        .filter_map(|(m, c)| m.contact_id.filter(|id| *id != c.id))
        .collect();
    if !taken.is_empty() {
        let theirs: HashMap<Uuid, ContactRow> = super::contacts::contacts_by_ids(conn, &taken)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        for (m, c) in stored.iter().zip(contacts.iter_mut()) {
            if let Some(row) = m.contact_id.and_then(|id| theirs.get(&id)) {
                *c = row.clone();
            }
        }
    }
    if notify && items.iter().any(|i| i.status == "queued") {
        // Wakes the dispatchers of other instances (this one is woken in
        // process). NOTIFY serialises commits, so writers debounce it.
        notify_dispatchers(conn).await?;
    }
    Ok(stored.into_iter().zip(contacts).collect())
}

/// NOTIFYs the dispatchers of every instance, at the commit of `conn`'s
/// transaction (or at once outside one).
async fn notify_dispatchers(conn: &mut AsyncPgConnection) -> StoreResult<()> {
    diesel::sql_query(format!("SELECT pg_notify('{DISPATCH_CHANNEL}', '')"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs the rest of a pool connection's transaction on generic plans, as
/// the outbound writer's own connections do: [`insert_outbound`]'s statements
/// have one plan whatever the data, and planning them (a pool connection
/// plans each execution) costs more than running them.
async fn use_generic_plans(conn: &mut AsyncPgConnection) -> StoreResult<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    Ok(())
}

/// The contact of each send, in order (existing, or planned for creation)
/// with when its customer last wrote; and the contacts to create.
struct Resolved {
    contacts: Vec<(ContactRow, Option<DateTime<Utc>>)>,
    new: Vec<ContactRow>,
}

/// Matches each item with an existing contact of its phone inbox (by phone
/// (wa_id), BSUID or identifier; the oldest where several match), or plans
/// a new one (one per identity in the batch).
async fn resolve_contacts(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
) -> StoreResult<Resolved> {
    let wanted: Vec<(Uuid, &Identity)> = items.iter().map(|i| (i.phone_id, &i.identity)).collect();
    let mut existing: Vec<KnownContact> = contacts_with_windows(conn, &wanted).await?;
    existing.sort_by_key(|k| k.contact.created_at);
    let now = Utc::now();
    let mut new: Vec<ContactRow> = Vec::new();
    let mut contacts = Vec::with_capacity(items.len());
    for item in items {
        let Some((ident, _)) = item.identity.identifier() else {
            return Err(StoreError::Query(diesel::result::Error::QueryBuilderError(
                "a send without a recipient".into(),
            )));
        };
        let id = &item.identity;
        let matches = |c: &ContactRow| {
            c.phone_id == item.phone_id
                && ((id.bsuid.is_some() && c.bsuid == id.bsuid)
                    || (id.wa_id.is_some() && c.wa_id == id.wa_id)
                    || c.identifier == ident)
        };
        if let Some(k) = existing.iter().find(|k| matches(&k.contact)) {
            contacts.push((k.contact.clone(), k.last_inbound_at));
            continue;
        }
        if let Some(c) = new.iter().find(|c| matches(c)) {
            contacts.push((c.clone(), None));
            continue;
        }
        let c = ContactRow::new(item.org_id, item.phone_id, &item.identity, now);
        contacts.push((c.clone(), None));
        new.push(c);
    }
    // One lock order for every writer, so concurrent inserts cannot deadlock.
    new.sort_by(|a, b| (a.phone_id, &a.identifier).cmp(&(b.phone_id, &b.identifier)));
    Ok(Resolved { contacts, new })
}

#[derive(QueryableByName)]
struct WrittenSend {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    contact_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    conversation_id: Uuid,
}

/// One statement: creates `new_contacts` (a contact another batch created
/// meanwhile wins, and its id is used), creates or moves forward each
/// (phone, contact)'s conversation (in (phone, contact) order, the lock order
/// of every writer), inserts the messages (`identifiers[i]` names the
/// contact of `rows[i]`) and the first entry of each timeline. Returns the
/// rows as stored, in order, with their contact and conversation.
async fn write_sends(
    conn: &mut AsyncPgConnection,
    new_contacts: &[ContactRow],
    identifiers: &[&str],
    rows: Vec<MessageRow>,
) -> StoreResult<Vec<MessageRow>> {
    use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as U};
    const SQL: &str = concat!(
        "WITH nc AS (",
        insert_contacts_returning!(),
        "c.id, c.phone_id, c.identifier), \
        u AS ( \
            SELECT x.*, COALESCE(nc.id, x.planned_contact) AS cid \
              FROM unnest($13::uuid[], $14::uuid[], $15::uuid[], $16::text[], $17::jsonb[], \
                          $18::jsonb[], $19::text[], $20::text[], $21::uuid[], \
                          $22::timestamptz[], $23::timestamptz[], $24::jsonb[], \
                          $25::timestamptz[], $26::uuid[], $27::text[], $28::uuid[]) \
                   WITH ORDINALITY AS x(id, org_id, phone_id, type, content, payload, status, \
                                        recipient, batch_id, send_at, next_attempt_at, warnings, \
                                        created_at, planned_contact, identifier, conversation, ord) \
              LEFT JOIN nc ON nc.phone_id = x.phone_id AND nc.identifier = x.identifier \
        ), \
        cv AS ( \
            INSERT INTO conversations AS v (id, org_id, phone_id, contact_id, last_message_at, \
                                            unread_count, created_at, updated_at) \
            SELECT (array_agg(u.conversation ORDER BY u.ord))[1], (array_agg(u.org_id))[1], \
                   u.phone_id, u.cid, max(u.created_at), 0, $29::timestamptz, $29::timestamptz \
              FROM u GROUP BY u.phone_id, u.cid ORDER BY u.phone_id, u.cid \
            ON CONFLICT (phone_id, contact_id) DO UPDATE SET \
              last_message_at = GREATEST(v.last_message_at, excluded.last_message_at), \
              updated_at = excluded.updated_at \
            RETURNING v.id, v.phone_id, v.contact_id \
        ), \
        ins AS ( \
            INSERT INTO messages AS m (id, org_id, phone_id, conversation_id, contact_id, \
                                       direction, type, content, payload, status, recipient, \
                                       batch_id, send_at, next_attempt_at, attempts, warnings, \
                                       created_at, updated_at) \
            SELECT u.id, u.org_id, u.phone_id, cv.id, u.cid, 'outbound', u.type, u.content, \
                   u.payload, u.status, u.recipient, u.batch_id, u.send_at, u.next_attempt_at, 0, \
                   u.warnings, u.created_at, u.created_at \
              FROM u JOIN cv ON cv.phone_id = u.phone_id AND cv.contact_id = u.cid \
            RETURNING m.id, m.org_id, m.status, m.created_at, m.contact_id, m.conversation_id \
        ), \
        ev AS ( \
            INSERT INTO message_events (org_id, message_id, status, at, source) \
            SELECT org_id, id, status, created_at, 'api' FROM ins \
        ) \
        SELECT id, contact_id, conversation_id FROM ins"
    );
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&MessageRow) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&MessageRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let json = |f: fn(&MessageRow) -> &serde_json::Value| rows.iter().map(f).collect::<Vec<_>>();
    let time = |f: fn(&MessageRow) -> Option<DateTime<Utc>>| rows.iter().map(f).collect::<Vec<_>>();
    let written: Vec<WrittenSend> = bind_contacts(CachedSql::new(SQL), new_contacts)
        .bind::<Array<U>, _>(col(|r| r.id))
        .bind::<Array<U>, _>(col(|r| r.org_id))
        .bind::<Array<U>, _>(col(|r| r.phone_id))
        .bind::<Array<Text>, _>(text(|r| &r.kind))
        .bind::<Array<Jsonb>, _>(json(|r| &r.content))
        .bind::<Array<Jsonb>, _>(json(|r| &r.payload))
        .bind::<Array<Text>, _>(text(|r| &r.status))
        .bind::<Array<Nullable<Text>>, _>(
            rows.iter()
                .map(|r| r.recipient.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<U>>, _>(rows.iter().map(|r| r.batch_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.send_at))
        .bind::<Array<Nullable<Timestamptz>>, _>(time(|r| r.next_attempt_at))
        .bind::<Array<Jsonb>, _>(json(|r| &r.warnings))
        .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<U>>, _>(rows.iter().map(|r| r.contact_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(identifiers)
        .bind::<Array<U>, _>(rows.iter().map(|_| super::new_id()).collect::<Vec<_>>())
        .bind::<Timestamptz, _>(Utc::now())
        .load(conn)
        .await?;
    let written: HashMap<Uuid, (Uuid, Uuid)> = written
        .into_iter()
        .map(|w| (w.id, (w.contact_id, w.conversation_id)))
        .collect();
    rows.into_iter()
        .map(|mut row| {
            let (contact, conversation) = written
                .get(&row.id)
                .copied()
                .ok_or(StoreError::Query(diesel::result::Error::NotFound))?;
            row.contact_id = Some(contact);
            row.conversation_id = Some(conversation);
            Ok(row.into_stored())
        })
        .collect()
}

/// A send for the writer: the message, its Idempotency-Key if it has one,
/// and where to answer once it is committed.
type Job = (
    NewOutbound,
    Option<KeyClaim>,
    oneshot::Sender<StoreResult<Written>>,
);

/// What the writer did with a send.
// Moved once per send, through a oneshot: boxing the row would only add
// an allocation to every send.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Written {
    /// Stored, with its key's response remembered when it had a key.
    Stored(Accepted),
    /// Not stored: its key was used already (`Replay`, `Mismatch`) or is
    /// held by a request still running (`InFlight`). Never `Fresh`.
    Keyed(Claim),
}

/// Coalesces concurrent sends into shared transactions.
#[derive(Clone)]
pub struct OutboundWriter {
    tx: mpsc::Sender<Job>,
    notices: std::sync::Arc<NotifyDebounce>,
    store: Store,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

/// When a commit that queued messages should also NOTIFY the dispatchers
/// of other instances: at most every 50 ms, whichever path wrote. A
/// NOTIFY serialises commits (each holds the notification queue's lock
/// through its WAL flush): keyed sends notifying on every commit ran one
/// at a time. Other instances miss nothing for long: their slow poll
/// finds what a skipped notice would have announced.
#[derive(Debug, Default)]
struct NotifyDebounce {
    last_ms: std::sync::atomic::AtomicI64,
}

impl NotifyDebounce {
    fn due(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let now = Utc::now().timestamp_millis();
        // Qualified: diesel's `RunQueryDsl::load` is in scope too.
        let prev = std::sync::atomic::AtomicI64::load(&self.last_ms, Relaxed);
        now - prev >= 50
            && self
                .last_ms
                .compare_exchange(prev, now, Relaxed, Relaxed)
                .is_ok()
    }
}

/// Most sends written in one transaction.
const MAX_BATCH: usize = 256;

impl OutboundWriter {
    /// `writers` batches may be in flight at once; each takes whatever
    /// sends are waiting (up to 256) when it starts.
    /// `wake` is this instance's dispatcher, woken after each commit that
    /// queued messages; other instances hear a NOTIFY, sent at most every
    /// 50 ms.
    pub fn spawn(store: Store, wake: std::sync::Arc<tokio::sync::Notify>) -> Self {
        const WRITERS: usize = 4;
        let notices = std::sync::Arc::new(NotifyDebounce::default());
        let (tx, rx) = mpsc::channel::<Job>(8192);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..WRITERS {
            let rx = rx.clone();
            let mut conn = WriterConn::new(store.clone());
            let wake = wake.clone();
            let notices = notices.clone();
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
                    let notify = notices.due();
                    let queued = batch.iter().any(|(i, _, _)| i.status == "queued");
                    write_batch(&mut conn, batch, notify).await;
                    if queued {
                        wake.notify_one();
                    }
                }
            });
        }
        Self {
            tx,
            notices,
            store,
            wake,
        }
    }

    /// Writes these sends together, all or none, in a transaction of their
    /// own on a pool connection (a bulk request, already a batch); under
    /// `key` when given, claimed first and its response remembered with
    /// them. `Err` holds the claim when the key refuses them. Notifies and
    /// wakes the dispatchers as the writers do.
    pub async fn insert_all(
        &self,
        items: &[NewOutbound],
        key: Option<&KeyClaim>,
    ) -> StoreResult<Result<Vec<Accepted>, Claim>> {
        let mut conn = self.store.conn().await?;
        let written = conn
            .transaction::<_, StoreError, _>(async |c| {
                if let Some(k) = key {
                    match idempotency::claim(c, &[k]).await?.pop() {
                        Some(Claim::Fresh) => {}
                        other => return Ok(Err(other.unwrap_or(Claim::InFlight))),
                    }
                }
                let accepted = if items.is_empty() {
                    Vec::new()
                } else {
                    use_generic_plans(c).await?;
                    insert_outbound(c, items, self.notices.due()).await?
                };
                if let Some(k) = key {
                    idempotency::record(c, &[k]).await?;
                }
                Ok(Ok(accepted))
            })
            .await?;
        if written.as_ref().is_ok_and(|a| !a.is_empty()) {
            self.wake.notify_one();
        }
        Ok(written)
    }

    /// Stores one send; returns once it is committed.
    pub async fn insert(&self, item: NewOutbound) -> StoreResult<Accepted> {
        match self.write(item, None).await? {
            Written::Stored(accepted) => Ok(accepted),
            Written::Keyed(_) => Err(StoreError::Unavailable(
                "a send without a key was refused as keyed".into(),
            )),
        }
    }

    /// Stores one send under its Idempotency-Key, coalesced with other
    /// sends as unkeyed ones are: the key is claimed, the send stored and
    /// the response remembered in one transaction. Returns once committed.
    pub async fn insert_keyed(&self, item: NewOutbound, key: KeyClaim) -> StoreResult<Written> {
        self.write(item, Some(key)).await
    }

    async fn write(&self, item: NewOutbound, key: Option<KeyClaim>) -> StoreResult<Written> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send((item, key, ack))
            .await
            .map_err(|_| StoreError::Unavailable("the outbound writer stopped".into()))?;
        done.await
            .map_err(|_| StoreError::Unavailable("the outbound writer stopped".into()))?
    }
}

/// A writer's own connection, outside the pool, made on first use and
/// again once broken. Its statements run on generic plans: the pool
/// plans every execution (see `setup_connection`), but the writer's two
/// statements have one plan whatever the data (an insert-and-upsert
/// statement fed by `unnest`, and LATERAL index probes, as on an empty
/// table), and planning them cost a third of their time.
struct WriterConn {
    store: Store,
    conn: Option<AsyncPgConnection>,
}

impl WriterConn {
    fn new(store: Store) -> Self {
        WriterConn { store, conn: None }
    }

    /// The batch on this connection (see [`write_sends_keyed`]).
    async fn insert(
        &mut self,
        items: &[NewOutbound],
        keys: &[Option<KeyClaim>],
        notify: bool,
    ) -> StoreResult<Vec<Written>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                use diesel_async::SimpleAsyncConnection;
                let mut conn = self.store.dedicated().await?;
                conn.batch_execute("SET plan_cache_mode = force_generic_plan")
                    .await?;
                self.conn.insert(conn)
            }
        };
        let written = write_sends_keyed(conn, items, keys, notify).await;
        // A connection the pool would discard (closed, or stuck in a
        // transaction) is made again for the next batch; a statement that
        // failed on a sound one leaves it in use.
        if written.is_err() && PoolableConnection::is_broken(conn) {
            self.conn = None;
        }
        written
    }
}

/// A batch: without keys, [`insert_outbound`]'s one statement, atomic on
/// its own and so outside a transaction; with keys, a transaction that
/// claims them first (two statements however many), stores the sends whose
/// key is fresh with the unkeyed ones, and remembers the fresh keys'
/// responses (one statement). A send refused by its key writes nothing.
async fn write_sends_keyed(
    conn: &mut AsyncPgConnection,
    items: &[NewOutbound],
    keys: &[Option<KeyClaim>],
    notify: bool,
) -> StoreResult<Vec<Written>> {
    if keys.iter().all(Option::is_none) {
        return Ok(insert_outbound(conn, items, notify)
            .await?
            .into_iter()
            .map(Written::Stored)
            .collect());
    }
    conn.transaction::<_, StoreError, _>(async |c| {
        let keyed: Vec<&KeyClaim> = keys.iter().flatten().collect();
        let mut claims = idempotency::claim(c, &keyed).await?.into_iter();
        // Per send: the claim that refuses it, or None to store it.
        let mut refused: Vec<Option<Claim>> = Vec::with_capacity(items.len());
        let mut fresh: Vec<&KeyClaim> = Vec::new();
        for key in keys {
            refused.push(match key {
                None => None,
                Some(k) => match claims.next() {
                    Some(Claim::Fresh) => {
                        fresh.push(k);
                        None
                    }
                    Some(other) => Some(other),
                    None => Some(Claim::InFlight),
                },
            });
        }
        let stored = if refused.iter().all(Option::is_none) {
            insert_outbound(c, items, notify).await?
        } else {
            // Rare (a replay or a conflict in the batch): the others, copied.
            let rest: Vec<NewOutbound> = items
                .iter()
                .zip(&refused)
                .filter(|(_, r)| r.is_none())
                .map(|(i, _)| i.clone())
                .collect();
            if rest.is_empty() {
                Vec::new()
            } else {
                insert_outbound(c, &rest, notify).await?
            }
        };
        idempotency::record(c, &fresh).await?;
        let mut stored = stored.into_iter();
        refused
            .into_iter()
            .map(|r| match r {
                Some(claim) => Ok(Written::Keyed(claim)),
                None => stored
                    .next()
                    .map(Written::Stored)
                    .ok_or_else(|| StoreError::Unavailable("a send was not written".into())),
            })
            .collect()
    })
    .await
}

async fn write_batch(conn: &mut WriterConn, batch: Vec<Job>, notify: bool) {
    // Split rather than cloned: each send's content and Graph body are
    // JSON trees, and this runs for every accepted send.
    let mut items = Vec::with_capacity(batch.len());
    let mut keys = Vec::with_capacity(batch.len());
    let mut acks = Vec::with_capacity(batch.len());
    for (item, key, ack) in batch {
        items.push(item);
        keys.push(key);
        acks.push(ack);
    }
    match conn.insert(&items, &keys, notify).await {
        Ok(rows) => {
            for (ack, row) in acks.into_iter().zip(rows) {
                let _ = ack.send(Ok(row));
            }
        }
        // One bad row must not fail its neighbours: write them one by one.
        Err(_) if items.len() > 1 => {
            for ((item, key), ack) in items.iter().zip(&keys).zip(acks) {
                let one = conn
                    .insert(std::slice::from_ref(item), std::slice::from_ref(key), true)
                    .await
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| StoreError::Unavailable("nothing written".into()))
                    });
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
        // By id alone, the organization checked on the rows: beside the
        // ids, an organization filter lets a planner without statistics
        // read the organization's whole index too.
        let rows: Vec<(MessageRow, ContactRow)> = messages::table
            .inner_join(contacts::table.on(contacts::id.nullable().eq(messages::contact_id)))
            .filter(messages::id.eq_any(ids))
            .select((MessageRow::as_select(), ContactRow::as_select()))
            .load(&mut conn)
            .await?;
        let mut by_id: HashMap<Uuid, Accepted> = rows
            .into_iter()
            .filter(|r| r.0.org_id == org_id)
            .map(|r| (r.0.id, r))
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}

/// Moves a message from `from` to `to` (retry: failed -> queued; cancel:
/// scheduled -> failed) with a timeline entry, on the caller's transaction
/// (which records the event the change causes). `None` when the message
/// does not exist; `Some(Err(status))` when it is in another status.
pub async fn transition_on(
    c: &mut AsyncPgConnection,
    org_id: Uuid,
    id: Uuid,
    from: &'static str,
    to: &'static str,
    error_message: Option<&str>,
    note: &str,
) -> StoreResult<Option<Result<MessageRow, String>>> {
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
            // A retry gets a fresh attempt budget from here; the
            // attempts (and the timeline's numbers) go on.
            messages::attempts_before_retry.eq(if requeue {
                current.attempts
            } else {
                current.attempts_before_retry
            }),
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
        notify_dispatchers(c).await?;
    }
    Ok(Some(Ok(updated)))
}
