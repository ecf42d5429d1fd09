//! WABAs, phone numbers and their health snapshot, kept fresh by a resync
//! job against Meta.
use chrono::Utc;
use uuid::Uuid;
use wagate_meta::graph::GraphError;
use wagate_meta::graph::phone_numbers::PhoneNumber;

use super::health::{self, Assessment, HealthInput};
use super::{DomainError, DomainResult};
use crate::app::AppState;
use crate::store::jobs::NewJob;
use crate::store::phones::{PhoneHealthUpdate, PhoneRow, WabaRow};
use crate::store::{PageRequest, Store};

pub const RESYNC_JOB: &str = "phone.resync";

pub async fn list_wabas(
    store: &Store,
    org_id: Uuid,
    page: PageRequest,
) -> DomainResult<(Vec<(WabaRow, i64)>, i64)> {
    Ok(store.list_wabas(org_id, page).await?)
}

pub async fn get_waba(store: &Store, org_id: Uuid, waba_id: Uuid) -> DomainResult<(WabaRow, i64)> {
    store
        .get_waba(org_id, waba_id)
        .await?
        .ok_or(DomainError::NotFound("WABA"))
}

pub async fn list_phones(
    store: &Store,
    org_id: Uuid,
    waba_id: Option<Uuid>,
    page: PageRequest,
) -> DomainResult<(Vec<PhoneRow>, i64)> {
    Ok(store.list_phones(org_id, waba_id, page).await?)
}

pub async fn get_phone(store: &Store, org_id: Uuid, phone_id: Uuid) -> DomainResult<PhoneRow> {
    store
        .get_phone(org_id, phone_id)
        .await?
        .ok_or(DomainError::NotFound("phone"))
}

pub struct HealthView {
    pub phone: PhoneRow,
    pub assessment: Assessment,
    pub resync_pending: bool,
}

/// The snapshot as stored, and a resync queued behind it (deduplicated: one
/// pending resync per phone).
pub async fn health(app: &AppState, org_id: Uuid, phone_id: Uuid) -> DomainResult<HealthView> {
    let phone = get_phone(&app.store, org_id, phone_id).await?;
    let waba = app
        .store
        .get_waba(org_id, phone.waba_id)
        .await?
        .map(|(w, _)| w);
    app.store
        .enqueue(&NewJob {
            org_id: Some(org_id),
            kind: RESYNC_JOB.into(),
            payload: serde_json::json!({ "phoneId": phone_id }),
            unique_key: Some(phone_id.to_string()),
            run_at: Utc::now(),
            max_attempts: 5,
        })
        .await?;
    let assessment = assess(&phone, waba.as_ref());
    Ok(HealthView {
        phone,
        assessment,
        resync_pending: true,
    })
}

pub fn restrictions(waba: &WabaRow) -> Vec<String> {
    waba.restrictions
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    r.get("restriction_type")
                        .and_then(|t| t.as_str())
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The phone's health under its WABA (restrictions, whether a token is held).
pub fn assess(phone: &PhoneRow, waba: Option<&WabaRow>) -> Assessment {
    let restrictions = waba.map(restrictions).unwrap_or_default();
    health::assess(&HealthInput {
        is_registered: phone.is_registered,
        has_token: waba.is_some_and(|w| w.access_token_enc.is_some()),
        token_valid: phone.token_valid,
        app_subscribed: phone.app_subscribed,
        health_status: phone.health_status.as_ref(),
        restrictions: &restrictions,
    })
}

/// Meta's throughput level -> messages per second for pacing.
pub fn throughput_mps(level: Option<&str>) -> i32 {
    match level {
        Some("HIGH") | Some("THROUGHPUT_1000") | Some("UNLIMITED") => 1_000,
        Some("COEXISTENCE") => 20,
        _ => 80,
    }
}

/// Reads the phone's fields and its WABA's subscription from Meta and
/// stores them. Errors that retrying cannot fix are recorded, not retried.
pub async fn resync(app: &AppState, phone_id: Uuid) -> DomainResult<()> {
    let Some((phone, waba)) = app.store.phone_with_waba(phone_id).await? else {
        return Ok(());
    };
    let Some(token) = access_token(app, &waba)? else {
        let update = PhoneHealthUpdate {
            last_synced_at: Some(Utc::now()),
            last_sync_error: Some(Some(
                "no Meta access token stored for this phone's WABA".into(),
            )),
            ..Default::default()
        };
        app.store.update_phone_health(phone.id, &update).await?;
        return Ok(());
    };
    let mut update = PhoneHealthUpdate {
        last_synced_at: Some(Utc::now()),
        last_sync_error: Some(None),
        ..Default::default()
    };
    match app
        .meta
        .graph
        .get_phone_number(&token, &phone.meta_phone_number_id, PhoneNumber::ALL_FIELDS)
        .await
    {
        Ok(p) => {
            update.token_valid = Some(true);
            apply_phone_fields(&mut update, &p);
        }
        Err(e) => match classify(&e) {
            Outcome::TokenInvalid => {
                update.token_valid = Some(false);
                update.last_sync_error = Some(Some(meta_message(&e)));
            }
            Outcome::Final => update.last_sync_error = Some(Some(meta_message(&e))),
            Outcome::Retry => {
                return Err(DomainError::Unavailable(format!(
                    "Meta did not answer the phone resync: {e}"
                )));
            }
        },
    }
    if let Some(meta_waba) = &waba.meta_waba_id {
        match app.meta.graph.get_subscribed_apps(&token, meta_waba).await {
            Ok(page) => update.app_subscribed = Some(!page.data.is_empty()),
            Err(e) if classify(&e) == Outcome::Retry => {
                return Err(DomainError::Unavailable(format!(
                    "Meta did not answer the subscription check: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    app.store.update_phone_health(phone.id, &update).await?;
    Ok(())
}

pub fn apply_phone_fields(update: &mut PhoneHealthUpdate, p: &PhoneNumber) {
    update.display_phone_number = p.display_phone_number.clone();
    update.verified_name = p.verified_name.clone();
    update.status = p.status.clone();
    update.is_registered = p.status.as_deref().map(|s| s == "CONNECTED");
    update.quality_rating = p.quality_rating.clone();
    update.throughput_level = p.throughput.as_ref().and_then(|t| t.level.clone());
    update.throughput_mps = p
        .throughput
        .as_ref()
        .map(|t| throughput_mps(t.level.as_deref()));
    update.messaging_limit = p.messaging_limit().map(str::to_owned);
    update.name_status = p.name_status.clone();
    update.code_verification_status = p.code_verification_status.clone();
    update.health_status = p
        .health_status
        .as_ref()
        .and_then(|h| serde_json::to_value(h).ok());
}

/// The decrypted access token of a WABA, if it has one.
pub fn access_token(app: &AppState, waba: &WabaRow) -> DomainResult<Option<String>> {
    match &waba.access_token_enc {
        None => Ok(None),
        Some(sealed) => app
            .secrets
            .open_string(sealed)
            .map(Some)
            .map_err(|e| DomainError::Internal(anyhow::anyhow!("WABA {}: {e}", waba.id))),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    TokenInvalid,
    Retry,
    Final,
}

pub(crate) fn classify(e: &GraphError) -> Outcome {
    use wagate_meta::graph::ErrorClass;
    match e.class() {
        ErrorClass::Auth => Outcome::TokenInvalid,
        c if c.is_retryable() => Outcome::Retry,
        ErrorClass::Ambiguous => Outcome::Retry,
        _ => Outcome::Final,
    }
}

/// A person-readable line from a Graph error: Meta's code and message.
pub(crate) fn meta_message(e: &GraphError) -> String {
    match e {
        GraphError::Api(api) => {
            let details = api.details().map(|d| format!(" ({d})")).unwrap_or_default();
            format!(
                "Meta error {}: {}{details}",
                api.code(),
                api.error.message.as_deref().unwrap_or("no message")
            )
        }
        other => other.to_string(),
    }
}
