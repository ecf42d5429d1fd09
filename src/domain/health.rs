//! How a phone's capabilities follow from what Meta says about it.
//!
//! The rules, in words (README "Phone health"):
//! - An entity *blocks messaging* when its `can_send_message` is `BLOCKED` and
//!   it is the phone number, its WABA, the business or the app. A blocked
//!   `MESSAGE_TEMPLATE` blocks only that template: it is reported as a
//!   non-blocking issue. Meta's top-level `can_send_message` is not used on
//!   its own, because it also turns `BLOCKED` for calling problems
//!   (`can_receive_call_sip`) while every entity can still send messages.
//! - `canReceiveMessages` = registered, app subscribed to the WABA (unknown
//!   counts as subscribed until a check says otherwise), and no entity blocks
//!   messaging.
//! - `canSendMessages` = registered, access token not known to be invalid, no
//!   entity blocks messaging, and no `RESTRICTED_CUSTOMER_INITIATED_MESSAGING`
//!   restriction on the WABA.
//! - `canSendTemplates` = as `canSendMessages`, but the restriction that
//!   matters is `RESTRICTED_BIZ_INITIATED_MESSAGING` (templates are how a
//!   business starts a conversation).
//! - `LIMITED` keeps every capability and is reported as an issue.
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Available,
    Limited,
    Blocked,
}

impl Level {
    fn parse(s: Option<&str>) -> Option<Level> {
        match s? {
            "AVAILABLE" => Some(Level::Available),
            "LIMITED" => Some(Level::Limited),
            "BLOCKED" => Some(Level::Blocked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub level: Level,
    pub error_code: Option<i64>,
    pub message: String,
    pub possible_solution: Option<String>,
    pub blocking: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    pub can_receive_messages: bool,
    pub can_send_messages: bool,
    pub can_send_templates: bool,
}

/// What the rules read: the phone's snapshot and its WABA's restrictions.
pub struct HealthInput<'a> {
    pub is_registered: bool,
    /// Whether wagate holds an access token for the phone's WABA (none once
    /// the credentials are removed).
    pub has_token: bool,
    pub token_valid: Option<bool>,
    pub app_subscribed: Option<bool>,
    /// Meta's `health_status` object as stored.
    pub health_status: Option<&'a Value>,
    /// `restriction_info[].restriction_type` values currently in force.
    pub restrictions: &'a [String],
}

pub struct Assessment {
    pub capabilities: Capabilities,
    /// The worst level among entities that gate messaging.
    pub messaging_level: Option<Level>,
    pub issues: Vec<Issue>,
}

const MESSAGING_ENTITIES: [&str; 4] = ["PHONE_NUMBER", "WABA", "BUSINESS", "APP"];

pub fn assess(input: &HealthInput<'_>) -> Assessment {
    let mut issues = Vec::new();
    let mut worst: Option<Level> = None;
    let mut blocked = false;
    let entities = input
        .health_status
        .and_then(|h| h.get("entities"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for e in entities {
        let entity_type = e
            .get("entity_type")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_owned();
        let entity_id = e.get("id").and_then(Value::as_str).map(str::to_owned);
        let Some(level) = Level::parse(e.get("can_send_message").and_then(Value::as_str)) else {
            continue;
        };
        let gates_messaging = MESSAGING_ENTITIES.contains(&entity_type.as_str());
        if gates_messaging {
            worst = Some(match (worst, level) {
                (Some(Level::Blocked), _) | (_, Level::Blocked) => Level::Blocked,
                (Some(Level::Limited), _) | (_, Level::Limited) => Level::Limited,
                _ => Level::Available,
            });
            if level == Level::Blocked {
                blocked = true;
            }
        }
        let blocking = gates_messaging && level == Level::Blocked;
        let errors = e
            .get("errors")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for err in errors {
            issues.push(Issue {
                entity_type: entity_type.clone(),
                entity_id: entity_id.clone(),
                level,
                error_code: err.get("error_code").and_then(Value::as_i64),
                message: err
                    .get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("Meta reported a problem without a description")
                    .to_owned(),
                possible_solution: err
                    .get("possible_solution")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                // A calling (SIP) error on an entity that can still send messages does not block messaging.
                blocking,
            });
        }
        let infos = e
            .get("additional_info")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for info in infos.iter().filter_map(Value::as_str) {
            issues.push(Issue {
                entity_type: entity_type.clone(),
                entity_id: entity_id.clone(),
                level,
                error_code: None,
                message: info.to_owned(),
                possible_solution: None,
                blocking,
            });
        }
        if errors.is_empty() && infos.is_empty() && level != Level::Available {
            issues.push(Issue {
                entity_type: entity_type.clone(),
                entity_id: entity_id.clone(),
                level,
                error_code: None,
                message: format!(
                    "{entity_type} messaging is {}",
                    if level == Level::Blocked {
                        "blocked"
                    } else {
                        "limited"
                    }
                ),
                possible_solution: None,
                blocking,
            });
        }
    }
    let own = |entity: &str, message: &str, solution: &str| Issue {
        entity_type: entity.to_owned(),
        entity_id: None,
        level: Level::Blocked,
        error_code: None,
        message: message.to_owned(),
        possible_solution: Some(solution.to_owned()),
        blocking: true,
    };
    if !input.is_registered {
        issues.push(own(
            "REGISTRATION",
            "The phone number is not registered with the Cloud API",
            "Register it (POST /{phone-number-id}/register with its two-step PIN) in Meta's WhatsApp Manager or through the Graph API",
        ));
    }
    let token_ok = input.has_token && input.token_valid != Some(false);
    if !input.has_token {
        issues.push(own(
            "CREDENTIALS",
            "wagate holds no access token for this phone's WABA: its credentials were removed",
            "Save a system-user token with PUT /auth/me/credentials",
        ));
    } else if !token_ok {
        issues.push(own(
            "TOKEN",
            "Meta rejected the stored access token",
            "Create a new system-user token with whatsapp_business_messaging and whatsapp_business_management and save it with PUT /auth/me/credentials",
        ));
    }
    let subscribed = input.app_subscribed != Some(false);
    if !subscribed {
        issues.push(own(
            "SUBSCRIPTION",
            "No app is subscribed to the WABA's webhooks, so inbound messages do not arrive",
            "Subscribe your app: POST /{waba-id}/subscribed_apps with the WABA's token",
        ));
    }
    let restricted = |kind: &str| input.restrictions.iter().any(|r| r == kind);
    for r in input.restrictions {
        issues.push(Issue {
            entity_type: "WABA".into(),
            entity_id: None,
            level: Level::Limited,
            error_code: None,
            message: format!("Meta restricted this account: {r}"),
            possible_solution: Some("See the account's restriction in Meta Business Suite".into()),
            blocking: true,
        });
    }
    let base = input.is_registered && token_ok && !blocked;
    Assessment {
        capabilities: Capabilities {
            can_receive_messages: input.is_registered && subscribed && !blocked,
            can_send_messages: base && !restricted("RESTRICTED_CUSTOMER_INITIATED_MESSAGING"),
            can_send_templates: base && !restricted("RESTRICTED_BIZ_INITIATED_MESSAGING"),
        },
        messaging_level: worst,
        issues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/meta/graph/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture");
        let v: Value = serde_json::from_str(&text).expect("json");
        v["health_status"].clone()
    }

    fn healthy(h: &Value) -> HealthInput<'_> {
        HealthInput {
            is_registered: true,
            has_token: true,
            token_valid: Some(true),
            app_subscribed: Some(true),
            health_status: Some(h),
            restrictions: &[],
        }
    }

    #[test]
    fn removed_credentials_stop_sending_but_not_receiving() {
        let h = sample("metadocs__health_status_available");
        let a = assess(&HealthInput {
            has_token: false,
            ..healthy(&h)
        });
        assert!(!a.capabilities.can_send_messages && !a.capabilities.can_send_templates);
        assert!(a.capabilities.can_receive_messages);
        assert!(
            a.issues
                .iter()
                .any(|i| i.blocking && i.message.contains("credentials were removed"))
        );
    }

    #[test]
    fn available_gives_every_capability_and_no_issue() {
        let h = sample("metadocs__health_status_available");
        let a = assess(&healthy(&h));
        assert_eq!(
            a.capabilities,
            Capabilities {
                can_receive_messages: true,
                can_send_messages: true,
                can_send_templates: true
            }
        );
        assert_eq!(a.messaging_level, Some(Level::Available));
        assert!(a.issues.is_empty());
    }

    #[test]
    fn limited_keeps_capabilities_and_reports_why() {
        let h = sample("metadocs__health_status_limited");
        let a = assess(&healthy(&h));
        assert!(
            a.capabilities.can_send_messages
                && a.capabilities.can_send_templates
                && a.capabilities.can_receive_messages
        );
        assert_eq!(a.messaging_level, Some(Level::Limited));
        assert_eq!(a.issues.len(), 1);
        assert!(a.issues[0].message.contains("display name"));
        assert!(!a.issues[0].blocking);
    }

    #[test]
    fn a_blocked_template_blocks_only_itself() {
        let h = sample("metadocs__health_status_blocked_template");
        let a = assess(&healthy(&h));
        assert!(a.capabilities.can_send_messages && a.capabilities.can_send_templates);
        let issue = a
            .issues
            .iter()
            .find(|i| i.entity_type == "MESSAGE_TEMPLATE")
            .expect("template issue");
        assert_eq!(issue.error_code, Some(141002));
        assert!(!issue.blocking);
    }

    #[test]
    fn calling_sip_errors_do_not_block_messaging_despite_top_level_blocked() {
        let h = sample("metadocs__health_status_calling_sip_blocked");
        assert_eq!(h["can_send_message"], "BLOCKED");
        let a = assess(&healthy(&h));
        assert!(a.capabilities.can_send_messages && a.capabilities.can_receive_messages);
        assert_eq!(a.messaging_level, Some(Level::Available));
        assert!(
            a.issues
                .iter()
                .any(|i| i.error_code == Some(138024) && !i.blocking)
        );
    }

    #[test]
    fn a_blocked_phone_or_waba_removes_every_capability() {
        let h = serde_json::json!({"can_send_message": "BLOCKED", "entities": [
            {"entity_type": "PHONE_NUMBER", "id": "1", "can_send_message": "AVAILABLE"},
            {"entity_type": "WABA", "id": "2", "can_send_message": "BLOCKED",
             "errors": [{"error_code": 131031, "error_description": "Account locked", "possible_solution": "Appeal"}]}]});
        let a = assess(&healthy(&h));
        assert_eq!(
            a.capabilities,
            Capabilities {
                can_receive_messages: false,
                can_send_messages: false,
                can_send_templates: false
            }
        );
        assert!(
            a.issues
                .iter()
                .any(|i| i.blocking && i.error_code == Some(131031))
        );
    }

    #[test]
    fn registration_token_subscription_and_restrictions() {
        let h = sample("metadocs__health_status_available");
        let unregistered = assess(&HealthInput {
            is_registered: false,
            has_token: true,
            ..healthy(&h)
        });
        assert!(
            !unregistered.capabilities.can_send_messages
                && !unregistered.capabilities.can_receive_messages
        );
        let bad_token = assess(&HealthInput {
            token_valid: Some(false),
            ..healthy(&h)
        });
        assert!(
            !bad_token.capabilities.can_send_messages
                && bad_token.capabilities.can_receive_messages
        );
        let unsubscribed = assess(&HealthInput {
            app_subscribed: Some(false),
            ..healthy(&h)
        });
        assert!(
            !unsubscribed.capabilities.can_receive_messages
                && unsubscribed.capabilities.can_send_messages
        );
        let unknown = assess(&HealthInput {
            token_valid: None,
            app_subscribed: None,
            health_status: None,
            ..healthy(&h)
        });
        assert!(
            unknown.capabilities.can_send_messages && unknown.capabilities.can_receive_messages
        );
        let biz = ["RESTRICTED_BIZ_INITIATED_MESSAGING".to_owned()];
        let restricted = assess(&HealthInput {
            restrictions: &biz,
            ..healthy(&h)
        });
        assert!(
            restricted.capabilities.can_send_messages
                && !restricted.capabilities.can_send_templates
        );
        let cust = ["RESTRICTED_CUSTOMER_INITIATED_MESSAGING".to_owned()];
        let restricted = assess(&HealthInput {
            restrictions: &cust,
            ..healthy(&h)
        });
        assert!(
            !restricted.capabilities.can_send_messages
                && restricted.capabilities.can_send_templates
        );
    }
}
