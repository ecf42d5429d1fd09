//! Meta's error bodies and their classification into retry classes.
//!
//! Decisions are keyed on `error.code` (plus `is_transient`), never on the
//! message text or the HTTP status alone, as Meta recommends. The classes come
//! from the research tables (meta-cloud-api §3.3, reliability §4).
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json::Extra;

/// The inner object of `{"error": {...}}` in Graph responses, also used for
/// the `errors[]` entries of webhooks (which carry `title`/`href` instead of
/// `type`/`fbtrace_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    /// `OAuthException`, `GraphMethodException`, ...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Webhook errors only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_msg: Option<String>,
    /// Meta's request id: keep it in logs, support asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    /// Webhook errors only: link to the error-code page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

impl ErrorBody {
    /// `error_data.details`, the human explanation Meta asks integrators to log.
    pub fn details(&self) -> Option<&str> {
        match self.error_data.as_ref()? {
            ErrorData::Object(o) => o.details.as_deref(),
            ErrorData::Text(s) => Some(s),
            ErrorData::Other(_) => None,
        }
    }

    /// The retry class of this error (see [`classify`]).
    pub fn class(&self) -> ErrorClass {
        classify(self.code, self.is_transient)
    }
}

/// `error_data` is usually an object but has been seen as a plain string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ErrorData {
    Object(ErrorDataObject),
    Text(String),
    /// Any other JSON shape, kept verbatim.
    Other(Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDataObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(flatten, default)]
    pub extra: Extra,
}

/// The `{"error": {...}}` envelope of a Graph error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// What to do about an error. Only the first three are retryable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Temporary failure on Meta's side (1, 2, 131000, 131016, 131057, 133004,
    /// any `is_transient: true`, 5xx without a body, not-sent transport
    /// errors): retry the same message with backoff.
    RetrySameMessage,
    /// The phone number / app / WABA is over a rate limit (130429, 4, 17,
    /// 80007, 613, 341): slow the whole number down, then retry.
    ThrottleNumber,
    /// Too many messages to one recipient (131056): delay only that pair.
    ThrottlePair,
    /// Token or permission problem (190, 0, 10, 200-299): pause, alert, no retries.
    Auth,
    /// Policy or quality enforcement (368, 131048, 131049, 131031): fail and
    /// alert; retrying can worsen the account's standing.
    Policy,
    /// Everything else (100, 131008, 131026, 131047, 131050, 132xxx, ...): fail.
    Final,
    /// The request may have reached Meta but no answer was read: do not resend
    /// blindly (`POST /messages` is not idempotent); reconcile via status
    /// webhooks and `biz_opaque_callback_data`.
    Ambiguous,
}

impl ErrorClass {
    /// Whether an automatic retry is appropriate.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RetrySameMessage | ErrorClass::ThrottleNumber | ErrorClass::ThrottlePair
        )
    }
}

/// Classifies a Meta error code. `is_transient: true` makes any otherwise
/// non-retryable error [`ErrorClass::RetrySameMessage`], because Meta itself
/// says it is temporary.
pub fn classify(code: i64, is_transient: Option<bool>) -> ErrorClass {
    let class = match code {
        1 | 2 | 131000 | 131016 | 131057 | 133004 => ErrorClass::RetrySameMessage,
        4 | 17 | 341 | 613 | 80007 | 130429 => ErrorClass::ThrottleNumber,
        131056 => ErrorClass::ThrottlePair,
        0 | 10 | 190 | 200..=299 => ErrorClass::Auth,
        368 | 131031 | 131048 | 131049 => ErrorClass::Policy,
        _ => ErrorClass::Final,
    };
    if is_transient == Some(true) && !class.is_retryable() {
        ErrorClass::RetrySameMessage
    } else {
        class
    }
}

/// Classifies an HTTP error status that came without a Meta error body (e.g.
/// a 502 from Meta's edge).
pub fn classify_status(status: u16) -> ErrorClass {
    match status {
        500..=599 => ErrorClass::RetrySameMessage,
        429 => ErrorClass::ThrottleNumber,
        401 => ErrorClass::Auth,
        _ => ErrorClass::Final,
    }
}

/// An error answer from the Graph API: the parsed body plus the HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaApiError {
    pub status: u16,
    pub error: ErrorBody,
    /// Largest `estimated_time_to_regain_access` (minutes, per Meta) found in
    /// the `X-Business-Use-Case-Usage` header, for throttling errors.
    pub regain_access_after: Option<Duration>,
}

impl MetaApiError {
    pub fn code(&self) -> i64 {
        self.error.code
    }

    pub fn subcode(&self) -> Option<i64> {
        self.error.error_subcode
    }

    pub fn details(&self) -> Option<&str> {
        self.error.details()
    }

    pub fn fbtrace_id(&self) -> Option<&str> {
        self.error.fbtrace_id.as_deref()
    }

    pub fn class(&self) -> ErrorClass {
        self.error.class()
    }

    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}

impl fmt::Display for MetaApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.error;
        write!(f, "Meta API error {} (HTTP {})", e.code, self.status)?;
        if let Some(sub) = e.error_subcode {
            write!(f, ", subcode {sub}")?;
        }
        if let Some(kind) = &e.kind {
            write!(f, ", {kind}")?;
        }
        if let Some(msg) = e.message.as_deref().or(e.title.as_deref()) {
            write!(f, ": {msg}")?;
        }
        if let Some(details) = self.details() {
            write!(f, " ({details})")?;
        }
        if let Some(trace) = &e.fbtrace_id {
            write!(f, " [fbtrace_id {trace}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for MetaApiError {}

/// Reads the `X-Business-Use-Case-Usage` header
/// (`{"<id>":[{"estimated_time_to_regain_access":<minutes>,...}]}`) and
/// returns the longest wait it announces, if any is above zero.
pub fn regain_access_after(header: &str) -> Option<Duration> {
    let usage: serde_json::Map<String, Value> = serde_json::from_str(header).ok()?;
    let minutes = usage
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)))
}

/// Everything a Graph call can fail with. The variants separate the cases the
/// sender must treat differently: an answer from Meta, a request that never
/// left, and a request whose fate is unknown.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with an error body.
    #[error(transparent)]
    Api(Box<MetaApiError>),
    /// Meta (or a proxy in front of it) answered with an error status but no
    /// parseable error body. `body` is truncated.
    #[error("HTTP {status} without a Meta error body: {body}")]
    Http { status: u16, body: String },
    /// The request never reached Meta (DNS, TCP connect refused or timed out,
    /// TLS handshake): safe to retry.
    #[error("request not sent (DNS, connect or TLS failed; safe to retry): {0}")]
    NotSent(#[source] reqwest::Error),
    /// The request may have been written before the failure (timeout or reset
    /// while waiting for or reading the answer): must not be blindly resent.
    #[error("outcome unknown (request may have reached Meta; do not resend blindly): {0}")]
    Ambiguous(#[source] reqwest::Error),
    /// A success status whose body did not parse. For non-idempotent calls
    /// the request was accepted, so this counts as ambiguous.
    #[error("HTTP {status} response did not parse: {message}")]
    Decode { status: u16, message: String },
    /// The answer was larger than the configured cap.
    #[error("response body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The request could not be built (bad base URL, token with invalid header
    /// characters, unserialisable body). Nothing was sent; retrying won't help.
    #[error("invalid request: {0}")]
    Request(String),
}

impl GraphError {
    /// The retry class (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Api(e) => e.class(),
            GraphError::Http { status, .. } => classify_status(*status),
            GraphError::NotSent(_) => ErrorClass::RetrySameMessage,
            GraphError::Ambiguous(_) | GraphError::Decode { .. } => ErrorClass::Ambiguous,
            GraphError::TooLarge { .. } | GraphError::Request(_) => ErrorClass::Final,
        }
    }

    /// Whether an automatic retry is appropriate.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// The Meta error, when Meta answered with one.
    pub fn api(&self) -> Option<&MetaApiError> {
        match self {
            GraphError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Maps a transport failure to the phase it happened in. Connect-phase
    /// errors (DNS, refused, connect timeout, TLS) cannot have delivered the
    /// request; anything later might have. The URL is stripped because query
    /// strings can carry secrets (`client_secret`, `input_token`).
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_builder() {
            GraphError::Request(err.to_string())
        } else if err.is_connect() {
            GraphError::NotSent(err)
        } else {
            GraphError::Ambiguous(err)
        }
    }
}

impl From<MetaApiError> for GraphError {
    fn from(e: MetaApiError) -> Self {
        GraphError::Api(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_table() {
        use ErrorClass::*;
        let table: &[(i64, ErrorClass)] = &[
            (1, RetrySameMessage),
            (2, RetrySameMessage),
            (131000, RetrySameMessage),
            (131016, RetrySameMessage),
            (131057, RetrySameMessage),
            (133004, RetrySameMessage),
            (130429, ThrottleNumber),
            (4, ThrottleNumber),
            (17, ThrottleNumber),
            (80007, ThrottleNumber),
            (613, ThrottleNumber),
            (341, ThrottleNumber),
            (131056, ThrottlePair),
            (190, Auth),
            (0, Auth),
            (10, Auth),
            (200, Auth),
            (250, Auth),
            (299, Auth),
            (368, Policy),
            (131048, Policy),
            (131049, Policy),
            (131031, Policy),
            (100, Final),
            (131008, Final),
            (131009, Final),
            (131026, Final),
            (131047, Final),
            (131050, Final),
            (132000, Final),
            (132001, Final),
            (132015, Final),
            (132016, Final),
            (130472, Final),
            (137000, Final),
            (300, Final),
            (2593002, Final),
        ];
        for (code, want) in table {
            assert_eq!(classify(*code, None), *want, "code {code}");
            assert_eq!(classify(*code, Some(false)), *want, "code {code}");
            let retryable = matches!(want, RetrySameMessage | ThrottleNumber | ThrottlePair);
            assert_eq!(want.is_retryable(), retryable, "code {code}");
        }
    }

    #[test]
    fn transient_flag_makes_retryable() {
        assert_eq!(classify(100, Some(true)), ErrorClass::RetrySameMessage);
        assert_eq!(classify(131026, Some(true)), ErrorClass::RetrySameMessage);
        // Already-retryable classes keep their specific class.
        assert_eq!(classify(130429, Some(true)), ErrorClass::ThrottleNumber);
        assert_eq!(classify(131056, Some(true)), ErrorClass::ThrottlePair);
    }

    #[test]
    fn status_without_body() {
        for status in [500, 502, 503, 504] {
            assert_eq!(classify_status(status), ErrorClass::RetrySameMessage);
            let e = GraphError::Http {
                status,
                body: String::new(),
            };
            assert!(e.is_retryable());
        }
        assert_eq!(classify_status(429), ErrorClass::ThrottleNumber);
        assert_eq!(classify_status(401), ErrorClass::Auth);
        assert_eq!(classify_status(400), ErrorClass::Final);
        assert_eq!(classify_status(404), ErrorClass::Final);
    }

    #[test]
    fn error_data_shapes() {
        let obj: ErrorBody = serde_json::from_value(serde_json::json!({
            "code": 131047, "error_data": {"details": "too late"}
        }))
        .unwrap();
        assert_eq!(obj.details(), Some("too late"));
        let text: ErrorBody = serde_json::from_value(serde_json::json!({
            "code": 1, "error_data": "plain string"
        }))
        .unwrap();
        assert_eq!(text.details(), Some("plain string"));
        assert_eq!(text.class(), ErrorClass::RetrySameMessage);
    }

    #[test]
    fn usage_header() {
        let h = r#"{"114503234599312":[{"type":"whatsapp","call_count":1,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#;
        assert_eq!(regain_access_after(h), None);
        let h = r#"{"1":[{"estimated_time_to_regain_access":3}],"2":[{"estimated_time_to_regain_access":5}]}"#;
        assert_eq!(regain_access_after(h), Some(Duration::from_secs(300)));
        assert_eq!(regain_access_after("not json"), None);
    }
}
