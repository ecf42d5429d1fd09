//! OutgoingWebhookService: endpoints, test, log, deliveries, rotation,
//! replay and the event catalog.
use tonic::{Request, Response, Status};

use super::convert;
use crate::app::App;
use crate::auth::principal;
use crate::domain::webhooks::{self, CreateInput, ReplayInput, UpdateInput, WebhookView, catalog};
use crate::domain::{DomainError, validate};
use crate::pb;
use crate::store::webhooks::{
    AttemptRow, DeliveryRow, KIND_FORWARD, OUTCOME_FAILED, OUTCOME_RETRYING, OUTCOME_SUCCEEDED,
    STATUS_FAILED, STATUS_PENDING, STATUS_SUCCEEDED, TRIGGER_EVENT, TRIGGER_REPLAY, TRIGGER_TEST,
};

pub struct OutgoingWebhookApi {
    app: App,
}

impl OutgoingWebhookApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::outgoing_webhook_service_server::OutgoingWebhookService for OutgoingWebhookApi {
    async fn list_outgoing_webhooks(
        &self,
        req: Request<pb::ListOutgoingWebhooksRequest>,
    ) -> Result<Response<pb::ListOutgoingWebhooksResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let page = validate::page(r.page, r.limit)?;
        let (views, total) = webhooks::list(&self.app, org, page).await?;
        Ok(Response::new(pb::ListOutgoingWebhooksResponse {
            data: views.iter().map(webhook).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn create_outgoing_webhook(
        &self,
        req: Request<pb::CreateOutgoingWebhookRequest>,
    ) -> Result<Response<pb::CreateOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let input = CreateInput {
            url: r.url,
            events: event_names(&r.events)?,
            secret: r.secret,
            is_active: r.is_active,
            description: r.description,
            waba_id: r.waba_id,
        };
        let v = webhooks::create(&self.app, org, input).await?;
        Ok(Response::new(pb::CreateOutgoingWebhookResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn get_outgoing_webhook(
        &self,
        req: Request<pb::GetOutgoingWebhookRequest>,
    ) -> Result<Response<pb::GetOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("webhookId", &req.into_inner().webhook_id)?;
        let v = webhooks::get(&self.app, org, id).await?;
        Ok(Response::new(pb::GetOutgoingWebhookResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn update_outgoing_webhook(
        &self,
        req: Request<pb::UpdateOutgoingWebhookRequest>,
    ) -> Result<Response<pb::UpdateOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("webhookId", &r.webhook_id)?;
        let input = UpdateInput {
            url: r.url,
            events: event_names(&r.events)?,
            is_active: r.is_active,
            description: r.description,
            waba_id: r.waba_id,
            secret: r.secret,
        };
        let v = webhooks::update(&self.app, org, id, input).await?;
        Ok(Response::new(pb::UpdateOutgoingWebhookResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn delete_outgoing_webhook(
        &self,
        req: Request<pb::DeleteOutgoingWebhookRequest>,
    ) -> Result<Response<pb::DeleteOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("webhookId", &req.into_inner().webhook_id)?;
        let v = webhooks::delete(&self.app, org, id).await?;
        Ok(Response::new(pb::DeleteOutgoingWebhookResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn test_outgoing_webhook(
        &self,
        req: Request<pb::TestOutgoingWebhookRequest>,
    ) -> Result<Response<pb::TestOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("webhookId", &req.into_inner().webhook_id)?;
        let a = webhooks::test(&self.app, org, id).await?;
        Ok(Response::new(pb::TestOutgoingWebhookResponse {
            data: Some(attempt(&a)),
        }))
    }

    async fn list_outgoing_webhook_logs(
        &self,
        req: Request<pb::ListOutgoingWebhookLogsRequest>,
    ) -> Result<Response<pb::ListOutgoingWebhookLogsResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("webhookId", &r.webhook_id)?;
        let page = validate::page(r.page, r.limit)?;
        let event = match r.event_id.trim() {
            "" => None,
            e => Some(validate::uuid("eventId", e)?),
        };
        let (rows, total) = webhooks::logs(&self.app, org, id, event, page).await?;
        Ok(Response::new(pb::ListOutgoingWebhookLogsResponse {
            data: rows.iter().map(attempt).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn list_outgoing_webhook_deliveries(
        &self,
        req: Request<pb::ListOutgoingWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListOutgoingWebhookDeliveriesResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("webhookId", &r.webhook_id)?;
        let page = validate::page(r.page, r.limit)?;
        let status = match pb::WebhookDeliveryStatus::try_from(r.status) {
            Ok(pb::WebhookDeliveryStatus::Unspecified) => None,
            Ok(pb::WebhookDeliveryStatus::Pending) => Some(STATUS_PENDING),
            Ok(pb::WebhookDeliveryStatus::Succeeded) => Some(STATUS_SUCCEEDED),
            Ok(pb::WebhookDeliveryStatus::Failed) => Some(STATUS_FAILED),
            Err(_) => {
                return Err(DomainError::validation(
                    "status",
                    "status must be pending, succeeded or failed",
                )
                .into());
            }
        };
        let (rows, total) = webhooks::deliveries(&self.app, org, id, status, page).await?;
        Ok(Response::new(pb::ListOutgoingWebhookDeliveriesResponse {
            data: rows.iter().map(delivery).collect(),
            meta: Some(convert::list_meta(page, total)),
        }))
    }

    async fn rotate_outgoing_webhook_secret(
        &self,
        req: Request<pb::RotateOutgoingWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateOutgoingWebhookSecretResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("webhookId", &r.webhook_id)?;
        let v = webhooks::rotate_secret(&self.app, org, id, r.secret).await?;
        Ok(Response::new(pb::RotateOutgoingWebhookSecretResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn get_outgoing_webhook_secret(
        &self,
        req: Request<pb::GetOutgoingWebhookSecretRequest>,
    ) -> Result<Response<pb::GetOutgoingWebhookSecretResponse>, Status> {
        let org = principal(&req)?.org_id();
        let id = validate::uuid("webhookId", &req.into_inner().webhook_id)?;
        let v = webhooks::get_secret(&self.app, org, id).await?;
        Ok(Response::new(pb::GetOutgoingWebhookSecretResponse {
            data: Some(webhook(&v)),
        }))
    }

    async fn replay_outgoing_webhook(
        &self,
        req: Request<pb::ReplayOutgoingWebhookRequest>,
    ) -> Result<Response<pb::ReplayOutgoingWebhookResponse>, Status> {
        let org = principal(&req)?.org_id();
        let r = req.into_inner();
        let id = validate::uuid("webhookId", &r.webhook_id)?;
        let event_id = match r.event_id.as_deref() {
            Some(e) => Some(validate::uuid("eventId", e)?),
            None => None,
        };
        let input = ReplayInput {
            event_id,
            since: convert::optional_time("since", r.since.as_ref())?,
            until: convert::optional_time("until", r.until.as_ref())?,
            only_failed: r.only_failed,
        };
        let queued = webhooks::replay(&self.app, org, id, input).await?;
        Ok(Response::new(pb::ReplayOutgoingWebhookResponse {
            data: Some(pb::WebhookReplay {
                webhook_id: id.to_string(),
                queued,
            }),
        }))
    }

    async fn list_webhook_event_types(
        &self,
        req: Request<pb::ListWebhookEventTypesRequest>,
    ) -> Result<Response<pb::ListWebhookEventTypesResponse>, Status> {
        principal(&req)?;
        Ok(Response::new(pb::ListWebhookEventTypesResponse {
            data: catalog::CATALOG
                .iter()
                .map(|e| pb::WebhookEventType {
                    name: event_value(e.name) as i32,
                    description: e.description.to_owned(),
                    subscribable: e.subscribable,
                    documented: e.documented,
                })
                .collect(),
        }))
    }
}

/// Typed event values to the names the domain speaks.
fn event_names(values: &[i32]) -> Result<Vec<String>, DomainError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            pb::WebhookEvent::try_from(*v)
                .ok()
                .and_then(event_name)
                .map(str::to_owned)
                .ok_or_else(|| {
                    DomainError::validation("events", format!("events[{i}] is not a known event"))
                })
        })
        .collect()
}

/// The documented name of an event value (its `json_value` in the proto).
pub fn event_name(e: pb::WebhookEvent) -> Option<&'static str> {
    use pb::WebhookEvent as E;
    Some(match e {
        E::Unspecified => return None,
        E::All => catalog::ALL_EVENTS,
        E::MessageReceived => catalog::MESSAGE_RECEIVED,
        E::MessageSent => catalog::MESSAGE_SENT,
        E::MessageStatusUpdated => catalog::MESSAGE_STATUS_UPDATED,
        E::PhoneNumberConnected => catalog::PHONE_NUMBER_CONNECTED,
        E::PhoneNumberHealthUpdated => catalog::PHONE_NUMBER_HEALTH_UPDATED,
        E::TemplateStatusUpdated => catalog::TEMPLATE_STATUS_UPDATED,
        E::WebhookTest => catalog::WEBHOOK_TEST,
    })
}

pub fn event_value(name: &str) -> pb::WebhookEvent {
    use pb::WebhookEvent as E;
    [
        E::All,
        E::MessageReceived,
        E::MessageSent,
        E::MessageStatusUpdated,
        E::PhoneNumberConnected,
        E::PhoneNumberHealthUpdated,
        E::TemplateStatusUpdated,
        E::WebhookTest,
    ]
    .into_iter()
    .find(|e| event_name(*e) == Some(name))
    .unwrap_or(E::Unspecified)
}

pub fn webhook(v: &WebhookView) -> pb::OutgoingWebhook {
    let r = &v.row;
    pb::OutgoingWebhook {
        id: r.id.to_string(),
        url: r.url.clone(),
        events: r.events.iter().map(|e| event_value(e) as i32).collect(),
        is_active: r.is_active,
        description: r.description.clone(),
        waba_id: r.waba_id.map(|w| w.to_string()),
        kind: if r.kind == KIND_FORWARD {
            pb::OutgoingWebhookKind::ForwardUrl
        } else {
            pb::OutgoingWebhookKind::Endpoint
        } as i32,
        secret: v.secret.clone(),
        disabled_reason: r.disabled_reason.clone(),
        previous_secret_expires_at: v.previous_secret_expires_at.map(convert::ts),
        created_at: Some(convert::ts(r.created_at)),
        updated_at: Some(convert::ts(r.updated_at)),
    }
}

fn trigger(t: &str) -> pb::WebhookTrigger {
    match t {
        TRIGGER_EVENT => pb::WebhookTrigger::Event,
        TRIGGER_REPLAY => pb::WebhookTrigger::Replay,
        TRIGGER_TEST => pb::WebhookTrigger::Test,
        _ => pb::WebhookTrigger::Unspecified,
    }
}

fn attempt(a: &AttemptRow) -> pb::OutgoingWebhookAttempt {
    pb::OutgoingWebhookAttempt {
        id: a.id.to_string(),
        webhook_id: a.endpoint_id.to_string(),
        delivery_id: a.delivery_id.to_string(),
        event_id: a.event_id.to_string(),
        event: event_value(&a.event) as i32,
        attempt: a.attempt,
        trigger: trigger(&a.trigger) as i32,
        url: a.url.clone(),
        status_code: a.status_code,
        duration_ms: a.duration_ms,
        response: a.response.clone(),
        error: a.error.clone(),
        outcome: match a.outcome.as_str() {
            OUTCOME_SUCCEEDED => pb::WebhookAttemptOutcome::Succeeded,
            OUTCOME_RETRYING => pb::WebhookAttemptOutcome::Retrying,
            OUTCOME_FAILED => pb::WebhookAttemptOutcome::Failed,
            _ => pb::WebhookAttemptOutcome::Unspecified,
        } as i32,
        next_attempt_at: a.next_attempt_at.map(convert::ts),
        created_at: Some(convert::ts(a.created_at)),
    }
}

fn delivery(d: &DeliveryRow) -> pb::OutgoingWebhookDelivery {
    let status = match d.status.as_str() {
        STATUS_PENDING => pb::WebhookDeliveryStatus::Pending,
        STATUS_SUCCEEDED => pb::WebhookDeliveryStatus::Succeeded,
        STATUS_FAILED => pb::WebhookDeliveryStatus::Failed,
        _ => pb::WebhookDeliveryStatus::Unspecified,
    };
    pb::OutgoingWebhookDelivery {
        id: d.id.to_string(),
        webhook_id: d.endpoint_id.to_string(),
        event_id: d.event_id.to_string(),
        event: event_value(&d.event) as i32,
        trigger: trigger(&d.trigger) as i32,
        status: status as i32,
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        next_attempt_at: (status == pb::WebhookDeliveryStatus::Pending)
            .then(|| convert::ts(d.next_attempt_at)),
        created_at: Some(convert::ts(d.created_at)),
        completed_at: d.completed_at.map(convert::ts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain's names are exactly the proto's documented spellings.
    #[test]
    fn event_names_match_the_proto_spellings() {
        let pool = prost_reflect::DescriptorPool::decode(pb::DESCRIPTOR).expect("descriptor");
        let mapping = crate::rest::json::JsonMapping::new(&pool);
        let e = pool
            .get_enum_by_name("wagate.v1.WebhookEvent")
            .expect("enum");
        let mut seen = 0;
        for v in e.values().filter(|v| v.number() != 0) {
            let typed = pb::WebhookEvent::try_from(v.number()).expect("known");
            assert_eq!(
                event_name(typed),
                mapping.enum_to_json(&e, v.number()).as_deref(),
                "{}",
                v.name()
            );
            assert_eq!(event_value(event_name(typed).expect("name")), typed);
            seen += 1;
        }
        assert_eq!(seen, catalog::CATALOG.len() + 1, "every event and \"*\"");
    }
}
