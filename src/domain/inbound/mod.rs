//! Meta's webhooks turned into wagate's records.
//!
//! The processor (`crate::inbound`) hands a batch of signed, stored
//! deliveries to [`apply`] inside one transaction and marks them processed
//! in that same transaction, so every effect happens once or not at all:
//!
//! - **Routing.** A `messages`-style change goes to the phone named by
//!   `metadata.phone_number_id` (one owner: the phone's organization). Other
//!   fields (templates, phone quality, account updates) go to every
//!   organization's WABA with the entry's id. What nobody owns is reported
//!   back as unrouted (`<phone_number_id>` or `waba:<id>`), and the delivery
//!   is kept for the operator.
//! - **Contacts.** Built from `wa_id`, `user_id` (BSUID), `parent_user_id`,
//!   `username` and the profile name (see `domain::identity`); newer names
//!   replace older ones. `user_changed_number` and `user_changed_user_id`
//!   system messages and `user_id_update` give the existing contact its new
//!   phone or BSUID: its history stays, and a contact created meanwhile under
//!   the new identity is merged into it.
//! - **Messages.** Every inbound message is stored once per (phone, wamid)
//!   with its read shape ([`content`]) and Meta's raw object, and status
//!   `delivered` (`read` once the conversation is marked read). Customer
//!   messages (every type but `system`) count as unread and open the 24-hour
//!   window; `message.received` is recorded for each new message. SMB echoes
//!   (messages the business sent from the WhatsApp Business app) are stored
//!   as outbound messages with status `sent` and `message.sent`.
//! - **Statuses** move outbound messages forward (see [`statuses`]); a status
//!   for a wamid not known yet waits in `orphan_statuses` until
//!   [`reconcile_orphans`].
//! - **Other fields** (templates, phone quality/name/throughput, account
//!   updates, capabilities, user preferences, value-level errors, fields not
//!   known yet) are kept as WABA updates, once each, and applied to template
//!   records, phone health and WABA restrictions (see `fields`).
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;
use wagate_meta::webhook::{
    ChangeRef, ChangeValue, ContactIdentity, Message, MessageContent, MessagesValue, Status,
    SystemKind, WebhookPayload,
};

use crate::domain::identity::Identity;
use crate::domain::message_view::event_data;
use crate::store::StoreResult;
use crate::store::contacts::{self as contacts_store, ContactRow, upsert_contact};
use crate::store::events::{MESSAGE_RECEIVED, MESSAGE_SENT, NewEvent, record_events};
use crate::store::inbound::{self as store, ConversationTouch};
use crate::store::messages::MessageRow;
use crate::store::phones::{PhoneRow, WabaRow};

pub mod content;
mod fields;
pub mod statuses;

pub use statuses::reconcile_orphans;

/// The `object` of every WhatsApp Business Account webhook.
const OBJECT: &str = "whatsapp_business_account";

/// Parses a signed body; `Err` says why it is unparseable.
pub fn parse(body: &[u8]) -> Result<WebhookPayload, String> {
    let payload = if has_nul_escape(body) {
        without_nul(body)
    } else {
        WebhookPayload::from_slice(body)
    }
    .map_err(|e| format!("not a webhook payload: {e}"))?;
    if payload.object != OBJECT {
        return Err(format!("object is {:?}, not {OBJECT:?}", payload.object));
    }
    Ok(payload)
}

/// Whether the body may carry a NUL character: JSON can only spell it as
/// the escape `\u0000` (a raw NUL byte is not valid JSON).
fn has_nul_escape(body: &[u8]) -> bool {
    body.windows(6).any(|w| w == br"\u0000")
}

/// A body whose strings may hold NUL characters, which PostgreSQL cannot
/// store in text or jsonb (a customer can type one): each becomes U+FFFD,
/// so the message is stored instead of failing on every retry.
fn without_nul(body: &[u8]) -> serde_json::Result<WebhookPayload> {
    fn scrub(v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
            Value::Array(items) => items.iter_mut().for_each(scrub),
            Value::Object(o) => {
                if o.keys().any(|k| k.contains('\0')) {
                    *o = std::mem::take(o)
                        .into_iter()
                        .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                        .collect();
                }
                o.values_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body)?;
    scrub(&mut value);
    serde_json::from_value(value)
}

/// What a delivery named that nobody owns (empty when fully routed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routed {
    /// Meta phone number ids, and `waba:<id>` for WABA-level fields.
    pub unrouted: Vec<String>,
}

/// Applies a batch of deliveries on the caller's transaction. Idempotent:
/// applying a delivery again changes nothing.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    payloads: &[&WebhookPayload],
) -> StoreResult<Vec<Routed>> {
    let mut batch = Batch::load(conn, payloads).await?;
    let mut routed = vec![Routed::default(); payloads.len()];
    let mut others: Vec<(ChangeRef<'_>, Vec<WabaRow>)> = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        for change in payload.changes() {
            if let Some(value) = change.value.messages_value() {
                let Some(pnid) = value.phone_number_id() else {
                    routed[i].unrouted.push("(no phone_number_id)".into());
                    continue;
                };
                let Some(phone) = batch.phones.get(pnid).cloned() else {
                    push_unique(&mut routed[i].unrouted, pnid.to_owned());
                    continue;
                };
                batch.messages_change(conn, &phone, &change, value).await?;
                continue;
            }
            let wabas = batch.wabas_of(change.waba_id);
            if wabas.is_empty() {
                push_unique(&mut routed[i].unrouted, format!("waba:{}", change.waba_id));
                continue;
            }
            others.push((change, wabas));
        }
    }
    batch.flush_messages(conn).await?;
    batch.flush_statuses(conn).await?;
    record_events(conn, std::mem::take(&mut batch.events)).await?;
    for (change, wabas) in &others {
        for waba in wabas {
            fields::apply(conn, change, waba).await?;
        }
    }
    Ok(routed)
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// Meta's unix seconds as a time (now when missing or absurd).
pub(crate) fn time_of(secs: Option<i64>) -> DateTime<Utc> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or_else(Utc::now)
}

fn identity_of(c: ContactIdentity<'_>) -> Identity {
    Identity {
        wa_id: c.wa_id.map(str::to_owned),
        bsuid: c.user_id.map(str::to_owned),
        parent_bsuid: c.parent_user_id.map(str::to_owned),
        username: c.username.map(str::to_owned),
        profile_name: c.profile_name.map(str::to_owned),
    }
    .normalised()
}

type IdentityKey = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn key(phone_id: Uuid, i: &Identity) -> IdentityKey {
    (
        phone_id,
        i.wa_id.clone(),
        i.bsuid.clone(),
        i.parent_bsuid.clone(),
        i.username.clone(),
        i.profile_name.clone(),
    )
}

/// A message waiting to be inserted with the rest of the batch.
struct Pending {
    row: MessageRow,
    /// From the customer: counts as unread and opens the service window.
    customer: bool,
    event: &'static str,
}

/// One batch's state: routes, contacts met so far, rows to write.
struct Batch {
    /// By Meta phone number id.
    phones: HashMap<String, PhoneRow>,
    /// By Meta WABA id.
    wabas: HashMap<String, Vec<WabaRow>>,
    contacts: HashMap<Uuid, ContactRow>,
    known: HashMap<IdentityKey, Uuid>,
    /// Contacts merged into another by an identity change.
    merged: HashMap<Uuid, Uuid>,
    /// The batch's senders' contacts, read up front so a known contact costs
    /// no query; None once an identity change makes it stale.
    existing: Option<Vec<ContactRow>>,
    pending: Vec<Pending>,
    statuses: Vec<(Uuid, Status)>,
    /// Customer events of the batch, in order, recorded together at the end.
    events: Vec<NewEvent>,
}

impl Batch {
    async fn load(
        conn: &mut AsyncPgConnection,
        payloads: &[&WebhookPayload],
    ) -> StoreResult<Batch> {
        let mut phone_ids: HashSet<&str> = HashSet::new();
        let mut waba_ids: HashSet<&str> = HashSet::new();
        for p in payloads {
            for c in p.changes() {
                match c
                    .value
                    .messages_value()
                    .and_then(MessagesValue::phone_number_id)
                {
                    Some(id) => {
                        phone_ids.insert(id);
                    }
                    None => {
                        waba_ids.insert(c.waba_id);
                    }
                }
            }
        }
        let phone_ids: Vec<&str> = phone_ids.into_iter().collect();
        let waba_ids: Vec<&str> = waba_ids.into_iter().collect();
        let phones: HashMap<String, PhoneRow> = store::phones_by_meta_ids(conn, &phone_ids)
            .await?
            .into_iter()
            .map(|p| (p.meta_phone_number_id.clone(), p))
            .collect();
        let existing = preload_contacts(conn, payloads, &phones).await?;
        let mut wabas: HashMap<String, Vec<WabaRow>> = HashMap::new();
        for w in store::wabas_by_meta_ids(conn, &waba_ids).await? {
            if let Some(id) = w.meta_waba_id.clone() {
                wabas.entry(id).or_default().push(w);
            }
        }
        Ok(Batch {
            phones,
            wabas,
            contacts: HashMap::new(),
            known: HashMap::new(),
            merged: HashMap::new(),
            existing: Some(existing),
            pending: Vec::new(),
            statuses: Vec::new(),
            events: Vec::new(),
        })
    }

    fn wabas_of(&self, meta_waba_id: &str) -> Vec<WabaRow> {
        self.wabas.get(meta_waba_id).cloned().unwrap_or_default()
    }

    fn phone_by_id(&self, id: Uuid) -> Option<&PhoneRow> {
        self.phones.values().find(|p| p.id == id)
    }

    /// Follows merges to the contact that now stands for `id`.
    fn resolve(&self, mut id: Uuid) -> Uuid {
        while let Some(next) = self.merged.get(&id) {
            id = *next;
        }
        id
    }

    /// The contact of this identity in the phone's inbox (created, or
    /// completed with what the identity newly tells), once per batch.
    async fn contact(
        &mut self,
        conn: &mut AsyncPgConnection,
        phone: &PhoneRow,
        identity: Identity,
    ) -> StoreResult<Option<Uuid>> {
        if identity.is_empty() {
            return Ok(None);
        }
        let k = key(phone.id, &identity);
        if let Some(id) = self.known.get(&k) {
            return Ok(Some(self.resolve(*id)));
        }
        let row = match &self.existing {
            // The batch's senders were preloaded: no lookup needed.
            Some(_) => match self.existing_match(phone.id, &identity) {
                Some(found) => {
                    let merged = identity.over(&found.identity());
                    if merged == found.identity() {
                        // Known, and the message tells nothing new: no query.
                        found
                    } else {
                        // Something new (a name, a BSUID): completed, and
                        // merged with any contact that already held it.
                        let (row, merged_ids) =
                            store::relink_contact(conn, &found, &merged).await?;
                        self.absorb(&merged_ids, row.id);
                        row
                    }
                }
                None => {
                    let mut rows =
                        contacts_store::insert_contacts(conn, &[new_contact(phone, &identity)])
                            .await?;
                    match rows.pop() {
                        Some(row) => row,
                        None => upsert_contact(conn, phone.org_id, phone.id, &identity).await?,
                    }
                }
            },
            None => upsert_contact(conn, phone.org_id, phone.id, &identity).await?,
        };
        let id = row.id;
        if let Some(list) = &mut self.existing {
            list.retain(|c| c.id != id);
            list.push(row.clone());
        }
        self.known.insert(k, id);
        self.contacts.insert(id, row);
        Ok(Some(id))
    }

    /// Records that these contacts were merged into `into`.
    fn absorb(&mut self, merged: &[Uuid], into: Uuid) {
        for m in merged {
            self.merged.insert(*m, into);
            self.contacts.remove(m);
            if let Some(list) = &mut self.existing {
                list.retain(|c| c.id != *m);
            }
        }
        if !merged.is_empty() {
            self.known.clear();
        }
    }

    /// The preloaded contact `upsert_contact` would pick for this identity:
    /// the oldest holding its identifier, BSUID or phone.
    fn existing_match(&self, phone_id: Uuid, identity: &Identity) -> Option<ContactRow> {
        self.existing
            .as_ref()?
            .iter()
            .filter(|c| holds(c, phone_id, identity))
            .min_by_key(|c| c.created_at)
            .cloned()
    }

    /// Gives the contact known as `old` a new identity (`change` applied to
    /// what is known of it), merging any contact that already holds it.
    async fn relink(
        &mut self,
        conn: &mut AsyncPgConnection,
        phone: &PhoneRow,
        old: Identity,
        change: impl FnOnce(&mut Identity),
    ) -> StoreResult<Option<Uuid>> {
        let existing =
            store::lock_contact(conn, phone.id, old.wa_id.as_deref(), old.bsuid.as_deref()).await?;
        let Some(contact) = existing else {
            // Never met under the old identity: it starts with the new one.
            let mut new = old;
            change(&mut new);
            return self.contact(conn, phone, new.normalised()).await;
        };
        let known = contact.identity();
        let mut identity = Identity {
            wa_id: old.wa_id.or(known.wa_id),
            bsuid: old.bsuid.or(known.bsuid),
            parent_bsuid: old.parent_bsuid.or(known.parent_bsuid),
            username: old.username.or(known.username),
            profile_name: old.profile_name.or(known.profile_name),
        };
        change(&mut identity);
        let (row, merged) = store::relink_contact(conn, &contact, &identity.normalised()).await?;
        for m in merged {
            self.merged.insert(m, row.id);
            self.contacts.remove(&m);
        }
        // Identities cached so far may now point elsewhere.
        self.known.clear();
        self.existing = None;
        let id = row.id;
        self.contacts.insert(id, row);
        Ok(Some(id))
    }

    /// Collects the messages, echoes and statuses of a `messages`-style
    /// change and applies its identity changes; other parts (user
    /// preferences, value-level errors) are kept as WABA updates.
    async fn messages_change(
        &mut self,
        conn: &mut AsyncPgConnection,
        phone: &PhoneRow,
        change: &ChangeRef<'_>,
        value: &MessagesValue,
    ) -> StoreResult<()> {
        for u in &value.user_id_update {
            let previous = u.user_id.as_ref().and_then(|c| c.previous.clone());
            let current = u.user_id.as_ref().and_then(|c| c.current.clone());
            let parent = u.parent_user_id.as_ref().and_then(|c| c.current.clone());
            let old = Identity {
                wa_id: u.wa_id.clone(),
                bsuid: previous,
                ..Default::default()
            }
            .normalised();
            if old.is_empty() {
                continue;
            }
            self.relink(conn, phone, old, |i| {
                if current.as_deref().is_some_and(|c| !c.is_empty()) {
                    i.bsuid = current;
                }
                if parent.as_deref().is_some_and(|p| !p.is_empty()) {
                    i.parent_bsuid = parent;
                }
            })
            .await?;
        }
        for m in &value.messages {
            self.inbound_message(conn, phone, value, m).await?;
        }
        for e in &value.message_echoes {
            let to = echo_identity(value, e);
            let contact = self.contact(conn, phone, to.clone()).await?;
            let shape = content::echo(e);
            let mut row = message_row(
                phone,
                contact,
                &e.id,
                e.timestamp.as_ref().and_then(|t| t.as_i64()),
            );
            row.direction = "outbound".into();
            row.status = "sent".into();
            row.recipient = to.reply_to();
            row.kind = shape.kind.into();
            row.content = shape.content;
            row.payload = serde_json::to_value(e).unwrap_or_default();
            self.pending.push(Pending {
                row,
                customer: false,
                event: MESSAGE_SENT,
            });
        }
        for s in &value.statuses {
            self.statuses.push((phone.id, s.clone()));
        }
        if !value.user_preferences.is_empty()
            || !value.errors.is_empty()
            || !value.user_id_update.is_empty()
        {
            fields::record_messages_notice(conn, phone, change, value).await?;
        }
        Ok(())
    }

    async fn inbound_message(
        &mut self,
        conn: &mut AsyncPgConnection,
        phone: &PhoneRow,
        value: &MessagesValue,
        m: &Message,
    ) -> StoreResult<()> {
        let sender = identity_of(value.sender(m));
        let contact = match &m.content {
            MessageContent::System(sys) if changes_identity(sys.kind.as_ref()) => {
                // A redelivered identity change must not be replayed (the user
                // may have changed again since).
                if store_has_message(conn, phone.id, &m.id).await? {
                    return Ok(());
                }
                let new_phone = sys.new_phone().map(str::to_owned);
                let new_bsuid = sys.new_user_id().map(str::to_owned);
                let new_parent = sys.parent_user_id.clone().filter(|p| !p.is_empty());
                if sender.is_empty() {
                    None
                } else {
                    self.relink(conn, phone, sender, |i| {
                        if new_phone.is_some() {
                            i.wa_id = new_phone;
                        }
                        if new_bsuid.is_some() {
                            i.bsuid = new_bsuid;
                        }
                        if new_parent.is_some() {
                            i.parent_bsuid = new_parent;
                        }
                    })
                    .await?
                }
            }
            _ => self.contact(conn, phone, sender).await?,
        };
        let shape = content::inbound(m);
        let mut row = message_row(phone, contact, &m.id, m.timestamp_secs());
        row.kind = shape.kind.into();
        row.content = shape.content;
        row.payload = serde_json::to_value(m).unwrap_or_default();
        self.pending.push(Pending {
            customer: shape.kind != "system",
            row,
            event: MESSAGE_RECEIVED,
        });
        Ok(())
    }

    /// Inserts the batch's messages (once per phone and wamid), moves their
    /// conversations forward and records their events.
    async fn flush_messages(&mut self, conn: &mut AsyncPgConnection) -> StoreResult<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let mut seen = HashSet::new();
        let mut rows = Vec::with_capacity(pending.len());
        let mut customer = HashMap::new();
        let mut events = HashMap::new();
        for mut p in pending {
            if !seen.insert((p.row.phone_id, p.row.wamid.clone())) {
                continue;
            }
            p.row.contact_id = p.row.contact_id.map(|c| self.resolve(c));
            customer.insert(p.row.id, p.customer);
            events.insert(p.row.id, p.event);
            rows.push(p.row);
        }
        let mut keys: Vec<(Uuid, Uuid, Uuid)> = rows
            .iter()
            .filter_map(|r| Some((r.org_id, r.phone_id, r.contact_id?)))
            .collect();
        keys.sort();
        keys.dedup();
        let convs: HashMap<(Uuid, Uuid), Uuid> = store::ensure_conversations(conn, &keys)
            .await?
            .into_iter()
            .map(|c| ((c.phone_id, c.contact_id), c.id))
            .collect();
        for r in &mut rows {
            r.conversation_id = r
                .contact_id
                .and_then(|c| convs.get(&(r.phone_id, c)).copied());
        }
        let inserted = crate::store::messages::insert_messages(conn, rows).await?;
        let mut touches: HashMap<Uuid, ConversationTouch> = HashMap::new();
        for r in &inserted {
            let Some(conv) = r.conversation_id else {
                continue;
            };
            let at = crate::domain::message_view::timestamp(r);
            let from_customer = customer.get(&r.id).copied().unwrap_or(false);
            let t = touches.entry(conv).or_insert(ConversationTouch {
                id: conv,
                last_message_at: at,
                last_inbound_at: None,
                unread: 0,
            });
            t.last_message_at = t.last_message_at.max(at);
            if from_customer {
                t.last_inbound_at = t.last_inbound_at.max(Some(at));
                t.unread += 1;
            }
        }
        let mut touches: Vec<ConversationTouch> = touches.into_values().collect();
        touches.sort_by_key(|t| t.id);
        store::touch_conversations(conn, &touches).await?;
        let missing: Vec<Uuid> = inserted
            .iter()
            .filter_map(|r| r.contact_id)
            .filter(|c| !self.contacts.contains_key(c))
            .collect();
        for c in contacts_store::contacts_by_ids(conn, &missing).await? {
            self.contacts.insert(c.id, c);
        }
        for r in &inserted {
            let Some(phone) = self.phone_by_id(r.phone_id) else {
                continue;
            };
            let contact = r.contact_id.and_then(|c| self.contacts.get(&c));
            self.events.push(NewEvent {
                org_id: r.org_id,
                waba_id: Some(phone.waba_id),
                event: events.get(&r.id).copied().unwrap_or(MESSAGE_RECEIVED),
                data: event_data(r, contact, phone),
            });
        }
        Ok(())
    }

    /// Applies the batch's statuses to the outbound messages they name;
    /// keeps those whose message is not known yet.
    async fn flush_statuses(&mut self, conn: &mut AsyncPgConnection) -> StoreResult<()> {
        let all = std::mem::take(&mut self.statuses);
        let mut phone_ids: Vec<Uuid> = all.iter().map(|(p, _)| *p).collect();
        phone_ids.sort();
        phone_ids.dedup();
        for phone_id in phone_ids {
            let Some(phone) = self.phone_by_id(phone_id).cloned() else {
                continue;
            };
            let statuses: Vec<&Status> = all
                .iter()
                .filter(|(p, _)| *p == phone_id)
                .map(|(_, s)| s)
                .collect();
            let wamids: Vec<&str> = statuses.iter().map(|s| s.id.as_str()).collect();
            let ids: Vec<Uuid> = statuses
                .iter()
                .filter_map(|s| statuses::callback_id(s))
                .collect();
            let mut msgs = store::lock_outbound(conn, phone_id, &wamids, &ids).await?;
            let missing: Vec<Uuid> = msgs
                .iter()
                .filter_map(|m| m.contact_id)
                .filter(|c| !self.contacts.contains_key(c))
                .collect();
            for c in contacts_store::contacts_by_ids(conn, &missing).await? {
                self.contacts.insert(c.id, c);
            }
            for s in statuses {
                let found = msgs
                    .iter()
                    .position(|m| m.wamid.as_deref() == Some(s.id.as_str()))
                    .or_else(|| {
                        let id = statuses::callback_id(s)?;
                        msgs.iter().position(|m| m.id == id)
                    });
                let Some(i) = found else {
                    let raw = serde_json::to_value(s).unwrap_or_default();
                    store::save_orphan(conn, &phone.meta_phone_number_id, &s.id, &raw).await?;
                    continue;
                };
                let msg = &mut msgs[i];
                if let Some(cid) = msg.contact_id {
                    self.learn_identity(conn, &phone, cid, s).await?;
                }
                let contact = msg.contact_id.and_then(|c| self.contacts.get(&c));
                statuses::apply(conn, msg, contact, &phone, s, &mut self.events).await?;
            }
        }
        Ok(())
    }

    /// Statuses name the recipient too (with its BSUID and username since
    /// 2026): the message's contact learns what it did not know.
    async fn learn_identity(
        &mut self,
        conn: &mut AsyncPgConnection,
        phone: &PhoneRow,
        contact_id: Uuid,
        s: &Status,
    ) -> StoreResult<()> {
        let Some(known) = self.contacts.get(&contact_id) else {
            return Ok(());
        };
        let told = Identity {
            wa_id: s.recipient_phone().map(str::to_owned),
            bsuid: s.recipient_user_id().map(str::to_owned),
            parent_bsuid: s.recipient_parent_user_id().map(str::to_owned),
            ..Default::default()
        }
        .normalised();
        let current = known.identity();
        let news = |new: &Option<String>, old: &Option<String>| new.is_some() && old.is_none();
        if !(news(&told.bsuid, &current.bsuid)
            || news(&told.wa_id, &current.wa_id)
            || news(&told.parent_bsuid, &current.parent_bsuid))
        {
            return Ok(());
        }
        // Matched through what the contact already has, completed with the rest.
        let merged = Identity {
            wa_id: current.wa_id.clone().or(told.wa_id),
            bsuid: current.bsuid.clone().or(told.bsuid),
            parent_bsuid: current.parent_bsuid.clone().or(told.parent_bsuid),
            username: current.username.clone(),
            profile_name: current.profile_name.clone(),
        };
        let row = upsert_contact(conn, phone.org_id, phone.id, &merged).await?;
        if row.id == contact_id {
            self.contacts.insert(row.id, row);
        }
        Ok(())
    }
}

/// A new contact of the phone's inbox for this (non-empty) identity.
fn new_contact(phone: &PhoneRow, identity: &Identity) -> ContactRow {
    ContactRow::new(phone.org_id, phone.id, identity, Utc::now())
}

/// Who the batch's messages come from and its echoes go to, phone by
/// phone, in order. Senders of identity changes are left out: those go
/// through `Batch::relink`.
fn senders<'a>(
    payloads: &'a [&'a WebhookPayload],
    phones: &'a HashMap<String, PhoneRow>,
) -> Vec<(&'a PhoneRow, Identity)> {
    let mut out = Vec::new();
    for p in payloads {
        for (pnid, value) in p.messages_values() {
            let Some(phone) = phones.get(pnid) else {
                continue;
            };
            for m in &value.messages {
                if let MessageContent::System(sys) = &m.content
                    && changes_identity(sys.kind.as_ref())
                {
                    continue;
                }
                out.push((phone, identity_of(value.sender(m))));
            }
            for e in &value.message_echoes {
                out.push((phone, echo_identity(value, e)));
            }
        }
    }
    out
}

/// Who an SMB echo went to. Some captures name the business as `to` and
/// the user as `from`: the business's own number is never the contact.
fn echo_identity(value: &MessagesValue, e: &wagate_meta::webhook::MessageEcho) -> Identity {
    let to = identity_of(value.echo_recipient(e));
    let business = digits(
        value
            .metadata
            .as_ref()
            .and_then(|m| m.display_phone_number.as_deref())
            .unwrap_or_default(),
    );
    if !business.is_empty() && to.wa_id.as_deref().map(digits).as_deref() == Some(business.as_str())
    {
        let from = e.from.clone().filter(|f| digits(f) != business);
        return Identity { wa_id: from, ..to }.normalised();
    }
    to
}

/// Whether `c` is the contact `upsert_contact` would take for `identity`:
/// same inbox, and it holds the identifier, the BSUID or the phone.
fn holds(c: &ContactRow, phone_id: Uuid, identity: &Identity) -> bool {
    let Some((identifier, _)) = identity.identifier() else {
        return false;
    };
    c.phone_id == phone_id
        && (c.identifier == identifier
            || (identity.bsuid.is_some() && c.bsuid == identity.bsuid)
            || (identity.wa_id.is_some() && c.wa_id == identity.wa_id))
}

/// Reads the contacts of the batch's senders (a few indexed queries), and
/// creates those nobody holds yet with one insert, sorted by phone and
/// identifier: concurrent batches then wait for each other in one order
/// instead of deadlocking. Senders that turn out to be one person (a phone
/// in one message, the same phone with its BSUID in another) become one
/// contact.
async fn preload_contacts(
    conn: &mut AsyncPgConnection,
    payloads: &[&WebhookPayload],
    phones: &HashMap<String, PhoneRow>,
) -> StoreResult<Vec<ContactRow>> {
    let people = senders(payloads, phones);
    let wanted: Vec<(Uuid, &Identity)> = people.iter().map(|(p, i)| (p.id, i)).collect();
    let mut existing = contacts_store::contacts_matching(conn, &wanted).await?;
    let mut planned: Vec<ContactRow> = Vec::new();
    for (phone, identity) in &people {
        if identity.identifier().is_none() || existing.iter().any(|c| holds(c, phone.id, identity))
        {
            continue;
        }
        let matching: Vec<usize> = (0..planned.len())
            .filter(|&i| holds(&planned[i], phone.id, identity))
            .collect();
        let Some((&first, rest)) = matching.split_first() else {
            planned.push(new_contact(phone, identity));
            continue;
        };
        let mut merged = identity.over(&planned[first].identity());
        for &i in rest.iter().rev() {
            merged = merged.over(&planned[i].identity());
            planned.remove(i);
        }
        let row = &mut planned[first];
        if let Some((identifier, kind)) = merged.identifier() {
            row.identifier = identifier;
            row.identifier_type = kind.to_owned();
        }
        row.wa_id = merged.wa_id;
        row.bsuid = merged.bsuid;
        row.parent_bsuid = merged.parent_bsuid;
        row.username = merged.username;
        row.profile_name = merged.profile_name;
    }
    planned.sort_by(|a, b| (a.phone_id, &a.identifier).cmp(&(b.phone_id, &b.identifier)));
    existing.extend(contacts_store::insert_contacts(conn, &planned).await?);
    Ok(existing)
}

fn changes_identity(kind: Option<&SystemKind>) -> bool {
    matches!(
        kind,
        Some(
            SystemKind::UserChangedNumber
                | SystemKind::CustomerChangedNumber
                | SystemKind::UserChangedUserId
        )
    )
}

async fn store_has_message(
    conn: &mut AsyncPgConnection,
    phone_id: Uuid,
    wamid: &str,
) -> StoreResult<bool> {
    store::has_message(conn, phone_id, wamid).await
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A received message row (inbound, `delivered`) to fill in.
fn message_row(
    phone: &PhoneRow,
    contact_id: Option<Uuid>,
    wamid: &str,
    timestamp: Option<i64>,
) -> MessageRow {
    MessageRow {
        contact_id,
        wamid: Some(wamid.to_owned()),
        meta_timestamp: Some(time_of(timestamp)),
        // Inbound messages show `delivered`, and `read` once marked read
        // (as the platform guide's example does).
        ..MessageRow::new(
            crate::store::new_id(),
            phone.org_id,
            phone.id,
            "inbound",
            "delivered",
            Utc::now(),
        )
    }
}

/// The value as kept: what `ChangeValue` holds, verbatim.
pub(crate) fn value_json(v: &ChangeValue) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Notices Meta posted about a WABA of the organization, newest first.
pub async fn waba_updates(
    db: &crate::store::Store,
    org_id: Uuid,
    waba_id: Uuid,
    field: Option<&str>,
    page: crate::store::PageRequest,
) -> crate::domain::DomainResult<(Vec<store::WabaUpdateRow>, i64)> {
    crate::domain::phones::get_waba(db, org_id, waba_id).await?;
    Ok(db.list_waba_updates(org_id, waba_id, field, page).await?)
}
