//! Graph API responses have the shapes of Meta's recorded responses under
//! tests/fixtures/meta/graph.
mod common;

use common::*;
use serde_json::{Value, json};

const PHONE: &str = "106540352242922";

#[tokio::test]
async fn sends_of_every_type_match_recorded_responses() {
    let env = start().await;
    let names = [
        "send_audio_by_id",
        "send_contacts",
        "send_document_by_id_filename",
        "send_document_by_link",
        "send_image_by_id",
        "send_image_by_link",
        "send_interactive_buttons",
        "send_interactive_list",
        "send_location",
        "send_reaction",
        "send_sticker_by_id",
        "send_sticker_by_link",
        "send_template_message_status_accepted",
        "send_text",
        "send_text_reply_context",
        "send_video_by_id",
        "send_video_by_link",
    ];
    let mut wamids = std::collections::HashSet::new();
    for name in names {
        let req = fixture(&format!("graph/rubysdk__{name}__request.json"));
        let sample = fixture(&format!("graph/rubysdk__{name}__response.json"));
        let (status, body) = env.post(&format!("/{PHONE}/messages"), &req).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_shape(&body, &sample);
        assert_eq!(body["contacts"][0]["input"], "13437772910", "{name}");
        assert_eq!(body["contacts"][0]["wa_id"], "13437772910", "{name}");
        let id = body["messages"][0]["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("wamid."), "{id}");
        assert!(wamids.insert(id), "wamids are unique");
    }
    let tpl = fixture("graph/rubysdk__send_template_message_status_accepted__request.json");
    let (_, body) = env.post(&format!("/{PHONE}/messages"), &tpl).await;
    assert_eq!(body["messages"][0]["message_status"], "accepted");

    // E.164 with formatting: wa_id is the digits.
    let (_, body) = env.send_text(PHONE, "+1 (650) 555-1234", None).await;
    assert_shape(
        &body,
        &fixture("graph/metadocs__bsuid_send_response_to_phone.json"),
    );
    assert_eq!(body["contacts"][0]["input"], "+1 (650) 555-1234");
    assert_eq!(body["contacts"][0]["wa_id"], "16505551234");

    // BSUID recipient.
    let (status, body) = env
        .post(
            &format!("/{PHONE}/messages"),
            &json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                    "recipient": "US.13491208655302741918", "type": "text", "text": {"body": "hi"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_shape(
        &body,
        &fixture("graph/metadocs__bsuid_send_response_to_bsuid.json"),
    );
    assert_eq!(body["contacts"][0]["user_id"], "US.13491208655302741918");
    assert_eq!(body["contacts"][0]["input"], "US.13491208655302741918");

    assert_eq!(env.sim.accepted_sends().len(), names.len() + 3);
}

#[tokio::test]
async fn send_errors_match_recorded_bodies() {
    let env = start().await;
    // Unknown (non-numeric) phone id -> 100/33.
    let req = fixture("graph/rubysdk__send_text_unknown_phone_id_error_100_33__request.json");
    let sample = fixture("graph/rubysdk__send_text_unknown_phone_id_error_100_33__response.json");
    let (status, body) = env.post("/not-a-phone/messages", &req).await;
    assert_eq!(status, 400);
    assert_shape(&body, &sample);
    assert_eq!(body["error"]["error_subcode"], 33);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported post request. Object with ID 'not-a-phone' does not exist")
    );
    // Unknown edge -> 100/33 too.
    let (status, body) = env.get(&format!("/{PHONE}/no_such_edge")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["error_subcode"], 33);

    // No Authorization header -> 190 OAuthException.
    let r = env
        .http
        .post(format!("{}/{PHONE}/messages", env.graph))
        .json(&json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(body["error"]["type"], "OAuthException");

    // Synchronous reserved recipient: 100 invalid parameter.
    let (status, body) = env.send_text(PHONE, "+15550000100", None).await;
    assert_eq!(status, 400);
    assert_shape(
        &body,
        &fixture("graph/metadocs__error_100_mm_api_not_template.json"),
    );
    assert_eq!(body["error"]["code"], 100);
    // Forced-synchronous 131047.
    let (status, body) = env.send_text(PHONE, "15551131047", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 131047);
    assert_eq!(body["error"]["message"], "(#131047) Re-engagement message");
}

#[tokio::test]
async fn mark_as_read_and_typing_indicator() {
    let env = start().await;
    let wamid = env
        .sim
        .inject_inbound(wagate_simulator::InboundMessage::text(
            PHONE,
            "13437772910",
            "hola",
        ))
        .await
        .unwrap();
    let mut req = fixture("graph/rubysdk__typing_indicator__request.json");
    req["message_id"] = wamid.clone().into();
    let (status, body) = env.post(&format!("/{PHONE}/messages"), &req).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        fixture("graph/rubysdk__typing_indicator__response.json")
    );
    let (status, body) = env
        .post(
            &format!("/{PHONE}/messages"),
            &json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));

    // An outgoing id.
    let (_, sent) = env.send_text(PHONE, "13437772910", None).await;
    let out_id = sent["messages"][0]["id"].as_str().unwrap().to_string();
    let mut req = fixture("graph/rubysdk__mark_read_outgoing_id_error_100__request.json");
    req["message_id"] = out_id.clone().into();
    let (status, body) = env.post(&format!("/{PHONE}/messages"), &req).await;
    assert_eq!(status, 400);
    let sample = fixture("graph/rubysdk__mark_read_outgoing_id_error_100__response.json");
    assert_shape(&body, &sample);
    assert_eq!(
        body["error"]["error_data"]["details"],
        format!(
            "Message supplied to mark message as read API with message ID: {out_id} is outgoing. Please use an incoming message ID."
        )
    );
    // A garbage id.
    let req = fixture("graph/rubysdk__mark_read_bad_id_error_100__request.json");
    let (status, body) = env.post(&format!("/{PHONE}/messages"), &req).await;
    assert_eq!(status, 400);
    let sample = fixture("graph/rubysdk__mark_read_bad_id_error_100__response.json");
    assert_shape(&body, &sample);
    assert_eq!(body["error"]["error_data"], sample["error"]["error_data"]);
    assert_eq!(body["error"]["message"], sample["error"]["message"]);
    // Mark-as-read is logged as such, not as a send.
    assert_eq!(
        env.sim
            .requests_matching(&wagate_simulator::RequestFilter {
                kind: Some("messages.read".into()),
                ..Default::default()
            })
            .len(),
        4
    );
}

#[tokio::test]
async fn phone_and_waba_management_shapes() {
    let env = start().await;
    // GET phone with the recorded response's fields.
    let sample = fixture("graph/rubysdk__get_phone_number__response.json");
    let fields: Vec<&str> = sample
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "id")
        .collect();
    let (status, body) = env
        .get(&format!("/{PHONE}?fields={}", fields.join(",")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_shape(&body, &sample);
    assert_eq!(body["status"], "CONNECTED");
    assert_eq!(body["quality_rating"], "GREEN");
    assert_eq!(body["messaging_limit_tier"], "TIER_1K");
    // Only requested fields + id.
    let (_, body) = env.get(&format!("/{PHONE}?fields=health_status")).await;
    let sample = fixture("graph/metadocs__health_status_available.json");
    assert_shape(&body, &sample);
    assert_eq!(body["health_status"]["can_send_message"], "AVAILABLE");
    let (_, body) = env
        .get(&format!(
            "/{PHONE}?fields=whatsapp_business_manager_messaging_limit"
        ))
        .await;
    assert_shape(
        &body,
        &fixture("graph/metadocs__messaging_limit_field_response.json"),
    );
    let (_, body) = env
        .get(&format!(
            "/{PHONE}?fields=throughput{{level}},platform_type,account_mode,name_status,code_verification_status"
        ))
        .await;
    assert_eq!(body["throughput"]["level"], "STANDARD");
    assert_eq!(body["platform_type"], "CLOUD_API");
    assert_eq!(body.as_object().unwrap().len(), 6);
    // A field Graph doesn't have.
    let (status, body) = env.get(&format!("/{PHONE}?fields=nope")).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 100);

    // Register / deregister; deregistered phones can't send (133010).
    let (s, b) = env
        .post(
            &format!("/{PHONE}/deregister"),
            &json!({"messaging_product": "whatsapp"}),
        )
        .await;
    assert_eq!(
        (s, &b),
        (
            200,
            &fixture("graph/rubysdk__deregister_phone_number__response.json")
        )
    );
    let (s, b) = env.send_text(PHONE, "16505551234", None).await;
    assert_eq!((s, b["error"]["code"].clone()), (400, json!(133010)));
    let (s, b) = env
        .post(
            &format!("/{PHONE}/register"),
            &json!({"messaging_product": "whatsapp", "pin": "212834"}),
        )
        .await;
    assert_eq!(
        (s, &b),
        (
            200,
            &fixture("graph/rubysdk__register_phone_number__response.json")
        )
    );

    // WABA.
    let waba = env.sim.phone(PHONE).unwrap().waba_id;
    let (s, body) = env.get(&format!("/{waba}")).await;
    assert_eq!(s, 200);
    assert_shape(&body, &fixture("graph/rubysdk__get_waba__response.json"));
    let (s, body) = env.get(&format!("/{waba}/phone_numbers")).await;
    assert_eq!(s, 200);
    assert_shape(
        &body,
        &fixture("graph/rubysdk__list_phone_numbers__response.json"),
    );
    assert_eq!(body["data"][0]["id"], PHONE);

    // Subscribed apps, with a verified override callback.
    let (s, b) = env
        .post(&format!("/{waba}/subscribed_apps"), &json!({}))
        .await;
    assert_eq!((s, b), (200, json!({"success": true})));
    let (s, b) = env
        .post(
            &format!("/{waba}/subscribed_apps"),
            &json!({"override_callback_uri": env.hook_url, "verify_token": "wrong"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"]["code"], 2200);
    let (s, _) = env
        .post(
            &format!("/{waba}/subscribed_apps"),
            &json!({"override_callback_uri": env.hook_url, "verify_token": VERIFY_TOKEN}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, b) = env.get(&format!("/{waba}/subscribed_apps")).await;
    assert_eq!(b["data"][0]["override_callback_uri"], env.hook_url);
    assert!(b["data"][0]["whatsapp_business_api_data"]["id"].is_string());
    let (s, b) = env.delete(&format!("/{waba}/subscribed_apps")).await;
    assert_eq!((s, b), (200, json!({"success": true})));
    let (_, b) = env.get(&format!("/{waba}/subscribed_apps")).await;
    assert_eq!(b, json!({"data": []}));
}

#[tokio::test]
async fn media_upload_lookup_download_delete() {
    let env = start().await;
    let bytes = b"\x89PNG\r\n\x1a\nnot really a png".to_vec();
    let form = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "image/png")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("pic.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let r = env
        .http
        .post(format!("{}/{PHONE}/media", env.graph))
        .bearer_auth("t")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_shape(
        &body,
        &fixture("graph/rubysdk__upload_media__response.json"),
    );
    let id = body["id"].as_str().unwrap().to_string();

    let (s, body) = env.get(&format!("/{id}")).await;
    assert_eq!(s, 200);
    assert_shape(
        &body,
        &fixture("graph/rubysdk__get_media_url__response.json"),
    );
    assert_eq!(body["mime_type"], "image/png");
    assert_eq!(body["file_size"], bytes.len());
    let url = body["url"].as_str().unwrap().to_string();
    assert!(
        url.contains("/whatsapp_business/attachments/?mid="),
        "{url}"
    );

    let r = env.http.get(&url).bearer_auth("t").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let got = r.bytes().await.unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());
    let r = env.http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "download needs the bearer token");

    let (s, b) = env.delete(&format!("/{id}")).await;
    assert_eq!(
        (s, &b),
        (200, &fixture("graph/rubysdk__delete_media__response.json"))
    );
    let (s, b) = env.delete(&format!("/{id}")).await;
    assert_eq!(s, 400);
    let sample = fixture("graph/rubysdk__delete_media_bad_id_error_100__response.json");
    assert_shape(&b, &sample);
    assert_eq!(b["error"]["message"], sample["error"]["message"]);
}

#[tokio::test]
async fn templates_crud_and_paging() {
    let env = start().await;
    let waba = "114503234599312";
    let req = fixture("graph/rubysdk__create_template_positional_params__request.json");
    let (s, body) = env.post(&format!("/{waba}/message_templates"), &req).await;
    assert_eq!(s, 200, "{body}");
    assert_shape(
        &body,
        &fixture("graph/rubysdk__create_template_positional_params__response.json"),
    );
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["category"], "MARKETING");
    let id = body["id"].as_str().unwrap().to_string();
    let req = fixture("graph/rubysdk__create_template_named_params__request.json");
    let (s, _) = env.post(&format!("/{waba}/message_templates"), &req).await;
    assert_eq!(s, 200);

    let (s, body) = env.get(&format!("/{id}")).await;
    assert_eq!(s, 200);
    assert_shape(
        &body,
        &fixture("graph/rubysdk__get_template_by_id__response.json"),
    );

    // Review runs (APPROVED after the delay), then edit.
    env.recv
        .wait("template approval", |r| {
            r.hooks_with_field("message_template_status_update").len() >= 2
        })
        .await;
    let edit = fixture("graph/rubysdk__edit_template__request.json");
    let (s, b) = env.post(&format!("/{id}"), &edit).await;
    assert_eq!(
        (s, &b),
        (200, &fixture("graph/rubysdk__edit_template__response.json"))
    );

    // Listing with paging: hello_world + 2 created.
    let (s, body) = env
        .get(&format!(
            "/{waba}/message_templates?fields=name,components,language,status,category&limit=2"
        ))
        .await;
    assert_eq!(s, 200);
    assert_shape(
        &body["data"][0],
        &fixture("graph/rubysdk__list_templates__response.json")["data"][0],
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert!(body["paging"]["cursors"]["after"].is_string());
    let next = body["paging"]["next"].as_str().unwrap().to_string();
    let r = env.http.get(&next).bearer_auth("t").send().await.unwrap();
    let page2: Value = r.json().await.unwrap();
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["paging"].get("next").is_none());

    // Delete by hsm_id, by name, and not found.
    let (s, b) = env
        .delete(&format!(
            "/{waba}/message_templates?hsm_id={id}&name=seasonal_promotion"
        ))
        .await;
    assert_eq!(
        (s, &b),
        (
            200,
            &fixture("graph/rubysdk__delete_template_by_hsm_id__response.json")
        )
    );
    let (s, b) = env
        .delete(&format!(
            "/{waba}/message_templates?name=seasonal_promotion"
        ))
        .await;
    assert_eq!(
        (s, &b),
        (
            200,
            &fixture("graph/rubysdk__delete_template_by_name__response.json")
        )
    );
    let (s, b) = env
        .delete(&format!("/{waba}/message_templates?name=fake%20name"))
        .await;
    assert_eq!(s, 400);
    let mut sample =
        fixture("graph/rubysdk__delete_template_not_found_error_2593002__response.json");
    let mut ours = b.clone();
    ours["error"]["fbtrace_id"] = Value::Null;
    sample["error"]["fbtrace_id"] = Value::Null;
    assert_eq!(ours, sample);
}
