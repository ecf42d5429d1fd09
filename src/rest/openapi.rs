//! An OpenAPI 3.1 document generated from the same route table and
//! descriptors the transcoder serves, so REST callers and their tools see
//! exactly what the server does (served at `/openapi.json`).
use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::json::JsonMapping;
use super::routes::{BodyRule, Route, Segment};

pub fn document(routes: &[Route], mapping: &JsonMapping, version: &str) -> Value {
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut messages: BTreeMap<String, MessageDescriptor> = BTreeMap::new();

    for route in routes {
        let input = route.rpc.input();
        let output = route.rpc.output();
        let path_fields: Vec<String> = route
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v.clone()),
                Segment::Literal(_) => None,
            })
            .collect();
        let openapi_path = route
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Var(v) => format!("{{{}}}", super::lower_camel(v)),
            })
            .fold(String::new(), |acc, s| acc + "/" + &s);
        let openapi_path = if openapi_path.is_empty() {
            "/".to_owned()
        } else {
            openapi_path
        };

        let mut params: Vec<Value> = path_fields
            .iter()
            .map(|f| {
                json!({"name": super::lower_camel(f), "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        if route.body != BodyRule::All {
            let body_field = match &route.body {
                BodyRule::Field(f) => Some(f.as_str()),
                _ => None,
            };
            for field in input.fields() {
                if path_fields.iter().any(|p| p == field.name()) || Some(field.name()) == body_field
                {
                    continue;
                }
                query_params(&field, "", mapping, &mut params);
            }
        }

        let mut op = Map::new();
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}_{}",
                route.rpc.parent_service().name(),
                route.rpc.name()
            )),
        );
        op.insert("tags".into(), json!([route.rpc.parent_service().name()]));
        if let Some(doc) = comments(&route.rpc) {
            op.insert("description".into(), json!(doc));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        match &route.body {
            BodyRule::All => {
                collect(&input, &mut messages);
                op.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": schema_ref(&input)}}}));
            }
            BodyRule::Field(f) => {
                if let Some(field) = input.get_field_by_name(f) {
                    let schema = field_schema(&field, mapping, &mut messages);
                    op.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": schema}}}));
                }
            }
            BodyRule::None => {}
        }
        collect(&output, &mut messages);
        let success = if route.success_status == 204 {
            json!({"description": "No content"})
        } else {
            json!({"description": "Success", "content": {"application/json": {"schema": schema_ref(&output)}}})
        };
        let mut responses = Map::new();
        responses.insert(route.success_status.to_string(), success);
        responses.insert("default".into(), json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}));
        op.insert("responses".into(), Value::Object(responses));
        if route.public {
            op.insert("security".into(), json!([]));
        }
        paths.entry(openapi_path).or_default().insert(
            route.method.as_str().to_ascii_lowercase(),
            Value::Object(op),
        );
    }

    let mut schemas = Map::new();
    for (name, desc) in &messages {
        if let Some(s) = message_schema(desc, mapping) {
            schemas.insert(schema_name(name), s);
        }
    }
    schemas.insert(
        "ErrorEnvelope".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["message", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "code": {"type": "string", "enum": crate::error_code::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                    "details": {"type": "object"}
                }
            }}
        }),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wagate",
            "version": version,
            "description": "REST+JSON surface of wagate, transcoded from its gRPC services. Every route answers the envelope {\"data\": …}; lists add {\"meta\": {\"pagination\": …}}; errors are {\"error\": {\"message\", \"code\"}}."
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "description": "An organization API key: sk_org_…"}},
            "schemas": schemas
        },
        "security": [{"bearerAuth": []}],
        "paths": paths,
    })
}

fn schema_name(full: &str) -> String {
    full.strip_prefix("wagate.v1.")
        .unwrap_or(full)
        .replace('.', "_")
}

fn schema_ref(desc: &MessageDescriptor) -> Value {
    json!({"$ref": format!("#/components/schemas/{}", schema_name(desc.full_name()))})
}

fn is_well_known(desc: &MessageDescriptor) -> bool {
    desc.full_name().starts_with("google.protobuf.")
}

fn collect(desc: &MessageDescriptor, out: &mut BTreeMap<String, MessageDescriptor>) {
    if is_well_known(desc) || desc.is_map_entry() || out.contains_key(desc.full_name()) {
        return;
    }
    out.insert(desc.full_name().to_owned(), desc.clone());
    for f in desc.fields() {
        if let Kind::Message(m) = f.kind() {
            if m.is_map_entry() {
                if let Kind::Message(v) = m.map_entry_value_field().kind() {
                    collect(&v, out);
                }
            } else {
                collect(&m, out);
            }
        }
    }
}

fn message_schema(desc: &MessageDescriptor, mapping: &JsonMapping) -> Option<Value> {
    let mut props = Map::new();
    let mut required = Vec::new();
    let mut sink = BTreeMap::new();
    for f in desc.fields() {
        let mut s = field_schema(&f, mapping, &mut sink);
        if let Some(doc) = field_comments(&f)
            && let Value::Object(m) = &mut s
        {
            m.insert("description".into(), json!(doc));
        }
        props.insert(f.json_name().to_owned(), s);
        required.push(f.json_name().to_owned());
    }
    let mut schema = json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    if let Some(doc) = message_comments(desc) {
        schema["description"] = json!(doc);
    }
    Some(schema)
}

fn scalar_schema(
    kind: &Kind,
    mapping: &JsonMapping,
    sink: &mut BTreeMap<String, MessageDescriptor>,
) -> Value {
    match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "integer", "format": "int64"})
        }
        Kind::Float | Kind::Double => json!({"type": "number"}),
        Kind::Enum(e) => {
            json!({"type": ["string", "null"], "enum": mapping.enum_spellings(e).into_iter().map(Value::String).chain([Value::Null]).collect::<Vec<_>>()})
        }
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
            "google.protobuf.Struct" => json!({"type": "object"}),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.ListValue" => json!({"type": "array"}),
            _ => {
                collect(m, sink);
                schema_ref(m)
            }
        },
    }
}

fn field_schema(
    f: &FieldDescriptor,
    mapping: &JsonMapping,
    sink: &mut BTreeMap<String, MessageDescriptor>,
) -> Value {
    if f.is_map()
        && let Kind::Message(entry) = f.kind()
    {
        let v = scalar_schema(&entry.map_entry_value_field().kind(), mapping, sink);
        return json!({"type": "object", "additionalProperties": v});
    }
    let item = scalar_schema(&f.kind(), mapping, sink);
    if f.is_list() {
        return json!({"type": "array", "items": item});
    }
    if f.supports_presence() {
        // Unset optional values are rendered as null.
        return json!({"anyOf": [item, {"type": "null"}]});
    }
    item
}

fn query_params(
    field: &FieldDescriptor,
    prefix: &str,
    mapping: &JsonMapping,
    out: &mut Vec<Value>,
) {
    let name = format!("{prefix}{}", field.json_name());
    match field.kind() {
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            out.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}}));
        }
        Kind::Message(m)
            if !field.is_list()
                && !field.is_map()
                && !m.full_name().starts_with("google.protobuf.") =>
        {
            for sub in m.fields() {
                query_params(&sub, &format!("{name}."), mapping, out);
            }
        }
        Kind::Message(_) => {}
        kind => {
            let mut sink = BTreeMap::new();
            let schema = scalar_schema(&kind, mapping, &mut sink);
            let schema = if field.is_list() {
                json!({"type": "array", "items": schema})
            } else {
                schema
            };
            let mut p = json!({"name": name, "in": "query", "required": false, "schema": schema});
            if field.is_list() {
                p["explode"] = json!(true);
            }
            if let Some(doc) = field_comments(field) {
                p["description"] = json!(doc);
            }
            out.push(p);
        }
    }
}

fn leading_comments(file: &prost_types::FileDescriptorProto, path: &[i32]) -> Option<String> {
    let info = file.source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc.leading_comments.as_deref()?.trim();
    (!text.is_empty()).then(|| text.lines().map(str::trim).collect::<Vec<_>>().join(" "))
}

fn comments(m: &prost_reflect::MethodDescriptor) -> Option<String> {
    leading_comments(m.parent_file().file_descriptor_proto(), m.path())
}

fn message_comments(m: &MessageDescriptor) -> Option<String> {
    leading_comments(m.parent_file().file_descriptor_proto(), m.path())
}

fn field_comments(f: &FieldDescriptor) -> Option<String> {
    leading_comments(f.parent_file().file_descriptor_proto(), f.path())
}
