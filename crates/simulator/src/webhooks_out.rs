//! Webhooks the simulator posts, as Meta does: the `whatsapp_business_account` envelope,
//! signed with `X-Hub-Signature-256` over the exact bytes sent, retried a few times when the
//! target is down or answers non-2xx. Status webhooks of one message go out strictly in order
//! (each is delivered, or given up, before the next phase's delay starts).
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use crate::Simulator;
use crate::errors;
use crate::log::WebhookDelivery;
use crate::state::{SentMessage, Template};

/// How a posted webhook is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signature {
    /// `sha256=<HMAC of the body with the app secret>`.
    #[default]
    Valid,
    /// A well-formed signature made with the wrong key.
    Invalid,
    /// No `X-Hub-Signature-256` header.
    Missing,
}

/// A status phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Sent,
    Delivered,
    Read,
    Played,
    Failed(i64),
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Sent => "sent",
            Step::Delivered => "delivered",
            Step::Read => "read",
            Step::Played => "played",
            Step::Failed(_) => "failed",
        }
    }

    /// Parses `sent|delivered|read|played|failed` (failed needs a code).
    pub fn parse(s: &str, code: Option<i64>) -> Option<Step> {
        Some(match s {
            "sent" => Step::Sent,
            "delivered" => Step::Delivered,
            "read" => Step::Read,
            "played" => Step::Played,
            "failed" => Step::Failed(code.unwrap_or(131000)),
            _ => return None,
        })
    }
}

/// The sequence of status webhooks that follows an accepted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusPlan {
    /// sent -> delivered -> read.
    Normal,
    /// Only `sent` (reactions; reserved recipient `15553000001`).
    SentOnly,
    /// sent -> delivered, never read.
    UpToDelivered,
    /// sent -> read (no delivered).
    SkipDelivered,
    /// All statuses, posted in reverse order (read, delivered, sent) after the delays.
    Reversed,
    /// Every status posted twice.
    Duplicated,
    /// sent, then failed with the code.
    SentThenFailed(i64),
    /// Only failed with the code.
    Failed(i64),
}

pub(crate) fn messages_envelope(
    waba_id: &str,
    display: &str,
    phone_number_id: &str,
    contacts: Option<Value>,
    key: &str,
    items: Value,
) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": phone_number_id},
    });
    if let Some(c) = contacts {
        value["contacts"] = c;
    }
    value[key] = items;
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    })
}

fn pricing(category: &str) -> Value {
    if category == "service" {
        json!({"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"})
    } else {
        json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": category})
    }
}

impl Simulator {
    /// Where webhooks of `waba_id` go: its `override_callback_uri`, else the configured URL.
    /// `None` when there is no URL, or the WABA has no subscribed app and subscriptions are required.
    pub(crate) fn webhook_target(&self, waba_id: &str) -> Option<String> {
        let cfg = self.shared.cfg.read();
        let world = self.shared.world.lock();
        match world.wabas.get(waba_id) {
            Some(w) if cfg.require_subscription && !w.subscribed => None,
            Some(w) => w
                .override_callback_uri
                .clone()
                .or_else(|| cfg.webhook_url.clone()),
            None => cfg.webhook_url.clone(),
        }
    }

    /// Posts `body` to `url` with retries; records and returns the delivery.
    pub(crate) async fn deliver(
        &self,
        url: Option<String>,
        body: Vec<u8>,
        kind: &str,
        wamid: Option<String>,
        signature: Signature,
    ) -> WebhookDelivery {
        let (secret, attempts_max, base, timeout) = {
            let cfg = self.shared.cfg.read();
            (
                cfg.app_secret.clone(),
                cfg.webhook_max_attempts.max(1),
                cfg.webhook_retry_base,
                cfg.webhook_timeout,
            )
        };
        let header = match signature {
            Signature::Valid => Some(wagate_meta::signature::sign(secret.as_bytes(), &body)),
            Signature::Invalid => Some(wagate_meta::signature::sign(b"not-the-app-secret", &body)),
            Signature::Missing => None,
        };
        let mut attempts = 0;
        let mut last_status = None;
        let mut delivered = false;
        if let Some(url) = url.as_deref() {
            let _permit = self.shared.webhook_slots.clone().acquire_owned().await.ok();
            let mut backoff = base;
            while attempts < attempts_max {
                if attempts > 0 {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                attempts += 1;
                let mut req = self
                    .shared
                    .http
                    .post(url)
                    .timeout(timeout)
                    .header("content-type", "application/json")
                    .header("user-agent", "facebookexternalua")
                    .body(body.clone());
                if let Some(h) = &header {
                    req = req.header("x-hub-signature-256", h);
                }
                match req.send().await {
                    Ok(resp) => {
                        last_status = Some(resp.status().as_u16());
                        if resp.status().is_success() {
                            delivered = true;
                            break;
                        }
                    }
                    Err(e) => {
                        last_status = None;
                        tracing::debug!(error = %e, url, "simulator webhook attempt failed");
                    }
                }
            }
        }
        let seq = {
            let mut s = self.shared.webhook_seq.lock();
            *s += 1;
            *s
        };
        let record = WebhookDelivery {
            seq,
            at: Utc::now(),
            kind: kind.to_string(),
            url,
            wamid,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            attempts,
            last_status,
            delivered,
        };
        let cap = self.shared.cfg.read().max_logged_requests.max(1);
        let mut log = self.shared.webhook_log.lock();
        log.push_back(record.clone());
        while log.len() > cap {
            log.pop_front();
        }
        drop(log);
        record
    }

    /// Builds the status webhook of `step` for `msg`.
    pub(crate) fn status_envelope(&self, msg: &SentMessage, step: Step) -> Value {
        let world = self.shared.world.lock();
        let display = world
            .phones
            .get(&msg.phone_number_id)
            .map(|p| p.display_phone_number.clone())
            .unwrap_or_default();
        let user = if msg.wa_id.is_empty() {
            msg.user_id.as_deref().and_then(|b| world.user(b))
        } else {
            world.user(&msg.wa_id)
        };
        let user_id = msg
            .user_id
            .clone()
            .or_else(|| user.and_then(|u| u.user_id.clone()));
        let mut status = json!({
            "id": msg.wamid,
            "status": step.name(),
            "timestamp": Utc::now().timestamp().to_string(),
            "recipient_id": msg.wa_id,
        });
        if let Some(b) = &user_id {
            status["recipient_user_id"] = json!(b);
        }
        if let Some(p) = user.and_then(|u| u.parent_user_id.clone()) {
            status["recipient_parent_user_id"] = json!(p);
        }
        if let Some(cb) = &msg.biz_opaque_callback_data {
            status["biz_opaque_callback_data"] = json!(cb);
        }
        match step {
            Step::Sent | Step::Delivered => status["pricing"] = pricing(&msg.pricing_category),
            Step::Failed(code) => status["errors"] = json!([errors::webhook_error(code)]),
            Step::Read | Step::Played => {}
        }
        // 2026: contacts on sent/delivered/read when the user is known; never on failed.
        let contacts = match (step, user) {
            (Step::Failed(_), _) | (_, None) => None,
            (_, Some(u)) => {
                let mut profile =
                    json!({"name": u.name.clone().unwrap_or_else(|| "WhatsApp User".into())});
                if step != Step::Sent
                    && let Some(un) = &u.username
                {
                    profile["username"] = json!(un);
                }
                let mut c = json!({"profile": profile, "wa_id": msg.wa_id});
                if let Some(b) = &user_id {
                    c["user_id"] = json!(b);
                }
                if let Some(p) = &u.parent_user_id {
                    c["parent_user_id"] = json!(p);
                }
                Some(json!([c]))
            }
        };
        messages_envelope(
            &msg.waba_id,
            &display,
            &msg.phone_number_id,
            contacts,
            "statuses",
            json!([status]),
        )
    }

    /// Posts one status webhook for `msg` now.
    pub(crate) async fn post_status(&self, msg: &SentMessage, step: Step) -> WebhookDelivery {
        let env = self.status_envelope(msg, step);
        let body = serde_json::to_vec(&env).unwrap_or_default();
        let url = self.webhook_target(&msg.waba_id);
        self.deliver(
            url,
            body,
            &format!("status.{}", step.name()),
            Some(msg.wamid.clone()),
            Signature::Valid,
        )
        .await
    }

    /// Runs `plan` for `msg` in the background, honouring the configured delays.
    pub(crate) fn spawn_status_plan(&self, msg: SentMessage, plan: StatusPlan) {
        let sim = self.clone();
        tokio::spawn(async move {
            let d = sim.shared.cfg.read().status_delays.clone();
            let steps: Vec<(Option<Duration>, Step)> = match plan {
                StatusPlan::Normal | StatusPlan::Reversed | StatusPlan::Duplicated => vec![
                    (d.sent, Step::Sent),
                    (d.delivered, Step::Delivered),
                    (d.read, Step::Read),
                ],
                StatusPlan::SentOnly => vec![(d.sent, Step::Sent)],
                StatusPlan::UpToDelivered => {
                    vec![(d.sent, Step::Sent), (d.delivered, Step::Delivered)]
                }
                StatusPlan::SkipDelivered => vec![(d.sent, Step::Sent), (d.read, Step::Read)],
                StatusPlan::SentThenFailed(c) => {
                    vec![(d.sent, Step::Sent), (d.delivered, Step::Failed(c))]
                }
                StatusPlan::Failed(c) => vec![(d.sent, Step::Failed(c))],
            };
            let mut due = Vec::new();
            for (delay, step) in steps {
                let Some(delay) = delay else { break };
                tokio::time::sleep(delay).await;
                if plan == StatusPlan::Reversed {
                    due.push(step);
                    continue;
                }
                sim.post_status(&msg, step).await;
                if plan == StatusPlan::Duplicated {
                    sim.post_status(&msg, step).await;
                }
            }
            for step in due.into_iter().rev() {
                sim.post_status(&msg, step).await;
            }
        });
    }

    /// Posts a `message_template_status_update` webhook.
    pub(crate) async fn post_template_status(
        &self,
        t: &Template,
        reason: Option<&str>,
    ) -> WebhookDelivery {
        let (waba_id, template_id, name, language, category, event) = (
            t.waba_id.as_str(),
            t.id.as_str(),
            t.name.as_str(),
            t.language.as_str(),
            t.category.as_str(),
            t.status.as_str(),
        );
        let mut value = json!({
            "event": event,
            "message_template_id": template_id.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(template_id)),
            "message_template_name": name,
            "message_template_language": language,
            "reason": reason.unwrap_or("NONE"),
            "message_template_category": category,
        });
        if event == "REJECTED" {
            value["rejection_info"] = json!({
                "reason": "The template was rejected by the wagate simulator because its name contains \"reject\".",
                "recommendation": "Rename the template (names containing \"reject\" are always rejected by the simulator).",
            });
        }
        let env = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": waba_id,
                "time": Utc::now().timestamp(),
                "changes": [{"value": value, "field": "message_template_status_update"}],
            }],
        });
        let body = serde_json::to_vec(&env).unwrap_or_default();
        let url = self.webhook_target(waba_id);
        self.deliver(url, body, "template_status", None, Signature::Valid)
            .await
    }
}
