//! Meta's error bodies: the synchronous Graph envelope (`{"error":{message,type,code,...}}`)
//! and the asynchronous error object of failed status webhooks
//! (`{code,title,message,error_data:{details},href}`). Shapes and texts follow the recorded
//! samples in `tests/fixtures/meta/graph` and Meta's error-code reference.
use serde_json::{Map, Value, json};

use crate::ids;

/// The `href` Meta puts in webhook error objects (as in `metadocs__status_failed_131049.json`).
pub const ERROR_CODES_HREF: &str = "/documentation/business-messaging/whatsapp/support/error-codes";

/// One known error code.
#[derive(Clone, Copy, Debug)]
pub struct ErrorInfo {
    pub code: i64,
    /// Title (= webhook `title`/`message`; the Graph `message` is `(#code) title`).
    pub title: &'static str,
    /// `error_data.details`.
    pub details: &'static str,
    /// The HTTP status Meta answers it with.
    pub http_status: u16,
    /// Usually reported as a `failed` status webhook after a 200, not synchronously.
    pub asynchronous: bool,
}

const fn e(
    code: i64,
    title: &'static str,
    details: &'static str,
    http_status: u16,
    asynchronous: bool,
) -> ErrorInfo {
    ErrorInfo {
        code,
        title,
        details,
        http_status,
        asynchronous,
    }
}

/// Codes with their texts. Anything else gets a generic `(#code) Simulated error`.
pub const CATALOG: &[ErrorInfo] = &[
    e(
        0,
        "AuthException",
        "We were unable to authenticate the app user.",
        401,
        false,
    ),
    e(
        1,
        "API Unknown",
        "Invalid request or possible server error.",
        400,
        false,
    ),
    e(
        2,
        "API Service",
        "Temporary due to downtime or due to being overloaded.",
        503,
        false,
    ),
    e(
        3,
        "API Method",
        "Capability or permissions issue.",
        500,
        false,
    ),
    e(
        4,
        "Application request limit reached",
        "The app has reached its API call rate limit.",
        400,
        false,
    ),
    e(
        10,
        "Application does not have permission for this action",
        "Permission is either not granted or has been removed.",
        403,
        false,
    ),
    e(
        100,
        "Invalid parameter",
        "The request included one or more unsupported or misspelled parameters.",
        400,
        false,
    ),
    e(
        200,
        "Permissions error",
        "Permission is either not granted or has been removed.",
        403,
        false,
    ),
    e(
        368,
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.",
        403,
        false,
    ),
    e(
        80007,
        "Rate limit issues",
        "The WhatsApp Business Account has reached its rate limit.",
        400,
        false,
    ),
    e(
        130429,
        "Rate limit hit",
        "Cloud API message throughput has been reached.",
        400,
        false,
    ),
    e(
        130472,
        "User's number is part of an experiment",
        "Failed to send message because this user's phone number is part of an experiment",
        400,
        true,
    ),
    e(
        130497,
        "Business account is restricted from messaging users in this country",
        "The business is restricted from messaging users in this country.",
        403,
        false,
    ),
    e(
        131000,
        "Something went wrong",
        "Message failed to send due to an unknown error.",
        500,
        false,
    ),
    e(
        131005,
        "Access denied",
        "Permission is either not granted or has been removed.",
        403,
        false,
    ),
    e(
        131008,
        "Required parameter is missing",
        "The request is missing a required parameter.",
        400,
        false,
    ),
    e(
        131009,
        "Parameter value is not valid",
        "One or more parameter values are invalid.",
        400,
        false,
    ),
    e(
        131016,
        "Service unavailable",
        "A service is temporarily unavailable.",
        500,
        false,
    ),
    e(
        131021,
        "Recipient cannot be sender",
        "Sender and recipient phone number is the same.",
        400,
        false,
    ),
    e(
        131026,
        "Message undeliverable",
        "Message Undeliverable.",
        400,
        true,
    ),
    e(
        131030,
        "Recipient phone number not in allowed list",
        "Recipient phone number not in allowed list: Add recipient phone number to recipient list and try again.",
        400,
        false,
    ),
    e(
        131031,
        "Account has been locked",
        "Business Account is restricted from messaging users in this country.",
        403,
        false,
    ),
    e(
        131037,
        "WhatsApp provided number needs display name approval before message can be sent.",
        "The 555 business phone number used to send the request does not have an approved display name.",
        400,
        false,
    ),
    e(
        131042,
        "Business eligibility payment issue",
        "There was an error related to your payment method.",
        400,
        false,
    ),
    e(
        131045,
        "Incorrect certificate",
        "Message failed to send due to a phone number registration error.",
        500,
        false,
    ),
    e(
        131047,
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        400,
        true,
    ),
    e(
        131048,
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent from this phone number. This may be because too many previous messages were blocked or flagged as spam.",
        400,
        false,
    ),
    e(
        131049,
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        400,
        true,
    ),
    e(
        131050,
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        400,
        true,
    ),
    e(
        131051,
        "Unsupported message type",
        "Message type is currently not supported.",
        400,
        false,
    ),
    e(
        131052,
        "Media download error",
        "Unable to download the media sent by the user.",
        400,
        false,
    ),
    e(
        131053,
        "Media upload error",
        "Unable to upload the media used in the message.",
        400,
        true,
    ),
    e(
        131056,
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
        400,
        false,
    ),
    e(
        131059,
        "Invalid pagination cursor",
        "The pagination cursor is invalid.",
        400,
        false,
    ),
    e(
        131057,
        "Account in maintenance mode",
        "Business Account is in maintenance mode",
        500,
        false,
    ),
    e(
        132000,
        "Number of parameters does not match the expected number of params",
        "The number of parameters provided does not match the expected number of parameters.",
        400,
        false,
    ),
    e(
        132001,
        "Template name does not exist in the translation",
        "The template does not exist in the specified language or has not been approved.",
        404,
        false,
    ),
    e(
        132005,
        "Translated text too long",
        "Translated text is too long.",
        400,
        false,
    ),
    e(
        132007,
        "Template Format Character Policy Violated",
        "Template content violates a WhatsApp policy.",
        400,
        false,
    ),
    e(
        132012,
        "Parameter format does not match format in the created template",
        "Variable parameter values formatted incorrectly.",
        400,
        false,
    ),
    e(
        132015,
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
        400,
        false,
    ),
    e(
        132016,
        "Template is disabled",
        "Template has been paused too many times due to low quality and is now permanently disabled.",
        400,
        false,
    ),
    e(
        133000,
        "Incomplete deregistration",
        "A previous deregistration attempt failed.",
        500,
        false,
    ),
    e(
        133004,
        "Server Temporarily Unavailable",
        "Server is temporarily unavailable.",
        503,
        false,
    ),
    e(
        133005,
        "Two step verification PIN Mismatch",
        "Two-step verification PIN incorrect.",
        400,
        false,
    ),
    e(
        133006,
        "Phone number re-verification needed",
        "Phone number needs to be verified before registering.",
        400,
        false,
    ),
    e(
        133008,
        "Too many two step verification PIN Guesses",
        "Too many incorrect two-step verification PIN guesses for this phone number.",
        400,
        false,
    ),
    e(
        133009,
        "Two step verification PIN Guessed Too Fast",
        "Two-step verification PIN was entered too quickly.",
        400,
        false,
    ),
    e(
        133010,
        "Account not registered",
        "Account not registered",
        400,
        false,
    ),
    e(
        133015,
        "Please wait a few minutes before attempting to register this phone number",
        "The phone number you are attempting to register was recently deleted, and deletion has not yet completed.",
        400,
        false,
    ),
    e(
        133016,
        "Account register deregister rate limit exceeded",
        "Registration or Deregistration failed because there were too many attempts for this phone number in a short period of time",
        400,
        false,
    ),
    e(
        135000,
        "Generic user error",
        "Message failed to send because of an unknown error with your request parameters.",
        400,
        false,
    ),
    e(
        137000,
        "Identity key mismatch",
        "Message failed to send because the recipient's identity key hash does not match.",
        400,
        false,
    ),
];

/// The catalog entry of `code`.
pub fn info(code: i64) -> Option<&'static ErrorInfo> {
    CATALOG.iter().find(|i| i.code == code)
}

/// A synchronous Graph error: HTTP status plus the JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphError {
    pub status: u16,
    pub body: Value,
}

impl GraphError {
    /// The `error.code` of the body.
    pub fn code(&self) -> Option<i64> {
        self.body.pointer("/error/code").and_then(Value::as_i64)
    }

    fn raw(status: u16, fields: Value) -> GraphError {
        let mut error = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        error.insert("fbtrace_id".into(), Value::String(ids::fbtrace_id()));
        GraphError {
            status,
            body: json!({ "error": Value::Object(error) }),
        }
    }

    /// The WhatsApp-style error for `code`: `(#code) title`, `OAuthException`,
    /// `error_data{messaging_product, details}`, with `details` overridable.
    pub fn whatsapp(code: i64, details: Option<&str>) -> GraphError {
        let (title, default_details, status) = match info(code) {
            Some(i) => (i.title, i.details, i.http_status),
            None => (
                "Simulated error",
                "Error injected by the wagate simulator.",
                400,
            ),
        };
        let mut fields = json!({
            "message": format!("(#{code}) {title}"),
            "type": "OAuthException",
            "code": code,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": details.unwrap_or(default_details),
            },
        });
        if code == 130429 {
            // As recorded (graph/metadocs__error_130429_rate_limit.json).
            fields["error_subcode"] = json!(2494055);
        }
        if matches!(code, 1 | 2 | 4 | 131000 | 131016 | 133004) {
            fields["is_transient"] = json!(true);
        }
        GraphError::raw(status, fields)
    }

    /// A fully specified error (used by the `meta_error` fault).
    pub fn custom(
        code: i64,
        subcode: Option<i64>,
        status: Option<u16>,
        details: Option<&str>,
    ) -> GraphError {
        let mut err = GraphError::whatsapp(code, details);
        if let Some(sub) = subcode {
            err.body["error"]["error_subcode"] = json!(sub);
        }
        if let Some(s) = status {
            err.status = s;
        }
        err
    }

    /// `(#100) Invalid parameter` with `error_data.details` (real mark-as-read errors).
    pub fn invalid_parameter(details: &str) -> GraphError {
        GraphError::whatsapp(100, Some(details))
    }

    /// A bare `(#100) <text>` without `error_data` (Graph's parameter validation).
    pub fn param(text: &str) -> GraphError {
        GraphError::raw(
            400,
            json!({"message": format!("(#100) {text}"), "type": "OAuthException", "code": 100}),
        )
    }

    /// Unknown object or unsupported edge (real: code 100, subcode 33, `GraphMethodException`).
    pub fn unknown_object(method: &str, id: &str) -> GraphError {
        let verb = method.to_ascii_lowercase();
        GraphError::raw(
            400,
            json!({
                "message": format!("Unsupported {verb} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"),
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
            }),
        )
    }

    /// `DELETE` of an unknown id (real, graph/rubysdk__delete_media_bad_id_error_100__response.json).
    pub fn invalid_post_id() -> GraphError {
        GraphError::raw(
            400,
            json!({"message": "(#100) Invalid post_id parameter", "type": "OAuthException", "code": 100}),
        )
    }

    /// Template delete of an unknown name (real, 100/2593002).
    pub fn template_not_found(name: &str) -> GraphError {
        GraphError::raw(
            400,
            json!({
                "message": "Invalid parameter",
                "type": "OAuthException",
                "code": 100,
                "error_subcode": 2593002,
                "is_transient": false,
                "error_user_title": "Message Template Not Found",
                "error_user_msg": format!("The message template {name} wasn't found for this account."),
            }),
        )
    }

    /// `fields=` naming a field the node does not have.
    pub fn nonexisting_field(field: &str, node_type: &str) -> GraphError {
        GraphError::raw(
            400,
            json!({
                "message": format!("(#100) Tried accessing nonexisting field ({field}) on node type ({node_type})"),
                "type": "OAuthException",
                "code": 100,
            }),
        )
    }

    /// No (or an unparsable) access token.
    pub fn token_missing() -> GraphError {
        GraphError::raw(
            401,
            json!({
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException",
                "code": 190,
            }),
        )
    }

    /// A revoked/expired token (190, subcode 463).
    pub fn token_expired() -> GraphError {
        GraphError::raw(
            401,
            json!({
                "message": "Error validating access token: Session has expired. The current time is later than the token's expiry.",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 463,
            }),
        )
    }

    /// OAuth code-exchange errors (Graph's `OAuthException` with its subcodes).
    pub fn oauth(code: i64, subcode: Option<i64>, message: &str) -> GraphError {
        let mut fields = json!({"message": message, "type": "OAuthException", "code": code});
        if let Some(s) = subcode {
            fields["error_subcode"] = json!(s);
        }
        GraphError::raw(400, fields)
    }

    /// Meta's answer when the `override_callback_uri` does not verify.
    pub fn callback_verification_failed(reason: &str) -> GraphError {
        GraphError::raw(
            400,
            json!({
                "message": format!("(#2200) Callback verification failed with the following errors: {reason}"),
                "type": "OAuthException",
                "code": 2200,
            }),
        )
    }

    /// The body of a 5xx fault: Meta's transient code 2 (503) or 1 (other statuses).
    pub fn server_error(status: u16) -> GraphError {
        let (code, message) = if status == 503 {
            (
                2,
                "An unexpected error has occurred. Please retry your request later.",
            )
        } else {
            (1, "An unknown error occurred")
        };
        GraphError::raw(
            status,
            json!({"message": message, "type": "OAuthException", "code": code, "is_transient": true}),
        )
    }
}

/// The error object of a `failed` status webhook:
/// `{code, title, message, error_data:{details}, href}`.
pub fn webhook_error(code: i64) -> Value {
    let (title, details) = match info(code) {
        Some(i) => (i.title, i.details),
        None => ("Simulated error", "Error injected by the wagate simulator."),
    };
    json!({
        "code": code,
        "title": title,
        "message": title,
        "error_data": { "details": details },
        "href": ERROR_CODES_HREF,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_body_matches_sample() {
        let e = GraphError::whatsapp(130429, None);
        assert_eq!(e.status, 400);
        assert_eq!(e.body["error"]["message"], "(#130429) Rate limit hit");
        assert_eq!(e.body["error"]["error_subcode"], 2494055);
        assert_eq!(
            e.body["error"]["error_data"]["details"],
            "Cloud API message throughput has been reached."
        );
    }

    #[test]
    fn webhook_error_matches_sample() {
        let v = webhook_error(131049);
        assert_eq!(
            v["error_data"]["details"],
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
        );
        assert_eq!(v["href"], ERROR_CODES_HREF);
    }
}
