//! Input validation into domain values. Every error names the field as the
//! client spelled it (lowerCamelCase).
use serde_json::Value;
use uuid::Uuid;

use super::{DomainError, DomainResult};
use crate::store::PageRequest;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;

pub fn required_text(field: &str, value: &str, max_chars: usize) -> DomainResult<String> {
    no_nul(field, value)?;
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::validation(
            field,
            format!("{field} is required"),
        ));
    }
    if v.chars().count() > max_chars {
        return Err(DomainError::validation(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// PostgreSQL stores no U+0000 in text or jsonb: a string that will be
/// stored is refused here, naming its field, instead of failing the write.
pub fn no_nul(field: &str, value: &str) -> DomainResult<()> {
    if value.contains('\0') {
        return Err(DomainError::validation(
            field,
            format!("{field} must not contain NUL characters"),
        ));
    }
    Ok(())
}

/// [`no_nul`] over every string and key of a JSON value sent as `field`;
/// the error names the path inside it (`contacts[0].name.formatted_name`).
pub fn no_nul_in_json(field: &str, value: &Value) -> DomainResult<()> {
    // Paths are only spelled out for a value that has a NUL somewhere.
    if !has_nul(value) {
        return Ok(());
    }
    match value {
        Value::String(s) => no_nul(field, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| no_nul_in_json(&format!("{field}[{i}]"), v)),
        Value::Object(o) => o.iter().try_for_each(|(k, v)| {
            // A key with a NUL has no printable path of its own.
            no_nul(field, k)?;
            no_nul_in_json(&format!("{field}.{k}"), v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

pub fn email(value: &str) -> DomainResult<String> {
    let v = required_text("email", value, 254)?;
    let valid = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.contains(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(DomainError::validation(
            "email",
            "email must be a valid email address",
        ));
    }
    Ok(v.to_lowercase())
}

pub fn password(value: &str) -> DomainResult<String> {
    let n = value.chars().count();
    if n < 8 {
        return Err(DomainError::validation(
            "password",
            "password must be at least 8 characters",
        ));
    }
    if n > 256 {
        return Err(DomainError::validation(
            "password",
            "password must be at most 256 characters",
        ));
    }
    Ok(value.to_owned())
}

pub fn uuid(field: &str, value: &str) -> DomainResult<Uuid> {
    Uuid::parse_str(value.trim())
        .map_err(|_| DomainError::validation(field, format!("{field} must be a UUID")))
}

/// `page` is 1-based (0 means 1); `limit` defaults to 50 and may not exceed 100.
pub fn page(page: i32, limit: i32) -> DomainResult<PageRequest> {
    if page < 0 {
        return Err(DomainError::validation("page", "page must be 1 or more"));
    }
    if limit < 0 || i64::from(limit) > MAX_LIMIT {
        return Err(DomainError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(PageRequest {
        page: i64::from(page.max(1)),
        limit: if limit == 0 {
            DEFAULT_LIMIT
        } else {
            i64::from(limit)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            email(" Ann@Example.COM ").expect("valid"),
            "ann@example.com"
        );
        for bad in ["", "ann", "ann@", "@x.io", "ann@localhost", "a b@x.io"] {
            let err = email(bad).unwrap_err();
            assert!(
                matches!(err, DomainError::Validation { ref field, .. } if field == "email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn nul_characters_are_refused_by_field() {
        let err = required_text("name", "a\0b", 100).unwrap_err();
        assert_eq!(err.to_string(), "name must not contain NUL characters");
        let v =
            serde_json::json!({"name": {"formatted_name": "A"}, "phones": [{"phone": "1\u{0}"}]});
        let err = no_nul_in_json("contacts[0]", &v).unwrap_err();
        assert!(
            matches!(err, DomainError::Validation { ref field, .. } if field == "contacts[0].phones[0].phone"),
            "{err:?}"
        );
        assert!(no_nul_in_json("text", &serde_json::json!({"body": "fine"})).is_ok());
    }

    #[test]
    fn pages() {
        assert_eq!(
            page(0, 0).expect("defaults"),
            PageRequest { page: 1, limit: 50 }
        );
        assert_eq!(page(3, 100).expect("max").offset(), 200);
        assert!(page(1, 101).is_err());
        assert!(page(-1, 10).is_err());
    }
}
