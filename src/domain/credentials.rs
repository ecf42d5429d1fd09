//! Bring your own Meta credentials: store them (the token encrypted), remove
//! them, and verify them against Meta with diagnostics a person can act on.
use chrono::{DateTime, Utc};
use uuid::Uuid;
use wagate_meta::graph::phone_numbers::PhoneNumber;

use super::phones::{self, Outcome, RESYNC_JOB, classify, meta_message};
use super::{DomainError, DomainResult, validate};
use crate::app::AppState;
use crate::store::StoreError;
use crate::store::jobs::NewJob;
use crate::store::phones::{CredentialsInput, PhoneHealthUpdate};

pub struct CredentialsInputRaw {
    pub access_token: String,
    pub phone_number_id: String,
    pub waba_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CredentialsView {
    pub configured: bool,
    pub verified_at: Option<DateTime<Utc>>,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub token_last4: Option<String>,
    pub phone_id: Option<Uuid>,
}

fn meta_id(field: &str, value: &str) -> DomainResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::validation(
            field,
            format!("{field} is required"),
        ));
    }
    if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::validation(
            field,
            format!("{field} must be Meta's numeric id (digits only)"),
        ));
    }
    Ok(v.to_owned())
}

pub async fn set(
    app: &AppState,
    org_id: Uuid,
    input: CredentialsInputRaw,
) -> DomainResult<CredentialsView> {
    let token = validate::required_text("accessToken", &input.access_token, 4096)?;
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err(DomainError::validation(
            "accessToken",
            "accessToken does not look like a Meta access token",
        ));
    }
    let phone_number_id = meta_id("phoneNumberId", &input.phone_number_id)?;
    let waba_id = match input
        .waba_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(w) => Some(meta_id("wabaId", w)?),
        None => None,
    };
    let last4: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let stored = app
        .store
        .set_credentials(
            org_id,
            CredentialsInput {
                meta_phone_number_id: &phone_number_id,
                meta_waba_id: waba_id.as_deref(),
                token_enc: app.secrets.seal(token.as_bytes()),
                token_last4: last4,
            },
        )
        .await;
    let (_, phone) = match stored {
        Ok(v) => v,
        Err(StoreError::Duplicate(what)) if what == crate::store::phones::WABA_TAKEN => {
            return Err(DomainError::Conflict(
                "this wabaId is already connected to another organization".into(),
            ));
        }
        Err(StoreError::Duplicate(_)) => {
            return Err(DomainError::Conflict(
                "this phone number id is already connected to another organization".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // Fetch the phone's fields in the background so health is filled in.
    app.store
        .enqueue(&NewJob {
            org_id: Some(org_id),
            kind: RESYNC_JOB.into(),
            payload: serde_json::json!({ "phoneId": phone.id }),
            unique_key: Some(phone.id.to_string()),
            run_at: Utc::now(),
            max_attempts: 5,
        })
        .await?;
    get(app, org_id).await
}

pub async fn get(app: &AppState, org_id: Uuid) -> DomainResult<CredentialsView> {
    let Some((waba, phone)) = app.store.credentials(org_id).await? else {
        return Ok(CredentialsView::default());
    };
    if waba.access_token_enc.is_none() {
        return Ok(CredentialsView::default());
    }
    Ok(CredentialsView {
        configured: true,
        verified_at: waba.verified_at,
        phone_number_id: phone.as_ref().map(|p| p.meta_phone_number_id.clone()),
        waba_id: waba.meta_waba_id.clone(),
        token_last4: waba.token_last4.clone(),
        phone_id: phone.map(|p| p.id),
    })
}

pub async fn delete(app: &AppState, org_id: Uuid) -> DomainResult<CredentialsView> {
    if !app.store.delete_credentials(org_id).await? {
        return Err(DomainError::NotFound("credentials"));
    }
    Ok(CredentialsView::default())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub id: &'static str,
    pub name: &'static str,
    pub status: CheckStatus,
    pub message: String,
    pub hint: Option<String>,
    pub meta_error_code: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub checks: Vec<Check>,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
}

impl Diagnostics {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Failed)
    }

    fn push(
        &mut self,
        id: &'static str,
        name: &'static str,
        status: CheckStatus,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.checks.push(Check {
            id,
            name,
            status,
            message: message.into(),
            hint: hint.map(str::to_owned),
            meta_error_code: None,
        });
    }
}

const SCOPES: [&str; 2] = [
    "whatsapp_business_messaging",
    "whatsapp_business_management",
];

/// Calls Meta with the saved credentials: token validity and scopes
/// (debug_token, when a Meta app is configured), the phone (reachable,
/// registered), and the WABA's webhook subscription.
pub async fn verify(app: &AppState, org_id: Uuid) -> DomainResult<Diagnostics> {
    let Some((waba, phone)) = app.store.credentials(org_id).await? else {
        return Err(DomainError::Conflict(
            "no credentials saved: PUT /auth/me/credentials first".into(),
        ));
    };
    let Some(token) = phones::access_token(app, &waba)? else {
        return Err(DomainError::Conflict(
            "no credentials saved: PUT /auth/me/credentials first".into(),
        ));
    };
    let Some(phone) = phone else {
        return Err(DomainError::Conflict(
            "no phone number saved: PUT /auth/me/credentials first".into(),
        ));
    };
    let graph = &app.meta.graph;
    let mut d = Diagnostics::default();

    // 1. Token validity and scopes, through debug_token when there is a Meta app.
    let mut token_checked = false;
    if let (Some(id), Some(secret)) = (&app.meta.app_id, &app.meta.app_secret) {
        match graph.debug_token(&format!("{id}|{secret}"), &token).await {
            Ok(info) => {
                token_checked = true;
                let valid = info.data.is_valid.unwrap_or(false);
                d.push(
                    "token_valid",
                    "Access token is valid",
                    if valid { CheckStatus::Ok } else { CheckStatus::Failed },
                    if valid { "Meta accepts the access token" } else { "Meta says the access token is not valid" },
                    (!valid).then_some("Generate a new system-user token in Meta Business Settings and save it with PUT /auth/me/credentials"),
                );
                if valid {
                    let missing: Vec<&str> = SCOPES
                        .iter()
                        .copied()
                        .filter(|s| !info.data.scopes.iter().any(|have| have == s))
                        .collect();
                    d.push(
                        "token_scopes",
                        "Token has the WhatsApp permissions",
                        if missing.is_empty() { CheckStatus::Ok } else { CheckStatus::Failed },
                        if missing.is_empty() {
                            "whatsapp_business_messaging and whatsapp_business_management granted".to_owned()
                        } else {
                            format!("missing permissions: {}", missing.join(", "))
                        },
                        (!missing.is_empty()).then_some(
                            "Re-create the token with the whatsapp_business_messaging and whatsapp_business_management permissions",
                        ),
                    );
                } else {
                    d.push(
                        "token_scopes",
                        "Token has the WhatsApp permissions",
                        CheckStatus::Skipped,
                        "not checked: the token is not valid",
                        None,
                    );
                }
            }
            Err(e) => d.push(
                "token_valid",
                "Access token is valid",
                CheckStatus::Failed,
                meta_message(&e),
                Some("Check META_APP_ID and META_APP_SECRET"),
            ),
        }
    }

    // 2. The phone: reachable with this token, and registered.
    let mut update = PhoneHealthUpdate {
        last_synced_at: Some(Utc::now()),
        last_sync_error: Some(None),
        ..Default::default()
    };
    match graph
        .get_phone_number(&token, &phone.meta_phone_number_id, PhoneNumber::ALL_FIELDS)
        .await
    {
        Ok(p) => {
            if !token_checked {
                d.push(
                    "token_valid",
                    "Access token is valid",
                    CheckStatus::Ok,
                    "Meta accepted the access token",
                    None,
                );
                d.push(
                    "token_scopes",
                    "Token has the WhatsApp permissions",
                    CheckStatus::Skipped,
                    "needs a Meta app (META_APP_ID) to inspect the token",
                    None,
                );
            }
            update.token_valid = Some(true);
            phones::apply_phone_fields(&mut update, &p);
            d.display_phone_number = p.display_phone_number.clone();
            d.verified_name = p.verified_name.clone();
            d.quality_rating = p.quality_rating.clone();
            d.push(
                "phone_reachable",
                "Phone number id is reachable",
                CheckStatus::Ok,
                format!(
                    "{} ({})",
                    p.display_phone_number.as_deref().unwrap_or("phone"),
                    p.verified_name.as_deref().unwrap_or("no verified name")
                ),
                None,
            );
            let registered = p.status.as_deref() == Some("CONNECTED");
            d.push(
                "phone_registered",
                "Phone number is registered with the Cloud API",
                if registered { CheckStatus::Ok } else { CheckStatus::Failed },
                format!("status {}", p.status.as_deref().unwrap_or("unknown")),
                (!registered).then_some("Register the number: POST /{phone-number-id}/register with its two-step verification PIN"),
            );
        }
        Err(e) => {
            let code = match &e {
                wagate_meta::graph::GraphError::Api(api) => Some(api.code()),
                _ => None,
            };
            let (id, name, hint) = match classify(&e) {
                Outcome::TokenInvalid => {
                    update.token_valid = Some(false);
                    (
                        "token_valid",
                        "Access token is valid",
                        "Generate a new system-user token with the WhatsApp permissions and save it with PUT /auth/me/credentials",
                    )
                }
                Outcome::Retry => (
                    "phone_reachable",
                    "Phone number id is reachable",
                    "Meta did not answer; try again in a minute",
                ),
                Outcome::Final => (
                    "phone_reachable",
                    "Phone number id is reachable",
                    "Check the phone number id in WhatsApp Manager: it must belong to a WABA this token can access",
                ),
            };
            update.last_sync_error = Some(Some(meta_message(&e)));
            let failed = Check {
                id,
                name,
                status: CheckStatus::Failed,
                message: meta_message(&e),
                hint: Some(hint.to_owned()),
                meta_error_code: code,
            };
            // debug_token may have passed the token; Meta's refusal now overrides it.
            match d.checks.iter_mut().find(|c| c.id == id) {
                Some(existing) => *existing = failed,
                None => d.checks.push(failed),
            }
            if id == "token_valid" {
                // The scopes debug_token reported no longer mean anything.
                d.checks.retain(|c| c.id != "token_scopes");
            }
            // Every check is reported, so a guided setup can show each one.
            let why = if id == "token_valid" {
                "not checked: Meta refused the token"
            } else {
                "not checked: the phone could not be read"
            };
            for (cid, cname) in [
                ("token_valid", "Access token is valid"),
                ("token_scopes", "Token has the WhatsApp permissions"),
                ("phone_reachable", "Phone number id is reachable"),
                (
                    "phone_registered",
                    "Phone number is registered with the Cloud API",
                ),
            ] {
                if !d.checks.iter().any(|c| c.id == cid) {
                    d.push(cid, cname, CheckStatus::Skipped, why, None);
                }
            }
        }
    }

    // 3. The WABA's webhook subscription.
    match &waba.meta_waba_id {
        None => d.push("waba_subscribed", "WABA is subscribed to webhooks", CheckStatus::Skipped, "no wabaId saved", Some("Save wabaId with PUT /auth/me/credentials to check the webhook subscription and use templates")),
        Some(meta_waba) => match graph.get_subscribed_apps(&token, meta_waba).await {
            Ok(page) if !page.data.is_empty() => {
                update.app_subscribed = Some(true);
                d.push("waba_subscribed", "WABA is subscribed to webhooks", CheckStatus::Ok, format!("{} app(s) subscribed", page.data.len()), None);
            }
            Ok(_) => {
                update.app_subscribed = Some(false);
                d.push("waba_subscribed", "WABA is subscribed to webhooks", CheckStatus::Failed, "no app is subscribed to this WABA's webhooks", Some("POST /{waba-id}/subscribed_apps with this token, and point your app's webhook at /webhooks/whatsapp"));
            }
            Err(e) => d.checks.push(Check {
                id: "waba_subscribed",
                name: "WABA is subscribed to webhooks",
                status: CheckStatus::Failed,
                message: meta_message(&e),
                hint: Some("Check the wabaId and that the token can manage this WABA".into()),
                meta_error_code: match &e {
                    wagate_meta::graph::GraphError::Api(api) => Some(api.code()),
                    _ => None,
                },
            }),
        },
    }

    app.store.update_phone_health(phone.id, &update).await?;
    app.store.mark_verified(waba.id, d.ok()).await?;
    Ok(d)
}
