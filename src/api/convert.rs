//! Store rows and domain values to proto messages.
use chrono::{DateTime, Utc};

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
