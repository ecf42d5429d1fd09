//! Outgoing webhooks: the rules for endpoints, the forward URL, tests,
//! rotation, replay and the delivery log. The sending itself is in
//! `crate::delivery`; events are recorded through `crate::store::events`.
pub mod catalog;
pub mod envelope;
pub mod schedule;
pub mod signing;
pub mod ssrf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{DomainError, DomainResult, validate};
use crate::app::AppState;
use crate::store::PageRequest;
use crate::store::webhooks::{
    self as rows, AttemptRow, DeliveryRow, EndpointChanges, EndpointRow, ReplayRange, Rotation,
    UpdateOutcome,
};

/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE: chrono::Duration = chrono::Duration::hours(24);
/// The widest time range one replay may cover.
pub const MAX_REPLAY_RANGE: chrono::Duration = chrono::Duration::days(14);
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// An endpoint as the API shows it.
#[derive(Debug, Clone)]
pub struct WebhookView {
    pub row: EndpointRow,
    /// The plaintext secret, only where the API reveals it.
    pub secret: Option<String>,
    /// Until when a rotated-out secret still signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Clone)]
pub struct CreateInput {
    pub url: String,
    /// Event names (the API maps typed values to these), or "*".
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
    pub waba_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct UpdateInput {
    pub url: Option<String>,
    /// Empty: unchanged.
    pub events: Vec<String>,
    pub is_active: Option<bool>,
    pub description: Option<String>,
    pub waba_id: Option<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReplayInput {
    pub event_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub only_failed: bool,
}

// ------------------------------------------------------------ validation

/// An absolute http(s) URL of a host wagate may send to.
pub async fn validate_url(value: &str, allow_private: bool) -> DomainResult<String> {
    // The URL is stored as given (the parser would accept a NUL in its path).
    validate::no_nul("url", value)?;
    let url = ssrf::parse_url(value).map_err(|r| DomainError::validation("url", r.0))?;
    ssrf::check_resolved(&url, allow_private)
        .await
        .map_err(|r| DomainError::validation("url", r.0))?;
    Ok(value.trim().to_owned())
}

/// At least one known event name, or "*"; duplicates dropped.
pub fn validate_events(events: &[String]) -> DomainResult<Vec<String>> {
    if events.is_empty() {
        return Err(DomainError::validation(
            "events",
            "events must list at least one event (or \"*\" for all)",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let name = e.trim();
        if name == catalog::WEBHOOK_TEST {
            return Err(DomainError::validation(
                "events",
                format!(
                    "events[{i}]: webhook.test is sent only by the test call and cannot be subscribed to"
                ),
            ));
        }
        if name != catalog::ALL_EVENTS && !catalog::SUBSCRIBABLE.contains(&name) {
            return Err(DomainError::validation(
                "events",
                format!(
                    "events[{i}]: {name:?} is not an event; use \"*\" or one of: {}",
                    catalog::SUBSCRIBABLE.join(", ")
                ),
            ));
        }
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// 16 to 256 characters.
pub fn validate_secret(field: &str, secret: &str) -> DomainResult<String> {
    let n = secret.chars().count();
    if !(16..=256).contains(&n) {
        return Err(DomainError::validation(
            field,
            format!("{field} must be 16 to 256 characters"),
        ));
    }
    if secret.chars().any(char::is_control) {
        return Err(DomainError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(secret.to_owned())
}

fn validate_description(value: &str) -> DomainResult<Option<String>> {
    validate::no_nul("description", value)?;
    let v = value.trim();
    if v.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(DomainError::validation(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// A WABA of the organization (another organization's is not found).
async fn validate_waba(app: &AppState, org_id: Uuid, value: &str) -> DomainResult<Option<Uuid>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let id = validate::uuid("wabaId", value)?;
    app.store
        .get_waba(org_id, id)
        .await?
        .ok_or(DomainError::NotFound("WABA"))?;
    Ok(Some(id))
}

// ------------------------------------------------------------ endpoints

fn view(row: EndpointRow) -> WebhookView {
    WebhookView {
        row,
        secret: None,
        previous_secret_expires_at: None,
    }
}

async fn with_expiry(
    app: &AppState,
    mut views: Vec<WebhookView>,
) -> DomainResult<Vec<WebhookView>> {
    let ids: Vec<Uuid> = views.iter().map(|v| v.row.id).collect();
    let expiries = app.store.old_secret_expiries(&ids).await?;
    for v in &mut views {
        v.previous_secret_expires_at = expiries
            .iter()
            .find(|(id, _)| *id == v.row.id)
            .map(|(_, at)| *at);
    }
    Ok(views)
}

async fn one(app: &AppState, row: EndpointRow) -> DomainResult<WebhookView> {
    let mut v = with_expiry(app, vec![view(row)]).await?;
    v.pop()
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("endpoint view lost")))
}

fn reveal(app: &AppState, v: &mut WebhookView) -> DomainResult<()> {
    v.secret = Some(
        app.secrets
            .open_string(&v.row.secret_enc)
            .map_err(|e| DomainError::Internal(anyhow::anyhow!("webhook {}: {e}", v.row.id)))?,
    );
    Ok(())
}

/// Validates everything, then creates the endpoint; the reply carries the secret.
pub async fn create(app: &AppState, org_id: Uuid, input: CreateInput) -> DomainResult<WebhookView> {
    let allow_private = app.webhooks.options().allow_private;
    let url = validate_url(&input.url, allow_private).await?;
    let events = validate_events(&input.events)?;
    let secret = match input.secret {
        Some(s) => validate_secret("secret", &s)?,
        None => signing::generate_secret(),
    };
    let description = match &input.description {
        Some(d) => validate_description(d)?,
        None => None,
    };
    let waba_id = match &input.waba_id {
        Some(w) => validate_waba(app, org_id, w).await?,
        None => None,
    };
    let now = Utc::now();
    let row = EndpointRow {
        id: Uuid::new_v4(),
        org_id,
        waba_id,
        kind: rows::KIND_ENDPOINT.into(),
        url,
        description,
        events,
        is_active: input.is_active.unwrap_or(true),
        secret_enc: app.secrets.seal(secret.as_bytes()),
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    app.store.insert_endpoint(&row).await?;
    Ok(WebhookView {
        row,
        secret: Some(secret),
        previous_secret_expires_at: None,
    })
}

pub async fn list(
    app: &AppState,
    org_id: Uuid,
    page: PageRequest,
) -> DomainResult<(Vec<WebhookView>, i64)> {
    let (rows, total) = app.store.list_endpoints(org_id, page).await?;
    let views = with_expiry(app, rows.into_iter().map(view).collect()).await?;
    Ok((views, total))
}

async fn endpoint(app: &AppState, org_id: Uuid, id: Uuid) -> DomainResult<EndpointRow> {
    app.store
        .get_endpoint(org_id, id)
        .await?
        .ok_or(DomainError::NotFound("webhook"))
}

pub async fn get(app: &AppState, org_id: Uuid, id: Uuid) -> DomainResult<WebhookView> {
    one(app, endpoint(app, org_id, id).await?).await
}

/// The endpoint with its current secret.
pub async fn get_secret(app: &AppState, org_id: Uuid, id: Uuid) -> DomainResult<WebhookView> {
    let mut v = get(app, org_id, id).await?;
    reveal(app, &mut v)?;
    Ok(v)
}

/// Applies the fields given, after validating all of them.
pub async fn update(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    input: UpdateInput,
) -> DomainResult<WebhookView> {
    let allow_private = app.webhooks.options().allow_private;
    let mut changes = EndpointChanges::default();
    if let Some(url) = &input.url {
        changes.url = Some(validate_url(url, allow_private).await?);
    }
    if !input.events.is_empty() {
        changes.events = Some(validate_events(&input.events)?);
    }
    changes.is_active = input.is_active;
    if let Some(d) = &input.description {
        changes.description = Some(validate_description(d)?);
    }
    if let Some(w) = &input.waba_id {
        changes.waba_id = Some(validate_waba(app, org_id, w).await?);
    }
    let secret = match &input.secret {
        Some(s) => Some(validate_secret("secret", s)?),
        None => None,
    };
    changes.rotate = secret.as_ref().map(|s| rotation(app, s));
    let mut v = apply(app, org_id, id, changes).await?;
    if let Some(s) = secret {
        v.secret = Some(s);
    }
    Ok(v)
}

fn rotation(app: &AppState, secret: &str) -> Rotation {
    Rotation {
        new_secret_enc: app.secrets.seal(secret.as_bytes()),
        old_expires_at: Utc::now() + ROTATION_GRACE,
    }
}

async fn apply(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    changes: EndpointChanges,
) -> DomainResult<WebhookView> {
    match app.store.update_endpoint(org_id, id, changes).await? {
        UpdateOutcome::Updated(row) => one(app, *row).await,
        UpdateOutcome::NotFound => Err(DomainError::NotFound("webhook")),
        UpdateOutcome::TooManyOldSecrets => Err(DomainError::Conflict(format!(
            "this webhook already has {} rotated secrets still in force; wait until the oldest expires",
            rows::MAX_OLD_SECRETS
        ))),
    }
}

/// Replaces the secret (generated when none is given); the previous one
/// keeps signing for 24 hours.
pub async fn rotate_secret(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    secret: Option<String>,
) -> DomainResult<WebhookView> {
    let secret = match secret {
        Some(s) => validate_secret("secret", &s)?,
        None => signing::generate_secret(),
    };
    let changes = EndpointChanges {
        rotate: Some(rotation(app, &secret)),
        ..Default::default()
    };
    let mut v = apply(app, org_id, id, changes).await?;
    v.secret = Some(secret);
    Ok(v)
}

pub async fn delete(app: &AppState, org_id: Uuid, id: Uuid) -> DomainResult<WebhookView> {
    let row = app
        .store
        .delete_endpoint(org_id, id)
        .await?
        .ok_or(DomainError::NotFound("webhook"))?;
    Ok(view(row))
}

// ------------------------------------------------------------ test, log, replay

/// Sends a `webhook.test` event to the endpoint now: one attempt, recorded
/// in the log like any other, never retried.
pub async fn test(app: &AppState, org_id: Uuid, id: Uuid) -> DomainResult<AttemptRow> {
    let row = endpoint(app, org_id, id).await?;
    let data = serde_json::json!({
        "webhookId": row.id,
        "message": "This is a test event from wagate. Verify its signature with your endpoint's secret.",
    });
    let lease = app.webhooks.lease();
    let claimed = app
        .store
        .insert_test_delivery(&row, catalog::WEBHOOK_TEST, data, lease)
        .await?;
    let attempted = app.webhooks.attempt(&claimed).await;
    app.webhooks
        .record(&app.store, std::slice::from_ref(&attempted))
        .await?;
    Ok(attempted.attempt)
}

pub async fn logs(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    event_id: Option<Uuid>,
    page: PageRequest,
) -> DomainResult<(Vec<AttemptRow>, i64)> {
    endpoint(app, org_id, id).await?;
    Ok(app.store.list_attempts(org_id, id, event_id, page).await?)
}

pub async fn deliveries(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    status: Option<&str>,
    page: PageRequest,
) -> DomainResult<(Vec<DeliveryRow>, i64)> {
    endpoint(app, org_id, id).await?;
    Ok(app.store.list_deliveries(org_id, id, status, page).await?)
}

/// Queues one event, or a time range of events, again to one endpoint.
pub async fn replay(
    app: &AppState,
    org_id: Uuid,
    id: Uuid,
    input: ReplayInput,
) -> DomainResult<i64> {
    let row = endpoint(app, org_id, id).await?;
    if !row.is_active {
        return Err(DomainError::Conflict(
            "the webhook is inactive; activate it before replaying events to it".into(),
        ));
    }
    if let Some(event_id) = input.event_id {
        if input.since.is_some() || input.until.is_some() || input.only_failed {
            return Err(DomainError::validation(
                "eventId",
                "give either eventId or a time range (since, until, onlyFailed), not both",
            ));
        }
        return match app.store.replay_event(org_id, id, event_id).await? {
            Some(_) => Ok(1),
            None => Err(DomainError::NotFound("event")),
        };
    }
    let now = Utc::now();
    let Some(since) = input.since else {
        return Err(DomainError::validation(
            "since",
            "since is required (or give eventId)",
        ));
    };
    let until = input.until.unwrap_or(now);
    if until <= since {
        return Err(DomainError::validation(
            "until",
            "until must be after since",
        ));
    }
    if until - since > MAX_REPLAY_RANGE {
        return Err(DomainError::validation(
            "until",
            "since and until may be at most 14 days apart; split the range",
        ));
    }
    let range = ReplayRange {
        since,
        until,
        only_failed: input.only_failed,
    };
    Ok(app.store.replay_range(org_id, id, &range).await?)
}

// ------------------------------------------------------------ forward URL

/// Sets the organization's forward URL for delivery statuses (`message.sent`
/// and `message.status_updated`), delivered by the same engine. A new one
/// gets a generated secret unless one is given; the reply carries it.
pub async fn set_forward(
    app: &AppState,
    org_id: Uuid,
    url: &str,
    secret: Option<String>,
) -> DomainResult<WebhookView> {
    let url = validate_url(url, app.webhooks.options().allow_private).await?;
    let given = match secret {
        Some(s) => Some(validate_secret("secret", &s)?),
        None => None,
    };
    let secret = given.clone().unwrap_or_else(signing::generate_secret);
    let now = Utc::now();
    let row = EndpointRow {
        id: Uuid::new_v4(),
        org_id,
        waba_id: None,
        kind: rows::KIND_FORWARD.into(),
        url,
        description: Some("Forward URL for delivery status events (PUT /auth/me/webhook)".into()),
        events: catalog::FORWARDED.iter().map(|e| (*e).to_owned()).collect(),
        is_active: true,
        secret_enc: app.secrets.seal(secret.as_bytes()),
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let stored = app.store.upsert_forward(&row, given.is_some()).await?;
    let mut v = one(app, stored).await?;
    reveal(app, &mut v)?;
    Ok(v)
}

/// Removes the forward URL (no error when there is none).
pub async fn delete_forward(app: &AppState, org_id: Uuid) -> DomainResult<()> {
    app.store.delete_forward(org_id).await?;
    Ok(())
}

/// The forward URL, for the account view.
pub async fn forward_url(app: &AppState, org_id: Uuid) -> DomainResult<Option<String>> {
    Ok(app.store.get_forward(org_id).await?.map(|r| r.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn events_are_checked_by_name() {
        assert_eq!(
            validate_events(&names(&[
                "message.received",
                "message.sent",
                "message.received"
            ]))
            .expect("valid"),
            names(&["message.received", "message.sent"])
        );
        assert_eq!(validate_events(&names(&["*"])).expect("all"), names(&["*"]));
        for bad in [
            vec![],
            names(&["message.deleted"]),
            names(&["webhook.test"]),
            names(&[""]),
        ] {
            let err = validate_events(&bad).unwrap_err();
            assert!(
                matches!(err, DomainError::Validation { ref field, .. } if field == "events"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_are_16_to_256_characters() {
        assert!(validate_secret("secret", "whsec_your_secret_key").is_ok());
        assert!(validate_secret("secret", &"x".repeat(256)).is_ok());
        assert!(validate_secret("secret", &"x".repeat(15)).is_err());
        assert!(validate_secret("secret", &"x".repeat(257)).is_err());
        assert!(validate_secret("secret", "sixteen-chars\n..").is_err());
    }
}
