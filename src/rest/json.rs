//! JSON <-> protobuf for the REST surface, driven by descriptors.
//!
//! This is proto3's canonical JSON mapping with the contract's choices:
//! lowerCamelCase names; enum values spelled as documented (the
//! `(wagate.v1.json_value)` option, else the value name without the enum
//! prefix, lowercased); defaults (`false`, `0`, `""`, `[]`) always present;
//! unset fields that have presence rendered as `null`; 64-bit integers as JSON
//! numbers; timestamps as RFC 3339 with milliseconds. Decoding rejects unknown
//! fields and names the offending field in its error.
use std::collections::HashMap;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MapKey,
    MessageDescriptor, ReflectMessage, Value,
};
use serde_json::{Map, Number, Value as Json};

/// A decoding error: which field, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// Dotted lowerCamelCase path of the offending field; empty for the body itself.
    pub field: String,
    pub message: String,
}

impl JsonError {
    fn at(field: &str, what: impl std::fmt::Display) -> Self {
        let message = if field.is_empty() {
            what.to_string()
        } else {
            format!("field '{field}': {what}")
        };
        Self {
            field: field.to_owned(),
            message,
        }
    }
}

/// Enum spellings for every enum in the pool, computed once at start-up.
#[derive(Debug, Default)]
pub struct JsonMapping {
    /// enum full name -> (number -> JSON string)
    to_json: HashMap<String, HashMap<i32, String>>,
    /// enum full name -> (accepted spelling -> number)
    from_json: HashMap<String, HashMap<String, i32>>,
}

impl JsonMapping {
    pub fn new(pool: &DescriptorPool) -> Self {
        let ext = pool.get_extension_by_name("wagate.v1.json_value");
        let mut mapping = Self::default();
        for e in pool.all_enums() {
            let prefix = enum_prefix(&e);
            let mut to = HashMap::new();
            let mut from = HashMap::new();
            for v in e.values() {
                let custom = ext.as_ref().and_then(|ext| {
                    let opts = v.options();
                    if opts.has_extension(ext) {
                        opts.get_extension(ext).as_str().map(str::to_owned)
                    } else {
                        None
                    }
                });
                let spelled = custom.unwrap_or_else(|| {
                    v.name()
                        .strip_prefix(&prefix)
                        .unwrap_or(v.name())
                        .to_ascii_lowercase()
                });
                // The zero `*_UNSPECIFIED` value means "not given": a client
                // cannot name it (`?status=unspecified` listed every status).
                if !is_unspecified(&v) {
                    from.insert(v.name().to_owned(), v.number());
                    from.insert(spelled.clone(), v.number());
                }
                to.insert(v.number(), spelled);
            }
            mapping.to_json.insert(e.full_name().to_owned(), to);
            mapping.from_json.insert(e.full_name().to_owned(), from);
        }
        mapping
    }

    /// The documented spelling of an enum value, `None` for the zero
    /// `*_UNSPECIFIED` value (rendered as `null`).
    pub fn enum_to_json(&self, e: &EnumDescriptor, number: i32) -> Option<String> {
        if number == 0 && e.get_value(0).is_some_and(|v| is_unspecified(&v)) {
            return None;
        }
        self.to_json
            .get(e.full_name())
            .and_then(|m| m.get(&number))
            .cloned()
    }

    /// Documented spellings of an enum's values (for OpenAPI), zero excluded.
    pub fn enum_spellings(&self, e: &EnumDescriptor) -> Vec<String> {
        e.values()
            .filter(|v| !is_unspecified(v))
            .filter_map(|v| self.enum_to_json(e, v.number()))
            .collect()
    }

    fn enum_from_str(&self, e: &EnumDescriptor, s: &str) -> Option<i32> {
        self.from_json
            .get(e.full_name())
            .and_then(|m| m.get(s))
            .copied()
    }

    // ---------------------------------------------------------------- encode

    pub fn encode(&self, msg: &DynamicMessage) -> Json {
        match msg.descriptor().full_name() {
            "google.protobuf.Timestamp" => timestamp_to_json(msg),
            "google.protobuf.Struct" => self.struct_to_json(msg),
            "google.protobuf.Value" => self.value_msg_to_json(msg),
            "google.protobuf.ListValue" => self.list_value_to_json(msg),
            "google.protobuf.Empty" => Json::Object(Map::new()),
            _ => {
                let desc = msg.descriptor();
                let mut out = Map::new();
                for field in desc.fields() {
                    let v = if field.is_list() || field.is_map() {
                        self.encode_value(&msg.get_field(&field), &field.kind())
                    } else if field.supports_presence() && !msg.has_field(&field) {
                        Json::Null
                    } else {
                        self.encode_value(&msg.get_field(&field), &field.kind())
                    };
                    out.insert(field.json_name().to_owned(), v);
                }
                Json::Object(out)
            }
        }
    }

    fn encode_value(&self, value: &Value, kind: &Kind) -> Json {
        match value {
            Value::Bool(b) => Json::Bool(*b),
            Value::I32(n) => Json::from(*n),
            Value::I64(n) => Json::from(*n),
            Value::U32(n) => Json::from(*n),
            Value::U64(n) => Json::from(*n),
            Value::F32(f) => float_to_json(f64::from(*f)),
            Value::F64(f) => float_to_json(*f),
            Value::String(s) => Json::String(s.clone()),
            Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::EnumNumber(n) => match kind {
                Kind::Enum(e) => self
                    .enum_to_json(e, *n)
                    .map(Json::String)
                    .unwrap_or(Json::Null),
                _ => Json::from(*n),
            },
            Value::Message(m) => self.encode(m),
            Value::List(items) => {
                Json::Array(items.iter().map(|v| self.encode_value(v, kind)).collect())
            }
            Value::Map(entries) => {
                let value_kind = match kind {
                    Kind::Message(m) if m.is_map_entry() => m.map_entry_value_field().kind(),
                    other => other.clone(),
                };
                let mut keys: Vec<_> = entries.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                Json::Object(
                    keys.into_iter()
                        .map(|(k, v)| (map_key_to_string(k), self.encode_value(v, &value_kind)))
                        .collect(),
                )
            }
        }
    }

    fn struct_to_json(&self, msg: &DynamicMessage) -> Json {
        let Some(fields) = msg.descriptor().get_field_by_name("fields") else {
            return Json::Object(Map::new());
        };
        let mut out = Map::new();
        if let Value::Map(entries) = &*msg.get_field(&fields) {
            let mut keys: Vec<_> = entries.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in keys {
                let json = match v {
                    Value::Message(m) => self.value_msg_to_json(m),
                    _ => Json::Null,
                };
                out.insert(map_key_to_string(k), json);
            }
        }
        Json::Object(out)
    }

    fn list_value_to_json(&self, msg: &DynamicMessage) -> Json {
        let Some(values) = msg.descriptor().get_field_by_name("values") else {
            return Json::Array(Vec::new());
        };
        match &*msg.get_field(&values) {
            Value::List(items) => Json::Array(
                items
                    .iter()
                    .map(|v| match v {
                        Value::Message(m) => self.value_msg_to_json(m),
                        _ => Json::Null,
                    })
                    .collect(),
            ),
            _ => Json::Array(Vec::new()),
        }
    }

    fn value_msg_to_json(&self, msg: &DynamicMessage) -> Json {
        let desc = msg.descriptor();
        for field in desc.fields() {
            if !msg.has_field(&field) {
                continue;
            }
            return match (field.name(), &*msg.get_field(&field)) {
                ("null_value", _) => Json::Null,
                ("number_value", Value::F64(f)) => struct_number_to_json(*f),
                ("string_value", Value::String(s)) => Json::String(s.clone()),
                ("bool_value", Value::Bool(b)) => Json::Bool(*b),
                ("struct_value", Value::Message(m)) => self.struct_to_json(m),
                ("list_value", Value::Message(m)) => self.list_value_to_json(m),
                _ => Json::Null,
            };
        }
        Json::Null
    }

    // ---------------------------------------------------------------- decode

    /// Builds a message from a JSON object, rejecting unknown fields.
    pub fn decode(
        &self,
        desc: &MessageDescriptor,
        json: &Json,
    ) -> Result<DynamicMessage, JsonError> {
        self.decode_message(desc, json, "")
    }

    fn decode_message(
        &self,
        desc: &MessageDescriptor,
        json: &Json,
        path: &str,
    ) -> Result<DynamicMessage, JsonError> {
        match desc.full_name() {
            "google.protobuf.Timestamp" => return timestamp_from_json(desc, json, path),
            "google.protobuf.Struct" => return self.struct_from_json(desc, json, path),
            "google.protobuf.Value" => return self.value_msg_from_json(desc, json, path),
            "google.protobuf.ListValue" => return self.list_value_from_json(desc, json, path),
            _ => {}
        }
        let Json::Object(obj) = json else {
            return Err(JsonError::at(path, "expected a JSON object"));
        };
        let mut msg = DynamicMessage::new(desc.clone());
        for (key, value) in obj {
            let field = desc
                .get_field_by_json_name(key)
                .or_else(|| desc.get_field_by_name(key))
                .ok_or_else(|| JsonError::at(&join(path, key), "unknown field"))?;
            if value.is_null() {
                continue;
            }
            let fpath = join(path, field.json_name());
            if let Some(oneof) = field.containing_oneof()
                && !oneof.is_synthetic()
                && oneof
                    .fields()
                    .any(|f| f.number() != field.number() && msg.has_field(&f))
            {
                return Err(JsonError::at(
                    &fpath,
                    format!("only one of the '{}' fields may be set", oneof.name()),
                ));
            }
            let v = self.decode_field(&field, value, &fpath)?;
            msg.set_field(&field, v);
        }
        Ok(msg)
    }

    fn decode_field(
        &self,
        field: &FieldDescriptor,
        json: &Json,
        path: &str,
    ) -> Result<Value, JsonError> {
        if field.is_map() {
            let Json::Object(obj) = json else {
                return Err(JsonError::at(path, "expected a JSON object"));
            };
            let Kind::Message(entry) = field.kind() else {
                return Err(JsonError::at(path, "unsupported map field"));
            };
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let mut map = HashMap::new();
            for (k, v) in obj {
                let key = map_key_from_str(&key_kind, k)
                    .ok_or_else(|| JsonError::at(&join(path, k), "invalid map key"))?;
                map.insert(key, self.decode_single(&value_kind, v, &join(path, k))?);
            }
            return Ok(Value::Map(map));
        }
        if field.is_list() {
            let Json::Array(items) = json else {
                return Err(JsonError::at(path, "expected a JSON array"));
            };
            let kind = field.kind();
            let values = items
                .iter()
                .enumerate()
                .map(|(i, v)| self.decode_single(&kind, v, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Value::List(values));
        }
        self.decode_single(&field.kind(), json, path)
    }

    fn decode_single(&self, kind: &Kind, json: &Json, path: &str) -> Result<Value, JsonError> {
        Ok(match kind {
            Kind::Bool => match json {
                Json::Bool(b) => Value::Bool(*b),
                Json::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
                _ => return Err(JsonError::at(path, "expected true or false")),
            },
            Kind::String => match json {
                Json::String(s) => Value::String(s.clone()),
                _ => return Err(JsonError::at(path, "expected a string")),
            },
            Kind::Bytes => match json {
                Json::String(s) => Value::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
                        .map_err(|_| JsonError::at(path, "expected base64"))?
                        .into(),
                ),
                _ => return Err(JsonError::at(path, "expected a base64 string")),
            },
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(
                int_from_json(json, path)?
                    .try_into()
                    .map_err(|_| out_of_range(path))?,
            ),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int_from_json(json, path)?),
            Kind::Uint32 | Kind::Fixed32 => Value::U32(
                int_from_json(json, path)?
                    .try_into()
                    .map_err(|_| out_of_range(path))?,
            ),
            Kind::Uint64 | Kind::Fixed64 => Value::U64(
                int_from_json(json, path)?
                    .try_into()
                    .map_err(|_| out_of_range(path))?,
            ),
            Kind::Double => Value::F64(float_from_json(json, path)?),
            Kind::Float => Value::F32(float_from_json(json, path)? as f32),
            Kind::Enum(e) => match json {
                Json::String(s) => {
                    Value::EnumNumber(self.enum_from_str(e, s).ok_or_else(|| {
                        JsonError::at(
                            path,
                            format!("must be one of: {}", self.enum_spellings(e).join(", ")),
                        )
                    })?)
                }
                Json::Number(n) => Value::EnumNumber(
                    n.as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .filter(|n| e.get_value(*n).is_some_and(|v| !is_unspecified(&v)))
                        .ok_or_else(|| JsonError::at(path, "unknown enum value"))?,
                ),
                _ => return Err(JsonError::at(path, "expected a string")),
            },
            Kind::Message(m) => Value::Message(self.decode_message(m, json, path)?),
        })
    }

    fn struct_from_json(
        &self,
        desc: &MessageDescriptor,
        json: &Json,
        path: &str,
    ) -> Result<DynamicMessage, JsonError> {
        let Json::Object(obj) = json else {
            return Err(JsonError::at(path, "expected a JSON object"));
        };
        let mut msg = DynamicMessage::new(desc.clone());
        let Some(fields) = desc.get_field_by_name("fields") else {
            return Ok(msg);
        };
        let Kind::Message(entry) = fields.kind() else {
            return Ok(msg);
        };
        let Kind::Message(value_desc) = entry.map_entry_value_field().kind() else {
            return Ok(msg);
        };
        let mut map = HashMap::new();
        for (k, v) in obj {
            let value = self.value_msg_from_json(&value_desc, v, &join(path, k))?;
            map.insert(MapKey::String(k.clone()), Value::Message(value));
        }
        msg.set_field(&fields, Value::Map(map));
        Ok(msg)
    }

    fn list_value_from_json(
        &self,
        desc: &MessageDescriptor,
        json: &Json,
        path: &str,
    ) -> Result<DynamicMessage, JsonError> {
        let Json::Array(items) = json else {
            return Err(JsonError::at(path, "expected a JSON array"));
        };
        let mut msg = DynamicMessage::new(desc.clone());
        let Some(values) = desc.get_field_by_name("values") else {
            return Ok(msg);
        };
        let Kind::Message(value_desc) = values.kind() else {
            return Ok(msg);
        };
        let list = items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                self.value_msg_from_json(&value_desc, v, &format!("{path}[{i}]"))
                    .map(Value::Message)
            })
            .collect::<Result<Vec<_>, _>>()?;
        msg.set_field(&values, Value::List(list));
        Ok(msg)
    }

    fn value_msg_from_json(
        &self,
        desc: &MessageDescriptor,
        json: &Json,
        path: &str,
    ) -> Result<DynamicMessage, JsonError> {
        let mut msg = DynamicMessage::new(desc.clone());
        let set = |msg: &mut DynamicMessage, name: &str, v: Value| {
            if let Some(f) = desc.get_field_by_name(name) {
                msg.set_field(&f, v);
            }
        };
        match json {
            Json::Null => set(&mut msg, "null_value", Value::EnumNumber(0)),
            Json::Bool(b) => set(&mut msg, "bool_value", Value::Bool(*b)),
            Json::Number(n) => set(
                &mut msg,
                "number_value",
                Value::F64(n.as_f64().unwrap_or(0.0)),
            ),
            Json::String(s) => set(&mut msg, "string_value", Value::String(s.clone())),
            Json::Array(_) => {
                if let Some(f) = desc.get_field_by_name("list_value")
                    && let Kind::Message(lv) = f.kind()
                {
                    let v = self.list_value_from_json(&lv, json, path)?;
                    msg.set_field(&f, Value::Message(v));
                }
            }
            Json::Object(_) => {
                if let Some(f) = desc.get_field_by_name("struct_value")
                    && let Kind::Message(sv) = f.kind()
                {
                    let v = self.struct_from_json(&sv, json, path)?;
                    msg.set_field(&f, Value::Message(v));
                }
            }
        }
        Ok(msg)
    }

    /// Sets a (possibly dotted) field from a text value: a path variable or a
    /// query parameter. Repeated fields append.
    pub fn set_from_text(
        &self,
        msg: &mut DynamicMessage,
        dotted: &str,
        text: &str,
    ) -> Result<(), JsonError> {
        let mut parts = dotted.split('.').peekable();
        let mut current = msg;
        let mut path = String::new();
        while let Some(part) = parts.next() {
            let desc = current.descriptor();
            let field = desc
                .get_field_by_json_name(part)
                .or_else(|| desc.get_field_by_name(part))
                .ok_or_else(|| JsonError::at(&join(&path, part), "unknown parameter"))?;
            path = join(&path, field.json_name());
            if parts.peek().is_none() {
                let kind = field.kind();
                let value = text_to_value(self, &kind, text, &path)?;
                if field.is_list() {
                    if let Value::List(items) = current.get_field_mut(&field) {
                        items.push(value);
                    }
                } else if field.is_map() {
                    return Err(JsonError::at(
                        &path,
                        "map fields cannot be set from the query",
                    ));
                } else {
                    current.set_field(&field, value);
                }
                return Ok(());
            }
            let Kind::Message(_) = field.kind() else {
                return Err(JsonError::at(&path, "is not an object"));
            };
            if field.is_list() || field.is_map() {
                return Err(JsonError::at(
                    &path,
                    "repeated objects cannot be set from the query",
                ));
            }
            match current.get_field_mut(&field) {
                Value::Message(m) => current = m,
                _ => return Err(JsonError::at(&path, "is not an object")),
            }
        }
        Ok(())
    }
}

fn text_to_value(
    mapping: &JsonMapping,
    kind: &Kind,
    text: &str,
    path: &str,
) -> Result<Value, JsonError> {
    let json = match kind {
        Kind::String | Kind::Bytes | Kind::Enum(_) => Json::String(text.to_owned()),
        Kind::Bool => match text {
            "true" | "1" => Json::Bool(true),
            "false" | "0" => Json::Bool(false),
            _ => return Err(JsonError::at(path, "expected true or false")),
        },
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            Json::String(text.to_owned())
        }
        Kind::Message(_) => return Err(JsonError::at(path, "cannot be set from text")),
        _ => Json::String(text.to_owned()),
    };
    mapping.decode_single(kind, &json, path)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn out_of_range(path: &str) -> JsonError {
    JsonError::at(path, "number out of range")
}

fn int_from_json(json: &Json, path: &str) -> Result<i64, JsonError> {
    match json {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| JsonError::at(path, "expected an integer"))
}

fn float_from_json(json: &Json, path: &str) -> Result<f64, JsonError> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| JsonError::at(path, "expected a number"))
}

/// The zero `*_UNSPECIFIED` value of an enum: proto3's "not set".
fn is_unspecified(v: &prost_reflect::EnumValueDescriptor) -> bool {
    v.number() == 0 && v.name().ends_with("_UNSPECIFIED")
}

fn float_to_json(f: f64) -> Json {
    Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
}

/// A number inside a `Struct` (a stored payload passed through, such as
/// Meta's webhook objects or a message's content): a double on the wire,
/// but written back as the integer it was when it is one that a double
/// holds exactly. Otherwise ids such as Meta's `message_template_id` came
/// out as `1.040946744124327e15`, and counts as `3.0`.
fn struct_number_to_json(f: f64) -> Json {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() <= EXACT {
        // Exact: an integral double within 2^53 converts without loss.
        return Json::Number(Number::from(f as i64));
    }
    float_to_json(f)
}

fn map_key_to_string(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn map_key_from_str(kind: &Kind, s: &str) -> Option<MapKey> {
    Some(match kind {
        Kind::String => MapKey::String(s.to_owned()),
        Kind::Bool => MapKey::Bool(s.parse().ok()?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(s.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(s.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(s.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(s.parse().ok()?),
        _ => return None,
    })
}

fn timestamp_to_json(msg: &DynamicMessage) -> Json {
    let seconds = msg
        .get_field_by_name("seconds")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let nanos = msg
        .get_field_by_name("nanos")
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    match DateTime::<Utc>::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0)) {
        Some(t) => Json::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        None => Json::Null,
    }
}

fn timestamp_from_json(
    desc: &MessageDescriptor,
    json: &Json,
    path: &str,
) -> Result<DynamicMessage, JsonError> {
    let Json::String(s) = json else {
        return Err(JsonError::at(path, "expected an RFC 3339 timestamp string"));
    };
    let t = DateTime::parse_from_rfc3339(s).map_err(|_| {
        JsonError::at(
            path,
            "expected an RFC 3339 timestamp, e.g. 2026-03-03T15:30:00Z",
        )
    })?;
    let mut msg = DynamicMessage::new(desc.clone());
    msg.set_field_by_name("seconds", Value::I64(t.timestamp()));
    msg.set_field_by_name(
        "nanos",
        Value::I32(i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0)),
    );
    Ok(msg)
}

/// The common prefix of an enum's value names, e.g. `PLAN_` for `Plan`.
fn enum_prefix(e: &EnumDescriptor) -> String {
    let mut prefix = String::new();
    for (i, c) in e.name().chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            prefix.push('_');
        }
        prefix.push(c.to_ascii_uppercase());
    }
    prefix.push('_');
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        DescriptorPool::decode(crate::pb::DESCRIPTOR).expect("descriptor set decodes")
    }

    #[test]
    fn enum_prefix_from_camel_case() {
        let pool = pool();
        let e = pool
            .get_enum_by_name("wagate.v1.ApiKeyStatus")
            .expect("enum");
        assert_eq!(enum_prefix(&e), "API_KEY_STATUS_");
    }

    #[test]
    fn encodes_contract_shapes() {
        let pool = pool();
        let mapping = JsonMapping::new(&pool);
        let desc = pool.get_message_by_name("wagate.v1.ApiKey").expect("msg");
        let mut msg = DynamicMessage::new(desc);
        msg.set_field_by_name("id", Value::String("k1".into()));
        msg.set_field_by_name("status", Value::EnumNumber(1));
        let json = mapping.encode(&msg);
        assert_eq!(json["id"], "k1");
        assert_eq!(json["name"], "");
        assert_eq!(json["status"], "active");
        assert_eq!(json["lastUsedAt"], Json::Null);
        assert!(json.get("last_used_at").is_none());
    }

    #[test]
    fn error_code_enum_uses_custom_spelling() {
        let pool = pool();
        let mapping = JsonMapping::new(&pool);
        let e = pool.get_enum_by_name("wagate.v1.ErrorCode").expect("enum");
        assert_eq!(
            mapping.enum_to_json(&e, 1).as_deref(),
            Some("VALIDATION_ERROR")
        );
        assert_eq!(mapping.enum_to_json(&e, 0), None);
    }

    #[test]
    fn decode_names_unknown_and_mistyped_fields() {
        let pool = pool();
        let mapping = JsonMapping::new(&pool);
        let desc = pool
            .get_message_by_name("wagate.v1.RegisterRequest")
            .expect("msg");
        let err = mapping
            .decode(&desc, &serde_json::json!({"email": "a@b.c", "bogus": 1}))
            .unwrap_err();
        assert_eq!(err.field, "bogus");
        assert!(err.message.contains("unknown field"));
        let err = mapping
            .decode(&desc, &serde_json::json!({"email": 5}))
            .unwrap_err();
        assert_eq!(err.message, "field 'email': expected a string");
        let ok = mapping
            .decode(
                &desc,
                &serde_json::json!({"email": "a@b.c", "password": null}),
            )
            .expect("decodes");
        assert_eq!(
            ok.get_field_by_name("email")
                .and_then(|v| v.as_str().map(str::to_owned)),
            Some("a@b.c".into())
        );
    }

    #[test]
    fn query_text_sets_scalars() {
        let pool = pool();
        let mapping = JsonMapping::new(&pool);
        let desc = pool
            .get_message_by_name("wagate.v1.ListApiKeysRequest")
            .expect("msg");
        let mut msg = DynamicMessage::new(desc);
        mapping.set_from_text(&mut msg, "page", "2").expect("sets");
        assert_eq!(
            msg.get_field_by_name("page").and_then(|v| v.as_i32()),
            Some(2)
        );
        let err = mapping.set_from_text(&mut msg, "limit", "ten").unwrap_err();
        assert_eq!(err.field, "limit");
        let err = mapping.set_from_text(&mut msg, "nope", "1").unwrap_err();
        assert!(err.message.contains("unknown parameter"));
    }

    #[test]
    fn integral_struct_numbers_stay_integers() {
        assert_eq!(
            struct_number_to_json(1_040_946_744_124_327.0).to_string(),
            "1040946744124327"
        );
        assert_eq!(struct_number_to_json(3.0).to_string(), "3");
        assert_eq!(struct_number_to_json(-40.0).to_string(), "-40");
        assert_eq!(struct_number_to_json(10.5).to_string(), "10.5");
        // Beyond 2^53 a double is not an exact integer: written as it is.
        assert_eq!(struct_number_to_json(1e20).to_string(), "1e+20");
    }
}
