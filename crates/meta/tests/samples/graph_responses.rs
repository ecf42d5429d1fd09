//! Every Graph response sample parses into its typed response with every key
//! modelled and re-serialises identically; every error sample parses into
//! [`MetaApiError`] with the right code, subcode, details, trace id and class.
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wagate_meta::graph::error::ErrorEnvelope;
use wagate_meta::graph::media::{MediaId, MediaUrl};
use wagate_meta::graph::messages::SendMessageResponse;
use wagate_meta::graph::phone_numbers::{BusinessProfile, PhoneNumber};
use wagate_meta::graph::templates::{CreateTemplateResponse, MessageTemplate};
use wagate_meta::graph::waba::Waba;
use wagate_meta::graph::{Page, Success};
use wagate_meta::json::modelled_only;
use wagate_meta::{ErrorClass, GraphError};

use crate::common::{Mock, diff, fixtures};

fn check<T: DeserializeOwned + Serialize>(name: &str, raw: &Value) {
    let typed: T = serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, raw, "{name}: round trip: {:?}", diff(raw, &back));
    let modelled = modelled_only(&typed).unwrap();
    assert_eq!(
        &modelled,
        raw,
        "{name}: keys not modelled: {:?}",
        diff(raw, &modelled)
    );
}

/// The typed response for every non-request sample, by file name.
fn check_response(name: &str, raw: &Value) -> bool {
    let stem = name
        .trim_end_matches(".json")
        .trim_end_matches("__response");
    let op = stem.split_once("__").map_or(stem, |(_, op)| op);
    if raw.get("error").is_some() {
        check::<ErrorEnvelope>(name, raw);
        return true;
    }
    match op {
        _ if op.starts_with("send_") || op.starts_with("bsuid_send_response") => {
            check::<SendMessageResponse>(name, raw)
        }
        _ if op.starts_with("health_status") || op == "messaging_limit_field_response" => {
            check::<PhoneNumber>(name, raw)
        }
        "get_phone_number" => check::<PhoneNumber>(name, raw),
        "list_phone_numbers" => check::<Page<PhoneNumber>>(name, raw),
        "create_template_named_params" | "create_template_positional_params" => {
            check::<CreateTemplateResponse>(name, raw)
        }
        "get_template_by_id" => check::<MessageTemplate>(name, raw),
        "list_templates" => check::<Page<MessageTemplate>>(name, raw),
        "get_waba" => check::<Waba>(name, raw),
        "get_business_profile" => check::<Page<BusinessProfile>>(name, raw),
        "get_media_url" => check::<MediaUrl>(name, raw),
        "upload_media" => check::<MediaId>(name, raw),
        "delete_media"
        | "delete_template_by_name"
        | "delete_template_by_hsm_id"
        | "edit_template"
        | "register_phone_number"
        | "deregister_phone_number"
        | "typing_indicator" => check::<Success>(name, raw),
        _ => return false,
    }
    true
}

#[test]
fn every_response_sample_parses() {
    let mut checked = 0;
    for (name, raw) in fixtures("graph") {
        if name.ends_with("__request.json") {
            continue;
        }
        assert!(
            check_response(&name, &raw),
            "{name}: no typed response assigned"
        );
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} responses found");
}

struct Expect {
    file: &'static str,
    code: i64,
    subcode: Option<i64>,
    kind: &'static str,
    details: Option<&'static str>,
    fbtrace_id: &'static str,
    class: ErrorClass,
}

const ERRORS: &[Expect] = &[
    Expect {
        file: "metadocs__error_100_mm_api_not_template.json",
        code: 100,
        subcode: None,
        kind: "OAuthException",
        details: Some("Message must be a template message."),
        fbtrace_id: "Ak6nxJSySLEJz32Ps-QiZ1t",
        class: ErrorClass::Final,
    },
    Expect {
        file: "metadocs__error_130429_rate_limit.json",
        code: 130429,
        subcode: Some(2494055),
        kind: "OAuthException",
        details: Some("Cloud API message throughput has been reached."),
        fbtrace_id: "Az8or2yhqkZfEZ-_4Qn_Bam",
        class: ErrorClass::ThrottleNumber,
    },
    Expect {
        file: "rubysdk__delete_media_bad_id_error_100__response.json",
        code: 100,
        subcode: None,
        kind: "OAuthException",
        details: None,
        fbtrace_id: "AIejXf67At-GZg4mX_Cs-Md",
        class: ErrorClass::Final,
    },
    Expect {
        file: "rubysdk__delete_template_not_found_error_2593002__response.json",
        code: 100,
        subcode: Some(2593002),
        kind: "OAuthException",
        details: None,
        fbtrace_id: "Ax5tIkALJCP4l5S8jbPvW2n",
        class: ErrorClass::Final,
    },
    Expect {
        file: "rubysdk__mark_read_bad_id_error_100__response.json",
        code: 100,
        subcode: None,
        kind: "OAuthException",
        details: Some("Please check the message ID you have provided."),
        fbtrace_id: "A3PJ2-1aODhbAGAh66zQkwf",
        class: ErrorClass::Final,
    },
    Expect {
        file: "rubysdk__mark_read_outgoing_id_error_100__response.json",
        code: 100,
        subcode: None,
        kind: "OAuthException",
        details: Some(
            "Message supplied to mark message as read API with message ID: wamid.HBgLMTM0Mzc3NzI5MTAVAgARGBJDRDhCNTAwRkU0MTdCNkI3OUMA is outgoing. Please use an incoming message ID.",
        ),
        fbtrace_id: "A37kyQyzvth42JAWv5dja9R",
        class: ErrorClass::Final,
    },
    Expect {
        file: "rubysdk__send_text_unknown_phone_id_error_100_33__response.json",
        code: 100,
        subcode: Some(33),
        kind: "GraphMethodException",
        details: None,
        fbtrace_id: "AzJYAMZdf4WaDlLDXeqjTr9",
        class: ErrorClass::Final,
    },
];

/// Every error sample goes through the client (mock answers HTTP 400, as
/// recorded) and comes out as `GraphError::Api` with the expected fields.
#[tokio::test]
async fn every_error_sample_is_classified() {
    let files: Vec<String> = fixtures("graph")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains("error") && !n.ends_with("__request.json"))
        .collect();
    assert_eq!(
        files.len(),
        ERRORS.len(),
        "an error sample lacks expectations: {files:?}"
    );
    for want in ERRORS {
        assert!(
            files.iter().any(|f| f == want.file),
            "{} not found",
            want.file
        );
        let raw = crate::common::fixture("graph", want.file);
        let mock = Mock::json(400, &raw).await;
        let err = mock
            .client()
            .get_phone_number("t", "1", &[])
            .await
            .expect_err(want.file);
        let GraphError::Api(e) = &err else {
            panic!("{}: {err}", want.file)
        };
        assert_eq!(e.status, 400);
        assert_eq!(e.code(), want.code, "{}", want.file);
        assert_eq!(e.subcode(), want.subcode, "{}", want.file);
        assert_eq!(e.error.kind.as_deref(), Some(want.kind), "{}", want.file);
        assert_eq!(e.details(), want.details, "{}", want.file);
        assert_eq!(e.fbtrace_id(), Some(want.fbtrace_id), "{}", want.file);
        assert_eq!(e.class(), want.class, "{}", want.file);
        assert_eq!(err.class(), want.class, "{}", want.file);
        assert_eq!(
            err.is_retryable(),
            want.class.is_retryable(),
            "{}",
            want.file
        );
        let shown = err.to_string();
        assert!(shown.contains(want.fbtrace_id), "{shown}");
    }

    // The 2593002 sample also carries the user-facing fields.
    let raw = crate::common::fixture(
        "graph",
        "rubysdk__delete_template_not_found_error_2593002__response.json",
    );
    let env: ErrorEnvelope = serde_json::from_value(raw).unwrap();
    assert_eq!(env.error.is_transient, Some(false));
    assert_eq!(
        env.error.error_user_title.as_deref(),
        Some("Message Template Not Found")
    );
    assert!(env.error.error_user_msg.is_some());
}

#[tokio::test]
async fn error_data_as_string_and_transient_flag() {
    let body = serde_json::json!({"error": {"message": "(#1) An unknown error occurred", "type": "OAuthException",
        "code": 1, "error_data": "some string", "is_transient": true, "fbtrace_id": "X"}});
    let mock = Mock::json(500, &body).await;
    let err = mock
        .client()
        .get_phone_number("t", "1", &[])
        .await
        .unwrap_err();
    let e = err.api().unwrap();
    assert_eq!(e.details(), Some("some string"));
    assert_eq!(e.status, 500);
    assert!(err.is_retryable());

    // A final code marked transient by Meta becomes retryable.
    let body = serde_json::json!({"error": {"code": 100, "is_transient": true, "message": "x"}});
    let mock = Mock::json(400, &body).await;
    let err = mock
        .client()
        .get_phone_number("t", "1", &[])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::RetrySameMessage);
}

#[tokio::test]
async fn throttle_header_is_read() {
    let body = crate::common::fixture("graph", "metadocs__error_130429_rate_limit.json");
    let mock = Mock::with_headers(
        400,
        serde_json::to_vec(&body).unwrap(),
        &[
            ("content-type", "application/json"),
            (
                "x-business-use-case-usage",
                r#"{"114503234599312":[{"type":"whatsapp","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":2}]}"#,
            ),
        ],
    )
    .await;
    let err = mock
        .client()
        .get_phone_number("t", "1", &[])
        .await
        .unwrap_err();
    let e = err.api().unwrap();
    assert_eq!(e.class(), ErrorClass::ThrottleNumber);
    assert_eq!(
        e.regain_access_after,
        Some(std::time::Duration::from_secs(120))
    );
}

#[tokio::test]
async fn error_status_without_meta_body() {
    for (status, body, class) in [
        (502, "", ErrorClass::RetrySameMessage),
        (
            503,
            "<html>Service Unavailable</html>",
            ErrorClass::RetrySameMessage,
        ),
        (500, "{\"not\":\"meta\"}", ErrorClass::RetrySameMessage),
        (429, "", ErrorClass::ThrottleNumber),
        (404, "not found", ErrorClass::Final),
    ] {
        let mock = Mock::with_headers(status, body, &[("content-type", "text/html")]).await;
        let err = mock
            .client()
            .get_phone_number("t", "1", &[])
            .await
            .unwrap_err();
        let GraphError::Http {
            status: got,
            body: text,
        } = &err
        else {
            panic!("{status}: {err}")
        };
        assert_eq!(*got, status);
        assert_eq!(text, body);
        assert_eq!(err.class(), class, "{status}");
    }
}

#[tokio::test]
async fn success_with_unparseable_body_is_ambiguous() {
    let mock = Mock::with_headers(200, "<html>", &[("content-type", "text/html")]).await;
    let client = mock.client();
    let m = wagate_meta::graph::messages::SendMessage::to(
        "+1",
        wagate_meta::graph::messages::MessagePayload::text("x"),
    );
    let err = client.send_message("t", "1", &m).await.unwrap_err();
    assert!(
        matches!(err, GraphError::Decode { status: 200, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Ambiguous);
    assert!(!err.is_retryable());
}
