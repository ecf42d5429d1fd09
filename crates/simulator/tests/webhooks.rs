//! Status webhooks, reserved recipients, inbound injection, raw posts, retries, templates.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wagate_simulator::{InboundMessage, Signature};

const PHONE: &str = "106540352242922";

#[tokio::test]
async fn statuses_arrive_signed_in_order_with_callback_data() {
    let env = start().await;
    let mut wamids = Vec::new();
    for i in 0..5 {
        let (s, b) = env
            .send_text(PHONE, &format!("+1650555{i:04}"), Some(&format!("cb-{i}")))
            .await;
        assert_eq!(s, 200);
        wamids.push(b["messages"][0]["id"].as_str().unwrap().to_string());
    }
    env.recv
        .wait("15 statuses", |r| r.statuses().len() >= 15)
        .await;
    for h in env.recv.all() {
        assert!(h.signed_ok(), "signature must verify: {:?}", h.signature);
        assert_eq!(h.json["object"], "whatsapp_business_account");
        assert_eq!(h.json["entry"][0]["changes"][0]["field"], "messages");
        let v = &h.json["entry"][0]["changes"][0]["value"];
        assert_eq!(v["messaging_product"], "whatsapp");
        assert_eq!(v["metadata"]["phone_number_id"], PHONE);
        assert!(v["metadata"]["display_phone_number"].is_string());
    }
    for (i, w) in wamids.iter().enumerate() {
        let st = env.recv.statuses_of(w);
        let names: Vec<&str> = st.iter().map(|s| s["status"].as_str().unwrap()).collect();
        assert_eq!(names, ["sent", "delivered", "read"], "order for {w}");
        for s in &st {
            assert_eq!(s["biz_opaque_callback_data"], format!("cb-{i}"));
            assert_eq!(s["recipient_id"], format!("1650555{i:04}"));
            assert!(s["timestamp"].is_string());
        }
        assert_eq!(st[0]["pricing"]["pricing_model"], "PMP");
        assert!(st[2].get("pricing").is_none());
    }
    // Shape of a sent status value vs Meta's v24 sample (+ pricing and callback data).
    let sample = fixture("webhooks/metadocs__status_sent_v24_no_conversation.json");
    let ours = env.recv.statuses_of(&wamids[0])[0].clone();
    let sample_status = &sample["entry"][0]["changes"][0]["value"]["statuses"][0];
    for k in sample_status.as_object().unwrap().keys() {
        assert!(ours.get(k).is_some(), "missing {k}");
    }

    // Reactions get only `sent`.
    let (_, b) = env
        .post(
            &format!("/{PHONE}/messages"),
            &fixture("graph/rubysdk__send_reaction__request.json"),
        )
        .await;
    let rw = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("reaction sent", |r| !r.statuses_of(&rw).is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = env.recv.statuses_of(&rw);
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["status"], "sent");
}

#[tokio::test]
async fn reserved_recipients_produce_failed_statuses() {
    let env = start().await;
    let sample = fixture("webhooks/metadocs__status_failed_131049.json");
    let sample_status = &sample["entry"][0]["changes"][0]["value"]["statuses"][0];
    for code in [131047, 131026, 131050, 131049] {
        let to = format!("+1555{:07}", code);
        let (s, b) = env.send_text(PHONE, &to, Some("order:1")).await;
        assert_eq!(s, 200, "{code}: {b}");
        let w = b["messages"][0]["id"].as_str().unwrap().to_string();
        env.recv
            .wait("failed status", |r| !r.statuses_of(&w).is_empty())
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let st = env.recv.statuses_of(&w);
        assert_eq!(st.len(), 1, "{code}: only the failed status");
        let f = &st[0];
        assert_eq!(f["status"], "failed");
        assert_eq!(f["errors"][0]["code"], code);
        assert_eq!(f["biz_opaque_callback_data"], "order:1");
        assert!(f.get("pricing").is_none() && f.get("conversation").is_none());
        assert_shape(&f["errors"][0], &sample_status["errors"][0]);
        if code == 131049 {
            assert_eq!(f["errors"][0], sample_status["errors"][0]);
        }
        // Failed statuses carry no contacts.
        let hook = env
            .recv
            .all()
            .into_iter()
            .find(|h| h.json["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] == w.as_str())
            .unwrap();
        assert!(
            hook.json["entry"][0]["changes"][0]["value"]
                .get("contacts")
                .is_none()
        );
        assert!(hook.signed_ok());
    }
    // Behaviour recipients: sent only; reversed order; sent then failed.
    let (_, b) = env.send_text(PHONE, "15553000001", None).await;
    let w1 = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, b) = env.send_text(PHONE, "15553000003", None).await;
    let w3 = b["messages"][0]["id"].as_str().unwrap().to_string();
    let (_, b) = env.send_text(PHONE, "15553000006", None).await;
    let w6 = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("behaviours", |r| {
            r.statuses_of(&w3).len() == 3 && r.statuses_of(&w6).len() == 2
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let names = |w: &str| -> Vec<String> {
        env.recv
            .statuses_of(w)
            .iter()
            .map(|s| s["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&w1), ["sent"]);
    assert_eq!(names(&w3), ["read", "delivered", "sent"]);
    assert_eq!(names(&w6), ["sent", "failed"]);
}

#[tokio::test]
async fn inbound_injection_with_bsuid_fields() {
    let env = start().await;
    let (s, b) = env
        .control(
            reqwest::Method::POST,
            "/_sim/inbound",
            Some(json!({
                "phoneNumberId": PHONE, "from": "+16505551234", "fromUserId": "US.13491208655302741918",
                "parentUserId": "US.ENT.11815799212886844830", "username": "@sheena", "name": "Sheena Nelson",
                "type": "text", "text": {"body": "Does it come in another color?"}
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let wamid = b["wamid"].as_str().unwrap().to_string();
    assert!(wamid.starts_with("wamid."));
    let hooks = env.recv.all();
    assert_eq!(hooks.len(), 1, "delivered before the call returned");
    let h = &hooks[0];
    assert!(h.signed_ok());
    let v = &h.json["entry"][0]["changes"][0]["value"];
    let c = &v["contacts"][0];
    assert_eq!(c["wa_id"], "16505551234");
    assert_eq!(c["user_id"], "US.13491208655302741918");
    assert_eq!(c["parent_user_id"], "US.ENT.11815799212886844830");
    assert_eq!(c["profile"]["name"], "Sheena Nelson");
    assert_eq!(c["profile"]["username"], "@sheena");
    let m = &v["messages"][0];
    assert_eq!(m["id"], wamid.as_str());
    assert_eq!(m["from"], "16505551234");
    assert_eq!(m["from_user_id"], "US.13491208655302741918");
    assert_eq!(m["from_parent_user_id"], "US.ENT.11815799212886844830");
    assert_eq!(m["type"], "text");
    assert_eq!(m["text"]["body"], "Does it come in another color?");
    assert!(m["timestamp"].is_string());
    // Same shape as pywa's BSUID-aware fixture (contacts + message keys).
    let sample = fixture("webhooks/pywa__message__text.json");
    let sv = &sample["entry"][0]["changes"][0]["value"];
    for k in sv["contacts"][0].as_object().unwrap().keys() {
        assert!(c.get(k).is_some(), "contact key {k}");
    }
    for k in sv["messages"][0].as_object().unwrap().keys() {
        assert!(m.get(k).is_some(), "message key {k}");
    }

    // Username user with hidden phone: from "" and wa_id "".
    env.sim
        .inject_inbound(InboundMessage {
            phone_number_id: PHONE.into(),
            from: Some(String::new()),
            from_user_id: Some("US.99999999999999999999".into()),
            username: Some("@pablo".into()),
            ..InboundMessage::text(PHONE, "", "hi")
        })
        .await
        .unwrap();
    let h = env.recv.all()[1].clone();
    let v = &h.json["entry"][0]["changes"][0]["value"];
    assert_eq!(v["contacts"][0]["wa_id"], "");
    assert_eq!(v["messages"][0]["from"], "");
    assert_eq!(v["messages"][0]["from_user_id"], "US.99999999999999999999");

    // Statuses to a known user carry recipient_user_id and contacts.
    let (_, b) = env.send_text(PHONE, "16505551234", None).await;
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("statuses", |r| r.statuses_of(&w).len() == 3)
        .await;
    let st = env.recv.statuses_of(&w);
    assert_eq!(st[1]["recipient_user_id"], "US.13491208655302741918");

    // Inbound image: media is stored and downloadable.
    let (s, b) = env
        .control(
            reqwest::Method::POST,
            "/_sim/inbound",
            Some(
                json!({"phoneNumberId": PHONE, "from": "16505551234", "type": "image",
                        "image": {"caption": "look"}}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let h = env.recv.all().last().unwrap().clone();
    let img = &h.json["entry"][0]["changes"][0]["value"]["messages"][0]["image"];
    assert_eq!(img["caption"], "look");
    assert!(img["sha256"].is_string());
    let media_id = img["id"].as_str().unwrap();
    let (s, body) = env.get(&format!("/{media_id}")).await;
    assert_eq!(s, 200);
    let r = env
        .http
        .get(body["url"].as_str().unwrap())
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn raw_webhooks_and_retries() {
    let env = start().await;
    let payload = fixture("webhooks/pywa__message__text.json");
    let raw = serde_json::to_vec(&payload).unwrap();
    let d = env
        .sim
        .post_raw_webhook(raw.clone(), Signature::Valid)
        .await
        .unwrap();
    assert!(d.delivered);
    let r = env
        .http
        .post(format!("{}/_sim/webhooks/raw?signature=invalid", env.base))
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let hooks = env.recv.all();
    assert_eq!(hooks[0].raw, raw, "posted byte for byte");
    assert!(hooks[0].signed_ok());
    assert!(hooks[1].signature.is_some() && !hooks[1].signed_ok());

    // The target is down for two attempts: delivered on the third.
    env.recv
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let wamid = env
        .sim
        .inject_inbound(InboundMessage::text(PHONE, "16505550000", "retry me"))
        .await
        .unwrap();
    let d = env
        .sim
        .webhook_deliveries()
        .into_iter()
        .find(|d| d.wamid.as_deref() == Some(&wamid))
        .unwrap();
    assert_eq!(d.attempts, 3);
    assert!(d.delivered);

    // A dead target: given up after the configured attempts.
    env.sim
        .set_webhook_url(Some("http://127.0.0.1:9/nothing-here".into()));
    let e = env
        .sim
        .inject_inbound(InboundMessage::text(PHONE, "16505550000", "lost"))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        wagate_simulator::SimError::WebhookFailed { .. }
    ));
}

#[tokio::test]
async fn template_review_lifecycle_webhooks() {
    let env = start().await;
    let waba = "102290129340398";
    let mk = |name: &str| {
        json!({"name": name, "language": "en_US", "category": "UTILITY",
               "components": [{"type": "BODY", "text": "Your order {{1}} shipped"}]})
    };
    let (s, ok) = env
        .post(&format!("/{waba}/message_templates"), &mk("order_update"))
        .await;
    assert_eq!(s, 200);
    assert_eq!(ok["status"], "PENDING");
    let (s, rej) = env
        .post(
            &format!("/{waba}/message_templates"),
            &mk("please_reject_me"),
        )
        .await;
    assert_eq!(s, 200);
    env.recv
        .wait("two reviews", |r| {
            r.hooks_with_field("message_template_status_update").len() == 2
        })
        .await;
    let sample = fixture("webhooks/pywa__template_status__approved.json");
    for h in env.recv.hooks_with_field("message_template_status_update") {
        assert!(h.signed_ok());
        let v = &h.json["entry"][0]["changes"][0]["value"];
        assert!(
            v["message_template_id"].is_u64(),
            "template id is a number in webhooks"
        );
        assert!(h.json["entry"][0]["time"].is_i64());
        assert_eq!(h.json["entry"][0]["id"], waba);
        let id = v["message_template_id"].to_string();
        if id == ok["id"].as_str().unwrap() {
            assert_eq!(v["event"], "APPROVED");
            assert_shape(v, &sample["entry"][0]["changes"][0]["value"]);
        } else {
            assert_eq!(id, rej["id"].as_str().unwrap());
            assert_eq!(v["event"], "REJECTED");
            assert!(v["rejection_info"]["reason"].is_string());
        }
    }
    let (_, t) = env.get(&format!("/{}", ok["id"].as_str().unwrap())).await;
    assert_eq!(t["status"], "APPROVED");
    let (_, t) = env.get(&format!("/{}", rej["id"].as_str().unwrap())).await;
    assert_eq!(t["status"], "REJECTED");

    // Control: pause it (webhook), and strict mode refuses paused templates (132015).
    let (s, _) = env
        .control(
            reqwest::Method::POST,
            &format!("/_sim/templates/{}/status", ok["id"].as_str().unwrap()),
            Some(json!({"status": "PAUSED"})),
        )
        .await;
    assert_eq!(s, 200);
    env.sim.update_config(wagate_simulator::ConfigPatch {
        strict_templates: Some(true),
        ..Default::default()
    });
    let send = |name: &str| {
        json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
               "template": {"name": name, "language": {"code": "en_US"}}})
    };
    let (s, b) = env
        .post(&format!("/{PHONE}/messages"), &send("order_update"))
        .await;
    assert_eq!((s, b["error"]["code"].clone()), (400, json!(132015)));
    let (s, b) = env.post(&format!("/{PHONE}/messages"), &send("nope")).await;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!(132001)));
    let (s, _) = env
        .post(&format!("/{PHONE}/messages"), &send("hello_world"))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn status_values_round_trip_as_json() {
    // Every status webhook body is valid JSON with string timestamps.
    let env = start().await;
    let (_, b) = env.send_text(PHONE, "16505551234", Some("x")).await;
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("statuses", |r| r.statuses_of(&w).len() == 3)
        .await;
    for s in env.recv.statuses_of(&w) {
        assert!(matches!(s["timestamp"], Value::String(_)));
    }
}

#[tokio::test]
async fn service_window_and_manual_statuses() {
    let mut cfg = config();
    cfg.enforce_service_window = true;
    let env = start_with(cfg).await;
    // No inbound yet: free-form sends fail with 131047 (as a failed status).
    let (s, b) = env.send_text(PHONE, "16505557777", None).await;
    assert_eq!(s, 200);
    let w = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("131047", |r| !r.statuses_of(&w).is_empty())
        .await;
    assert_eq!(env.recv.statuses_of(&w)[0]["errors"][0]["code"], 131047);
    // Templates are allowed outside the window.
    let (_, b) = env
        .post(
            &format!("/{PHONE}/messages"),
            &json!({"messaging_product": "whatsapp", "to": "16505557777", "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}}}),
        )
        .await;
    let wt = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("template statuses", |r| r.statuses_of(&wt).len() == 3)
        .await;
    assert_eq!(
        env.recv.statuses_of(&wt)[0]["pricing"]["category"],
        "utility"
    );
    // The user writes: the window opens.
    env.sim
        .inject_inbound(InboundMessage::text(PHONE, "16505557777", "hi"))
        .await
        .unwrap();
    let (_, b) = env.send_text(PHONE, "16505557777", None).await;
    let w2 = b["messages"][0]["id"].as_str().unwrap().to_string();
    env.recv
        .wait("statuses", |r| r.statuses_of(&w2).len() == 3)
        .await;
    assert_eq!(env.recv.statuses_of(&w2)[2]["status"], "read");

    // A status posted on demand through the control API.
    let (s, _) = env
        .control(
            reqwest::Method::POST,
            &format!("/_sim/messages/{w2}/status"),
            Some(json!({"status": "played"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(env.recv.statuses_of(&w2)[3]["status"], "played");
    let (_, list) = env
        .control(reqwest::Method::GET, "/_sim/webhooks", None)
        .await;
    assert!(list["count"].as_u64().unwrap() >= 8);
}
