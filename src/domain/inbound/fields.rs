//! Webhook fields other than messages: every change is kept once as a WABA
//! update (`GET /v1/wabas/{wabaId}/updates`) and, when it is new, applied:
//!
//! - `message_template_status_update`, `template_category_update`,
//!   `message_template_quality_update`, `message_template_components_update`
//!   → the WABA's template record (by Meta id, else name and language; a
//!   status older than the one applied is not applied). A status change
//!   records `template.status_updated`.
//! - `phone_number_quality_update` → the phone (by display number, or the
//!   WABA's only phone): `current_limit` becomes the messaging limit,
//!   `THROUGHPUT_UPGRADE` the `HIGH` throughput level (1,000 messages/s of
//!   pacing), `FLAGGED` a `RED` quality rating.
//!   `phone_number_name_update` → the name status, and the verified name
//!   when approved. Both record `phone_number.health_updated`.
//! - `account_update` → `ACCOUNT_RESTRICTION` replaces the WABA's
//!   restrictions with the unexpired `restriction_info` (the health rules
//!   read them); `PARTNER_APP_UNINSTALLED` / `PARTNER_REMOVED` mark the WABA's
//!   phones as no longer subscribed, `PARTNER_APP_INSTALLED` /
//!   `ACCOUNT_RECONNECTED` as subscribed again (with
//!   `phone_number.health_updated`).
//! - Everything else (`account_review_update`, `business_capability_update`,
//!   `user_preferences`, value-level `errors`, `user_id_update`, fields not
//!   known yet) is kept as is.
use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wagate_meta::webhook::{ChangeRef, ChangeValue, MessagesValue};

use crate::store::StoreResult;
use crate::store::events::{
    NewEvent, PHONE_NUMBER_HEALTH_UPDATED, TEMPLATE_STATUS_UPDATED, record_event,
};
use crate::store::inbound::{self as store, TemplateRow, WabaUpdateRow};
use crate::store::phones::{PhoneHealthUpdate, PhoneRow, WabaRow};

/// Keeps a non-message change for one WABA and applies it when new.
pub(crate) async fn apply(
    conn: &mut AsyncPgConnection,
    change: &ChangeRef<'_>,
    waba: &WabaRow,
) -> StoreResult<()> {
    let occurred_at = change
        .time
        .and_then(|t| t.as_i64())
        .and_then(|s| DateTime::from_timestamp(s, 0));
    let value = super::value_json(change.value);
    let phones = match change.value {
        ChangeValue::PhoneNumberQualityUpdate(_) | ChangeValue::PhoneNumberNameUpdate(_) => {
            let display = value
                .get("display_phone_number")
                .and_then(Value::as_str)
                .unwrap_or_default();
            phones_named(conn, waba.id, display).await?
        }
        _ => Vec::new(),
    };
    let new = record(
        conn,
        waba,
        phones.first().map(|p| p.id),
        change.field,
        occurred_at,
        &value,
    )
    .await?;
    if !new {
        return Ok(());
    }
    let at = occurred_at.unwrap_or_else(Utc::now);
    match change.value {
        ChangeValue::MessageTemplateStatusUpdate(u) => {
            let change = TemplateChange {
                status: u.event.clone(),
                reason: u.reason.clone().filter(|r| r != "NONE"),
                category: u.message_template_category.clone(),
                ..Default::default()
            };
            let key = TemplateKey {
                meta_id: u.message_template_id.as_ref().map(ToString::to_string),
                name: u.message_template_name.clone(),
                language: u.message_template_language.clone(),
            };
            template(conn, waba, key, change, at).await?;
        }
        ChangeValue::TemplateCategoryUpdate(u) => {
            let change = TemplateChange {
                category: u.new_category.clone().or(u.correct_category.clone()),
                previous_category: u.previous_category.clone(),
                ..Default::default()
            };
            let key = TemplateKey {
                meta_id: u.message_template_id.as_ref().map(ToString::to_string),
                name: u.message_template_name.clone(),
                language: u.message_template_language.clone(),
            };
            template(conn, waba, key, change, at).await?;
        }
        ChangeValue::MessageTemplateQualityUpdate(u) => {
            let change = TemplateChange {
                quality_score: u.new_quality_score.clone(),
                ..Default::default()
            };
            let key = TemplateKey {
                meta_id: u.message_template_id.as_ref().map(ToString::to_string),
                name: u.message_template_name.clone(),
                language: u.message_template_language.clone(),
            };
            template(conn, waba, key, change, at).await?;
        }
        ChangeValue::MessageTemplateComponentsUpdate(u) => {
            let key = TemplateKey {
                meta_id: u.message_template_id.as_ref().map(ToString::to_string),
                name: u.message_template_name.clone(),
                language: u.message_template_language.clone(),
            };
            template(conn, waba, key, TemplateChange::default(), at).await?;
        }
        ChangeValue::PhoneNumberQualityUpdate(u) => {
            let event = u.event.as_deref();
            let mut update = PhoneHealthUpdate {
                messaging_limit: u.current_limit.clone(),
                ..Default::default()
            };
            match event {
                Some("THROUGHPUT_UPGRADE") => {
                    update.throughput_level = Some("HIGH".into());
                    update.throughput_mps =
                        Some(crate::domain::phones::throughput_mps(Some("HIGH")));
                }
                Some("FLAGGED") => update.quality_rating = Some("RED".into()),
                _ => {}
            }
            for p in &phones {
                health(conn, waba, p, &update, change.field, event).await?;
            }
        }
        ChangeValue::PhoneNumberNameUpdate(u) => {
            let approved = u.decision.as_deref() == Some("APPROVED");
            let update = PhoneHealthUpdate {
                name_status: u.decision.clone(),
                verified_name: u.requested_verified_name.clone().filter(|_| approved),
                ..Default::default()
            };
            for p in &phones {
                health(conn, waba, p, &update, change.field, u.decision.as_deref()).await?;
            }
        }
        ChangeValue::AccountUpdate(u) => {
            let event = u.event.as_deref();
            if event == Some("ACCOUNT_RESTRICTION") {
                let now = Utc::now().timestamp();
                let active: Vec<Value> = u
                    .restriction_info
                    .iter()
                    .filter(|r| {
                        r.expiration
                            .as_ref()
                            .and_then(|e| e.as_i64())
                            .is_none_or(|e| e > now)
                    })
                    .map(|r| {
                        json!({
                            "restriction_type": r.restriction_type,
                            "expiration": r.expiration.as_ref().and_then(|e| e.as_i64()),
                        })
                    })
                    .collect();
                store::set_restrictions(conn, waba.id, &Value::Array(active)).await?;
                for p in store::phones_of_waba(conn, waba.id).await? {
                    health(
                        conn,
                        waba,
                        &p,
                        &PhoneHealthUpdate::default(),
                        change.field,
                        event,
                    )
                    .await?;
                }
            }
            let subscribed = match event {
                Some("PARTNER_APP_UNINSTALLED" | "PARTNER_REMOVED") => Some(false),
                Some("PARTNER_APP_INSTALLED" | "ACCOUNT_RECONNECTED") => Some(true),
                _ => None,
            };
            if let Some(s) = subscribed {
                let update = PhoneHealthUpdate {
                    app_subscribed: Some(s),
                    ..Default::default()
                };
                for p in store::phones_of_waba(conn, waba.id).await? {
                    health(conn, waba, &p, &update, change.field, event).await?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keeps the parts of a `messages`-style change that are notices rather
/// than messages (user preferences, value-level errors, BSUID updates).
pub(crate) async fn record_messages_notice(
    conn: &mut AsyncPgConnection,
    phone: &PhoneRow,
    change: &ChangeRef<'_>,
    value: &MessagesValue,
) -> StoreResult<()> {
    let Some(waba) = store::waba(conn, phone.waba_id).await? else {
        return Ok(());
    };
    let (field, event) = if !value.user_preferences.is_empty() {
        (
            change.field,
            value.user_preferences.first().and_then(|p| p.value.clone()),
        )
    } else if !value.user_id_update.is_empty() {
        (change.field, None)
    } else {
        (change.field, Some("errors".to_owned()))
    };
    let mut v = serde_json::to_value(value).unwrap_or_default();
    // The messages and statuses of the change are stored as such.
    if let Value::Object(m) = &mut v {
        m.remove("messages");
        m.remove("statuses");
        m.remove("message_echoes");
    }
    let occurred_at = change
        .time
        .and_then(|t| t.as_i64())
        .and_then(|s| DateTime::from_timestamp(s, 0));
    let row = WabaUpdateRow {
        id: Uuid::new_v4(),
        org_id: phone.org_id,
        waba_id: waba.id,
        phone_id: Some(phone.id),
        field: field.to_owned(),
        event,
        dedupe_key: dedupe_key(field, occurred_at, &v),
        value: v,
        occurred_at: occurred_at.unwrap_or_else(Utc::now),
        received_at: Utc::now(),
    };
    store::insert_waba_update(conn, &row).await?;
    Ok(())
}

/// SHA-256 of (field, time, value): Meta redelivers the same bytes.
fn dedupe_key(field: &str, at: Option<DateTime<Utc>>, value: &Value) -> String {
    let mut h = Sha256::new();
    h.update(field.as_bytes());
    h.update(b"\n");
    h.update(
        at.map(|t| t.timestamp())
            .unwrap_or(0)
            .to_string()
            .as_bytes(),
    );
    h.update(b"\n");
    h.update(value.to_string().as_bytes());
    hex::encode(h.finalize())
}

async fn record(
    conn: &mut AsyncPgConnection,
    waba: &WabaRow,
    phone_id: Option<Uuid>,
    field: &str,
    occurred_at: Option<DateTime<Utc>>,
    value: &Value,
) -> StoreResult<bool> {
    let event = ["event", "decision"]
        .iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    let row = WabaUpdateRow {
        id: Uuid::new_v4(),
        org_id: waba.org_id,
        waba_id: waba.id,
        phone_id,
        field: field.to_owned(),
        event,
        dedupe_key: dedupe_key(field, occurred_at, value),
        value: value.clone(),
        occurred_at: occurred_at.unwrap_or_else(Utc::now),
        received_at: Utc::now(),
    };
    store::insert_waba_update(conn, &row).await
}

/// The WABA's phones with this display number; when none matches (the
/// number was never synced), the WABA's only phone.
async fn phones_named(
    conn: &mut AsyncPgConnection,
    waba_id: Uuid,
    display: &str,
) -> StoreResult<Vec<PhoneRow>> {
    let phones = store::phones_of_waba(conn, waba_id).await?;
    let want = digits(display);
    let named: Vec<PhoneRow> = phones
        .iter()
        .filter(|p| {
            !want.is_empty()
                && p.display_phone_number.as_deref().map(digits).as_deref() == Some(want.as_str())
        })
        .cloned()
        .collect();
    if !named.is_empty() || phones.len() != 1 {
        return Ok(named);
    }
    Ok(phones)
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

async fn health(
    conn: &mut AsyncPgConnection,
    waba: &WabaRow,
    phone: &PhoneRow,
    update: &PhoneHealthUpdate,
    field: &str,
    event: Option<&str>,
) -> StoreResult<()> {
    let p = store::update_phone_health(conn, phone.id, update).await?;
    record_event(
        conn,
        NewEvent {
            org_id: p.org_id,
            waba_id: Some(waba.id),
            event: PHONE_NUMBER_HEALTH_UPDATED,
            data: json!({
                "phoneNumberId": p.id,
                "metaPhoneNumberId": p.meta_phone_number_id,
                "phoneNumber": p.display_phone_number,
                "wabaId": waba.id,
                "source": field,
                "event": event,
                "qualityRating": p.quality_rating,
                "messagingLimit": p.messaging_limit,
                "throughputLevel": p.throughput_level,
                "nameStatus": p.name_status,
                "verifiedName": p.verified_name,
                "appSubscribed": p.app_subscribed,
            }),
        },
    )
    .await?;
    Ok(())
}

struct TemplateKey {
    meta_id: Option<String>,
    name: Option<String>,
    language: Option<String>,
}

#[derive(Default)]
struct TemplateChange {
    status: Option<String>,
    reason: Option<String>,
    category: Option<String>,
    previous_category: Option<String>,
    quality_score: Option<String>,
}

async fn template(
    conn: &mut AsyncPgConnection,
    waba: &WabaRow,
    key: TemplateKey,
    change: TemplateChange,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let name_language = key.name.as_deref().zip(key.language.as_deref());
    let existing =
        store::lock_template(conn, waba.id, key.meta_id.as_deref(), name_language).await?;
    let now = Utc::now();
    let (mut row, is_new) = match existing {
        Some(t) => (t, false),
        None => {
            let Some((name, language)) = name_language else {
                // Neither known nor nameable: the WABA update keeps it.
                return Ok(());
            };
            let row = TemplateRow {
                id: Uuid::new_v4(),
                org_id: waba.org_id,
                waba_id: waba.id,
                meta_template_id: key.meta_id.clone(),
                name: name.to_owned(),
                language: language.to_owned(),
                status: None,
                category: None,
                previous_category: None,
                quality_score: None,
                reason: None,
                status_at: None,
                created_at: now,
                updated_at: now,
            };
            (row, true)
        }
    };
    let before = row.clone();
    // The latest id wins: a template deleted and created again under the
    // same name and language gets a new one.
    if key.meta_id.is_some() {
        row.meta_template_id = key.meta_id;
    }
    let mut status_changed = false;
    if let Some(status) = change.status
        && row.status_at.is_none_or(|t| t <= at)
    {
        status_changed = row.status.as_deref() != Some(status.as_str());
        row.status = Some(status);
        row.reason = change.reason;
        row.status_at = Some(at);
    }
    if let Some(c) = change.category {
        if change.previous_category.is_some() {
            row.previous_category = change.previous_category;
        } else if row.category.as_deref().is_some_and(|old| old != c) {
            row.previous_category = row.category.clone();
        }
        row.category = Some(c);
    }
    if let Some(q) = change.quality_score {
        row.quality_score = Some(q);
    }
    if row == before && !is_new {
        return Ok(());
    }
    row.updated_at = now;
    let saved = store::save_template(conn, &row).await?;
    if status_changed {
        record_event(
            conn,
            NewEvent {
                org_id: saved.org_id,
                waba_id: Some(saved.waba_id),
                event: TEMPLATE_STATUS_UPDATED,
                data: json!({
                    "templateId": saved.id,
                    "wabaId": saved.waba_id,
                    "metaTemplateId": saved.meta_template_id,
                    "name": saved.name,
                    "language": saved.language,
                    "status": saved.status,
                    "previousStatus": before.status,
                    "reason": saved.reason,
                    "category": saved.category,
                }),
            },
        )
        .await?;
    }
    Ok(())
}
