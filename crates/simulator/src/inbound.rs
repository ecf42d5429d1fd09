//! Inbound messages: builds Meta's full `messages` webhook (contacts with `wa_id`, `user_id`,
//! `parent_user_id`, `profile{name,username}`; the message with `from`, `from_user_id`, a
//! wamid and a timestamp), signs it and posts it. Also raw signed posts.
use std::time::Instant;

use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::log::WebhookDelivery;
use crate::state::User;
use crate::webhooks_out::{Signature, messages_envelope};
use crate::{SimError, Simulator, ids, media};

/// An inbound message to inject (`POST /_sim/inbound`, camelCase JSON).
///
/// The type's payload goes under the key named by `type`, as in Meta's webhook:
/// `{"phoneNumberId":"106540352242922","from":"16505551234","name":"Sheena","type":"text","text":{"body":"hi"}}`
/// (`"text":"hi"` is accepted too). Media types without an `id` get one: the simulator stores
/// a small placeholder file (or `mediaBase64`) that downloads like any media. `message`, if
/// given, is used as the message object as-is (its `id`/`timestamp`/`from` filled when missing).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    pub phone_number_id: String,
    /// The user's phone (`wa_id`/`from`); `""` for a username user whose phone is hidden.
    pub from: Option<String>,
    /// The user's BSUID (`from_user_id`, `contacts[].user_id`).
    pub from_user_id: Option<String>,
    /// Parent BSUID (`from_parent_user_id`, `contacts[].parent_user_id`).
    pub parent_user_id: Option<String>,
    /// `contacts[].profile.username` (e.g. `@pablo`).
    pub username: Option<String>,
    /// `contacts[].profile.name` (default `Sim User`).
    pub name: Option<String>,
    /// Message type (default `text`).
    #[serde(rename = "type")]
    pub msg_type: Option<String>,
    pub context: Option<Value>,
    pub referral: Option<Value>,
    /// A complete message object to send instead of building one.
    pub message: Option<Value>,
    /// Override the wamid.
    pub id: Option<String>,
    /// Unix seconds (default now).
    pub timestamp: Option<i64>,
    /// Content of the placeholder media file (base64).
    pub media_base64: Option<String>,
    /// The type payload(s), keyed by type name (`text`, `image`, `interactive`...).
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

impl InboundMessage {
    /// A text message from `from` to `phone_number_id`.
    pub fn text(phone_number_id: &str, from: &str, body: &str) -> InboundMessage {
        let mut payload = Map::new();
        payload.insert("text".into(), json!({"body": body}));
        InboundMessage {
            phone_number_id: phone_number_id.into(),
            from: Some(from.into()),
            msg_type: Some("text".into()),
            payload,
            ..Default::default()
        }
    }
}

const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document", "sticker"];

fn default_mime(t: &str) -> &'static str {
    match t {
        "image" => "image/jpeg",
        "video" => "video/mp4",
        "audio" => "audio/ogg",
        "document" => "application/pdf",
        "sticker" => "image/webp",
        _ => "application/octet-stream",
    }
}

pub(crate) async fn inject(sim: &Simulator, m: InboundMessage) -> Result<String, SimError> {
    if m.phone_number_id.is_empty() {
        return Err(SimError::Invalid("phoneNumberId is required".into()));
    }
    let (waba_id, display) = {
        let cfg = sim.shared.cfg.read().clone();
        let mut world = sim.shared.world.lock();
        let p = world
            .phone_or_create(&m.phone_number_id, &cfg)
            .ok_or_else(|| SimError::NotFound(format!("phone {}", m.phone_number_id)))?;
        (p.waba_id.clone(), p.display_phone_number.clone())
    };
    let from = match (&m.from, &m.from_user_id) {
        (Some(f), _) => ids::digits(f),
        (None, Some(_)) => String::new(),
        (None, None) => "16505551234".into(),
    };
    let msg_type = m.msg_type.clone().unwrap_or_else(|| "text".into());
    let mut message = match m.message.clone() {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(SimError::Invalid("message must be an object".into())),
        None => {
            let mut o = Map::new();
            o.insert("type".into(), json!(msg_type));
            let mut payload = m.payload.get(&msg_type).cloned().unwrap_or(json!({}));
            if msg_type == "text"
                && let Value::String(s) = &payload
            {
                payload = json!({"body": s});
            }
            if MEDIA_TYPES.contains(&msg_type.as_str())
                && let Value::Object(p) = &mut payload
                && !p.contains_key("id")
            {
                let mime = p
                    .get("mime_type")
                    .and_then(Value::as_str)
                    .unwrap_or(default_mime(&msg_type))
                    .to_string();
                let data = m
                    .media_base64
                    .as_deref()
                    .and_then(|b| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(b).ok()
                    })
                    .unwrap_or_else(|| {
                        format!("wagate simulator {msg_type} placeholder").into_bytes()
                    });
                let filename = p
                    .get("filename")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let id = media::store(
                    sim,
                    Some(&m.phone_number_id),
                    Bytes::from(data),
                    &mime,
                    filename,
                );
                // Lock order: config before world.
                let base = sim.base_url();
                let world = sim.shared.world.lock();
                if let Some(stored) = world.media.get(&id) {
                    p.insert("id".into(), json!(id));
                    p.insert("mime_type".into(), json!(stored.mime_type));
                    p.insert("sha256".into(), json!(stored.sha256));
                    p.insert("url".into(), json!(media::url_of(&base, stored)));
                }
            }
            o.insert(msg_type.clone(), payload);
            if let Some(c) = &m.context {
                o.insert("context".into(), c.clone());
            }
            if let Some(r) = &m.referral {
                o.insert("referral".into(), r.clone());
            }
            o
        }
    };
    let wamid = message
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| m.id.clone())
        .unwrap_or_else(|| ids::wamid(m.from_user_id.as_deref().unwrap_or(&from), false));
    message.insert("id".into(), json!(wamid));
    message.entry("from").or_insert_with(|| json!(from.clone()));
    if let Some(b) = &m.from_user_id {
        message.entry("from_user_id").or_insert_with(|| json!(b));
    }
    if let Some(p) = &m.parent_user_id {
        message
            .entry("from_parent_user_id")
            .or_insert_with(|| json!(p));
    }
    message.entry("timestamp").or_insert_with(|| {
        json!(
            m.timestamp
                .unwrap_or_else(|| Utc::now().timestamp())
                .to_string()
        )
    });
    let name = m.name.clone().unwrap_or_else(|| "Sim User".into());
    let mut profile = json!({"name": name});
    if let Some(u) = &m.username {
        profile["username"] = json!(u);
    }
    let mut contact = json!({"profile": profile, "wa_id": from});
    if let Some(b) = &m.from_user_id {
        contact["user_id"] = json!(b);
    }
    if let Some(p) = &m.parent_user_id {
        contact["parent_user_id"] = json!(p);
    }
    {
        let mut world = sim.shared.world.lock();
        world
            .inbound
            .insert(wamid.clone(), m.phone_number_id.clone());
        let idx = world.upsert_user(User {
            wa_id: Some(from.clone()).filter(|f| !f.is_empty()),
            user_id: m.from_user_id.clone(),
            parent_user_id: m.parent_user_id.clone(),
            name: Some(name),
            username: m.username.clone(),
            last_inbound: Default::default(),
        });
        if let Some(u) = world.users.get_mut(idx) {
            u.last_inbound
                .insert(m.phone_number_id.clone(), Instant::now());
        }
    }
    let env = messages_envelope(
        &waba_id,
        &display,
        &m.phone_number_id,
        Some(json!([contact])),
        "messages",
        json!([Value::Object(message)]),
    );
    let body = serde_json::to_vec(&env).map_err(|e| SimError::Invalid(e.to_string()))?;
    let url = sim.webhook_target(&waba_id).ok_or(SimError::NoWebhookUrl)?;
    let d = sim
        .deliver(
            Some(url),
            body,
            &format!("message.{msg_type}"),
            Some(wamid.clone()),
            Signature::Valid,
        )
        .await;
    if d.delivered {
        Ok(wamid)
    } else {
        Err(SimError::WebhookFailed {
            wamid: Some(wamid),
            last_status: d.last_status,
        })
    }
}

/// Registers every `entry[].changes[].value.messages[]` id of a raw payload as inbound.
fn register_inbound_ids(sim: &Simulator, body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut world = sim.shared.world.lock();
    for entry in v["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let phone = change["value"]["metadata"]["phone_number_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for msg in change["value"]["messages"].as_array().into_iter().flatten() {
                if let Some(id) = msg["id"].as_str() {
                    world.inbound.insert(id.to_string(), phone.clone());
                }
            }
        }
    }
}

pub(crate) async fn post_raw(
    sim: &Simulator,
    body: Vec<u8>,
    signature: Signature,
) -> Result<WebhookDelivery, SimError> {
    register_inbound_ids(sim, &body);
    let url = sim
        .shared
        .cfg
        .read()
        .webhook_url
        .clone()
        .ok_or(SimError::NoWebhookUrl)?;
    Ok(sim.deliver(Some(url), body, "raw", None, signature).await)
}
