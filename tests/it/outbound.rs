//! Issue 4, outbound messaging, in sandbox mode: the seeds' send examples
//! verbatim up to `read`, every message type as the exact Graph request Meta
//! receives (checked against the samples in tests/fixtures/meta/graph) and
//! its stored read shape, validation, the idempotency matrix over REST and
//! gRPC, scheduling and cancel, retry, dry runs, bulk, and the list filters.
//! Failures, crashes and several instances are in `outbound_faults`.
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wagate::domain::plans::Plan;
use wagate::pb;
use wagate::pb::message_service_client::MessageServiceClient;

use crate::harness::outbound::{
    Org, accepted_send, act, connect, connect_at, fixture, get_message, inject_inbound, list, post,
    send_ok, sends_of, set_plan, wait_message, wait_status,
};
use crate::harness::sandbox::poll;
use crate::harness::{TestServer, authed, grpc_reason};

/// The platform guide's recipient (Argentina) and the samples' recipient.
const GUIDE_TO: &str = "5491155551234";
const SAMPLE_TO: &str = "13437772910";
const BSUID: &str = "US.13491208655302741918";

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 time: {v}"))
}

fn statuses(timeline: &Value) -> Vec<String> {
    timeline
        .as_array()
        .unwrap_or_else(|| panic!("a timeline: {timeline}"))
        .iter()
        .map(|e| e["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The timeline's statuses with repeats collapsed (a status is recorded by
/// the dispatcher and again by Meta's webhook).
fn lifecycle(timeline: &Value) -> Vec<String> {
    let mut out = statuses(timeline);
    out.dedup();
    out
}

/// An error reply: status, contract code, and for validation the field,
/// both in `details.field` and named in the message.
fn assert_error(status: u16, body: &Value, want: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    if let Some(f) = field {
        assert_eq!(body["error"]["details"]["field"], f, "{body}");
        assert!(message.contains(f), "the message names {f}: {body}");
    }
}

fn phone_path(org: &Org) -> String {
    format!("/v1/phones/{}/messages", org.phone_id)
}

async fn total(s: &TestServer, org: &Org) -> i64 {
    list(&s.base, &org.key, "").await.0
}

/// Sends nothing to the simulator: no `messages.send` request at all.
fn assert_nothing_sent(s: &TestServer) {
    let sends: Vec<_> = s
        .simulator()
        .requests()
        .into_iter()
        .filter(|r| r.kind == "messages.send")
        .collect();
    assert!(sends.is_empty(), "nothing reaches Meta: {sends:?}");
}

// ---------------------------------------------------------------------------
// 1. The seeds' examples, verbatim, up to `read`.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_examples_work_verbatim_and_reach_read_with_a_full_timeline() {
    let s = TestServer::start().await;
    let org = connect(&s, "seed@example.com").await;

    // The platform guide's body, byte for byte.
    let r = s
        .rest()
        .raw(
            "POST",
            &phone_path(&org),
            Some(&org.key),
            br#"{"type": "text", "to": "5491155551234", "text": "Hello!"}"#.to_vec(),
            "application/json",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(
        r.headers.get("idempotent-replayed").is_none(),
        "not a replay"
    );
    let m = &r.body["data"];
    let id = m["id"].as_str().expect("id").to_owned();
    // Internal ids are UUID v4 (the seeds' "Names and formats").
    for field in ["id", "conversationId", "contactId"] {
        let v = uuid::Uuid::parse_str(m[field].as_str().unwrap_or_default());
        assert_eq!(v.map(|u| u.get_version_num()).ok(), Some(4), "{field}: {m}");
    }
    assert_eq!(m["status"], "queued");
    assert!(m["wamid"].is_null(), "no wamid before Meta accepts: {m}");
    assert_eq!(m["direction"], "outbound");
    assert_eq!(m["type"], "text");
    assert_eq!(m["content"], json!({"body": "Hello!"}));
    assert_eq!(m["phoneId"], org.phone_id.as_str());
    assert_eq!(m["to"], GUIDE_TO);
    assert!(m["batchId"].is_null());
    assert!(m["error"].is_null() && m["errorMessage"].is_null(), "{m}");
    assert_eq!(m["attempts"], 0);
    assert!(m["sendAt"].is_null());
    assert!(
        uuid::Uuid::parse_str(m["conversationId"].as_str().unwrap_or_default()).is_ok(),
        "{m}"
    );
    // The contact identity fields of the contract.
    assert!(uuid::Uuid::parse_str(m["contactId"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(m["contactIdentifier"], GUIDE_TO);
    assert_eq!(m["contactIdentifierType"], "phone");
    assert_eq!(m["contactReplyTo"], GUIDE_TO);
    assert_eq!(m["contactPhone"], GUIDE_TO);
    for f in [
        "contactName",
        "businessScopedUserId",
        "parentBusinessScopedUserId",
        "username",
    ] {
        assert!(m.get(f).is_some_and(Value::is_null), "{f} is null: {m}");
    }
    assert!(time(&m["createdAt"]) <= Utc::now());
    assert_eq!(m["timestamp"], m["createdAt"]);
    // A new contact has never written: the window warning.
    assert!(
        m["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("24-hour")),
        "{m}"
    );

    // /send-message from the organization's default phone (no phoneId).
    let r = post(
        &s,
        &org.key,
        "/send-message",
        json!({"type": "text", "to": "+54 9 11 5555-1234", "text": "Hello again!"}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let second = r.body["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["data"]["phoneId"], org.phone_id.as_str());
    assert_eq!(r.body["data"]["status"], "queued");
    assert_eq!(
        r.body["data"]["contactId"], m["contactId"],
        "the same person, however the number is written"
    );

    // Both reach `read` through the simulator's status webhooks.
    for msg in [&id, &second] {
        let done = wait_status(&s, &org, msg, "read").await;
        let wamid = done["wamid"].as_str().expect("a wamid once sent");
        assert!(wamid.starts_with("wamid."), "{done}");
        assert_eq!(done["attempts"], 1);
        assert_eq!(
            lifecycle(&done["timeline"]),
            ["queued", "processing", "sent", "delivered", "read"],
            "{}",
            done["timeline"]
        );
        let tl = done["timeline"].as_array().expect("timeline");
        for e in tl {
            time(&e["at"]);
            assert!(
                ["api", "dispatcher", "webhook"].contains(&e["source"].as_str().unwrap_or("")),
                "{e}"
            );
        }
        assert_eq!(tl[0]["source"], "api");
        let processing = tl
            .iter()
            .find(|e| e["status"] == "processing")
            .expect("processing");
        assert_eq!(processing["attempt"], 1, "{processing}");
        assert!(
            tl.iter()
                .any(|e| e["status"] == "delivered" && e["pricing"]["category"].is_string()),
            "Meta's pricing in the timeline: {}",
            done["timeline"]
        );
        assert!(done["pricing"]["category"].is_string(), "{done}");
        assert!(done["error"].is_null(), "{done}");
        // GetMessage answers the same over gRPC.
        let mut client = MessageServiceClient::new(s.channel().await);
        let g = client
            .get_message(authed(
                pb::GetMessageRequest {
                    message_id: msg.clone(),
                },
                &org.key,
            ))
            .await
            .expect("GetMessage")
            .into_inner()
            .data
            .expect("data");
        assert_eq!(g.status, pb::MessageStatus::Read as i32);
        assert_eq!(g.wamid.as_deref(), Some(wamid));
        assert_eq!(g.timeline.len(), tl.len());
    }

    // Meta saw each message once, with our id as biz_opaque_callback_data.
    let sim = s.simulator();
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].path,
        format!("/v23.0/{}/messages", org.meta_phone),
        "sent from the phone in the path"
    );
    assert_eq!(
        sent[0].body,
        Some(
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": GUIDE_TO, "type": "text", "text": {"body": "Hello!"},
                    "biz_opaque_callback_data": id})
        )
    );
    assert!(
        sent[0]
            .headers
            .get("authorization")
            .is_some_and(|a| a.starts_with("Bearer EAAG")),
        "with the organization's token"
    );
    assert_eq!(sends_of(sim, &second).len(), 1);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 2. Every message type: the exact Graph body, and the stored read shape.
// ---------------------------------------------------------------------------

/// One message type: the flat send body (without `to`), the Graph body Meta
/// must receive, and what the stored `content` must hold.
struct Case {
    name: &'static str,
    body: Value,
    graph: Value,
    content: Value,
}

/// The sample with `to` as wagate writes it: the samples (Ruby SDK
/// recordings) give the number as a JSON number; wagate sends the string
/// the client gave, which Meta accepts alike.
///
/// The template sample writes a parameter `type` as `TEXT`; Meta reads it
/// case-insensitively and wagate deliberately writes the documented
/// lowercase (crates/meta/src/graph/messages/template.rs), so that one value
/// is compared in lowercase.
fn sample(name: &str) -> Value {
    let mut v = fixture(name);
    if v.get("to").is_some() {
        v["to"] = json!(SAMPLE_TO);
    }
    if let Some(components) = v
        .pointer_mut("/template/components")
        .and_then(Value::as_array_mut)
    {
        for p in components
            .iter_mut()
            .filter_map(|c| c.get_mut("parameters").and_then(Value::as_array_mut))
            .flatten()
        {
            if let Some(t) = p["type"].as_str() {
                p["type"] = json!(t.to_ascii_lowercase());
            }
        }
    }
    v
}

fn cases() -> Vec<Case> {
    let contacts = fixture("rubysdk__send_contacts__request.json")["contacts"].clone();
    let buttons = fixture("rubysdk__send_interactive_buttons__request.json")["interactive"].clone();
    let list = fixture("rubysdk__send_interactive_list__request.json")["interactive"].clone();
    let template =
        fixture("rubysdk__send_template_message_status_accepted__request.json")["template"].clone();
    let reaction = fixture("rubysdk__send_reaction__request.json")["reaction"].clone();
    let doc_link =
        fixture("rubysdk__send_document_by_link__request.json")["document"]["link"].clone();
    let image_link = fixture("rubysdk__send_image_by_link__request.json")["image"]["link"].clone();
    let video_link = fixture("rubysdk__send_video_by_link__request.json")["video"]["link"].clone();
    let sticker_link =
        fixture("rubysdk__send_sticker_by_link__request.json")["sticker"]["link"].clone();
    // No sample exists for these: Meta's documented bodies.
    let cta = json!({"type": "cta_url",
        "header": {"type": "text", "text": "Available Dates"},
        "body": {"text": "Tap the button below to see available dates."},
        "footer": {"text": "Dates subject to change."},
        "action": {"name": "cta_url", "parameters": {"display_text": "See Dates",
            "url": "https://www.luckyshrub.com?clickID=kqDGWd24Q5TRwoEQTICY7W1JKoXv"}}});
    let named = json!({"name": "order_confirmation", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "parameter_name": "first_name", "text": "Jessica"},
            {"type": "text", "parameter_name": "order_number", "text": "SKBUP2-4CPIG9"}]}]});
    let graph = |kind: &str, payload: Value| {
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": SAMPLE_TO, "type": kind, kind: payload})
    };
    let mut text_preview = sample("rubysdk__send_text__request.json");
    text_preview["text"]["preview_url"] = json!(true);
    vec![
        Case {
            name: "text",
            body: json!({"type": "text", "text": "hola"}),
            graph: sample("rubysdk__send_text__request.json"),
            content: json!({"body": "hola"}),
        },
        Case {
            name: "text with previewUrl",
            body: json!({"type": "text", "text": {"body": "hola", "previewUrl": true}}),
            graph: text_preview,
            content: json!({"body": "hola"}),
        },
        Case {
            name: "image by id",
            body: json!({"type": "image", "image": {"id": "1761991787669262", "caption": "Ignacio Chiazzo Profile"}}),
            graph: sample("rubysdk__send_image_by_id__request.json"),
            content: json!({"caption": "Ignacio Chiazzo Profile"}),
        },
        Case {
            name: "image by link",
            body: json!({"type": "image", "image": {"link": image_link, "caption": "Ignacio Chiazzo Profile"}}),
            graph: sample("rubysdk__send_image_by_link__request.json"),
            content: json!({"url": image_link, "caption": "Ignacio Chiazzo Profile"}),
        },
        Case {
            name: "video by id",
            body: json!({"type": "video", "video": {"id": "535689082735659", "caption": "here we have the caption"}}),
            graph: sample("rubysdk__send_video_by_id__request.json"),
            content: json!({"caption": "here we have the caption"}),
        },
        Case {
            name: "video by link",
            body: json!({"type": "video", "video": {"link": video_link, "caption": "Juan Roman"}}),
            graph: sample("rubysdk__send_video_by_link__request.json"),
            content: json!({"url": video_link, "caption": "Juan Roman"}),
        },
        Case {
            name: "audio by id",
            body: json!({"type": "audio", "audio": {"id": "914268667232441"}}),
            graph: sample("rubysdk__send_audio_by_id__request.json"),
            content: json!({}),
        },
        Case {
            name: "audio by link",
            body: json!({"type": "audio", "audio": {"link": "https://example.com/voice.ogg"}}),
            graph: graph("audio", json!({"link": "https://example.com/voice.ogg"})),
            content: json!({"url": "https://example.com/voice.ogg"}),
        },
        Case {
            name: "document by id with filename",
            body: json!({"type": "document", "document": {"id": "1753306975419607",
                "caption": "Ignacio Chiazzo Profile", "filename": "custom_name"}}),
            graph: sample("rubysdk__send_document_by_id_filename__request.json"),
            content: json!({"caption": "Ignacio Chiazzo Profile", "filename": "custom_name"}),
        },
        Case {
            name: "document by link",
            body: json!({"type": "document", "document": {"link": doc_link,
                "caption": "Ignacio Chiazzo Profile", "filename": "custom_name"}}),
            graph: sample("rubysdk__send_document_by_link__request.json"),
            content: json!({"url": doc_link, "caption": "Ignacio Chiazzo Profile", "filename": "custom_name"}),
        },
        Case {
            name: "sticker by id",
            body: json!({"type": "sticker", "sticker": {"id": "503335829198997"}}),
            graph: sample("rubysdk__send_sticker_by_id__request.json"),
            content: json!({}),
        },
        Case {
            name: "sticker by link",
            body: json!({"type": "sticker", "sticker": {"link": sticker_link}}),
            graph: sample("rubysdk__send_sticker_by_link__request.json"),
            content: json!({"url": sticker_link}),
        },
        Case {
            name: "location",
            body: json!({"type": "location", "location": {"latitude": 75.6972, "longitude": 45.4215,
                "name": "nacho", "address": "141 cooper street"}}),
            graph: sample("rubysdk__send_location__request.json"),
            content: json!({"latitude": 75.6972, "longitude": 45.4215, "name": "nacho"}),
        },
        Case {
            name: "contacts",
            body: json!({"type": "contacts", "contacts": contacts}),
            graph: sample("rubysdk__send_contacts__request.json"),
            content: json!({"contacts": contacts}),
        },
        Case {
            name: "interactive buttons",
            body: json!({"type": "interactive", "interactive": buttons}),
            graph: sample("rubysdk__send_interactive_buttons__request.json"),
            content: buttons.clone(),
        },
        Case {
            name: "interactive list",
            body: json!({"type": "interactive", "interactive": list}),
            graph: sample("rubysdk__send_interactive_list__request.json"),
            content: list.clone(),
        },
        Case {
            name: "interactive cta_url",
            body: json!({"type": "interactive", "interactive": cta}),
            graph: graph("interactive", cta.clone()),
            content: cta.clone(),
        },
        Case {
            name: "template, positional parameters",
            body: json!({"type": "template", "template": template}),
            graph: sample("rubysdk__send_template_message_status_accepted__request.json"),
            content: json!({"name": "sample_shipping_confirmation"}),
        },
        Case {
            name: "template, named parameters, language as a string",
            body: json!({"type": "template", "template": {"name": "order_confirmation",
                "language": "en_US", "components": named["components"]}}),
            graph: graph("template", named.clone()),
            content: json!({"name": "order_confirmation"}),
        },
        Case {
            name: "reaction",
            body: json!({"type": "reaction", "reaction": {"messageId": reaction["message_id"], "emoji": reaction["emoji"]}}),
            graph: sample("rubysdk__send_reaction__request.json"),
            content: json!({"emoji": reaction["emoji"]}),
        },
        Case {
            name: "reply context by wamid",
            body: json!({"type": "text", "text": "gracias",
                "replyTo": "wamid.HBgLMTM0Mzc3NzI5MTAVAgARGBI3OEVCRjczQ0JGNzYzMTdBRDIA"}),
            graph: sample("rubysdk__send_text_reply_context__request.json"),
            content: json!({"body": "gracias"}),
        },
    ]
}

/// Asserts that `content` holds every key of `want` with the same value.
fn assert_contains(name: &str, content: &Value, want: &Value) {
    for (k, v) in want.as_object().expect("an object") {
        assert_eq!(&content[k], v, "{name}: content.{k} in {content}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_type_reaches_meta_exactly_as_the_graph_samples_show() {
    let s = TestServer::start().await;
    let org = connect(&s, "types@example.com").await;
    let sim = s.simulator();
    let mut sent = Vec::new();
    for case in cases() {
        let mut body = case.body.clone();
        body["to"] = json!(SAMPLE_TO);
        let r = post(&s, &org.key, &phone_path(&org), body, &[]).await;
        assert_eq!(r.status, 202, "{}: {}", case.name, r.text);
        let m = &r.body["data"];
        let kind = case.body["type"].as_str().expect("type");
        assert_eq!(m["type"], kind, "{}", case.name);
        assert_eq!(m["status"], "queued", "{}", case.name);
        assert_contains(case.name, &m["content"], &case.content);
        sent.push((case, m["id"].as_str().expect("id").to_owned()));
    }
    // Every difference is collected, so one report shows them all.
    let mut differences = Vec::new();
    for (case, id) in &sent {
        let req = accepted_send(sim, id).await;
        let mut body = req.body.clone().expect("a JSON body");
        // The one field wagate adds: our id, echoed in every status webhook.
        assert_eq!(
            body.as_object_mut()
                .and_then(|o| o.remove("biz_opaque_callback_data")),
            Some(json!(id)),
            "{}",
            case.name
        );
        if body != case.graph {
            differences.push(format!(
                "{}:\n  sent:   {body}\n  sample: {}",
                case.name, case.graph
            ));
        }
        assert_eq!(
            sends_of(sim, id).len(),
            1,
            "{}: sent exactly once",
            case.name
        );
        // The stored read shape, as GetMessage shows it.
        let m = get_message(&s.base, &org.key, id).await;
        assert_contains(case.name, &m["content"], &case.content);
        match case.body["type"].as_str() {
            Some("image" | "video" | "audio" | "document" | "sticker") => {
                assert!(m["content"].get("url").is_some(), "{}: {m}", case.name);
            }
            Some("interactive") => {
                assert_eq!(m["content"]["type"], case.body["interactive"]["type"]);
            }
            Some("contacts") => assert!(m["content"]["contacts"].is_array()),
            _ => {}
        }
    }
    assert!(
        differences.is_empty(),
        "Graph bodies that differ from the samples:\n{}",
        differences.join("\n")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_by_our_id_carry_the_wamid_and_bsuids_go_to_meta_as_recipient() {
    let s = TestServer::start().await;
    let org = connect(&s, "reply@example.com").await;
    let sim = s.simulator();

    // A reply to one of our own messages, named by its wagate id.
    let first = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": SAMPLE_TO, "text": "hi"}),
    )
    .await;
    let first_id = first["id"].as_str().expect("id").to_owned();
    // Before Meta accepted it, it has no wamid: the reply cannot be built.
    let early = post(
        &s,
        &org.key,
        &phone_path(&org),
        json!({"type": "text", "to": SAMPLE_TO, "text": "re", "replyTo": uuid::Uuid::new_v4()}),
        &[],
    )
    .await;
    assert_error(
        early.status,
        &early.body,
        400,
        "VALIDATION_ERROR",
        Some("replyTo"),
    );
    let first = wait_message(
        &s.base,
        &org.key,
        &first_id,
        "a wamid",
        Duration::from_secs(20),
        |m| m["wamid"].is_string(),
    )
    .await;
    let wamid = first["wamid"].as_str().expect("wamid");
    let reply = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": SAMPLE_TO, "text": "gracias", "replyTo": first_id}),
    )
    .await;
    let req = accepted_send(sim, reply["id"].as_str().expect("id")).await;
    let mut want = sample("rubysdk__send_text_reply_context__request.json");
    want["context"]["message_id"] = json!(wamid);
    want["biz_opaque_callback_data"] = reply["id"].clone();
    assert_eq!(req.body, Some(want));

    // A reaction to our own message by its id, too.
    let react = send_ok(
        &s,
        &org,
        json!({"type": "reaction", "to": SAMPLE_TO, "reaction": {"messageId": first_id, "emoji": "👍"}}),
    )
    .await;
    let req = accepted_send(sim, react["id"].as_str().expect("id")).await;
    assert_eq!(
        req.body.as_ref().map(|b| b["reaction"].clone()),
        Some(json!({"message_id": wamid, "emoji": "👍"}))
    );
    assert_eq!(react["content"]["emoji"], "👍");

    // A BSUID recipient goes to Meta as `recipient`, never as `to`
    // (research/meta-cloud-api.md §5: Meta's documented body).
    let b = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": BSUID, "text": "Hello"}),
    )
    .await;
    assert_eq!(b["to"], BSUID);
    assert_eq!(b["contactIdentifier"], BSUID);
    assert_eq!(b["contactIdentifierType"], "bsuid");
    assert_eq!(b["contactReplyTo"], BSUID);
    assert_eq!(b["businessScopedUserId"], BSUID);
    assert!(b["contactPhone"].is_null(), "{b}");
    let req = accepted_send(sim, b["id"].as_str().expect("id")).await;
    assert_eq!(
        req.body,
        Some(
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "recipient": BSUID, "type": "text", "text": {"body": "Hello"},
                   "biz_opaque_callback_data": b["id"]})
        )
    );
    assert_eq!(req.recipient.as_deref(), Some(BSUID));
    wait_status(&s, &org, b["id"].as_str().expect("id"), "read").await;
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Validation: the field is named, and nothing is created or sent.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn invalid_sends_name_the_field_and_change_nothing() {
    let s = TestServer::start().await;
    let org = connect(&s, "invalid@example.com").await;
    let button = |i: usize| json!({"type": "reply", "reply": {"id": format!("b{i}"), "title": format!("Button {i}")}});
    let rows: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("r{i}"), "title": format!("Row {i}")}))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "text over 4,096 characters",
            json!({"type": "text", "to": GUIDE_TO, "text": "x".repeat(4097)}),
            "text",
        ),
        (
            "text object over 4,096 characters",
            json!({"type": "text", "to": GUIDE_TO, "text": {"body": "é".repeat(4097)}}),
            "text",
        ),
        (
            "empty text",
            json!({"type": "text", "to": GUIDE_TO, "text": "  "}),
            "text",
        ),
        (
            "media with both id and link",
            json!({"type": "image", "to": GUIDE_TO, "image": {"id": "1761991787669262", "link": "https://example.com/a.jpg"}}),
            "image",
        ),
        (
            "media with neither",
            json!({"type": "video", "to": GUIDE_TO, "video": {"caption": "no media"}}),
            "video.id",
        ),
        (
            "four buttons",
            json!({"type": "interactive", "to": GUIDE_TO, "interactive": {"type": "button",
                "body": {"text": "Pick"}, "action": {"buttons": [button(1), button(2), button(3), button(4)]}}}),
            "interactive.action.buttons",
        ),
        (
            "eleven list rows",
            json!({"type": "interactive", "to": GUIDE_TO, "interactive": {"type": "list",
                "body": {"text": "Pick"}, "action": {"button": "Open", "sections": [
                    {"title": "A", "rows": rows[..6]}, {"title": "B", "rows": rows[6..]}]}}}),
            "interactive.action.sections",
        ),
        (
            "template without a name",
            json!({"type": "template", "to": GUIDE_TO, "template": {"language": "en_US"}}),
            "template.name",
        ),
        (
            "template without a language",
            json!({"type": "template", "to": GUIDE_TO, "template": {"name": "order_confirmation"}}),
            "template.language",
        ),
        (
            "no recipient",
            json!({"type": "text", "to": "", "text": "Hello!"}),
            "to",
        ),
        (
            "a recipient that is neither a phone number nor a BSUID",
            json!({"type": "text", "to": "hello world", "text": "Hello!"}),
            "to",
        ),
        (
            "an unknown field",
            json!({"type": "text", "to": GUIDE_TO, "text": "Hello!", "bogus": true}),
            "bogus",
        ),
        (
            "an unknown type",
            json!({"type": "fax", "to": GUIDE_TO, "text": "Hello!"}),
            "type",
        ),
        (
            "a payload of another type",
            json!({"type": "image", "to": GUIDE_TO, "text": "Hello!"}),
            "text",
        ),
        (
            "a sendAt more than 90 days ahead",
            json!({"type": "text", "to": GUIDE_TO, "text": "later",
                   "sendAt": (Utc::now() + chrono::Duration::days(91)).to_rfc3339()}),
            "sendAt",
        ),
    ];
    // Every case runs; the report lists all that answer otherwise.
    let mut wrong = Vec::new();
    for (what, body, field) in &cases {
        for path in [phone_path(&org), "/send-message".to_owned()] {
            let r = post(&s, &org.key, &path, body.clone(), &[]).await;
            let message = r.body["error"]["message"].as_str().unwrap_or_default();
            if r.status != 400
                || r.body["error"]["code"] != "VALIDATION_ERROR"
                || r.body["error"]["details"]["field"] != *field
                || !message.contains(field)
            {
                wrong.push(format!(
                    "{what} on {path}: want 400 naming {field}, got {} {}",
                    r.status, r.text
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(total(&s, &org).await, 0, "no message was created");

    // The same over gRPC: INVALID_ARGUMENT with the contract code.
    let mut client = MessageServiceClient::new(s.channel().await);
    let err = client
        .send_phone_message(authed(
            pb::SendPhoneMessageRequest {
                phone_id: org.phone_id.clone(),
                message: Some(pb::OutboundMessage {
                    to: GUIDE_TO.into(),
                    r#type: pb::MessageType::Text as i32,
                    text: Some(wagate::api::convert::json_value(&json!("x".repeat(4097)))),
                    ..Default::default()
                }),
            },
            &org.key,
        ))
        .await
        .expect_err("too long");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_reason(&err), "VALIDATION_ERROR");
    assert!(err.message().contains("text"), "{err:?}");

    // Another organization's phone, or a phone that does not exist: 404.
    let other = connect_at(&s.base, "other@example.com", "106540352242999").await;
    for phone in [other.phone_id.clone(), uuid::Uuid::new_v4().to_string()] {
        let r = post(
            &s,
            &org.key,
            &format!("/v1/phones/{phone}/messages"),
            json!({"type": "text", "to": GUIDE_TO, "text": "Hello!"}),
            &[],
        )
        .await;
        assert_error(r.status, &r.body, 404, "NOT_FOUND", None);
    }
    assert_eq!(total(&s, &org).await, 0, "still nothing");
    assert_eq!(
        total(&s, &other).await,
        0,
        "nothing in the other organization"
    );
    assert_nothing_sent(&s);

    // A BSUID (letters, dots) is a valid recipient: never checked as digits only.
    for to in [BSUID, "AR.ABC123", "+1 (650) 555-1234"] {
        let m = send_ok(
            &s,
            &org,
            json!({"type": "text", "to": to, "text": "Hello!"}),
        )
        .await;
        assert_eq!(m["status"], "queued", "{to}");
    }
    // The limits themselves are allowed: 4,096 characters (not bytes),
    // 3 buttons, 10 rows across sections.
    let ten: Vec<Value> = rows[..10].to_vec();
    for body in [
        json!({"type": "text", "to": GUIDE_TO, "text": "é".repeat(4096)}),
        json!({"type": "interactive", "to": GUIDE_TO, "interactive": {"type": "button",
            "body": {"text": "Pick"}, "action": {"buttons": [button(1), button(2), button(3)]}}}),
        json!({"type": "interactive", "to": GUIDE_TO, "interactive": {"type": "list",
            "body": {"text": "Pick"}, "action": {"button": "Open", "sections": [
                {"title": "A", "rows": ten[..4]}, {"title": "B", "rows": ten[4..]}]}}}),
    ] {
        send_ok(&s, &org, body).await;
    }
    assert_eq!(total(&s, &org).await, 6);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 4. Idempotency.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_mismatch_and_are_scoped_per_organization_over_rest() {
    let s = TestServer::start().await;
    let org = connect(&s, "idem@example.com").await;
    let body = json!({"type": "text", "to": GUIDE_TO, "text": "Your order shipped"});
    let key = [("Idempotency-Key", "order-860198-shipped")];

    let first = post(&s, &org.key, &phone_path(&org), body.clone(), &key).await;
    assert_eq!(first.status, 202, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let id = first.body["data"]["id"].as_str().expect("id").to_owned();

    // Same key, same request: the original answer (same id, same 202).
    let again = post(&s, &org.key, &phone_path(&org), body.clone(), &key).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again.body["data"]["id"], id.as_str());
    assert_eq!(again.body["data"]["content"], first.body["data"]["content"]);
    assert_eq!(
        again.body["data"]["createdAt"],
        first.body["data"]["createdAt"]
    );

    // Same key, a different request: 422, even on another RPC.
    let changed = json!({"type": "text", "to": GUIDE_TO, "text": "Your order was cancelled"});
    let r = post(&s, &org.key, &phone_path(&org), changed, &key).await;
    assert_error(r.status, &r.body, 422, "IDEMPOTENCY_MISMATCH", None);
    let r = post(&s, &org.key, "/send-message", body.clone(), &key).await;
    assert_error(r.status, &r.body, 422, "IDEMPOTENCY_MISMATCH", None);
    // A bad key is a validation error naming the header.
    let r = post(
        &s,
        &org.key,
        &phone_path(&org),
        body.clone(),
        &[("Idempotency-Key", &"k".repeat(300))],
    )
    .await;
    assert_error(
        r.status,
        &r.body,
        400,
        "VALIDATION_ERROR",
        Some("Idempotency-Key"),
    );

    // Another organization's identical key is independent.
    let other = connect_at(&s.base, "idem-other@example.com", "106540352242988").await;
    let theirs = post(&s, &other.key, &phone_path(&other), body.clone(), &key).await;
    assert_eq!(theirs.status, 202, "{}", theirs.text);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_ne!(theirs.body["data"]["id"], id.as_str());

    // Without a key, the same body is a new message.
    let unkeyed = send_ok(&s, &org, body.clone()).await;
    assert_ne!(unkeyed["id"], id.as_str());

    assert_eq!(total(&s, &org).await, 2);
    assert_eq!(total(&s, &other).await, 1);
    // A replay sends nothing again.
    wait_status(&s, &org, &id, "read").await;
    assert_eq!(sends_of(s.simulator(), &id).len(), 1);
    let replay = post(&s, &org.key, &phone_path(&org), body.clone(), &key).await;
    assert_eq!(replay.status, 202);
    assert_eq!(replay.body["data"]["id"], id.as_str());
    assert_eq!(
        replay.body["data"]["status"], "read",
        "a replay shows the message as it is now"
    );

    // Keys are kept 24 hours: after that the key is free again, even for
    // another request.
    s.exec("UPDATE idempotency_keys SET created_at = created_at - interval '25 hours'")
        .await;
    let later = json!({"type": "text", "to": GUIDE_TO, "text": "a day later"});
    let reused = post(&s, &org.key, &phone_path(&org), later.clone(), &key).await;
    assert_eq!(reused.status, 202, "{}", reused.text);
    assert!(reused.headers.get("idempotent-replayed").is_none());
    assert_ne!(reused.body["data"]["id"], id.as_str());
    let again = post(&s, &org.key, &phone_path(&org), later, &key).await;
    assert_eq!(again.body["data"]["id"], reused.body["data"]["id"]);
    assert!(again.headers.get("idempotent-replayed").is_some());
    assert_eq!(total(&s, &org).await, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_over_grpc_metadata() {
    let s = TestServer::start().await;
    let org = connect(&s, "idem-grpc@example.com").await;
    let mut client = MessageServiceClient::new(s.channel().await);
    let msg = |text: &str| pb::OutboundMessage {
        to: GUIDE_TO.into(),
        r#type: pb::MessageType::Text as i32,
        text: Some(wagate::api::convert::json_value(&json!(text))),
        ..Default::default()
    };
    let keyed = |m: pb::OutboundMessage, key: &str| {
        let mut req = authed(pb::SendMessageRequest { message: Some(m) }, &org.key);
        req.metadata_mut()
            .insert("idempotency-key", key.parse().expect("metadata"));
        req
    };
    let first = client
        .send_message(keyed(msg("Hello!"), "grpc-key-1"))
        .await
        .expect("SendMessage");
    assert!(first.metadata().get("idempotent-replayed").is_none());
    let first = first.into_inner().data.expect("data");
    assert_eq!(first.status, pb::MessageStatus::Queued as i32);

    let again = client
        .send_message(keyed(msg("Hello!"), "grpc-key-1"))
        .await
        .expect("replay");
    assert_eq!(
        again
            .metadata()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again.into_inner().data.expect("data").id, first.id);

    let err = client
        .send_message(keyed(msg("Goodbye!"), "grpc-key-1"))
        .await
        .expect_err("mismatch");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_reason(&err), "IDEMPOTENCY_MISMATCH");

    // The key is shared by REST and gRPC: the same request over REST replays.
    let r = post(
        &s,
        &org.key,
        "/send-message",
        json!({"type": "text", "to": GUIDE_TO, "text": "Hello!"}),
        &[("Idempotency-Key", "grpc-key-1")],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["id"], first.id.as_str());
    assert!(r.headers.get("idempotent-replayed").is_some());
    assert_eq!(total(&s, &org).await, 1);

    // Twenty identical keyed requests at once: one message; each other
    // answer is its replay or, while the first runs, ABORTED (a conflict a
    // retry clears) with the contract's CONFLICT.
    let answers = futures_util::future::join_all((0..20).map(|_| {
        let mut client = client.clone();
        let req = keyed(msg("at once"), "grpc-key-race");
        async move { client.send_message(req).await }
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for a in &answers {
        match a {
            Ok(r) => {
                ids.insert(r.get_ref().data.as_ref().expect("data").id.clone());
            }
            Err(st) => {
                assert_eq!(st.code(), tonic::Code::Aborted, "{st:?}");
                assert_eq!(grpc_reason(st), "CONFLICT", "{st:?}");
            }
        }
    }
    assert_eq!(ids.len(), 1, "one message: {answers:?}");
    assert_eq!(total(&s, &org).await, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_keyed_requests_create_exactly_one_message() {
    let s = TestServer::start().await;
    let org = connect(&s, "idem-race@example.com").await;
    let body = json!({"type": "text", "to": GUIDE_TO, "text": "exactly once"});
    let path = phone_path(&org);
    let replies = futures_util::future::join_all((0..20).map(|_| {
        let rest = s.rest();
        let body = body.clone();
        let path = path.clone();
        let key = org.key.clone();
        async move {
            rest.send(
                "POST",
                &path,
                Some(&key),
                Some(body),
                &[("Idempotency-Key", "race-1")],
            )
            .await
        }
    }))
    .await;
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for r in &replies {
        match r.status {
            202 => {
                ids.insert(r.body["data"]["id"].as_str().expect("id").to_owned());
                if r.headers.get("idempotent-replayed").is_none() {
                    fresh += 1;
                }
            }
            409 => assert_eq!(r.body["error"]["code"], "CONFLICT", "{}", r.text),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(fresh, 1, "exactly one request did the work");
    assert_eq!(ids.len(), 1, "every 202 names the same message: {ids:?}");
    assert_eq!(total(&s, &org).await, 1);
    let id = ids.into_iter().next().expect("one id");
    wait_status(&s, &org, &id, "sent").await;
    assert_eq!(sends_of(s.simulator(), &id).len(), 1);
    s.stop().await;
}

/// Keyed sends share the writer's batches: fresh keys, replays and
/// mismatches arriving together each get their own answer, and every fresh
/// request's 202 names the message it asked for.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_keyed_sends_mixing_fresh_replayed_and_mismatched_keys_each_get_their_answer() {
    let s = TestServer::start().await;
    let org = connect(&s, "idem-mixed@example.com").await;
    let path = phone_path(&org);
    let send_all = |requests: Vec<(String, String)>| {
        let s = &s;
        let path = &path;
        let key = &org.key;
        futures_util::future::join_all(requests.into_iter().map(move |(k, text)| async move {
            let body = json!({"type": "text", "to": GUIDE_TO, "text": text});
            let r = s
                .rest()
                .send(
                    "POST",
                    path,
                    Some(key),
                    Some(body),
                    &[("Idempotency-Key", &k)],
                )
                .await;
            (k, text, r)
        }))
    };
    let text_of = |i: usize| format!("keyed message {i}");

    // 40 fresh keys at once.
    let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (k, text, r) in send_all((0..40).map(|i| (format!("k{i}"), text_of(i))).collect()).await {
        assert_eq!(r.status, 202, "{}", r.text);
        assert!(
            r.headers.get("idempotent-replayed").is_none(),
            "{k} is fresh"
        );
        assert_eq!(r.body["data"]["content"]["body"], text.as_str(), "{k}");
        ids.insert(k, r.body["data"]["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(total(&s, &org).await, 40);

    // Together: replays of k0..k19, k20..k29 with another text, and 20 new keys.
    let mut mixed: Vec<(String, String)> = (0..20).map(|i| (format!("k{i}"), text_of(i))).collect();
    mixed.extend((20..30).map(|i| (format!("k{i}"), format!("changed {i}"))));
    mixed.extend((40..60).map(|i| (format!("k{i}"), text_of(i))));
    for (k, text, r) in send_all(mixed).await {
        let i: usize = k[1..].parse().expect("index");
        match i {
            0..20 => {
                assert_eq!(r.status, 202, "{}", r.text);
                assert_eq!(
                    r.headers
                        .get("idempotent-replayed")
                        .and_then(|v| v.to_str().ok()),
                    Some("true"),
                    "{k}"
                );
                assert_eq!(r.body["data"]["id"].as_str(), Some(ids[&k].as_str()), "{k}");
            }
            20..30 => assert_error(r.status, &r.body, 422, "IDEMPOTENCY_MISMATCH", None),
            _ => {
                assert_eq!(r.status, 202, "{}", r.text);
                assert!(
                    r.headers.get("idempotent-replayed").is_none(),
                    "{k} is fresh"
                );
                let id = r.body["data"]["id"].as_str().expect("id");
                let stored = get_message(&s.base, &org.key, id).await;
                assert_eq!(
                    stored["content"]["body"],
                    text.as_str(),
                    "{k} names its own message"
                );
            }
        }
    }
    assert_eq!(
        total(&s, &org).await,
        60,
        "replays and mismatches store nothing"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_bulk_replays_its_batch_and_keyed_dry_runs_store_nothing() {
    let s = TestServer::start().await;
    let org = connect(&s, "idem-bulk@example.com").await;
    set_plan(&s, &org, Plan::Pro).await;
    let bulk = json!({"messages": [
        {"type": "text", "to": "16505550001", "text": "one"},
        {"type": "text", "to": "16505550002", "text": "x".repeat(5000)},
        {"type": "text", "to": "16505550003", "text": "three"},
    ]});
    let key = [("Idempotency-Key", "bulk-1")];
    let first = post(&s, &org.key, "/messages/bulk", bulk.clone(), &key).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let again = post(&s, &org.key, "/messages/bulk", bulk.clone(), &key).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let ids = |v: &Value| -> Vec<Value> {
        v["data"]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].clone())
            .collect()
    };
    assert_eq!(again.body["data"]["batchId"], first.body["data"]["batchId"]);
    assert_eq!(ids(&again.body), ids(&first.body));
    assert_eq!(ids(&first.body).len(), 2);
    assert_eq!(again.body["data"]["errors"], first.body["data"]["errors"]);
    assert_eq!(again.body["data"]["accepted"], 2);
    assert_eq!(again.body["data"]["rejected"], 1);
    let mut changed = bulk.clone();
    changed["messages"][0]["text"] = json!("ONE");
    let r = post(&s, &org.key, "/messages/bulk", changed, &key).await;
    assert_error(r.status, &r.body, 422, "IDEMPOTENCY_MISMATCH", None);
    assert_eq!(total(&s, &org).await, 2);

    // A dry run with a key stores nothing, not even the key: the real
    // request with that key afterwards is fresh.
    let send = json!({"type": "text", "to": GUIDE_TO, "text": "dry first"});
    let mut dry = send.clone();
    dry["dryRun"] = json!(true);
    let dkey = [("Idempotency-Key", "dry-then-real")];
    for _ in 0..2 {
        let r = post(&s, &org.key, &phone_path(&org), dry.clone(), &dkey).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body["data"].is_null(), "{}", r.text);
        assert!(r.body["dryRun"].is_object(), "{}", r.text);
        assert!(r.headers.get("idempotent-replayed").is_none());
    }
    assert_eq!(total(&s, &org).await, 2);
    let real = post(&s, &org.key, &phone_path(&org), send, &dkey).await;
    assert_eq!(real.status, 202, "{}", real.text);
    assert!(real.headers.get("idempotent-replayed").is_none());
    assert_eq!(total(&s, &org).await, 3);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 5. Scheduling, cancel and retry.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_messages_are_sent_at_send_at_and_can_be_cancelled_before() {
    let s = TestServer::start().await;
    let org = connect(&s, "schedule@example.com").await;
    let sim = s.simulator();
    let send_at = Utc::now() + chrono::Duration::seconds(3);
    let m = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "in three seconds",
               "sendAt": send_at.to_rfc3339()}),
    )
    .await;
    let id = m["id"].as_str().expect("id").to_owned();
    assert_eq!(m["status"], "scheduled");
    assert_eq!(
        time(&m["sendAt"]).timestamp_millis(),
        send_at.timestamp_millis()
    );
    let later = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "in an hour",
               "sendAt": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    let later_id = later["id"].as_str().expect("id").to_owned();
    assert_eq!(later["status"], "scheduled");
    // A sendAt in the past (or now) is just queued, with a warning; the
    // time asked for is kept.
    let past = Utc::now() - chrono::Duration::minutes(5);
    let now = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "now", "sendAt": past.to_rfc3339()}),
    )
    .await;
    assert_eq!(now["status"], "queued");
    assert_eq!(
        time(&now["sendAt"]).timestamp_millis(),
        past.timestamp_millis()
    );
    assert!(
        now["warnings"].as_array().is_some_and(|w| w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("has passed")))),
        "{now}"
    );
    let (n, listed) = list(&s.base, &org.key, "?status=scheduled").await;
    assert_eq!(n, 2, "{listed:?}");
    assert!(sends_of(sim, &id).is_empty(), "not sent before sendAt");

    // Cancel the one due in an hour.
    let r = act(&s, &org.key, &later_id, "cancel").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "failed");
    assert_eq!(r.body["data"]["errorMessage"], "cancelled");
    assert_eq!(r.body["data"]["error"]["message"], "cancelled");
    assert_eq!(
        statuses(&r.body["data"]["timeline"]),
        ["scheduled", "failed"],
        "the reply carries the timeline: {}",
        r.text
    );
    let cancelled = get_message(&s.base, &org.key, &later_id).await;
    assert_eq!(cancelled["status"], "failed");
    assert_eq!(
        statuses(&cancelled["timeline"]),
        ["scheduled", "failed"],
        "{}",
        cancelled["timeline"]
    );
    // Subscribers hear of it as of any failure: message.status_updated.
    let updates = crate::inbound::events(&s, "message.status_updated").await;
    let heard: Vec<&Value> = updates
        .iter()
        .filter(|d| d["messageId"] == later_id.as_str())
        .collect();
    assert_eq!(heard.len(), 1, "{updates:?}");
    assert_eq!(heard[0]["status"], "failed");
    assert_eq!(heard[0]["errorMessage"], "cancelled");
    // Cancelling twice, or a message that is not scheduled: 409.
    for target in [&later_id, now["id"].as_str().expect("id")] {
        let r = act(&s, &org.key, target, "cancel").await;
        assert_error(r.status, &r.body, 409, "CONFLICT", None);
    }
    let r = act(&s, &org.key, &uuid::Uuid::new_v4().to_string(), "cancel").await;
    assert_error(r.status, &r.body, 404, "NOT_FOUND", None);

    // Retrying it before its sendAt schedules it again, for the same time;
    // a second cancel stops it again.
    let r = act(&s, &org.key, &later_id, "retry").await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "scheduled", "{}", r.text);
    assert_eq!(r.body["data"]["sendAt"], later["sendAt"]);
    assert!(r.body["data"]["errorMessage"].is_null(), "{}", r.text);
    let r = act(&s, &org.key, &later_id, "cancel").await;
    assert_eq!(r.body["data"]["status"], "failed", "{}", r.text);
    let again = get_message(&s.base, &org.key, &later_id).await;
    assert_eq!(
        statuses(&again["timeline"]),
        ["scheduled", "failed", "scheduled", "failed"],
        "{}",
        again["timeline"]
    );

    // The first one goes out once sendAt has passed, not before.
    let done = wait_status(&s, &org, &id, "read").await;
    assert_eq!(
        lifecycle(&done["timeline"]),
        ["scheduled", "processing", "sent", "delivered", "read"],
        "{}",
        done["timeline"]
    );
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].at >= send_at,
        "Meta received it at {} for a sendAt of {send_at}",
        sent[0].at
    );
    assert!(
        sends_of(sim, &later_id).is_empty(),
        "the cancelled one never reaches Meta"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_failed_messages_can_be_retried_and_a_retry_sends_again() {
    let s = TestServer::start().await;
    let org = connect(&s, "retry@example.com").await;
    let sim = s.simulator();
    // Meta refuses the next send with a final error (100).
    sim.inject_fault(wagate_simulator::Fault::meta_error(100).times(1));
    let m = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "try me"}),
    )
    .await;
    let id = m["id"].as_str().expect("id").to_owned();
    let failed = wait_status(&s, &org, &id, "failed").await;
    assert_eq!(failed["attempts"], 1);
    assert_eq!(failed["error"]["code"], 100);
    assert!(failed["errorMessage"].is_string(), "{failed}");

    // A message that is not failed cannot be retried.
    let ok = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "fine"}),
    )
    .await;
    let ok_id = ok["id"].as_str().expect("id").to_owned();
    wait_status(&s, &org, &ok_id, "read").await;
    let r = act(&s, &org.key, &ok_id, "retry").await;
    assert_error(r.status, &r.body, 409, "CONFLICT", None);
    let mut client = MessageServiceClient::new(s.channel().await);
    let err = client
        .retry_message(authed(
            pb::RetryMessageRequest {
                message_id: ok_id.clone(),
            },
            &org.key,
        ))
        .await
        .expect_err("not failed");
    assert_eq!(grpc_reason(&err), "CONFLICT", "{err:?}");
    assert_eq!(sends_of(sim, &ok_id).len(), 1, "nothing sent again");

    // The failed one: back to queued, and sent again.
    let r = act(&s, &org.key, &id, "retry").await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["status"], "queued");
    assert!(r.body["data"]["errorMessage"].is_null(), "{}", r.text);
    let done = wait_status(&s, &org, &id, "read").await;
    // A retry starts a fresh attempt budget; `attempts` counts them all.
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(
        statuses(&done["timeline"])
            .iter()
            .filter(|s| *s == "processing")
            .count(),
        2,
        "both attempts are in the timeline"
    );
    assert!(done["error"].is_null(), "{done}");
    let tl = lifecycle(&done["timeline"]);
    assert_eq!(
        tl,
        [
            "queued",
            "processing",
            "failed",
            "queued",
            "processing",
            "sent",
            "delivered",
            "read"
        ],
        "{}",
        done["timeline"]
    );
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 2, "Meta saw the retry: {sent:?}");
    assert_eq!(sent[0].error_code, Some(100));
    assert!(sent[1].wamid.is_some());
    assert_eq!(sent[0].body, sent[1].body, "the same request again");
    // Retrying it now that it is read: 409.
    let r = act(&s, &org.key, &id, "retry").await;
    assert_error(r.status, &r.body, 409, "CONFLICT", None);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 6. Dry runs.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_return_the_exact_graph_request_and_warnings_and_store_nothing() {
    let s = TestServer::start().await;
    let org = connect(&s, "dry@example.com").await;
    let sim = s.simulator();

    // Free-form to a contact who never wrote: the window is closed.
    let r = post(
        &s,
        &org.key,
        "/send-message",
        json!({"type": "text", "to": GUIDE_TO, "text": "Hello!", "dryRun": true}),
        &[],
    )
    .await;
    // Nothing was accepted: 200, not the send's 202.
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["data"].is_null(), "{}", r.text);
    assert!(r.headers.get("wagate-http-status").is_none());
    let d = &r.body["dryRun"];
    assert_eq!(d["phoneId"], org.phone_id.as_str());
    assert_eq!(d["metaPhoneNumberId"], org.meta_phone.as_str());
    assert_eq!(d["path"], format!("/v23.0/{}/messages", org.meta_phone));
    assert_eq!(d["status"], "queued");
    assert_eq!(d["windowOpen"], false);
    assert!(d["windowExpiresAt"].is_null());
    assert!(d["contactId"].is_null(), "an unknown contact: {d}");
    let graph_without_id = |req: &Value| {
        let mut v = req.clone();
        v.as_object_mut()
            .map(|o| o.remove("biz_opaque_callback_data"));
        v
    };
    assert_eq!(
        graph_without_id(&d["request"]),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": GUIDE_TO, "type": "text", "text": {"body": "Hello!"}})
    );
    let warnings = d["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("24-hour") && w.contains("131047"))),
        "{d}"
    );

    // A scheduled dry run says so.
    let r = post(
        &s,
        &org.key,
        &phone_path(&org),
        json!({"type": "text", "to": GUIDE_TO, "text": "later", "dryRun": true,
               "sendAt": (Utc::now() + chrono::Duration::hours(2)).to_rfc3339()}),
        &[],
    )
    .await;
    assert_eq!(r.body["dryRun"]["status"], "scheduled", "{}", r.text);

    // A template: checked against the WABA's templates (none here).
    let r = post(
        &s,
        &org.key,
        &phone_path(&org),
        json!({"type": "template", "to": GUIDE_TO, "dryRun": true,
               "template": {"name": "no_such_template", "language": "en_US"}}),
        &[],
    )
    .await;
    let d = &r.body["dryRun"];
    let warnings: Vec<&str> = d["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no_such_template") && w.contains("not found")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("24-hour")),
        "templates may go outside the window: {warnings:?}"
    );
    assert_eq!(
        graph_without_id(&d["request"]),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": GUIDE_TO,
               "type": "template", "template": {"name": "no_such_template", "language": {"code": "en_US"}}})
    );
    // Invalid dry runs fail like real sends.
    let r = post(
        &s,
        &org.key,
        &phone_path(&org),
        json!({"type": "text", "to": GUIDE_TO, "text": "x".repeat(4097), "dryRun": true}),
        &[],
    )
    .await;
    assert_error(r.status, &r.body, 400, "VALIDATION_ERROR", Some("text"));

    // Nothing was stored or sent.
    assert_eq!(total(&s, &org).await, 0);
    assert_nothing_sent(&s);

    // Once the contact writes, the window is open and the warning is gone.
    inject_inbound(&s, &org, GUIDE_TO, "hi there").await;
    let r = post(
        &s,
        &org.key,
        &phone_path(&org),
        json!({"type": "text", "to": GUIDE_TO, "text": "Hello!", "dryRun": true}),
        &[],
    )
    .await;
    let d = r.body["dryRun"].clone();
    assert_eq!(d["windowOpen"], true, "{d}");
    assert!(time(&d["windowExpiresAt"]) > Utc::now() + chrono::Duration::hours(23));
    assert!(d["contactId"].is_string(), "{d}");
    assert!(
        !d["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("24-hour"))),
        "{d}"
    );
    assert_eq!(total(&s, &org).await, 1, "only the inbound message");

    // The request a dry run shows is the one sent for real.
    let m = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": GUIDE_TO, "text": "Hello!"}),
    )
    .await;
    assert!(m["warnings"].as_array().is_some_and(Vec::is_empty), "{m}");
    let req = accepted_send(sim, m["id"].as_str().expect("id")).await;
    assert_eq!(
        graph_without_id(req.body.as_ref().expect("body")),
        graph_without_id(&d["request"])
    );

    // Over gRPC: `dry_run` instead of `data`.
    let mut client = MessageServiceClient::new(s.channel().await);
    let g = client
        .send_phone_message(authed(
            pb::SendPhoneMessageRequest {
                phone_id: org.phone_id.clone(),
                message: Some(pb::OutboundMessage {
                    to: "16505551234".into(),
                    r#type: pb::MessageType::Text as i32,
                    text: Some(wagate::api::convert::json_value(&json!("Hello!"))),
                    dry_run: true,
                    ..Default::default()
                }),
            },
            &org.key,
        ))
        .await
        .expect("dry run")
        .into_inner();
    assert!(g.data.is_none());
    let dr = g.dry_run.expect("dry_run");
    assert!(!dr.window_open);
    assert_eq!(dr.status, pb::MessageStatus::Queued as i32);
    assert_eq!(total(&s, &org).await, 2);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 7. Bulk.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn bulk_needs_a_paid_plan_queues_valid_items_in_one_batch_and_reports_the_rest() {
    let s = TestServer::start().await;
    let org = connect(&s, "bulk@example.com").await;
    let sim = s.simulator();
    let item = |i: usize| json!({"type": "text", "to": format!("1650555{i:04}"), "text": format!("hello {i}")});

    // BASIC: no bulk at all.
    let r = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"messages": [item(1)]}),
        &[],
    )
    .await;
    assert_error(r.status, &r.body, 403, "FORBIDDEN", None);
    assert_eq!(total(&s, &org).await, 0);

    set_plan(&s, &org, Plan::Pro).await;
    let cap = Plan::Pro.limits().bulk_max as usize;
    // Over the plan's cap: 400 naming messages, nothing queued.
    let over: Vec<Value> = (0..=cap).map(item).collect();
    let r = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"messages": over}),
        &[],
    )
    .await;
    assert_error(r.status, &r.body, 400, "VALIDATION_ERROR", Some("messages"));
    assert_eq!(total(&s, &org).await, 0);
    // The request's phone is not this organization's: one 404 for the
    // request, nothing queued.
    let r = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"phoneId": uuid::Uuid::new_v4(), "messages": [item(1), item(2)]}),
        &[],
    )
    .await;
    assert_error(r.status, &r.body, 404, "NOT_FOUND", None);
    assert_eq!(total(&s, &org).await, 0);

    // Valid and invalid items mixed.
    let mixed = json!({"messages": [
        item(1),
        {"type": "text", "to": "16505550002", "text": "x".repeat(4097)},
        {"type": "image", "to": "16505550003", "image": {"link": "https://example.com/a.jpg", "caption": "A"}},
        {"type": "text", "to": "", "text": "nobody"},
        {"type": "text", "to": "16505550005", "text": "from a phone that is not ours", "phoneId": uuid::Uuid::new_v4()},
        {"type": "template", "to": "16505550006", "template": {"name": "hello_world", "language": "en_US"}},
    ]});
    let r = post(&s, &org.key, "/messages/bulk", mixed, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let data = &r.body["data"];
    let batch = data["batchId"].as_str().expect("batchId").to_owned();
    assert_eq!(data["accepted"], 3);
    assert_eq!(data["rejected"], 3);
    let errors = data["errors"].as_array().expect("errors");
    let got: Vec<(i64, &str, Option<&str>)> = errors
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (
                e["index"].as_i64().expect("index"),
                e["code"].as_str().expect("code"),
                e["field"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "VALIDATION_ERROR", Some("messages[1].text")),
            (3, "VALIDATION_ERROR", Some("messages[3].to")),
            (4, "NOT_FOUND", None),
        ],
        "{errors:?}"
    );
    let messages = data["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    for m in messages {
        assert_eq!(m["batchId"], batch.as_str());
        assert_eq!(m["status"], "queued");
        assert_eq!(m["phoneId"], org.phone_id.as_str());
    }
    let (n, listed) = list(&s.base, &org.key, &format!("?batchId={batch}")).await;
    assert_eq!(n, 3, "{listed:?}");
    assert_eq!(total(&s, &org).await, 3);

    // Exactly the plan's cap: accepted, one batch, each sent once.
    let full: Vec<Value> = (0..cap).map(|i| item(100 + i)).collect();
    let r = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"messages": full, "phoneId": org.phone_id}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["accepted"], cap);
    assert_eq!(r.body["data"]["rejected"], 0);
    let big = r.body["data"]["batchId"]
        .as_str()
        .expect("batchId")
        .to_owned();
    assert_ne!(big, batch);
    let (n, _) = list(&s.base, &org.key, &format!("?batchId={big}&limit=100")).await;
    assert_eq!(n, cap as i64);
    let ids: Vec<String> = r.body["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .chain(messages.iter())
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    poll(
        "every bulk message to reach Meta",
        Duration::from_secs(30),
        || async {
            let counts = crate::harness::outbound::accepted_counts(sim);
            let missing = ids.iter().filter(|id| !counts.contains_key(*id)).count();
            if missing == 0 {
                Ok(counts)
            } else {
                Err(format!("{missing} not sent yet"))
            }
        },
    )
    .await;
    poll(
        "every bulk message to be sent",
        Duration::from_secs(30),
        || async {
            let (n, _) = list(&s.base, &org.key, &format!("?batchId={big}&status=queued")).await;
            let (p, _) = list(
                &s.base,
                &org.key,
                &format!("?batchId={big}&status=processing"),
            )
            .await;
            if n + p == 0 {
                Ok(())
            } else {
                Err(format!("{n} queued, {p} processing"))
            }
        },
    )
    .await;
    let counts = crate::harness::outbound::accepted_counts(sim);
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "message {id} sent exactly once");
    }
    assert_eq!(
        sim.accepted_sends().len(),
        ids.len(),
        "nothing else was sent"
    );

    // A bulk-wide sendAt schedules every item that sets none.
    let at = Utc::now() + chrono::Duration::hours(1);
    let own = Utc::now() + chrono::Duration::hours(2);
    let r = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"sendAt": at.to_rfc3339(), "messages": [
            item(900),
            {"type": "text", "to": "16505550901", "text": "mine", "sendAt": own.to_rfc3339()}]}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let m = r.body["data"]["messages"].as_array().expect("messages");
    assert_eq!(m[0]["status"], "scheduled");
    assert_eq!(m[1]["status"], "scheduled");
    assert_eq!(time(&m[0]["sendAt"]).timestamp(), at.timestamp());
    assert_eq!(time(&m[1]["sendAt"]).timestamp(), own.timestamp());

    // Over gRPC, the same errors with their index.
    let mut client = MessageServiceClient::new(s.channel().await);
    let g = client
        .bulk_send_messages(authed(
            pb::BulkSendMessagesRequest {
                messages: vec![
                    pb::OutboundMessage {
                        to: "16505559999".into(),
                        r#type: pb::MessageType::Text as i32,
                        text: Some(wagate::api::convert::json_value(&json!("grpc bulk"))),
                        ..Default::default()
                    },
                    pb::OutboundMessage {
                        to: "16505559998".into(),
                        r#type: pb::MessageType::Template as i32,
                        template: Some(pb::TemplateInput::default()),
                        ..Default::default()
                    },
                ],
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
    assert_eq!(g.errors[0].index, 1);
    assert_eq!(
        g.errors[0].field.as_deref(),
        Some("messages[1].template.name")
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// ListMessages: filters and pagination.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn list_messages_filters_by_status_phone_contact_batch_direction_and_time() {
    let s = TestServer::start().await;
    let org = connect(&s, "list@example.com").await;
    set_plan(&s, &org, Plan::Pro).await;
    let a = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505550101", "text": "a"}),
    )
    .await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let bulk = post(
        &s,
        &org.key,
        "/messages/bulk",
        json!({"messages": [
            {"type": "text", "to": "16505550102", "text": "b"},
            {"type": "text", "to": "16505550103", "text": "c"}]}),
        &[],
    )
    .await;
    assert_eq!(bulk.status, 202, "{}", bulk.text);
    let batch = bulk.body["data"]["batchId"]
        .as_str()
        .expect("batch")
        .to_owned();
    let scheduled = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505550101", "text": "later",
               "sendAt": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
    )
    .await;
    inject_inbound(&s, &org, "16505550104", "inbound one").await;
    let other = connect_at(&s.base, "list-other@example.com", "106540352242977").await;
    send_ok(
        &s,
        &other,
        json!({"type": "text", "to": "16505550101", "text": "theirs"}),
    )
    .await;

    let key = &org.key;
    let base = &s.base;
    assert_eq!(list(base, key, "").await.0, 5, "only this organization's");
    assert_eq!(list(base, key, "?direction=inbound").await.0, 1);
    assert_eq!(list(base, key, "?direction=outbound").await.0, 4);
    assert_eq!(list(base, key, "?status=scheduled").await.0, 1);
    assert_eq!(list(base, key, &format!("?batchId={batch}")).await.0, 2);
    assert_eq!(
        list(base, key, &format!("?phoneId={}", org.phone_id))
            .await
            .0,
        5
    );
    assert_eq!(
        list(base, key, &format!("?phoneId={}", other.phone_id))
            .await
            .0,
        0,
        "another organization's phone shows nothing"
    );
    let contact = a["contactId"].as_str().expect("contact");
    let (n, by_contact) = list(base, key, &format!("?contactId={contact}")).await;
    assert_eq!(n, 2, "{by_contact:?}");
    assert!(by_contact.iter().any(|m| m["id"] == scheduled["id"]));
    assert_eq!(
        list(base, &other.key, &format!("?contactId={contact}"))
            .await
            .0,
        0,
        "another organization's contact shows nothing"
    );
    let after = urlencoding(&between.to_rfc3339());
    assert_eq!(
        list(base, key, &format!("?createdAfter={after}")).await.0,
        4
    );
    assert_eq!(
        list(base, key, &format!("?createdBefore={after}")).await.0,
        1
    );
    // Read statuses arrive; the filter follows.
    wait_status(&s, &org, a["id"].as_str().expect("id"), "read").await;
    let (n, read) = list(base, key, "?status=read&direction=outbound").await;
    assert!(
        n >= 1 && read.iter().all(|m| m["status"] == "read"),
        "{read:?}"
    );

    // Pagination: newest first, stable pages, no timeline in lists.
    let (n, p1) = list(base, key, "?limit=2&page=1").await;
    let (_, p2) = list(base, key, "?limit=2&page=2").await;
    let (_, p3) = list(base, key, "?limit=2&page=3").await;
    assert_eq!(n, 5);
    assert_eq!((p1.len(), p2.len(), p3.len()), (2, 2, 1));
    // Past the last page: nothing, with the total still counted.
    let (n, p4) = list(base, key, "?limit=2&page=4").await;
    assert_eq!((n, p4.len()), (5, 0));
    let mut seen: Vec<&Value> = p1.iter().chain(&p2).chain(&p3).map(|m| &m["id"]).collect();
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    assert_eq!(seen.len(), 5, "pages overlap");
    assert!(
        p1.iter()
            .all(|m| m["timeline"].as_array().is_some_and(Vec::is_empty))
    );
    for (q, field) in [
        ("?batchId=nope", "batchId"),
        ("?status=lost", "status"),
        // proto3's zero value is "not given", not a status to filter by.
        ("?status=unspecified", "status"),
        ("?direction=unspecified", "direction"),
        ("?limit=101", "limit"),
        ("?createdAfter=yesterday", "createdAfter"),
    ] {
        let (st, body) = s.rest().get(&format!("/messages{q}"), Some(key)).await;
        assert_error(st, &body, 400, "VALIDATION_ERROR", Some(field));
    }
    // Another organization's message is not found.
    let (_, theirs) = list(base, &other.key, "").await;
    let (st, body) = s
        .rest()
        .get(
            &format!("/messages/{}", theirs[0]["id"].as_str().expect("id")),
            Some(key),
        )
        .await;
    assert_error(st, &body, 404, "NOT_FOUND", None);
    s.stop().await;
}

fn urlencoding(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
