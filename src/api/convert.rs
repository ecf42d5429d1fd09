//! Store rows and domain values to proto messages.
use chrono::{DateTime, Utc};

use crate::domain::DomainError;
use crate::domain::plans::{Plan, PlanLimits};
use crate::pb;
use crate::store::PageRequest;
use crate::store::accounts::{OrgRow, UserRow};
use crate::store::api_keys::ApiKeyRow;

pub fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn plan(p: Plan) -> pb::Plan {
    match p {
        Plan::Basic => pb::Plan::Basic,
        Plan::Pro => pb::Plan::Pro,
        Plan::Ultra => pb::Plan::Ultra,
        Plan::Mega => pb::Plan::Mega,
    }
}

pub fn organization(o: &OrgRow) -> pb::Organization {
    pb::Organization {
        id: o.id.to_string(),
        name: o.name.clone(),
        plan: Plan::parse(&o.plan)
            .map(plan)
            .unwrap_or(pb::Plan::Unspecified) as i32,
        created_at: Some(ts(o.created_at)),
    }
}

pub fn user(u: &UserRow) -> pb::User {
    pb::User {
        id: u.id.to_string(),
        email: u.email.clone(),
        name: u.name.clone(),
        role: u.role.clone(),
        created_at: Some(ts(u.created_at)),
    }
}

pub fn plan_limits(p: Plan, l: PlanLimits) -> pb::PlanLimits {
    pb::PlanLimits {
        plan: plan(p) as i32,
        monthly_messages: l.monthly_messages,
        bulk_max: l.bulk_max,
        requests_per_minute: l.requests_per_minute,
    }
}

pub fn api_key(k: &ApiKeyRow) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id.to_string(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        status: if k.revoked_at.is_some() {
            pb::ApiKeyStatus::Revoked
        } else {
            pb::ApiKeyStatus::Active
        } as i32,
        created_at: Some(ts(k.created_at)),
        last_used_at: k.last_used_at.map(ts),
        revoked_at: k.revoked_at.map(ts),
    }
}

pub fn api_key_secret(k: &ApiKeyRow, secret: String) -> pb::ApiKeySecret {
    pb::ApiKeySecret {
        id: k.id.to_string(),
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        api_key: secret,
        created_at: Some(ts(k.created_at)),
    }
}

pub fn list_meta(page: PageRequest, total: i64) -> pb::ListMeta {
    pb::ListMeta {
        pagination: Some(pb::Pagination {
            page: i32::try_from(page.page).unwrap_or(i32::MAX),
            limit: i32::try_from(page.limit).unwrap_or(i32::MAX),
            total,
            has_more: page.offset() + page.limit < total,
        }),
    }
}

/// serde_json object -> google.protobuf.Struct.
pub fn json_struct(v: &serde_json::Value) -> prost_types::Struct {
    let fields = match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
        _ => Default::default(),
    };
    prost_types::Struct { fields }
}

pub fn json_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_struct(v)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn credentials(c: &crate::domain::credentials::CredentialsView) -> pb::Credentials {
    pb::Credentials {
        configured: c.configured,
        verified: c.verified_at.is_some(),
        phone_number_id: c.phone_number_id.clone(),
        waba_id: c.waba_id.clone(),
        token_last4: c.token_last4.clone(),
        phone_id: c.phone_id.map(|id| id.to_string()),
        verified_at: c.verified_at.map(ts),
    }
}

pub fn diagnostics(d: &crate::domain::credentials::Diagnostics) -> pb::CredentialsDiagnostics {
    use crate::domain::credentials::CheckStatus;
    pb::CredentialsDiagnostics {
        ok: d.ok(),
        checks: d
            .checks
            .iter()
            .map(|c| pb::CredentialCheck {
                id: c.id.to_owned(),
                name: c.name.to_owned(),
                status: match c.status {
                    CheckStatus::Ok => pb::CheckStatus::Ok,
                    CheckStatus::Failed => pb::CheckStatus::Failed,
                    CheckStatus::Skipped => pb::CheckStatus::Skipped,
                } as i32,
                message: c.message.clone(),
                hint: c.hint.clone(),
                meta_error_code: c.meta_error_code,
            })
            .collect(),
        display_phone_number: d.display_phone_number.clone(),
        verified_name: d.verified_name.clone(),
        quality_rating: d.quality_rating.clone(),
    }
}

pub fn waba(w: &crate::store::phones::WabaRow, phone_count: i64) -> pb::Waba {
    pb::Waba {
        id: w.id.to_string(),
        meta_waba_id: w.meta_waba_id.clone(),
        name: w.name.clone(),
        source: w.source.clone(),
        token_last4: w.token_last4.clone(),
        phone_count: i32::try_from(phone_count).unwrap_or(i32::MAX),
        created_at: Some(ts(w.created_at)),
        updated_at: Some(ts(w.updated_at)),
    }
}

pub fn phone(p: &crate::store::phones::PhoneRow) -> pb::Phone {
    pb::Phone {
        id: p.id.to_string(),
        waba_id: p.waba_id.to_string(),
        meta_phone_number_id: p.meta_phone_number_id.clone(),
        display_phone_number: p.display_phone_number.clone(),
        verified_name: p.verified_name.clone(),
        is_default: p.is_default,
        is_registered: p.is_registered,
        quality_rating: p.quality_rating.clone(),
        throughput_level: p.throughput_level.clone(),
        messaging_limit: p.messaging_limit.clone(),
        metadata: Some(json_struct(&p.metadata)),
        created_at: Some(ts(p.created_at)),
        updated_at: Some(ts(p.updated_at)),
    }
}

pub fn phone_health(v: &crate::domain::phones::HealthView) -> pb::PhoneHealth {
    use crate::domain::health::Level;
    let level = |l: Level| match l {
        Level::Available => pb::HealthLevel::Available,
        Level::Limited => pb::HealthLevel::Limited,
        Level::Blocked => pb::HealthLevel::Blocked,
    } as i32;
    let p = &v.phone;
    let a = &v.assessment;
    pb::PhoneHealth {
        phone_id: p.id.to_string(),
        is_registered: p.is_registered,
        capabilities: Some(pb::PhoneCapabilities {
            can_receive_messages: a.capabilities.can_receive_messages,
            can_send_messages: a.capabilities.can_send_messages,
            can_send_templates: a.capabilities.can_send_templates,
        }),
        quality_rating: p.quality_rating.clone(),
        throughput_level: p.throughput_level.clone(),
        messaging_limit: p.messaging_limit.clone(),
        name_status: p.name_status.clone(),
        code_verification_status: p.code_verification_status.clone(),
        can_send_message: a.messaging_level.map_or(0, level),
        issues: a
            .issues
            .iter()
            .map(|i| pb::HealthIssue {
                entity_type: i.entity_type.clone(),
                entity_id: i.entity_id.clone(),
                level: level(i.level),
                error_code: i.error_code,
                message: i.message.clone(),
                possible_solution: i.possible_solution.clone(),
                blocking: i.blocking,
            })
            .collect(),
        app_subscribed: p.app_subscribed,
        token_valid: p.token_valid,
        last_synced_at: p.last_synced_at.map(ts),
        resync_pending: v.resync_pending,
    }
}

pub fn message_status(s: &str) -> pb::MessageStatus {
    match s {
        "queued" => pb::MessageStatus::Queued,
        "scheduled" => pb::MessageStatus::Scheduled,
        "processing" => pb::MessageStatus::Processing,
        "retrying" => pb::MessageStatus::Retrying,
        "sent" => pb::MessageStatus::Sent,
        "delivered" => pb::MessageStatus::Delivered,
        "read" => pb::MessageStatus::Read,
        "failed" => pb::MessageStatus::Failed,
        _ => pb::MessageStatus::Unspecified,
    }
}

pub fn message_type(s: &str) -> pb::MessageType {
    use pb::MessageType as T;
    match s {
        "text" => T::Text,
        "image" => T::Image,
        "video" => T::Video,
        "audio" => T::Audio,
        "document" => T::Document,
        "sticker" => T::Sticker,
        "location" => T::Location,
        "contacts" => T::Contacts,
        "interactive" => T::Interactive,
        "template" => T::Template,
        "reaction" => T::Reaction,
        "button" => T::Button,
        "order" => T::Order,
        "system" => T::System,
        "edit" => T::Edit,
        "revoke" => T::Revoke,
        _ => T::Unsupported,
    }
}

fn opt_struct(v: &Option<serde_json::Value>) -> Option<prost_types::Struct> {
    v.as_ref().filter(|v| v.is_object()).map(json_struct)
}

/// A message with its contact's identity fields, and its timeline when given.
pub fn message(
    m: &crate::store::messages::MessageRow,
    contact: Option<&crate::store::contacts::ContactRow>,
    timeline: &[crate::store::messages::MessageEventRow],
) -> pb::Message {
    let c = contact.map(|c| c.fields()).unwrap_or_default();
    let failed = m.status == "failed" || m.error_message.is_some();
    pb::Message {
        id: m.id.to_string(),
        wamid: m.wamid.clone(),
        direction: if m.direction == "inbound" {
            pb::Direction::Inbound
        } else {
            pb::Direction::Outbound
        } as i32,
        r#type: message_type(&m.kind) as i32,
        content: Some(json_struct(&m.content)),
        status: message_status(&m.status) as i32,
        timestamp: Some(ts(crate::domain::message_view::timestamp(m))),
        error: failed.then(|| pb::MessageError {
            code: m.error_code,
            title: m.error_title.clone(),
            message: m.error_message.clone().unwrap_or_default(),
            details: m.error_details.clone(),
        }),
        error_message: m.error_message.clone(),
        phone_id: m.phone_id.to_string(),
        conversation_id: m.conversation_id.map(|id| id.to_string()),
        batch_id: m.batch_id.map(|id| id.to_string()),
        to: m.recipient.clone(),
        contact_id: c.contact_id,
        contact_identifier: c.identifier,
        contact_identifier_type: c.identifier_type,
        contact_reply_to: c.reply_to,
        contact_phone: c.phone,
        contact_name: c.name,
        business_scoped_user_id: c.bsuid,
        parent_business_scoped_user_id: c.parent_bsuid,
        username: c.username,
        send_at: m.send_at.map(ts),
        attempts: m.attempts,
        pricing: opt_struct(&m.pricing),
        warnings: m
            .warnings
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        created_at: Some(ts(m.created_at)),
        updated_at: Some(ts(m.updated_at)),
        timeline: timeline
            .iter()
            .map(|e| pb::TimelineEntry {
                status: message_status(&e.status) as i32,
                at: Some(ts(e.at)),
                attempt: e.attempt,
                error_code: e.error_code,
                error_title: e.error_title.clone(),
                error_details: e.error_details.clone(),
                error_message: e.error_message.clone(),
                pricing: opt_struct(&e.pricing),
                source: e.source.clone(),
                note: e.note.clone(),
            })
            .collect(),
    }
}

/// A conversation with its contact's identity fields.
pub fn conversation(
    conv: &crate::store::contacts::ConversationRow,
    contact: &crate::store::contacts::ContactRow,
) -> pb::Conversation {
    let c = contact.fields();
    let now = chrono::Utc::now();
    pb::Conversation {
        id: conv.id.to_string(),
        phone_id: conv.phone_id.to_string(),
        contact_id: contact.id.to_string(),
        contact_identifier: contact.identifier.clone(),
        contact_identifier_type: contact.identifier_type.clone(),
        contact_reply_to: c.reply_to.unwrap_or_default(),
        contact_phone: c.phone,
        contact_name: c.name,
        business_scoped_user_id: c.bsuid,
        parent_business_scoped_user_id: c.parent_bsuid,
        username: c.username,
        last_message_at: conv.last_message_at.map(ts),
        created_at: Some(ts(conv.created_at)),
        unread_count: conv.unread_count,
        window_expires_at: conv.window_expires_at().map(ts),
        window_open: conv.window_open(now),
    }
}

/// google.protobuf.Value -> serde_json.
pub fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            // Integral numbers stay integers (ids, indexes in Meta payloads).
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => list_to_json(l),
        Some(Kind::StructValue(s)) => struct_to_json(s),
    }
}

pub fn list_to_json(l: &prost_types::ListValue) -> serde_json::Value {
    serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
}

pub fn struct_to_json(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

/// A request's time: refused, naming `field`, when it is not a valid
/// `Timestamp` (nanos outside 0..1e9, or a time chrono cannot hold), where
/// dropping it would turn a scheduled send into one sent now.
pub fn request_time(field: &str, t: &prost_types::Timestamp) -> Result<DateTime<Utc>, DomainError> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .and_then(|n| DateTime::from_timestamp(t.seconds, n))
        .ok_or_else(|| DomainError::validation(field, format!("{field} is not a valid time")))
}

/// [`request_time`] of an optional field.
pub fn optional_time(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, DomainError> {
    t.map(|t| request_time(field, t)).transpose()
}

/// A request's enum value: `None` for the zero `*_UNSPECIFIED` (not given),
/// refused, naming `field`, when it is no value of the enum (gRPC carries
/// any number; ignoring one listed every status).
pub fn request_enum<E: TryFrom<i32>>(field: &str, v: i32) -> Result<Option<E>, DomainError> {
    if v == 0 {
        return Ok(None);
    }
    E::try_from(v)
        .map(Some)
        .map_err(|_| DomainError::validation(field, format!("{field} {v} is not a known value")))
}
