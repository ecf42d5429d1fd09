//! The body of every delivery, as the platform guide documents it:
//! `{"id","event","timestamp","organizationId","data"}`, the timestamp in
//! ISO 8601 with milliseconds and `Z`. Built from the stored event, so every
//! attempt and replay of one event sends the same bytes.
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// The envelope's exact bytes, keys in the documented order. `data` is
/// the event's JSON text as stored (PostgreSQL's canonical `jsonb` text).
pub fn envelope(
    event_id: Uuid,
    event: &str,
    at: DateTime<Utc>,
    org_id: Uuid,
    data: &str,
) -> Vec<u8> {
    let text = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    format!(
        "{{\"id\":{},\"event\":{},\"timestamp\":{},\"organizationId\":{},\"data\":{}}}",
        text(&event_id.to_string()),
        text(event),
        text(&timestamp(at)),
        text(&org_id.to_string()),
        data
    )
    .into_bytes()
}

/// `2026-03-03T15:30:00.000Z`.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn documented_shape() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 3, 15, 30, 0)
            .single()
            .expect("time");
        let id = Uuid::nil();
        let org = Uuid::from_u128(1);
        let body = envelope(
            id,
            "message.received",
            at,
            org,
            &serde_json::json!({"messageId": "m", "contactPhone": null}).to_string(),
        );
        let text = String::from_utf8(body).expect("utf8");
        assert_eq!(
            text,
            r#"{"id":"00000000-0000-0000-0000-000000000000","event":"message.received","timestamp":"2026-03-03T15:30:00.000Z","organizationId":"00000000-0000-0000-0000-000000000001","data":{"contactPhone":null,"messageId":"m"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(parsed["data"]["contactPhone"], serde_json::Value::Null);
    }
}
