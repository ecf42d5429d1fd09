//! Input that used to reach the database or the client raw: NUL characters
//! (PostgreSQL stores none in text or jsonb) in sends, names and Meta's
//! webhooks; locations without coordinates; serde's wording in errors about
//! pass-through Meta objects. What a user sees: the status, the contract
//! code, the field named, and that nothing was stored.
use serde_json::{Value, json};
use tonic_types::StatusExt;
use wagate::domain::plans::Plan;
use wagate::pb;
use wagate::pb::account_service_client::AccountServiceClient;
use wagate::pb::message_service_client::MessageServiceClient;

use crate::harness::outbound::{Org, connect, list, post, send_ok, set_plan};
use crate::harness::{TestServer, authed, grpc_reason};

const TO: &str = "5491155551234";

fn phone_path(org: &Org) -> String {
    format!("/v1/phones/{}/messages", org.phone_id)
}

/// 400 VALIDATION_ERROR naming `field` in `details.field` and the message,
/// which says nothing of Rust or serde.
fn assert_invalid(status: u16, body: &Value, field: &str) -> String {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    assert_eq!(body["error"]["details"]["field"], field, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains(field), "the message names {field}: {body}");
    assert_plain(&message);
    message
}

fn assert_plain(message: &str) {
    for leak in [
        "`",
        "expected",
        "invalid type",
        "struct",
        "variant",
        "serde",
        "Unicode escape",
        "byte sequence",
    ] {
        assert!(!message.contains(leak), "{leak:?} leaks into {message:?}");
    }
}

fn grpc_field(status: &tonic::Status) -> Option<String> {
    status
        .get_details_error_info()
        .and_then(|i| i.metadata.get("field").cloned())
}

async fn total(s: &TestServer, org: &Org) -> i64 {
    list(&s.base, &org.key, "").await.0
}

// ---------------------------------------------------------------------------
// 1. NUL characters in what a send stores.
// ---------------------------------------------------------------------------

/// (body, the field named) for every place a send carries a string.
fn nul_sends() -> Vec<(Value, &'static str)> {
    let button = json!({"type": "reply", "reply": {"id": "1", "title": "Yes"}});
    vec![
        (json!({"type": "text", "text": "a\u{0}b"}), "text"),
        (
            json!({"type": "text", "text": {"body": "a\u{0}b"}}),
            "text.body",
        ),
        (
            json!({"type": "text", "text": "hi", "replyTo": "wamid.\u{0}"}),
            "replyTo",
        ),
        (
            json!({"type": "image", "image": {"id": "1479\u{0}"}}),
            "image.id",
        ),
        (
            json!({"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "a\u{0}"}}),
            "image.caption",
        ),
        (
            json!({"type": "document", "document": {"link": "https://example.com/a.pdf", "filename": "a\u{0}.pdf"}}),
            "document.filename",
        ),
        (
            json!({"type": "location", "location": {"latitude": 1.5, "longitude": 2.5, "name": "a\u{0}"}}),
            "location.name",
        ),
        (
            json!({"type": "interactive", "interactive": {"type": "button", "body": {"text": "Pick\u{0}"}, "action": {"buttons": [button]}}}),
            "interactive.body.text",
        ),
        (
            json!({"type": "template", "template": {"name": "hello_world", "language": "en_US", "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Ana\u{0}"}]}]}}),
            "template.components[0].parameters[0].text",
        ),
        (
            json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "A\u{0}"}}]}),
            "contacts[0].name.formatted_name",
        ),
        (
            json!({"type": "reaction", "reaction": {"messageId": "wamid.HBg", "emoji": "\u{0}"}}),
            "reaction.emoji",
        ),
        (
            json!({"type": "reaction", "reaction": {"messageId": "wamid.\u{0}", "emoji": "👍"}}),
            "reaction.messageId",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_in_a_send_are_refused_by_field_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let org = connect(&s, "nul-send@example.com").await;
    for (mut body, field) in nul_sends() {
        body["to"] = json!(TO);
        let r = post(&s, &org.key, &phone_path(&org), body.clone(), &[]).await;
        let message = assert_invalid(r.status, &r.body, field);
        assert_eq!(message, format!("{field} must not contain NUL characters"));
        // A dry run validates the same way.
        body["dryRun"] = json!(true);
        let r = post(&s, &org.key, &phone_path(&org), body, &[]).await;
        assert_invalid(r.status, &r.body, field);
    }
    // The default-phone route too.
    let r = post(
        &s,
        &org.key,
        "/send-message",
        json!({"type": "text", "to": TO, "text": "a\u{0}b"}),
        &[],
    )
    .await;
    assert_invalid(r.status, &r.body, "text");
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    // Over gRPC: INVALID_ARGUMENT with the contract code and the field.
    let mut client = MessageServiceClient::new(s.channel().await);
    let sent =
        |m: pb::OutboundMessage| authed(pb::SendMessageRequest { message: Some(m) }, &org.key);
    let err = client
        .send_message(sent(pb::OutboundMessage {
            to: TO.into(),
            r#type: pb::MessageType::Text as i32,
            text: Some(wagate::api::convert::json_value(&json!("a\u{0}b"))),
            ..Default::default()
        }))
        .await
        .expect_err("NUL in text");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_reason(&err), "VALIDATION_ERROR");
    assert_eq!(grpc_field(&err).as_deref(), Some("text"));
    assert_eq!(err.message(), "text must not contain NUL characters");
    let err = client
        .send_message(sent(pb::OutboundMessage {
            to: TO.into(),
            r#type: pb::MessageType::Image as i32,
            image: Some(pb::MediaInput {
                link: Some("https://example.com/a.jpg".into()),
                caption: Some("a\u{0}".into()),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect_err("NUL in a caption");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_field(&err).as_deref(), Some("image.caption"));
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    // The same sends without the NUL are accepted.
    let ok = send_ok(&s, &org, json!({"type": "text", "to": TO, "text": "ab"})).await;
    assert_eq!(ok["status"], "queued");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_item_with_a_nul_character_is_that_items_error_and_the_rest_are_queued() {
    let s = TestServer::start().await;
    let org = connect(&s, "nul-bulk@example.com").await;
    set_plan(&s, &org, Plan::Pro).await;
    let bulk = json!({"messages": [
        {"type": "text", "to": "16505550001", "text": "one"},
        {"type": "text", "to": "16505550002", "text": "t\u{0}wo"},
        {"type": "image", "to": "16505550003", "image": {"link": "https://example.com/a.jpg", "caption": "c\u{0}"}},
        {"type": "text", "to": "16505550004", "text": "four"},
    ]});
    let r = post(&s, &org.key, "/messages/bulk", bulk, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let data = &r.body["data"];
    assert_eq!(data["accepted"], 2, "{data}");
    assert_eq!(data["rejected"], 2, "{data}");
    let errors: Vec<(i64, &str, &str, &str)> = data["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["index"].as_i64().expect("index"),
                e["code"].as_str().expect("code"),
                e["field"].as_str().expect("field"),
                e["message"].as_str().expect("message"),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (
                1,
                "VALIDATION_ERROR",
                "messages[1].text",
                "messages[1].text must not contain NUL characters"
            ),
            (
                2,
                "VALIDATION_ERROR",
                "messages[2].image.caption",
                "messages[2].image.caption must not contain NUL characters"
            ),
        ]
    );
    let queued: Vec<&str> = data["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["to"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(queued, ["16505550001", "16505550004"]);
    assert_eq!(total(&s, &org).await, 2);

    // Over gRPC, the same per-index error.
    let mut client = MessageServiceClient::new(s.channel().await);
    let text = |to: &str, t: &str| pb::OutboundMessage {
        to: to.into(),
        r#type: pb::MessageType::Text as i32,
        text: Some(wagate::api::convert::json_value(&json!(t))),
        ..Default::default()
    };
    let g = client
        .bulk_send_messages(authed(
            pb::BulkSendMessagesRequest {
                messages: vec![text("16505550005", "\u{0}"), text("16505550006", "six")],
                ..Default::default()
            },
            &org.key,
        ))
        .await
        .expect("BulkSendMessages")
        .into_inner()
        .data
        .expect("data");
    assert_eq!(g.accepted, 1);
    assert_eq!(g.errors.len(), 1);
    assert_eq!(g.errors[0].index, 0);
    assert_eq!(g.errors[0].field.as_deref(), Some("messages[0].text"));
    assert_eq!(total(&s, &org).await, 3);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 1b. NUL characters in names: registration, API keys, outgoing webhooks.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_in_names_are_refused_by_field_and_nothing_is_written() {
    let mut opts = TestServer::options(crate::harness::pg::fresh_database().await);
    opts.webhooks.allow_private = true;
    let s = TestServer::start_with(opts).await;
    let rest = s.rest();

    let register = |name: &str, email: &str| json!({"email": email, "password": "correct horse battery", "name": name});
    let (st, body) = rest
        .post(
            "/auth/register",
            None,
            register("Acme\u{0}", "nul@example.com"),
        )
        .await;
    assert_invalid(st, &body, "name");
    let (st, body) = rest
        .post(
            "/auth/register",
            None,
            register("Acme", "n\u{0}ul@example.com"),
        )
        .await;
    assert_invalid(st, &body, "email");
    // Over gRPC too.
    let mut grpc = AccountServiceClient::new(s.channel().await);
    let err = grpc
        .register(pb::RegisterRequest {
            email: "nul@example.com".into(),
            password: "correct horse battery".into(),
            name: "Acme\u{0}".into(),
        })
        .await
        .expect_err("NUL in name");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_reason(&err), "VALIDATION_ERROR");
    assert_eq!(grpc_field(&err).as_deref(), Some("name"));
    // Nothing was written: the email is still free.
    let (st, body) = rest
        .post("/auth/register", None, register("Acme", "nul@example.com"))
        .await;
    assert_eq!(st, 201, "{body}");
    let key = body["data"]["apiKey"].as_str().expect("apiKey").to_owned();

    let (st, body) = rest
        .post("/v1/api-keys", Some(&key), json!({"name": "ci\u{0}"}))
        .await;
    assert_invalid(st, &body, "name");
    let (_, keys) = rest.get("/v1/api-keys", Some(&key)).await;
    assert_eq!(keys["meta"]["pagination"]["total"], 1, "{keys}");

    let hook = |extra: Value| {
        let mut v = json!({"url": "http://127.0.0.1:9/hook", "events": ["message.received"]});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    let (st, body) = rest
        .post(
            "/v1/outgoing-webhooks",
            Some(&key),
            hook(json!({"description": "orders\u{0}"})),
        )
        .await;
    assert_invalid(st, &body, "description");
    let (st, body) = rest
        .post(
            "/v1/outgoing-webhooks",
            Some(&key),
            hook(json!({"url": "http://127.0.0.1:9/ho\u{0}ok"})),
        )
        .await;
    assert_invalid(st, &body, "url");
    let (_, hooks) = rest.get("/v1/outgoing-webhooks", Some(&key)).await;
    assert_eq!(hooks["meta"]["pagination"]["total"], 0, "{hooks}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_turns_a_refused_nul_into_a_validation_error_without_the_database_message() {
    use wagate::domain::DomainError;
    use wagate::store::StoreError;
    let s = TestServer::start().await;
    let (key, me) = s.register("nul-store@example.com").await;
    assert!(key.starts_with("sk_org_"));
    let org_id = me["data"]["organization"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("organization id");
    let store = &s.running.as_ref().expect("running").app.store;
    // Past every domain check: PostgreSQL itself refuses the NUL.
    let row = wagate::store::api_keys::ApiKeyRow {
        id: uuid::Uuid::new_v4(),
        org_id,
        name: "a\u{0}b".into(),
        prefix: "sk_org_nul".into(),
        key_hash: vec![7; 32],
        created_by: None,
        created_at: chrono::Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let err = store
        .insert_key(&row)
        .await
        .expect_err("PostgreSQL refuses NUL");
    assert!(matches!(err, StoreError::NulCharacter), "{err:?}");
    let status = tonic::Status::from(DomainError::from(err));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc_reason(&status), "VALIDATION_ERROR");
    assert_eq!(status.message(), "text must not contain NUL characters");
    assert!(grpc_field(&status).is_none(), "no field to name");
    assert_plain(status.message());

    // jsonb refuses it with another SQLSTATE (22P05), recognised the same way.
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = diesel_async::AsyncPgConnection::establish(&s.database_url)
        .await
        .expect("connects");
    let refused = diesel::sql_query("SELECT $1::jsonb")
        .bind::<diesel::sql_types::Jsonb, _>(json!({"body": "a\u{0}b"}))
        .execute(&mut conn)
        .await
        .expect_err("PostgreSQL refuses NUL in jsonb");
    let err = StoreError::from(refused);
    assert!(matches!(err, StoreError::NulCharacter), "{err:?}");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 2. NUL characters in Meta's webhooks.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_inbound_message_with_nul_characters_is_stored_and_listed() {
    use crate::inbound::{PHONE, connect as connect_inbound, post_json, rows, text_payload};
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect_inbound(&s, "nul-inbound@example.com").await;
    let mut payload = text_payload(
        PHONE,
        "16505551234",
        "wamid.NUL1",
        "hi\u{0}there",
        chrono::Utc::now().timestamp(),
    );
    payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] =
        json!("Ana\u{0}");
    let body = payload.to_string();
    assert!(body.contains("\\u0000"), "Meta escapes it: {body}");
    assert_eq!(post_json(&s, &payload).await, 200);

    let (_, inbound) = crate::harness::sandbox::poll(
        "the inbound message to be listed",
        std::time::Duration::from_secs(15),
        || async {
            let (n, data) = list(&s.base, &key, "?direction=inbound").await;
            if n == 1 {
                Ok((n, data))
            } else {
                Err(format!("{n} listed"))
            }
        },
    )
    .await;
    let m = &inbound[0];
    assert_eq!(m["wamid"], "wamid.NUL1");
    assert_eq!(m["content"]["body"], "hi\u{FFFD}there", "{m}");
    assert_eq!(m["contactName"], "Ana\u{FFFD}", "{m}");
    let state = rows(&s, "SELECT state, attempts FROM inbound_webhooks").await;
    assert_eq!(state[0]["state"], "processed", "{state:?}");

    let (st, conversations) = s
        .rest()
        .get(&format!("/v1/phones/{phone_id}/conversations"), Some(&key))
        .await;
    assert_eq!(st, 200, "{conversations}");
    assert_eq!(conversations["data"][0]["contactName"], "Ana\u{FFFD}");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Locations need both coordinates.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_location_without_coordinates_is_refused_naming_the_missing_one() {
    let s = TestServer::start().await;
    let org = connect(&s, "location@example.com").await;
    for (location, field) in [
        (json!({}), "location.latitude"),
        (json!({"longitude": 20}), "location.latitude"),
        (
            json!({"latitude": null, "longitude": null}),
            "location.latitude",
        ),
        (json!({"latitude": 10}), "location.longitude"),
        (
            json!({"latitude": 10, "longitude": null, "name": "HQ"}),
            "location.longitude",
        ),
    ] {
        let r = post(
            &s,
            &org.key,
            &phone_path(&org),
            json!({"type": "location", "to": TO, "location": location}),
            &[],
        )
        .await;
        let message = assert_invalid(r.status, &r.body, field);
        assert_eq!(message, format!("{field} is required"), "{location}");
    }
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    // Over gRPC, an unset coordinate is seen as missing too.
    let mut client = MessageServiceClient::new(s.channel().await);
    let err = client
        .send_message(authed(
            pb::SendMessageRequest {
                message: Some(pb::OutboundMessage {
                    to: TO.into(),
                    r#type: pb::MessageType::Location as i32,
                    location: Some(pb::LocationInput {
                        longitude: Some(20.0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
            &org.key,
        ))
        .await
        .expect_err("no latitude");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_field(&err).as_deref(), Some("location.latitude"));
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    // 0,0 given explicitly is a place like any other.
    let m = send_ok(
        &s,
        &org,
        json!({"type": "location", "to": TO, "location": {"latitude": 0, "longitude": 0}}),
    )
    .await;
    assert_eq!(m["content"]["latitude"], 0.0, "{m}");
    assert_eq!(m["content"]["longitude"], 0.0, "{m}");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Errors in pass-through Meta objects name the field in plain words.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn errors_in_meta_objects_name_the_exact_field_without_serde_wording() {
    let s = TestServer::start().await;
    let org = connect(&s, "meta-shapes@example.com").await;
    let template = |components: Value| json!({"type": "template", "to": TO, "template": {"name": "hello_world", "language": "en_US", "components": components}});
    let button = |b: Value| json!({"type": "interactive", "to": TO, "interactive": {"type": "button", "body": {"text": "Pick"}, "action": {"buttons": [b]}}});
    let cases = [
        (
            template(json!([1])),
            "template.components[0]",
            "template.components[0] must be an object",
        ),
        (
            template(json!([{"type": "bogus"}])),
            "template.components[0].type",
            "template.components[0].type must be one of: header, body, button",
        ),
        (
            template(json!([{"type": "body", "parameters": [{"type": "text"}]}])),
            "template.components[0].parameters[0].text",
            "template.components[0].parameters[0].text is required",
        ),
        (
            template(
                json!([{"type": "body", "parameters": [{"type": "currency", "currency": {"code": "USD", "amount_1000": 1000}}]}]),
            ),
            "template.components[0].parameters[0].currency.fallback_value",
            "template.components[0].parameters[0].currency.fallback_value is required",
        ),
        (
            json!({"type": "contacts", "to": TO, "contacts": [{"name": {"formatted_name": "A"}, "phones": "x"}]}),
            "contacts[0].phones",
            "contacts[0].phones must be a list",
        ),
        (
            json!({"type": "contacts", "to": TO, "contacts": [{"name": {"formatted_name": "A"}, "emails": [{"email": 5}]}]}),
            "contacts[0].emails[0].email",
            "contacts[0].emails[0].email must be a string",
        ),
        (
            button(json!({"type": "link", "reply": {"id": "1", "title": "Yes"}})),
            "interactive.action.buttons[0].type",
            "interactive.action.buttons[0].type must be \"reply\"",
        ),
    ];
    for (body, field, message) in cases {
        let r = post(&s, &org.key, &phone_path(&org), body.clone(), &[]).await;
        let got = assert_invalid(r.status, &r.body, field);
        assert_eq!(got, message, "{body}");
    }
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    // Over gRPC (components arrive as a google.protobuf.ListValue).
    let mut client = MessageServiceClient::new(s.channel().await);
    let components = wagate::api::convert::json_value(
        &json!([{"type": "body", "parameters": [{"type": "text"}]}]),
    );
    let Some(prost_types::value::Kind::ListValue(components)) = components.kind else {
        panic!("a list");
    };
    let err = client
        .send_message(authed(
            pb::SendMessageRequest {
                message: Some(pb::OutboundMessage {
                    to: TO.into(),
                    r#type: pb::MessageType::Template as i32,
                    template: Some(pb::TemplateInput {
                        name: "hello_world".into(),
                        language: Some(wagate::api::convert::json_value(&json!("en_US"))),
                        components: Some(components),
                    }),
                    ..Default::default()
                }),
            },
            &org.key,
        ))
        .await
        .expect_err("a parameter without its text");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(
        grpc_field(&err).as_deref(),
        Some("template.components[0].parameters[0].text")
    );
    assert_eq!(
        err.message(),
        "template.components[0].parameters[0].text is required"
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// gRPC values JSON cannot spell: any enum number, any Timestamp.
// ---------------------------------------------------------------------------

/// An invalid Timestamp or an enum number outside the enum was dropped:
/// a scheduled send went out at once, and a list filtered by a made-up
/// status listed every message. Each is INVALID_ARGUMENT naming the field,
/// and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_times_and_enum_numbers_outside_their_range_are_refused() {
    let s = TestServer::start().await;
    let org = connect(&s, "grpc-ranges@example.com").await;
    set_plan(&s, &org, Plan::Pro).await;
    let mut client = MessageServiceClient::new(s.channel().await);
    let in_an_hour = chrono::Utc::now().timestamp() + 3600;
    let text = |send_at: Option<prost_types::Timestamp>, kind: i32| pb::OutboundMessage {
        to: TO.into(),
        r#type: kind,
        text: Some(wagate::api::convert::json_value(&json!("later"))),
        send_at,
        ..Default::default()
    };
    let bad_times = [
        prost_types::Timestamp {
            seconds: in_an_hour,
            nanos: 2_000_000_000,
        },
        prost_types::Timestamp {
            seconds: in_an_hour,
            nanos: -5,
        },
        prost_types::Timestamp {
            seconds: 1 << 62,
            nanos: 0,
        },
    ];
    let refused = |err: &tonic::Status, field: &str| {
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert_eq!(grpc_reason(err), "VALIDATION_ERROR", "{err:?}");
        assert_eq!(grpc_field(err).as_deref(), Some(field), "{err:?}");
    };
    for t in &bad_times {
        let err = client
            .send_message(authed(
                pb::SendMessageRequest {
                    message: Some(text(Some(*t), pb::MessageType::Text as i32)),
                },
                &org.key,
            ))
            .await
            .expect_err("an invalid sendAt");
        refused(&err, "sendAt");
    }
    let err = client
        .send_message(authed(
            pb::SendMessageRequest {
                message: Some(text(None, 99)),
            },
            &org.key,
        ))
        .await
        .expect_err("type 99");
    refused(&err, "type");
    let err = client
        .bulk_send_messages(authed(
            pb::BulkSendMessagesRequest {
                messages: vec![
                    text(None, pb::MessageType::Text as i32),
                    text(Some(bad_times[0]), pb::MessageType::Text as i32),
                ],
                ..Default::default()
            },
            &org.key,
        ))
        .await
        .expect_err("a bulk item's invalid sendAt");
    refused(&err, "messages[1].sendAt");
    assert_eq!(total(&s, &org).await, 0, "nothing was stored");

    for (request, field) in [
        (
            pb::ListMessagesRequest {
                status: 99,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListMessagesRequest {
                direction: 99,
                ..Default::default()
            },
            "direction",
        ),
        (
            pb::ListMessagesRequest {
                created_after: Some(bad_times[2]),
                ..Default::default()
            },
            "createdAfter",
        ),
    ] {
        let err = client
            .list_messages(authed(request, &org.key))
            .await
            .expect_err(field);
        refused(&err, field);
    }
    s.stop().await;
}
