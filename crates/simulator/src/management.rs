//! Phone numbers and WABAs: `GET /{phone}`, register/deregister, business profile,
//! `GET /{waba}`, `/{waba}/phone_numbers`, `/{waba}/subscribed_apps`.
use axum::http::Method;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::errors::GraphError;
use crate::graph_routes::{Ctx, GraphResult, Note, ok_json, select_fields, success};
use crate::state::Phone;
use crate::{Simulator, ids};

/// Changes to a phone number (`PUT /_sim/phones/{id}`); absent fields stay as they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhonePatch {
    pub waba_id: Option<String>,
    /// Digits or formatted (`+1 555-078-3881`).
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub status: Option<String>,
    pub account_mode: Option<String>,
    pub throughput_mps: Option<u32>,
    pub messaging_limit_tier: Option<String>,
    /// `AVAILABLE` / `LIMITED` / `BLOCKED` for the PHONE_NUMBER health entity.
    pub can_send_message: Option<String>,
    pub registered: Option<bool>,
}

pub(crate) fn update_phone(sim: &Simulator, id: &str, patch: PhonePatch) -> Phone {
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    if !world.phones.contains_key(id) {
        let waba = patch
            .waba_id
            .clone()
            .unwrap_or_else(|| cfg.default_waba_id.clone());
        world.create_waba(&waba, true);
        world.phones.insert(
            id.to_string(),
            Phone::new(id, &waba, cfg.default_throughput_mps),
        );
    }
    if let Some(w) = &patch.waba_id {
        world.create_waba(w, true);
    }
    let Some(p) = world.phones.get_mut(id) else {
        return Phone::new(id, &cfg.default_waba_id, cfg.default_throughput_mps);
    };
    if let Some(v) = patch.waba_id {
        p.waba_id = v;
    }
    if let Some(v) = patch.display_phone_number {
        p.display_phone_number = ids::digits(&v);
    }
    if let Some(v) = patch.verified_name {
        p.verified_name = v;
    }
    if let Some(v) = patch.quality_rating {
        p.quality_rating = v;
    }
    if let Some(v) = patch.code_verification_status {
        p.code_verification_status = v;
    }
    if let Some(v) = patch.name_status {
        p.name_status = v;
    }
    if let Some(v) = patch.status {
        p.status = v;
    }
    if let Some(v) = patch.account_mode {
        p.account_mode = v;
    }
    if let Some(v) = patch.throughput_mps {
        p.throughput_mps = v.max(1);
    }
    if let Some(v) = patch.messaging_limit_tier {
        p.messaging_limit_tier = v;
    }
    if let Some(v) = patch.can_send_message {
        p.can_send_message = v;
    }
    if let Some(v) = patch.registered {
        p.registered = v;
        p.status = if v { "CONNECTED" } else { "DISCONNECTED" }.into();
    }
    p.clone()
}

fn health(p: &Phone, business_id: &str, app_id: &str) -> Value {
    let overall = if p.can_send_message == "BLOCKED" {
        "BLOCKED"
    } else if p.can_send_message == "LIMITED" {
        "LIMITED"
    } else {
        "AVAILABLE"
    };
    let mut phone_entity = json!({
        "entity_type": "PHONE_NUMBER",
        "id": p.id,
        "can_send_message": p.can_send_message,
        "can_receive_call_sip": "AVAILABLE",
    });
    if p.can_send_message == "LIMITED" {
        phone_entity["additional_info"] = json!([
            "Your display name has not been approved yet. Your message limit will increase after the display name is approved."
        ]);
    }
    if p.can_send_message == "BLOCKED" {
        phone_entity["errors"] = json!([{
            "error_code": 141010,
            "error_description": "The phone number is blocked by the wagate simulator.",
            "possible_solution": "Set canSendMessage back to AVAILABLE with PUT /_sim/phones/{id}."
        }]);
    }
    json!({
        "can_send_message": overall,
        "entities": [
            phone_entity,
            {"entity_type": "WABA", "id": p.waba_id, "can_send_message": "AVAILABLE"},
            {"entity_type": "BUSINESS", "id": business_id, "can_send_message": "AVAILABLE"},
            {"entity_type": "APP", "id": app_id, "can_send_message": "AVAILABLE", "can_receive_call_sip": "AVAILABLE"},
        ],
    })
}

fn phone_full(p: &Phone, business_id: &str, app_id: &str) -> Map<String, Value> {
    let level = if p.throughput_mps >= 1000 {
        "HIGH"
    } else {
        "STANDARD"
    };
    let v = json!({
        "id": p.id,
        "display_phone_number": ids::format_display(&p.display_phone_number),
        "verified_name": p.verified_name,
        "quality_rating": p.quality_rating,
        "code_verification_status": p.code_verification_status,
        "name_status": p.name_status,
        "new_name_status": "NONE",
        "status": p.status,
        "platform_type": if p.registered { "CLOUD_API" } else { "NOT_APPLICABLE" },
        "account_mode": p.account_mode,
        "is_official_business_account": false,
        "is_pin_enabled": p.pin.is_some(),
        "eligibility_for_api_business_global_search": "NON_ELIGIBLE_VERIFIED_LEVEL",
        "search_visibility": "NON_VISIBLE",
        "messaging_limit_tier": p.messaging_limit_tier,
        "whatsapp_business_manager_messaging_limit": p.messaging_limit_tier,
        "throughput": {"level": level},
        "health_status": health(p, business_id, app_id),
        "last_onboarded_time": "2025-01-01T00:00:00+0000",
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const PHONE_DEFAULT_FIELDS: &[&str] = &["display_phone_number", "verified_name", "quality_rating"];

pub(crate) fn get_phone(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "phone.get".into();
    note.phone_number_id = Some(id.to_string());
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    let Some(p) = world.phone_or_create(id, &cfg).map(|p| p.clone()) else {
        return Err(GraphError::unknown_object("get", id));
    };
    let business = world
        .wabas
        .get(&p.waba_id)
        .map(|w| w.business_id.clone())
        .unwrap_or_default();
    note.waba_id = Some(p.waba_id.clone());
    let full = phone_full(&p, &business, &cfg.app_id);
    ok_json(select_fields(
        ctx,
        &full,
        PHONE_DEFAULT_FIELDS,
        "WhatsAppBusinessPhoneNumber",
    )?)
}

pub(crate) fn register(
    sim: &Simulator,
    ctx: &Ctx,
    id: &str,
    register: bool,
    note: &mut Note,
) -> GraphResult {
    note.kind = if register {
        "phone.register"
    } else {
        "phone.deregister"
    }
    .into();
    note.phone_number_id = Some(id.to_string());
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    let Some(p) = world.phone_or_create(id, &cfg) else {
        return Err(GraphError::unknown_object("post", id));
    };
    if ctx.param("messaging_product").as_deref() != Some("whatsapp") {
        return Err(GraphError::param(
            "The parameter messaging_product is required.",
        ));
    }
    if p.register_calls >= 10 {
        return Err(GraphError::whatsapp(133016, None));
    }
    if register {
        let pin = ctx.param("pin").unwrap_or_default();
        if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GraphError::param("The parameter pin is required."));
        }
        if p.pin.as_deref().is_some_and(|cur| cur != pin) {
            return Err(GraphError::whatsapp(133005, None));
        }
        p.pin = Some(pin);
    }
    p.register_calls += 1;
    p.registered = register;
    p.status = if register {
        "CONNECTED"
    } else {
        "DISCONNECTED"
    }
    .into();
    success()
}

pub(crate) fn business_profile(
    sim: &Simulator,
    ctx: &Ctx,
    id: &str,
    note: &mut Note,
) -> GraphResult {
    note.phone_number_id = Some(id.to_string());
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    let Some(p) = world.phone_or_create(id, &cfg) else {
        return Err(GraphError::unknown_object(ctx.method.as_str(), id));
    };
    let mut profile = p.business_profile.clone().unwrap_or_else(|| {
        json!({"about": "Hello from the wagate simulator", "address": "", "description": "",
               "email": "", "websites": [], "vertical": "OTHER", "profile_picture_url": ""})
    });
    if ctx.method == Method::POST {
        note.kind = "profile.update".into();
        if let Some(Value::Object(m)) = &ctx.json {
            for (k, v) in m {
                if k != "messaging_product" {
                    profile[k] = v.clone();
                }
            }
        }
        p.business_profile = Some(profile);
        return success();
    }
    note.kind = "profile.get".into();
    let mut out = Map::new();
    let wanted = crate::graph_routes::requested_fields(ctx);
    if let Value::Object(m) = &profile {
        for (k, v) in m {
            if wanted.as_ref().is_none_or(|w| w.contains(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert("messaging_product".into(), json!("whatsapp"));
    ok_json(json!({"data": [Value::Object(out)]}))
}

/// `POST /{phone}` (two-step PIN, webhook_configuration) → `{"success":true}`.
pub(crate) fn update_phone_settings(
    sim: &Simulator,
    ctx: &Ctx,
    id: &str,
    note: &mut Note,
) -> GraphResult {
    note.kind = "phone.update".into();
    note.phone_number_id = Some(id.to_string());
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    let Some(p) = world.phone_or_create(id, &cfg) else {
        return Err(GraphError::unknown_object("post", id));
    };
    if let Some(pin) = ctx.param("pin") {
        p.pin = Some(pin);
    }
    success()
}

fn waba_full(sim: &Simulator, id: &str) -> Option<Map<String, Value>> {
    let world = sim.shared.world.lock();
    let w = world.wabas.get(id)?;
    let v = json!({
        "id": w.id,
        "name": w.name,
        "timezone_id": "1",
        "message_template_namespace": w.message_template_namespace,
        "account_review_status": "APPROVED",
        "business_verification_status": "verified",
        "ownership_type": "CLIENT_OWNED",
        "currency": "USD",
        "country": "US",
        "primary_business_location": "US",
        "health_status": {"can_send_message": "AVAILABLE", "entities": [
            {"entity_type": "WABA", "id": w.id, "can_send_message": "AVAILABLE"},
            {"entity_type": "BUSINESS", "id": w.business_id, "can_send_message": "AVAILABLE"},
        ]},
    });
    match v {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

pub(crate) fn get_waba(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "waba.get".into();
    note.waba_id = Some(id.to_string());
    let full = waba_full(sim, id).ok_or_else(|| GraphError::unknown_object("get", id))?;
    ok_json(select_fields(
        ctx,
        &full,
        &[
            "name",
            "timezone_id",
            "message_template_namespace",
            "account_review_status",
            "business_verification_status",
            "ownership_type",
        ],
        "WhatsAppBusinessAccount",
    )?)
}

fn ensure_waba(sim: &Simulator, id: &str, method: &str) -> Result<(), GraphError> {
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    if world.phones.contains_key(id) || world.waba_or_create(id, &cfg).is_none() {
        return Err(GraphError::unknown_object(method, id));
    }
    Ok(())
}

/// Opaque paging cursor for an offset.
pub(crate) fn cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

/// Offset of a cursor made by [`cursor`].
pub(crate) fn uncursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim_end_matches('='))
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

pub(crate) fn phone_numbers(sim: &Simulator, ctx: &Ctx, id: &str, note: &mut Note) -> GraphResult {
    note.kind = "waba.phone_numbers".into();
    note.waba_id = Some(id.to_string());
    ensure_waba(sim, id, "get")?;
    let cfg = sim.shared.cfg.read().clone();
    let (phones, business) = {
        let world = sim.shared.world.lock();
        let b = world
            .wabas
            .get(id)
            .map(|w| w.business_id.clone())
            .unwrap_or_default();
        (world.phones_of(id), b)
    };
    let defaults = [
        "is_official_business_account",
        "display_phone_number",
        "verified_name",
        "account_mode",
        "quality_rating",
        "code_verification_status",
        "eligibility_for_api_business_global_search",
        "is_pin_enabled",
        "name_status",
        "new_name_status",
        "status",
        "search_visibility",
        "messaging_limit_tier",
    ];
    let mut data = Vec::new();
    for p in &phones {
        let full = phone_full(p, &business, &cfg.app_id);
        data.push(select_fields(
            ctx,
            &full,
            &defaults,
            "WhatsAppBusinessPhoneNumber",
        )?);
    }
    let after = cursor(data.len().saturating_sub(1));
    ok_json(json!({"data": data, "paging": {"cursors": {"before": cursor(0), "after": after}}}))
}

pub(crate) async fn subscribed_apps(
    sim: &Simulator,
    ctx: &Ctx,
    id: &str,
    note: &mut Note,
) -> GraphResult {
    note.waba_id = Some(id.to_string());
    ensure_waba(sim, id, ctx.method.as_str())?;
    let cfg = sim.shared.cfg.read().clone();
    if ctx.method == Method::GET {
        note.kind = "waba.subscribed_apps.get".into();
        let world = sim.shared.world.lock();
        let data = match world.wabas.get(id) {
            Some(w) if w.subscribed => {
                let mut app = json!({"whatsapp_business_api_data": {
                    "id": cfg.app_id,
                    "name": cfg.app_name,
                    "link": format!("https://www.facebook.com/games/?app_id={}", cfg.app_id),
                }});
                if let Some(u) = &w.override_callback_uri {
                    app["override_callback_uri"] = json!(u);
                }
                vec![app]
            }
            _ => vec![],
        };
        return ok_json(json!({"data": data}));
    }
    if ctx.method == Method::DELETE {
        note.kind = "waba.subscribed_apps.delete".into();
        if let Some(w) = sim.shared.world.lock().wabas.get_mut(id) {
            w.subscribed = false;
            w.override_callback_uri = None;
        }
        return success();
    }
    if ctx.method != Method::POST {
        return Err(GraphError::unknown_object(ctx.method.as_str(), id));
    }
    note.kind = "waba.subscribed_apps.post".into();
    let uri = ctx.param("override_callback_uri").filter(|u| !u.is_empty());
    if let Some(uri) = &uri {
        if uri.len() > 200 {
            return Err(GraphError::param(
                "Param override_callback_uri must be at most 200 characters long.",
            ));
        }
        let verify_token = ctx.param("verify_token").unwrap_or_default();
        verify_callback(sim, uri, &verify_token).await?;
    }
    if let Some(w) = sim.shared.world.lock().wabas.get_mut(id) {
        w.subscribed = true;
        w.override_callback_uri = uri;
    }
    success()
}

/// Meta's GET verification of a callback URL: `hub.mode=subscribe&hub.challenge&hub.verify_token`,
/// expecting the challenge back.
pub(crate) async fn verify_callback(
    sim: &Simulator,
    uri: &str,
    verify_token: &str,
) -> Result<(), GraphError> {
    let challenge = ids::numeric_id();
    let qs = form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.challenge", &challenge)
        .append_pair("hub.verify_token", verify_token)
        .finish();
    let sep = if uri.contains('?') { '&' } else { '?' };
    let resp = sim
        .shared
        .http
        .get(format!("{uri}{sep}{qs}"))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            GraphError::callback_verification_failed(&format!("Couldn't connect to server ({e})"))
        })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(GraphError::callback_verification_failed(&format!(
            "HTTP Status Code = {}; HTTP Message = {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )));
    }
    if text.trim() != challenge {
        return Err(GraphError::callback_verification_failed(
            "The URL couldn't be validated. Response does not match challenge",
        ));
    }
    Ok(())
}
