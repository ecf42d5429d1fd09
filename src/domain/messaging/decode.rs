//! Meta-shaped objects the client passes through (template components,
//! contact cards, interactive objects) into the Graph types, with errors a
//! client can act on: the exact path of the field as they sent it
//! (`template.components[0].parameters[0].text`) in plain words, never Rust
//! type names or serde's phrasing.
//!
//! serde reports what went wrong but, inside internally tagged enums and
//! flattened structs, not where (it buffers those objects before reading
//! them). The path it does know is followed in the client's JSON, and the
//! rest is recovered from that JSON: the object a missing field belongs to,
//! the value that has the wrong type.
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use crate::domain::{DomainError, DomainResult};

/// Where an unknown position in the client's JSON leads.
static NOTHING: Value = Value::Null;

/// `value`, which the client sent as `field`, as a `T`.
pub fn typed<T: DeserializeOwned>(value: &Value, field: &str) -> DomainResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (at, node) = follow(value, field, e.path());
        explain(&at, node, &e.inner().to_string())
    })
}

/// The path serde knows, in the client's spelling, and the value there.
fn follow<'a>(root: &'a Value, field: &str, path: &Path) -> (String, &'a Value) {
    let mut at = field.to_owned();
    let mut node = root;
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                at.push_str(&format!("[{index}]"));
                node = node.get(*index).unwrap_or(&NOTHING);
            }
            Segment::Map { key } => {
                at = join(&at, key);
                node = node.get(key.as_str()).unwrap_or(&NOTHING);
            }
            // An externally tagged variant is a key of its own in the JSON.
            Segment::Enum { variant } => {
                if let Some(inner) = node.get(variant.as_str()) {
                    at = join(&at, variant);
                    node = inner;
                }
            }
            Segment::Unknown => break,
        }
    }
    (at, node)
}

/// serde's complaint, reworded for the client and pinned to its field.
fn explain(at: &str, node: &Value, message: &str) -> DomainError {
    let (field, text) = if let Some(name) = quoted(message, "missing field `") {
        let f = join(&owner(at, node).0, name);
        let text = format!("{f} is required");
        (f, text)
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (variant, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let f = locate(at, node, &|v| v.as_str() == Some(variant));
        let options = spellings(expected);
        let text = if options.is_empty() {
            format!("{f} {variant:?} is not supported")
        } else {
            format!("{f} must be one of: {}", options.join(", "))
        };
        (f, text)
    } else if let Some(rest) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
    {
        let (unexpected, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
        let f = locate(at, node, &|v| is(v, unexpected));
        let text = match describe(expected) {
            Some(wanted) => format!("{f} must be {wanted}"),
            None => format!("{f} is not valid"),
        };
        (f, text)
    } else if let Some(name) = quoted(message, "duplicate field `") {
        let f = join(at, name);
        let text = format!("{f} is given more than once");
        (f, text)
    } else {
        // E.g. none of `id` and `link` in a media object.
        let f = owner(at, node).0;
        let text = format!("{f} is not valid");
        (f, text)
    };
    DomainError::validation(&field, text)
}

/// The text between `prefix` (at the start) and the next backtick.
fn quoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// Meta's tagged objects keep their payload under the tag's name
/// (`{"type": "currency", "currency": {…}}`): serde reports errors inside
/// it at the tagged object, so they are followed down into the payload.
fn owner<'a>(at: &str, node: &'a Value) -> (String, &'a Value) {
    let mut at = at.to_owned();
    let mut node = node;
    while let Some(tag) = node.get("type").and_then(Value::as_str) {
        match node.get(tag) {
            Some(inner) if inner.is_object() => {
                at = join(&at, tag);
                node = inner;
            }
            _ => break,
        }
    }
    (at, node)
}

/// The path of the value serde complained about: the value at `at` (or
/// its tagged payload) when it is the one, else the first one below it.
fn locate(at: &str, node: &Value, wanted: &dyn Fn(&Value) -> bool) -> String {
    let (at, node) = owner(at, node);
    if wanted(node) {
        return at;
    }
    below(&at, node, wanted).unwrap_or(at)
}

fn below(at: &str, node: &Value, wanted: &dyn Fn(&Value) -> bool) -> Option<String> {
    let children: Vec<(String, &Value)> = match node {
        Value::Object(o) => o.iter().map(|(k, v)| (join(at, k), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{at}[{i}]"), v))
            .collect(),
        _ => return None,
    };
    // Nearest first: a child before a grandchild.
    if let Some((path, _)) = children.iter().find(|(_, c)| wanted(c)) {
        return Some(path.clone());
    }
    children.iter().find_map(|(path, c)| below(path, c, wanted))
}

/// Whether `v` is the value serde describes as `unexpected` (serde_json's
/// wording: `string "x"`, `integer `1``, `floating point `1.5``,
/// `boolean `true``, `null`, `map`, `sequence`).
fn is(v: &Value, unexpected: &str) -> bool {
    let inner = |prefix: &str| {
        unexpected
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix('`'))
    };
    match v {
        Value::Null => unexpected == "null" || unexpected == "unit value",
        Value::Bool(b) => inner("boolean `") == Some(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = inner("integer `") {
                i == n.to_string()
            } else if let Some(f) = inner("floating point `") {
                f.parse::<f64>().ok() == n.as_f64()
            } else {
                false
            }
        }
        Value::String(s) => unexpected.strip_prefix("string ") == Some(format!("{s:?}").as_str()),
        Value::Array(_) => unexpected == "sequence",
        Value::Object(_) => unexpected == "map",
    }
}

/// What serde expected, in the client's terms (None: nothing plain to say).
fn describe(expected: &str) -> Option<String> {
    let e = expected.trim();
    let plain = match e {
        "a sequence" | "sequence" => "a list",
        "a map" | "map" => "an object",
        "a string" | "a borrowed string" | "string" | "a character" => "a string",
        // An enum's value (`"header"`), which may also be spelled as an object.
        "variant identifier" | "field identifier" | "string or map" => "a string",
        "a boolean" | "bool" => "true or false",
        "f32" | "f64" => "a number",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        _ if e.starts_with("struct ")
            || e.contains("enum ")
            || e.starts_with("a map")
            || e.starts_with("map") =>
        {
            "an object"
        }
        // A fixed value (`"reply"`, `"cta_url"`).
        _ if !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            return Some(format!("{e:?}"));
        }
        _ => return None,
    };
    Some(plain.to_owned())
}

/// The accepted spellings listed after "expected one of" (each between
/// backticks), one per value whatever its case, lowercase preferred.
fn spellings(expected: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, part) in expected.split('`').enumerate() {
        if i % 2 == 0 || part.is_empty() {
            continue;
        }
        match out.iter_mut().find(|o| o.eq_ignore_ascii_case(part)) {
            Some(seen) => {
                if part.chars().all(|c| !c.is_ascii_uppercase()) {
                    *seen = part.to_owned();
                }
            }
            None => out.push(part.to_owned()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wagate_meta::contact::ContactCard;
    use wagate_meta::graph::messages::Interactive;
    use wagate_meta::graph::messages::template::TemplateComponent;

    use super::*;

    fn error<T: DeserializeOwned + std::fmt::Debug>(v: Value, field: &str) -> (String, String) {
        match typed::<T>(&v, field) {
            Err(DomainError::Validation { field, message }) => (field, message),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    /// Nothing of serde or Rust reaches the client.
    fn plain(message: &str) {
        for leak in [
            "`",
            "struct",
            "variant",
            "serde",
            "expected",
            "invalid type",
        ] {
            assert!(!message.contains(leak), "{leak} in {message:?}");
        }
    }

    #[test]
    fn template_components_name_the_field() {
        let cases = [
            (
                json!([1]),
                "template.components[0]",
                "template.components[0] must be an object",
            ),
            (
                json!([{"type": "bogus"}]),
                "template.components[0].type",
                "template.components[0].type must be one of: header, body, button",
            ),
            (
                json!([{"type": "body", "parameters": [{"type": "text"}]}]),
                "template.components[0].parameters[0].text",
                "template.components[0].parameters[0].text is required",
            ),
            (
                json!([{"type": "body", "parameters": [{"type": "text", "text": 5}]}]),
                "template.components[0].parameters[0].text",
                "template.components[0].parameters[0].text must be a string",
            ),
            (
                json!([{"type": "body", "parameters": [{"type": "emoji"}]}]),
                "template.components[0].parameters[0].type",
                "template.components[0].parameters[0].type must be one of: text, currency, date_time, image, video, document, location, payload, coupon_code, action",
            ),
            (
                json!([{"type": "body", "parameters": [{"type": "currency", "currency": {"code": "USD", "amount_1000": 100}}]}]),
                "template.components[0].parameters[0].currency.fallback_value",
                "template.components[0].parameters[0].currency.fallback_value is required",
            ),
            (
                json!([{"type": "body", "parameters": [{"type": "currency", "currency": {"code": "USD", "fallback_value": "$1", "amount_1000": "lots"}}]}]),
                "template.components[0].parameters[0].currency.amount_1000",
                "template.components[0].parameters[0].currency.amount_1000 must be a whole number",
            ),
            (
                json!([{"type": "button", "index": -1}]),
                "template.components[0].index",
                "template.components[0].index must be a whole number, 0 or more",
            ),
            (
                json!([{"type": "body", "parameters": "x"}]),
                "template.components[0].parameters",
                "template.components[0].parameters must be a list",
            ),
        ];
        for (components, field, message) in cases {
            let (f, m) = error::<Vec<TemplateComponent>>(components.clone(), "template.components");
            assert_eq!((f.as_str(), m.as_str()), (field, message), "{components}");
            plain(&m);
        }
    }

    #[test]
    fn contact_cards_name_the_field() {
        let (f, m) = error::<ContactCard>(
            json!({"name": {"formatted_name": "A"}, "phones": "x"}),
            "contacts[0]",
        );
        assert_eq!(f, "contacts[0].phones");
        assert_eq!(m, "contacts[0].phones must be a list");
        let (f, m) = error::<ContactCard>(
            json!({"name": {"formatted_name": "A"}, "phones": [{"phone": 5}]}),
            "contacts[0]",
        );
        assert_eq!(f, "contacts[0].phones[0].phone");
        assert_eq!(m, "contacts[0].phones[0].phone must be a string");
        plain(&m);
    }

    #[test]
    fn interactive_objects_name_the_field() {
        let button = |b: Value| json!({"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [b]}});
        let (f, m) = error::<Interactive>(
            button(json!({"type": "link", "reply": {"id": "1", "title": "A"}})),
            "interactive",
        );
        assert_eq!(f, "interactive.action.buttons[0].type");
        assert_eq!(m, "interactive.action.buttons[0].type must be \"reply\"");
        let (f, m) = error::<Interactive>(
            json!({"type": "button", "header": {"type": "image"}, "body": {"text": "Pick"},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "A"}}]}}),
            "interactive",
        );
        assert_eq!(f, "interactive.header.image");
        assert_eq!(m, "interactive.header.image is required");
    }

    #[test]
    fn spellings_collapse_case() {
        assert_eq!(
            spellings(" one of `HEADER`, `header`, `BODY`, `body`"),
            ["header", "body"]
        );
    }
}
