//! `POST /{version}/{phone-number-id}/messages`: sends (every message type), mark-as-read and
//! typing indicators.
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};

use crate::errors::GraphError;
use crate::graph_routes::{Ctx, GraphResult, Note, ok_json, success};
use crate::reserved::{self, Reserved};
use crate::state::SentMessage;
use crate::throughput::interval_for;
use crate::webhooks_out::StatusPlan;
use crate::{Simulator, ids};

const TYPES: &[&str] = &[
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
];

const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn handle(sim: &Simulator, ctx: &Ctx, phone_id: &str, note: &mut Note) -> GraphResult {
    note.phone_number_id = Some(phone_id.to_string());
    note.kind = "messages.send".into();
    let (waba_id, registered) = {
        let cfg = sim.shared.cfg.read();
        let mut world = sim.shared.world.lock();
        match world.phone_or_create(phone_id, &cfg) {
            Some(p) => (p.waba_id.clone(), p.registered),
            None => return Err(GraphError::unknown_object("post", phone_id)),
        }
    };
    note.waba_id = Some(waba_id.clone());
    let Some(body) = ctx.json.as_ref().filter(|b| b.is_object()) else {
        return Err(GraphError::param(
            "The parameter messaging_product is required.",
        ));
    };
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(GraphError::param(
            "The parameter messaging_product is required.",
        ));
    }
    if body.get("status").is_some() {
        note.kind = "messages.read".into();
        return mark_read(sim, phone_id, body);
    }
    send(sim, phone_id, &waba_id, registered, body, note)
}

fn mark_read(sim: &Simulator, phone_id: &str, body: &Value) -> GraphResult {
    if body.get("status").and_then(Value::as_str) != Some("read") {
        return Err(GraphError::invalid_parameter(
            "Param status must be one of {READ} - got a different value.",
        ));
    }
    let Some(id) = body.get("message_id").and_then(Value::as_str) else {
        return Err(GraphError::param("The parameter message_id is required."));
    };
    let world = sim.shared.world.lock();
    if world.inbound.get(id).is_some_and(|p| p == phone_id) {
        return success();
    }
    if world.sent.contains_key(id) {
        return Err(GraphError::invalid_parameter(&format!(
            "Message supplied to mark message as read API with message ID: {id} is outgoing. Please use an incoming message ID."
        )));
    }
    Err(GraphError::invalid_parameter(
        "Please check the message ID you have provided.",
    ))
}

/// Minimal per-type validation, with Graph's texts.
fn validate(msg_type: &str, body: &Value) -> Result<(), GraphError> {
    let payload = body.get(msg_type);
    let need_obj = |v: Option<&Value>| -> Result<(), GraphError> {
        match v {
            Some(Value::Object(_)) => Ok(()),
            _ => Err(GraphError::param(&format!(
                "The parameter {msg_type} is required."
            ))),
        }
    };
    match msg_type {
        "text" => {
            need_obj(payload)?;
            match payload.and_then(|p| p.get("body")).and_then(Value::as_str) {
                None | Some("") => Err(GraphError::param("Param text['body'] is required.")),
                Some(b) if b.chars().count() > 4096 => Err(GraphError::param(
                    "Param text['body'] must be at most 4096 characters long.",
                )),
                Some(_) => Ok(()),
            }
        }
        "image" | "video" | "document" | "audio" | "sticker" => {
            need_obj(payload)?;
            let has_id = payload.and_then(|p| p.get("id")).is_some();
            let has_link = payload.and_then(|p| p.get("link")).is_some();
            if has_id == has_link {
                return Err(GraphError::invalid_parameter(&format!(
                    "Param {msg_type} must contain exactly one of id or link."
                )));
            }
            let caption = payload
                .and_then(|p| p.get("caption"))
                .and_then(Value::as_str)
                .map(|c| c.chars().count())
                .unwrap_or(0);
            if caption > 1024 {
                return Err(GraphError::param(&format!(
                    "Param {msg_type}['caption'] must be at most 1024 characters long."
                )));
            }
            Ok(())
        }
        "template" => {
            need_obj(payload)?;
            let p = payload.cloned().unwrap_or(Value::Null);
            if p.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(GraphError::param("Param template['name'] is required."));
            }
            if p.pointer("/language/code")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(GraphError::param(
                    "Param template['language']['code'] is required.",
                ));
            }
            Ok(())
        }
        "reaction" => {
            need_obj(payload)?;
            if payload
                .and_then(|p| p.get("message_id"))
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(GraphError::param(
                    "Param reaction['message_id'] is required.",
                ));
            }
            Ok(())
        }
        "interactive" => {
            need_obj(payload)?;
            if payload.and_then(|p| p.get("type")).is_none() {
                return Err(GraphError::param("Param interactive['type'] is required."));
            }
            Ok(())
        }
        "contacts" => match payload {
            Some(Value::Array(a)) if !a.is_empty() => Ok(()),
            _ => Err(GraphError::param("The parameter contacts is required.")),
        },
        "location" => {
            need_obj(payload)?;
            let p = payload.cloned().unwrap_or(Value::Null);
            if p.get("latitude").is_none() || p.get("longitude").is_none() {
                return Err(GraphError::param(
                    "Param location['latitude'] and location['longitude'] are required.",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn send(
    sim: &Simulator,
    phone_id: &str,
    waba_id: &str,
    registered: bool,
    body: &Value,
    note: &mut Note,
) -> GraphResult {
    // Recipient: `to` (string or number) wins over `recipient` (BSUID).
    let to = match body.get("to") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let bsuid = body
        .get("recipient")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (input, wa_id, user_id) = match (to, bsuid) {
        (Some(t), _) => {
            let d = ids::digits(&t);
            (t, d, None)
        }
        (None, Some(b)) => (b.clone(), String::new(), Some(b)),
        (None, None) => return Err(GraphError::param("The parameter to is required.")),
    };
    note.recipient = Some(input.clone());
    note.callback = body
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(str::to_string);
    let msg_type = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("text")
        .to_ascii_lowercase();
    note.message_type = Some(msg_type.clone());
    if !TYPES.contains(&msg_type.as_str()) {
        return Err(GraphError::param(&format!(
            "Param type must be one of {{AUDIO, CONTACTS, DOCUMENT, IMAGE, INTERACTIVE, LOCATION, REACTION, STICKER, TEMPLATE, TEXT, VIDEO}} - got \"{msg_type}\"."
        )));
    }
    validate(&msg_type, body)?;
    if !registered {
        return Err(GraphError::whatsapp(133010, None));
    }
    if user_id.is_none() && wa_id.is_empty() {
        return Err(GraphError::invalid_parameter(
            "Invalid parameter to: not a phone number.",
        ));
    }

    // Throughput (130429), then the pair limit (131056).
    let cfg = sim.shared.cfg.read().clone();
    let now = Instant::now();
    let mps = sim
        .shared
        .world
        .lock()
        .phones
        .get(phone_id)
        .map(|p| p.throughput_mps)
        .unwrap_or(cfg.default_throughput_mps);
    let admitted = sim.shared.phone_limiter.lock().check(
        &phone_id.to_string(),
        now,
        interval_for(mps),
        cfg.burst_for(mps),
    );
    if !admitted {
        return Err(GraphError::whatsapp(130429, None));
    }
    if cfg.pair_rate_limit {
        let key = (
            phone_id.to_string(),
            user_id.clone().unwrap_or_else(|| wa_id.clone()),
        );
        let ok = sim.shared.pair_limiter.lock().check(
            &key,
            now,
            cfg.pair_rate.period,
            cfg.pair_rate.burst,
        );
        if !ok {
            return Err(GraphError::whatsapp(131056, None));
        }
    }

    let mut plan = if msg_type == "reaction" {
        StatusPlan::SentOnly
    } else {
        StatusPlan::Normal
    };
    match reserved::classify(&input) {
        Some(Reserved::SyncError(code)) => return Err(GraphError::whatsapp(code, None)),
        Some(Reserved::Plan(p)) => plan = p,
        None => {}
    }

    // Templates: category for pricing; strict mode checks existence and status.
    let mut pricing_category = "service".to_string();
    if msg_type == "template" {
        let name = body
            .pointer("/template/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let lang = body
            .pointer("/template/language/code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let found = sim
            .shared
            .world
            .lock()
            .templates
            .values()
            .find(|t| t.waba_id == waba_id && t.name == name && t.language == lang)
            .map(|t| (t.status.clone(), t.category.to_ascii_lowercase()));
        pricing_category = found
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| "utility".into());
        if cfg.strict_templates {
            match found.as_ref().map(|(s, _)| s.as_str()) {
                Some("APPROVED") => {}
                Some("PAUSED") => return Err(GraphError::whatsapp(132015, None)),
                Some("DISABLED") => return Err(GraphError::whatsapp(132016, None)),
                _ => {
                    return Err(GraphError::whatsapp(
                        132001,
                        Some(&format!("template name ({name}) does not exist in {lang}")),
                    ));
                }
            }
        }
    } else if cfg.enforce_service_window && plan == StatusPlan::Normal {
        let key = user_id.clone().unwrap_or_else(|| wa_id.clone());
        let open = sim
            .shared
            .world
            .lock()
            .user(&key)
            .and_then(|u| u.last_inbound.get(phone_id))
            .is_some_and(|t| t.elapsed() < SERVICE_WINDOW);
        if !open {
            plan = StatusPlan::Failed(131047);
        }
    }

    let wamid = ids::wamid(user_id.as_deref().unwrap_or(&wa_id), true);
    note.wamid = Some(wamid.clone());
    let sent = SentMessage {
        wamid: wamid.clone(),
        phone_number_id: phone_id.to_string(),
        waba_id: waba_id.to_string(),
        input: input.clone(),
        wa_id: wa_id.clone(),
        user_id: user_id.clone(),
        message_type: msg_type.clone(),
        biz_opaque_callback_data: note.callback.clone(),
        pricing_category,
        body: body.clone(),
        at: Utc::now(),
    };
    sim.shared
        .world
        .lock()
        .record_sent(sent.clone(), cfg.max_logged_requests);
    sim.spawn_status_plan(sent, plan);

    let contact = match &user_id {
        Some(b) => json!({"input": input, "wa_id": "", "user_id": b}),
        None => json!({"input": input, "wa_id": wa_id}),
    };
    let mut message = json!({"id": wamid});
    if msg_type == "template" {
        message["message_status"] = json!("accepted");
    }
    ok_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [message],
    }))
}
