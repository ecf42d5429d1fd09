//! Throughput (130429), pair limit (131056), injected faults, Embedded Signup, request log.
mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use wagate_simulator::{Fault, Outcome, RequestFilter, StatusDelays};

const PHONE: &str = "106540352242922";

#[tokio::test]
async fn throughput_limit_answers_the_recorded_130429() {
    let mut cfg = config();
    cfg.pair_rate_limit = false;
    cfg.throughput_burst = None;
    cfg.status_delays = StatusDelays::none();
    let env = start_with(cfg).await;
    env.sim.set_throughput(PHONE, 20);
    // A burst far above 20 mps: 60 concurrent sends.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let http = env.http.clone();
        let url = format!("{}/{PHONE}/messages", env.graph);
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth("t")
                .json(
                    &json!({"messaging_product": "whatsapp", "to": format!("1650555{i:04}"),
                              "type": "text", "text": {"body": "burst"}}),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut ok = 0;
    let mut limited = Vec::new();
    for t in tasks {
        let (s, b) = t.await.unwrap();
        if s == 200 {
            ok += 1;
        } else {
            limited.push((s, b));
        }
    }
    // Burst 2 plus 20/s for however long the burst took: far fewer than 60 pass.
    assert!(ok >= 1, "admitted {ok}");
    assert!(limited.len() >= 10, "limited {}", limited.len());
    let sample = fixture("graph/metadocs__error_130429_rate_limit.json");
    for (s, b) in &limited {
        assert_eq!(*s, 400);
        assert_shape(b, &sample);
        for k in ["message", "type", "code", "error_data", "error_subcode"] {
            assert_eq!(b["error"][k], sample["error"][k], "{k}");
        }
    }
    // Within the rate, everything passes.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..5 {
        let (s, b) = env.send_text(PHONE, &format!("1650666{i:04}"), None).await;
        assert_eq!(s, 200, "{b}");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    // The log counts them.
    let limited_logged = env.sim.requests_matching(&RequestFilter {
        error_code: Some(130429),
        ..Default::default()
    });
    assert_eq!(limited_logged.len(), limited.len());
}

#[tokio::test]
async fn pair_rate_limit_131056_configurable_and_can_be_disabled() {
    let mut cfg = config();
    cfg.pair_rate.burst = 3;
    cfg.status_delays = StatusDelays::none();
    let env = start_with(cfg).await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        let (s, b) = env.send_text(PHONE, "16505551234", None).await;
        codes.push((s, b["error"]["code"].as_i64()));
    }
    assert_eq!(
        codes,
        [
            (200, None),
            (200, None),
            (200, None),
            (400, Some(131056)),
            (400, Some(131056))
        ]
    );
    // Other recipients are unaffected.
    let (s, _) = env.send_text(PHONE, "16505559999", None).await;
    assert_eq!(s, 200);
    env.sim.set_pair_rate_limit(false);
    let (s, _) = env.send_text(PHONE, "16505551234", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn server_error_slow_and_meta_error_faults() {
    let env = start().await;
    // 503 for the next 2 requests, then normal.
    env.sim.inject_fault(Fault::server_error(503).times(2));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (s, b) = env.send_text(PHONE, "16505551234", Some("f1")).await;
        statuses.push(s);
        if s == 503 {
            assert_eq!(b["error"]["code"], 2);
            assert_eq!(b["error"]["is_transient"], true);
        }
    }
    assert_eq!(statuses, [503, 503, 200]);
    let logged = env.sim.requests_matching(&RequestFilter {
        biz_opaque_callback_data: Some("f1".into()),
        ..Default::default()
    });
    assert_eq!(
        logged.len(),
        1,
        "5xx faults answer before the body is looked at"
    );
    assert_eq!(
        env.sim
            .requests_matching(&RequestFilter {
                path: Some("/messages".into()),
                accepted: Some(false),
                ..Default::default()
            })
            .len(),
        2
    );

    // Meta error for one phone only, via the control API.
    let (s, _) = env
        .control(
            reqwest::Method::POST,
            "/_sim/faults",
            Some(json!({"kind": "meta_error", "code": 131000, "phoneNumberId": PHONE, "count": 1})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = env.send_text("999000111", "16505551234", None).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env.send_text(PHONE, "16505551234", None).await;
    assert_eq!((s, b["error"]["code"].clone()), (500, json!(131000)));
    let (s, _) = env.send_text(PHONE, "16505551234", None).await;
    assert_eq!(s, 200);

    // Slow: answered after the delay, normally.
    env.sim
        .inject_fault(Fault::delay(Duration::from_millis(200)).times(1));
    let (s, _) = env.send_text(PHONE, "16505551234", Some("slow")).await;
    assert_eq!(s, 200);
    let slow = env.sim.requests_matching(&RequestFilter {
        biz_opaque_callback_data: Some("slow".into()),
        ..Default::default()
    });
    assert_eq!(slow[0].fault.as_deref(), Some("delay"));
    assert!(slow[0].wamid.is_some());

    // Until cleared.
    env.sim.inject_fault(Fault::server_error(500));
    for _ in 0..3 {
        let (s, _) = env.send_text(PHONE, "16505551234", None).await;
        assert_eq!(s, 500);
    }
    env.sim.clear_faults();
    let (s, _) = env.send_text(PHONE, "16505551234", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn timeout_and_accept_then_timeout_faults() {
    let env = start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let send = |cb: &'static str| {
        client
            .post(format!("{}/{PHONE}/messages", env.graph))
            .bearer_auth("t")
            .json(
                &json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text",
                          "text": {"body": "x"}, "biz_opaque_callback_data": cb}),
            )
            .send()
    };

    // Timeout: held, never processed.
    env.sim.inject_fault(Fault::timeout().times(1));
    let e = send("held").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let held = env.sim.requests_matching(&RequestFilter {
        path: Some("/messages".into()),
        ..Default::default()
    });
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].outcome, Outcome::Unanswered);
    assert!(held[0].wamid.is_none());
    assert_eq!(held[0].fault.as_deref(), Some("timeout"));

    // Accept then time out: recorded and accepted (webhooks follow), never answered.
    env.sim
        .inject_fault(Fault::accept_then_timeout().times(1).for_phone(PHONE));
    let e = send("ambiguous").await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let acc = env.sim.requests_matching(&RequestFilter {
        biz_opaque_callback_data: Some("ambiguous".into()),
        ..Default::default()
    });
    assert_eq!(acc.len(), 1);
    assert_eq!(acc[0].outcome, Outcome::AcceptedUnanswered);
    let wamid = acc[0].wamid.clone().expect("accepted with a wamid");
    env.recv
        .wait("statuses of the ambiguous send", |r| {
            r.statuses_of(&wamid).len() == 3
        })
        .await;
    assert!(
        env.recv
            .statuses_of(&wamid)
            .iter()
            .all(|s| s["biz_opaque_callback_data"] == "ambiguous")
    );

    // Disconnect: no answer at all.
    env.sim.inject_fault(Fault::disconnect().times(1));
    let r = send("dropped").await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "a dropped connection is an error for the client");
    // And the next request is normal again.
    let r = send("fine").await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn embedded_signup_code_exchange_and_debug_token() {
    let env = start().await;
    let (s, sess) = env
        .control(
            reqwest::Method::POST,
            "/_sim/signup",
            Some(json!({"phones": 2, "businessName": "Lucky Shrub"})),
        )
        .await;
    assert_eq!(s, 200);
    let code = sess["code"].as_str().unwrap().to_string();
    let waba = sess["wabaId"].as_str().unwrap().to_string();
    assert_eq!(sess["phoneNumberIds"].as_array().unwrap().len(), 2);
    assert!(
        sess["displayPhoneNumbers"][0]
            .as_str()
            .unwrap()
            .starts_with("+1 555-")
    );
    let app_id = env.sim.config().app_id;

    let exchange = |secret: &str, code: &str| {
        env.http
            .get(format!(
                "{}/oauth/access_token?client_id={app_id}&client_secret={secret}&code={code}",
                env.graph
            ))
            .send()
    };
    let r = exchange("wrong", &code).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error"]["type"], "OAuthException");

    let r = exchange(SECRET, &code).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(tok["token_type"], "bearer");
    let token = tok["access_token"].as_str().unwrap().to_string();

    // Used and unknown codes fail.
    let b: Value = exchange(SECRET, &code).await.unwrap().json().await.unwrap();
    assert_eq!(b["error"]["type"], "OAuthException");
    assert_eq!(b["error"]["error_subcode"], 36009);
    let b: Value = exchange(SECRET, "bogus")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b["error"]["code"], 100);

    let r = env
        .http
        .get(format!("{}/debug_token?input_token={token}", env.graph))
        .bearer_auth(format!("{app_id}|{SECRET}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let d: Value = r.json().await.unwrap();
    let data = &d["data"];
    assert_eq!(data["is_valid"], true);
    assert_eq!(data["app_id"], app_id);
    for k in ["type", "application", "expires_at", "issued_at", "scopes"] {
        assert!(data.get(k).is_some(), "{k}");
    }
    assert_eq!(
        data["granular_scopes"],
        json!([
            {"scope": "whatsapp_business_management", "target_ids": [waba]},
            {"scope": "whatsapp_business_messaging", "target_ids": [waba]},
        ])
    );

    // The new WABA's phones list; the business token works on Graph calls.
    let r = env
        .http
        .get(format!("{}/{waba}/phone_numbers", env.graph))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["data"].as_array().unwrap().len(), 2);
    assert_eq!(b["data"][0]["verified_name"], "Lucky Shrub");

    // Revoked tokens: 190/463 on Graph calls, is_valid false in debug_token.
    env.sim.revoke_token(&token);
    let r = env
        .http
        .get(format!("{}/{waba}/phone_numbers", env.graph))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (
            b["error"]["code"].clone(),
            b["error"]["error_subcode"].clone()
        ),
        (json!(190), json!(463))
    );
}

#[tokio::test]
async fn request_log_over_http_and_in_process() {
    let env = start().await;
    for i in 0..3 {
        env.send_text(PHONE, "16505551234", Some(&format!("order-{i}")))
            .await;
    }
    env.send_text(PHONE, "16505551234", Some("order-1")).await;
    env.get(&format!("/{PHONE}?fields=status")).await;

    let (s, b) = env
        .control(
            reqwest::Method::GET,
            "/_sim/requests?bizOpaqueCallbackData=order-1",
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["count"], 2, "{b}");
    let e = &b["data"][0];
    assert_eq!(e["method"], "POST");
    assert_eq!(e["kind"], "messages.send");
    assert_eq!(e["phoneNumberId"], PHONE);
    assert_eq!(e["recipient"], "16505551234");
    assert_eq!(e["messageType"], "text");
    assert_eq!(e["httpStatus"], 200);
    assert!(e["wamid"].as_str().unwrap().starts_with("wamid."));
    assert_eq!(e["body"]["text"]["body"], "hello");
    assert_eq!(e["headers"]["authorization"], "Bearer any-token");
    assert!(e["at"].is_string());

    let (_, b) = env
        .control(reqwest::Method::GET, "/_sim/requests?kind=phone.get", None)
        .await;
    assert_eq!(b["count"], 1);
    assert_eq!(b["data"][0]["query"]["fields"], "status");

    assert_eq!(env.sim.requests().len(), 5);
    assert_eq!(env.sim.accepted_sends().len(), 4);
    let seq = env.sim.requests()[1].seq;
    assert_eq!(
        env.sim
            .requests_matching(&RequestFilter {
                since: Some(seq),
                ..Default::default()
            })
            .len(),
        3
    );

    let (s, _) = env
        .control(reqwest::Method::DELETE, "/_sim/requests", None)
        .await;
    assert_eq!(s, 200);
    assert!(env.sim.requests().is_empty());
    env.send_text(PHONE, "16505551234", None).await;
    assert_eq!(env.sim.requests().len(), 1);
    env.sim.clear_requests();
    assert!(env.sim.requests().is_empty());

    // Control API: config and phones.
    let (s, c) = env
        .control(
            reqwest::Method::PUT,
            "/_sim/config",
            Some(json!({"readDelayMs": null, "pairRateLimit": false})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(c["readDelayMs"], Value::Null);
    assert_eq!(c["pairRateLimit"], false);
    assert!(env.sim.config().status_delays.read.is_none());
    let (s, p) = env
        .control(
            reqwest::Method::PUT,
            &format!("/_sim/phones/{PHONE}"),
            Some(json!({"throughputMps": 1000, "canSendMessage": "LIMITED"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["throughputMps"], 1000);
    let (_, b) = env
        .get(&format!("/{PHONE}?fields=throughput,health_status"))
        .await;
    assert_eq!(b["throughput"]["level"], "HIGH");
    assert_eq!(b["health_status"]["can_send_message"], "LIMITED");
    assert_shape(
        &b["health_status"]["entities"][0],
        &fixture("graph/metadocs__health_status_limited.json")["health_status"]["entities"][0],
    );
}
