//! The simulated world: phone numbers, WABAs, templates, media, signup codes, tokens, sent and
//! received messages, known users. Shared behind one mutex (`parking_lot`, no poisoning).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::SimulatorConfig;
use crate::faults::FaultSet;
use crate::ids;
use crate::log::{RequestLog, WebhookDelivery};
use crate::throughput::Gcra;

/// A business phone number.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    pub id: String,
    pub waba_id: String,
    /// Digits only (`15550783881`), as in webhook `metadata.display_phone_number`.
    pub display_phone_number: String,
    pub verified_name: String,
    pub quality_rating: String,
    pub code_verification_status: String,
    pub name_status: String,
    /// `CONNECTED` when registered, `DISCONNECTED` after `/deregister`.
    pub status: String,
    pub platform_type: String,
    pub account_mode: String,
    pub throughput_mps: u32,
    pub messaging_limit_tier: String,
    /// `AVAILABLE`, `LIMITED` or `BLOCKED` (the PHONE_NUMBER entity of `health_status`).
    pub can_send_message: String,
    pub registered: bool,
    #[serde(default)]
    pub register_calls: u32,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub business_profile: Option<Value>,
}

impl Phone {
    pub fn new(id: &str, waba_id: &str, mps: u32) -> Phone {
        Phone {
            id: id.to_string(),
            waba_id: waba_id.to_string(),
            display_phone_number: ids::display_digits_for(id),
            verified_name: "Sim Business".into(),
            quality_rating: "GREEN".into(),
            code_verification_status: "VERIFIED".into(),
            name_status: "APPROVED".into(),
            status: "CONNECTED".into(),
            platform_type: "CLOUD_API".into(),
            account_mode: "LIVE".into(),
            throughput_mps: mps,
            messaging_limit_tier: "TIER_1K".into(),
            can_send_message: "AVAILABLE".into(),
            registered: true,
            register_calls: 0,
            pin: None,
            business_profile: None,
        }
    }
}

/// A WhatsApp Business Account.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waba {
    pub id: String,
    pub name: String,
    pub business_id: String,
    /// An app is subscribed (`POST /{waba}/subscribed_apps`).
    pub subscribed: bool,
    pub override_callback_uri: Option<String>,
    pub message_template_namespace: String,
}

impl Waba {
    pub fn new(id: &str, subscribed: bool) -> Waba {
        Waba {
            id: id.to_string(),
            name: "Sim Business Account".into(),
            business_id: "506914307656634".into(),
            subscribed,
            override_callback_uri: None,
            message_template_namespace: uuid::Uuid::new_v4().to_string().replace('-', "_"),
        }
    }
}

/// A message template.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
    pub previous_category: Option<String>,
    /// Creation order, for stable paging.
    pub seq: u64,
}

impl Template {
    /// The Graph representation.
    pub fn to_graph(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        });
        if let Some(p) = &self.previous_category {
            v["previous_category"] = json!(p);
        }
        v
    }
}

/// Uploaded (or injected inbound) media.
#[derive(Clone, Debug)]
pub struct Media {
    pub id: String,
    pub phone_number_id: Option<String>,
    pub bytes: Bytes,
    pub mime_type: String,
    pub sha256: String,
    pub filename: Option<String>,
    /// The `hash` query parameter of its download URL.
    pub url_hash: String,
}

/// An Embedded Signup session (`POST /_sim/signup`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupSession {
    /// The one-time code the front end would get from `FB.login`.
    pub code: String,
    pub waba_id: String,
    pub business_id: String,
    pub phone_number_ids: Vec<String>,
    /// Display numbers (`+1 555-...`) in the order of `phone_number_ids`.
    pub display_phone_numbers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SignupRecord {
    pub session: SignupSession,
    pub created: Instant,
    pub used: bool,
}

/// An access token issued by the OAuth exchange.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub waba_ids: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub user_id: String,
}

/// A message the simulator accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    pub wamid: String,
    pub phone_number_id: String,
    pub waba_id: String,
    /// `to` as given, or the BSUID of `recipient`.
    pub input: String,
    /// Phone digits (`""` when sent to a BSUID).
    pub wa_id: String,
    /// BSUID, when sent to one or known for the phone.
    pub user_id: Option<String>,
    pub message_type: String,
    pub biz_opaque_callback_data: Option<String>,
    /// Lower-case pricing category (`marketing`, `utility`, `service`...).
    pub pricing_category: String,
    pub body: Value,
    pub at: DateTime<Utc>,
}

/// A WhatsApp user the simulator knows (from injected inbound messages).
#[derive(Clone, Debug, Default)]
pub struct User {
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    /// Last inbound message per business phone (the 24 h service window).
    pub last_inbound: HashMap<String, Instant>,
}

/// All mutable world state.
#[derive(Debug, Default)]
pub struct World {
    pub phones: BTreeMap<String, Phone>,
    pub wabas: BTreeMap<String, Waba>,
    pub templates: BTreeMap<String, Template>,
    pub template_seq: u64,
    pub media: HashMap<String, Media>,
    pub signups: HashMap<String, SignupRecord>,
    pub tokens: HashMap<String, TokenInfo>,
    pub revoked_tokens: std::collections::HashSet<String>,
    pub sent: HashMap<String, SentMessage>,
    /// Acceptance order of `sent`, to bound it.
    pub sent_order: std::collections::VecDeque<String>,
    /// wamids of inbound messages (for mark-as-read) -> phone number id.
    pub inbound: HashMap<String, String>,
    pub users: Vec<User>,
    pub user_index: HashMap<String, usize>,
}

fn is_numeric(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

impl World {
    fn id_taken(&self, id: &str) -> bool {
        self.phones.contains_key(id)
            || self.wabas.contains_key(id)
            || self.templates.contains_key(id)
            || self.media.contains_key(id)
    }

    /// A fresh numeric id not used by anything.
    pub fn fresh_id(&self) -> String {
        loop {
            let id = ids::numeric_id();
            if !self.id_taken(&id) {
                return id;
            }
        }
    }

    /// Creates a WABA (with Meta's default `hello_world` template).
    pub fn create_waba(&mut self, id: &str, subscribed: bool) {
        if self.wabas.contains_key(id) {
            return;
        }
        self.wabas.insert(id.to_string(), Waba::new(id, subscribed));
        let tid = self.fresh_id();
        self.template_seq += 1;
        self.templates.insert(
            tid.clone(),
            Template {
                id: tid,
                waba_id: id.to_string(),
                name: "hello_world".into(),
                language: "en_US".into(),
                category: "UTILITY".into(),
                status: "APPROVED".into(),
                parameter_format: "POSITIONAL".into(),
                components: json!([
                    {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                    {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us."},
                    {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
                ]),
                previous_category: None,
                seq: self.template_seq,
            },
        );
    }

    /// The phone `id`, created on first sight when allowed.
    pub fn phone_or_create(&mut self, id: &str, cfg: &SimulatorConfig) -> Option<&mut Phone> {
        if !self.phones.contains_key(id) {
            if !cfg.auto_create || !is_numeric(id) || self.id_taken(id) {
                return None;
            }
            let waba = cfg.default_waba_id.clone();
            self.create_waba(&waba, true);
            self.phones.insert(
                id.to_string(),
                Phone::new(id, &waba, cfg.default_throughput_mps),
            );
        }
        self.phones.get_mut(id)
    }

    /// The WABA `id`, created on first sight when allowed.
    pub fn waba_or_create(&mut self, id: &str, cfg: &SimulatorConfig) -> Option<&mut Waba> {
        if !self.wabas.contains_key(id) {
            if !cfg.auto_create || !is_numeric(id) || self.id_taken(id) {
                return None;
            }
            self.create_waba(id, true);
        }
        self.wabas.get_mut(id)
    }

    pub fn phones_of(&self, waba_id: &str) -> Vec<Phone> {
        self.phones
            .values()
            .filter(|p| p.waba_id == waba_id)
            .cloned()
            .collect()
    }

    /// Records an accepted message, forgetting the oldest beyond `cap`.
    pub fn record_sent(&mut self, msg: SentMessage, cap: usize) {
        self.sent_order.push_back(msg.wamid.clone());
        self.sent.insert(msg.wamid.clone(), msg);
        while self.sent_order.len() > cap.max(1) {
            if let Some(old) = self.sent_order.pop_front() {
                self.sent.remove(&old);
            }
        }
    }

    /// Finds a known user by phone digits or BSUID.
    pub fn user(&self, key: &str) -> Option<&User> {
        self.user_index.get(key).and_then(|&i| self.users.get(i))
    }

    /// Records (or updates) a user seen in an inbound message; returns its index.
    pub fn upsert_user(&mut self, u: User) -> usize {
        let existing = u
            .wa_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|w| self.user_index.get(w))
            .or_else(|| u.user_id.as_deref().and_then(|b| self.user_index.get(b)))
            .copied();
        let idx = match existing {
            Some(i) => {
                if let Some(cur) = self.users.get_mut(i) {
                    if u.wa_id.as_deref().is_some_and(|w| !w.is_empty()) {
                        cur.wa_id = u.wa_id.clone();
                    }
                    cur.user_id = u.user_id.clone().or(cur.user_id.take());
                    cur.parent_user_id = u.parent_user_id.clone().or(cur.parent_user_id.take());
                    cur.name = u.name.clone().or(cur.name.take());
                    cur.username = u.username.clone().or(cur.username.take());
                }
                i
            }
            None => {
                self.users.push(u.clone());
                self.users.len() - 1
            }
        };
        if let Some(w) = u.wa_id.filter(|s| !s.is_empty()) {
            self.user_index.insert(w, idx);
        }
        if let Some(b) = u.user_id {
            self.user_index.insert(b, idx);
        }
        idx
    }
}

/// Everything the handlers share.
pub struct Shared {
    pub cfg: RwLock<SimulatorConfig>,
    pub world: Mutex<World>,
    pub log: Mutex<RequestLog>,
    pub webhook_log: Mutex<std::collections::VecDeque<WebhookDelivery>>,
    pub webhook_seq: Mutex<u64>,
    pub faults: Mutex<FaultSet>,
    pub phone_limiter: Mutex<Gcra<String>>,
    pub pair_limiter: Mutex<Gcra<(String, String)>>,
    pub http: reqwest::Client,
    pub webhook_slots: Arc<Semaphore>,
    /// `http://addr` of the listener, once served.
    pub self_url: RwLock<Option<String>>,
}
