//! Embedded Signup: one-time codes bound to a WABA and its phones (`POST /_sim/signup`), the
//! code -> business token exchange (`GET /oauth/access_token`) and token introspection
//! (`GET /debug_token`) with `granular_scopes` naming the WABA.
use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::errors::GraphError;
use crate::graph_routes::{Ctx, GraphResult, Note, ok_json};
use crate::state::{Phone, SignupRecord, SignupSession, TokenInfo, Waba};
use crate::{Simulator, ids};

/// What to create for a signup session (all optional).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupRequest {
    /// Use this WABA id (created if new); default a fresh one.
    pub waba_id: Option<String>,
    pub business_name: Option<String>,
    /// How many phone numbers to create (default 1), unless `phoneNumberIds` is given.
    pub phones: Option<usize>,
    /// Use these phone number ids (created if new).
    pub phone_number_ids: Option<Vec<String>>,
}

pub(crate) fn create(sim: &Simulator, req: SignupRequest) -> SignupSession {
    let cfg = sim.shared.cfg.read().clone();
    let mut world = sim.shared.world.lock();
    let waba_id = req.waba_id.unwrap_or_else(|| world.fresh_id());
    if !world.wabas.contains_key(&waba_id) {
        world.create_waba(&waba_id, false);
    }
    let business_id = {
        let id = world.fresh_id();
        match world.wabas.get_mut(&waba_id) {
            Some(w) => {
                if let Some(n) = &req.business_name {
                    w.name = n.clone();
                }
                if w.business_id == Waba::new("", false).business_id {
                    w.business_id = id;
                }
                w.business_id.clone()
            }
            None => id,
        }
    };
    let ids_wanted = req.phone_number_ids.unwrap_or_else(|| {
        (0..req.phones.unwrap_or(1).clamp(1, 20))
            .map(|_| world.fresh_id())
            .collect()
    });
    let mut displays = Vec::new();
    for id in &ids_wanted {
        let p = world
            .phones
            .entry(id.clone())
            .or_insert_with(|| Phone::new(id, &waba_id, cfg.default_throughput_mps));
        p.waba_id = waba_id.clone();
        if let Some(n) = &req.business_name {
            p.verified_name = n.clone();
        }
        displays.push(ids::format_display(&p.display_phone_number));
    }
    let session = SignupSession {
        code: ids::signup_code(),
        waba_id,
        business_id,
        phone_number_ids: ids_wanted,
        display_phone_numbers: displays,
    };
    world.signups.insert(
        session.code.clone(),
        SignupRecord {
            session: session.clone(),
            created: Instant::now(),
            used: false,
        },
    );
    session
}

pub(crate) fn oauth(sim: &Simulator, ctx: &Ctx, note: &mut Note) -> GraphResult {
    note.kind = "oauth.access_token".into();
    let cfg = sim.shared.cfg.read().clone();
    let q = |k: &str| ctx.query.get(k).cloned().unwrap_or_default();
    if q("client_id") != cfg.app_id {
        return Err(GraphError::oauth(
            101,
            None,
            "Error validating application. Invalid application ID.",
        ));
    }
    if q("client_secret") != cfg.app_secret {
        return Err(GraphError::oauth(
            1,
            None,
            "Error validating client secret.",
        ));
    }
    let code = q("code");
    let mut world = sim.shared.world.lock();
    let Some(rec) = world.signups.get_mut(&code) else {
        return Err(GraphError::oauth(
            100,
            Some(36008),
            "Invalid verification code format.",
        ));
    };
    if rec.used {
        return Err(GraphError::oauth(
            100,
            Some(36009),
            "This authorization code has been used.",
        ));
    }
    if rec.created.elapsed() > cfg.signup_code_ttl {
        return Err(GraphError::oauth(
            100,
            Some(36007),
            "This authorization code has expired.",
        ));
    }
    rec.used = true;
    let waba = rec.session.waba_id.clone();
    note.waba_id = Some(waba.clone());
    let token = ids::access_token();
    let user_id = world.fresh_id();
    world.tokens.insert(
        token.clone(),
        TokenInfo {
            waba_ids: vec![waba],
            issued_at: Utc::now(),
            user_id,
        },
    );
    ok_json(json!({"access_token": token, "token_type": "bearer"}))
}

pub(crate) fn debug_token(sim: &Simulator, ctx: &Ctx, note: &mut Note) -> GraphResult {
    note.kind = "debug_token".into();
    if ctx.token.is_none() {
        return Err(GraphError::token_missing());
    }
    let Some(input) = ctx.query.get("input_token").filter(|t| !t.is_empty()) else {
        return Err(GraphError::param("The parameter input_token is required"));
    };
    let cfg = sim.shared.cfg.read().clone();
    let world = sim.shared.world.lock();
    let (wabas, issued, user_id) = match world.tokens.get(input) {
        Some(t) => (
            t.waba_ids.clone(),
            t.issued_at.timestamp(),
            t.user_id.clone(),
        ),
        // A token the simulator did not issue (e.g. a system-user token from config):
        // valid, with access to every WABA.
        None => (
            world.wabas.keys().cloned().collect(),
            Utc::now().timestamp() - 3600,
            "100000000000001".to_string(),
        ),
    };
    let valid = !world.revoked_tokens.contains(input);
    let mut data = json!({
        "app_id": cfg.app_id,
        "type": "SYSTEM_USER",
        "application": cfg.app_name,
        "data_access_expires_at": 0,
        "expires_at": 0,
        "is_valid": valid,
        "issued_at": issued,
        "scopes": ["whatsapp_business_management", "whatsapp_business_messaging", "public_profile"],
        "granular_scopes": [
            {"scope": "whatsapp_business_management", "target_ids": wabas},
            {"scope": "whatsapp_business_messaging", "target_ids": wabas},
        ],
        "user_id": user_id,
    });
    if !valid {
        data["error"] = json!({"code": 190, "message": "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.", "subcode": 460});
    }
    ok_json(json!({"data": data}))
}
