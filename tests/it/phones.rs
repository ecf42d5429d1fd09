//! Issue 3, server side, in sandbox mode: bring-your-own credentials (stored
//! encrypted), verify diagnostics, WABAs, phones and their health with the
//! asynchronous resync, over REST, gRPC and grpc-web; and the
//! `wagate simulator` subcommand.
use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use wagate::pb;
use wagate::pb::account_service_client::AccountServiceClient;
use wagate::pb::phone_service_client::PhoneServiceClient;
use wagate::pb::waba_service_client::WabaServiceClient;
use wagate_simulator::PhonePatch;

use crate::harness::sandbox::{ChildGuard, poll, token};
use crate::harness::{TestServer, authed, grpc_reason};

/// Meta's phone number id and WABA id the tests connect (any numeric id is
/// a phone in the simulator).
const PHONE: &str = "106540352242922";
const WABA: &str = "102290129340398";
const CHECK_IDS: [&str; 5] = [
    "token_valid",
    "token_scopes",
    "phone_reachable",
    "phone_registered",
    "waba_subscribed",
];
const RESYNC_WAIT: Duration = Duration::from_secs(10);

fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn assert_keys(v: &Value, expected: &[&str]) {
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(sorted_keys(v), want, "{v}");
}

fn last4(token: &str) -> &str {
    &token[token.len() - 4..]
}

/// An error reply: status, contract code, and (for validation) the field,
/// both in `details.field` and named in the message.
fn assert_error(reply: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (st, body) = reply;
    assert_eq!(*st, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    if let Some(f) = field {
        assert_eq!(body["error"]["details"]["field"], f, "{body}");
        assert!(message.contains(f), "message names {f}: {body}");
    }
}

/// The diagnostics' checks: each stable id at most once; returns them by id.
fn checks(diag: &Value) -> Vec<(&str, &Value)> {
    let list = diag["checks"].as_array().expect("checks");
    let ids: Vec<&str> = list.iter().map(|c| c["id"].as_str().expect("id")).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a check id is repeated: {ids:?}");
    for id in &ids {
        assert!(CHECK_IDS.contains(id), "unknown check id {id}");
    }
    for c in list {
        assert_keys(
            c,
            &["id", "name", "status", "message", "hint", "metaErrorCode"],
        );
        assert!(!c["name"].as_str().unwrap_or_default().is_empty(), "{c}");
        assert!(!c["message"].as_str().unwrap_or_default().is_empty(), "{c}");
        if c["status"] == "failed" {
            assert!(
                c["hint"].as_str().is_some_and(|h| h.len() > 10),
                "a failed check carries a hint a person can act on: {c}"
            );
        }
    }
    ids.into_iter().zip(list.iter()).collect()
}

fn check<'a>(diag: &'a Value, id: &str) -> &'a Value {
    checks(diag)
        .into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("no {id} check in {diag}"))
}

async fn verify(s: &TestServer, key: &str) -> (u16, Value) {
    // As curl sends it: a POST without a body.
    let r = s
        .rest()
        .send("POST", "/auth/me/credentials/verify", Some(key), None, &[])
        .await;
    (r.status, r.body)
}

async fn health(s: &TestServer, key: &str, phone_id: &str) -> Value {
    let (st, h) = s
        .rest()
        .get(&format!("/v1/phones/{phone_id}/health"), Some(key))
        .await;
    assert_eq!(st, 200, "{h}");
    h["data"].clone()
}

/// Polls the health endpoint (each call enqueues a resync) until `done`.
async fn health_until(
    s: &TestServer,
    key: &str,
    phone_id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let done = &done;
    poll(what, RESYNC_WAIT, || async move {
        let h = health(s, key, phone_id).await;
        if done(&h) { Ok(h) } else { Err(h.to_string()) }
    })
    .await
}

fn capabilities(h: &Value) -> (bool, bool, bool) {
    let c = &h["capabilities"];
    assert_keys(
        c,
        &["canReceiveMessages", "canSendMessages", "canSendTemplates"],
    );
    (
        c["canReceiveMessages"].as_bool().expect("bool"),
        c["canSendMessages"].as_bool().expect("bool"),
        c["canSendTemplates"].as_bool().expect("bool"),
    )
}

fn issues<'a>(h: &'a Value, entity_type: &str) -> Vec<&'a Value> {
    h["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .filter(|i| i["entityType"] == entity_type)
        .collect()
}

/// Registers, connects PHONE/WABA with a fresh token; returns (key, token, phone id).
async fn connected(s: &TestServer, email: &str) -> (String, String, String) {
    let (key, _) = s.register(email).await;
    let tok = token("conn");
    let (st, put) = s
        .put_credentials(
            &key,
            json!({"accessToken": tok, "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    let phone_id = put["data"]["phoneId"].as_str().expect("phoneId").to_owned();
    (key, tok, phone_id)
}

const HEALTH_KEYS: [&str; 14] = [
    "phoneId",
    "isRegistered",
    "capabilities",
    "qualityRating",
    "throughputLevel",
    "messagingLimit",
    "nameStatus",
    "codeVerificationStatus",
    "canSendMessage",
    "issues",
    "appSubscribed",
    "tokenValid",
    "lastSyncedAt",
    "resyncPending",
];
const PHONE_KEYS: [&str; 13] = [
    "id",
    "wabaId",
    "metaPhoneNumberId",
    "displayPhoneNumber",
    "verifiedName",
    "isDefault",
    "isRegistered",
    "qualityRating",
    "throughputLevel",
    "messagingLimit",
    "metadata",
    "createdAt",
    "updatedAt",
];
const WABA_KEYS: [&str; 8] = [
    "id",
    "metaWabaId",
    "name",
    "source",
    "tokenLast4",
    "phoneCount",
    "createdAt",
    "updatedAt",
];

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_sequence_over_rest_register_credentials_verify_phones_health() {
    let s = TestServer::start().await;
    let rest = s.rest();

    // 1. Register.
    let (key, _) = s.register("sandbox@example.com").await;
    let (_, me) = rest.get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], false);

    // 2. PUT /auth/me/credentials.
    let tok = token("readme");
    let (st, put) = s
        .put_credentials(
            &key,
            json!({"accessToken": tok, "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    let phone_id = put["data"]["phoneId"].as_str().expect("phoneId").to_owned();
    assert!(uuid::Uuid::parse_str(&phone_id).is_ok(), "{put}");
    assert_eq!(
        put,
        json!({"data": {
            "configured": true, "verified": false, "phoneNumberId": PHONE, "wabaId": WABA,
            "tokenLast4": last4(&tok), "phoneId": phone_id, "verifiedAt": null
        }})
    );

    // 3. POST /auth/me/credentials/verify: every check passes.
    let (st, v) = verify(&s, &key).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_keys(
        d,
        &[
            "ok",
            "checks",
            "displayPhoneNumber",
            "verifiedName",
            "qualityRating",
        ],
    );
    assert_eq!(d["ok"], true, "{v}");
    let ids: Vec<&str> = checks(d).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, CHECK_IDS, "{v}");
    for (id, c) in checks(d) {
        assert_eq!(c["status"], "ok", "{id}: {c}");
        assert_eq!(c["hint"], Value::Null, "{id}: {c}");
        assert_eq!(c["metaErrorCode"], Value::Null, "{id}: {c}");
    }
    let sim_phone = s
        .simulator()
        .phone(PHONE)
        .expect("the simulator saw the phone");
    let display = wagate_simulator::ids::format_display(&sim_phone.display_phone_number);
    assert_eq!(d["displayPhoneNumber"], display.as_str(), "{v}");
    assert_eq!(d["verifiedName"], sim_phone.verified_name.as_str());
    assert_eq!(d["qualityRating"], "GREEN");
    // wagate called the (sandbox) Graph API with the saved token.
    let used: Vec<_> = s
        .simulator()
        .requests()
        .into_iter()
        .filter(|r| r.kind == "phone.get")
        .collect();
    assert!(!used.is_empty(), "verify read the phone from Meta");
    assert!(
        used.iter()
            .all(|r| r.headers.get("authorization") == Some(&format!("Bearer {tok}"))),
        "{used:?}"
    );

    // 4. GET /v1/phones: the phone, default, with Meta's fields.
    let (st, list) = rest.get("/v1/phones", Some(&key)).await;
    assert_eq!(st, 200, "{list}");
    assert_keys(&list, &["data", "meta"]);
    assert_eq!(
        list["meta"],
        json!({"pagination": {"page": 1, "limit": 50, "total": 1, "hasMore": false}})
    );
    let p = &list["data"][0];
    assert_keys(p, &PHONE_KEYS);
    assert_eq!(p["id"], phone_id.as_str());
    assert_eq!(p["metaPhoneNumberId"], PHONE);
    assert_eq!(p["isDefault"], true);
    assert_eq!(p["isRegistered"], true);
    assert_eq!(p["displayPhoneNumber"], display.as_str());
    assert_eq!(p["verifiedName"], "Sim Business");
    assert_eq!(p["qualityRating"], "GREEN");
    assert_eq!(p["throughputLevel"], "STANDARD");
    assert_eq!(p["messagingLimit"], "TIER_1K");
    assert_eq!(p["metadata"], json!({}));
    assert!(
        p["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{p}"
    );
    let (st, one) = rest
        .get(&format!("/v1/phones/{phone_id}"), Some(&key))
        .await;
    assert_eq!(st, 200, "{one}");
    assert_keys(&one, &["data"]);
    for k in PHONE_KEYS.iter().filter(|k| **k != "updatedAt") {
        assert_eq!(one["data"][k], p[k], "{k}");
    }

    // The WABA behind it.
    let (st, wabas) = rest.get("/v1/wabas", Some(&key)).await;
    assert_eq!(st, 200, "{wabas}");
    assert_eq!(
        wabas["meta"],
        json!({"pagination": {"page": 1, "limit": 50, "total": 1, "hasMore": false}})
    );
    let w = &wabas["data"][0];
    assert_keys(w, &WABA_KEYS);
    assert_eq!(w["id"], p["wabaId"]);
    assert_eq!(w["metaWabaId"], WABA);
    assert_eq!(w["name"], Value::Null);
    assert_eq!(w["source"], "credentials");
    assert_eq!(w["tokenLast4"], last4(&tok));
    assert_eq!(w["phoneCount"], 1);
    let waba_id = w["id"].as_str().expect("id");
    let (st, one) = rest.get(&format!("/v1/wabas/{waba_id}"), Some(&key)).await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["data"]["metaWabaId"], WABA);
    assert_eq!(one["data"]["phoneCount"], 1);

    // 5. GET /v1/phones/{id}/health.
    let h = health(&s, &key, &phone_id).await;
    assert_keys(&h, &HEALTH_KEYS);
    assert_eq!(h["phoneId"], phone_id.as_str());
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    assert_eq!(h["isRegistered"], true);
    assert_eq!(h["resyncPending"], true);
    assert_eq!(h["qualityRating"], "GREEN");
    assert_eq!(h["throughputLevel"], "STANDARD");
    assert_eq!(h["messagingLimit"], "TIER_1K");
    assert_eq!(h["nameStatus"], "APPROVED");
    assert_eq!(h["codeVerificationStatus"], "VERIFIED");
    assert_eq!(h["canSendMessage"], "AVAILABLE");
    assert_eq!(h["issues"], json!([]));
    assert_eq!(h["appSubscribed"], true);
    assert_eq!(h["tokenValid"], true);
    assert!(
        h["lastSyncedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{h}"
    );

    // 6. GET /auth/me: configured, verified, Meta's ids.
    let (st, me) = rest.get("/auth/me", Some(&key)).await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(
        me["data"]["config"],
        json!({
            "sandbox": true, "credentialsConfigured": true, "credentialsVerified": true,
            "phoneNumberId": PHONE, "wabaId": WABA, "webhookUrl": null
        })
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_sequence_over_grpc_and_health_over_grpc_web() {
    let s = TestServer::start().await;
    let ch = s.channel().await;
    let mut accounts = AccountServiceClient::new(ch.clone());
    let mut phones = PhoneServiceClient::new(ch.clone());
    let mut wabas = WabaServiceClient::new(ch);

    let reg = accounts
        .register(pb::RegisterRequest {
            email: "grpc-sandbox@example.com".into(),
            password: "correct horse battery".into(),
            name: "Grpc Sandbox".into(),
        })
        .await
        .expect("Register")
        .into_inner()
        .data
        .expect("data");
    let key = reg.api_key;
    let tok = token("grpc");

    let creds = accounts
        .set_credentials(authed(
            pb::SetCredentialsRequest {
                access_token: tok.clone(),
                phone_number_id: PHONE.into(),
                waba_id: Some(WABA.into()),
            },
            &key,
        ))
        .await
        .expect("SetCredentials")
        .into_inner()
        .data
        .expect("data");
    assert!(creds.configured && !creds.verified);
    assert_eq!(creds.phone_number_id.as_deref(), Some(PHONE));
    assert_eq!(creds.waba_id.as_deref(), Some(WABA));
    assert_eq!(creds.token_last4.as_deref(), Some(last4(&tok)));
    let phone_id = creds.phone_id.clone().expect("phone_id");

    let diag = accounts
        .verify_credentials(authed(pb::VerifyCredentialsRequest {}, &key))
        .await
        .expect("VerifyCredentials")
        .into_inner()
        .data
        .expect("data");
    assert!(diag.ok, "{diag:?}");
    let ids: Vec<&str> = diag.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, CHECK_IDS);
    assert!(
        diag.checks
            .iter()
            .all(|c| c.status == pb::CheckStatus::Ok as i32 && c.hint.is_none()),
        "{diag:?}"
    );
    assert!(diag.display_phone_number.is_some());

    let list = phones
        .list_phones(authed(pb::ListPhonesRequest::default(), &key))
        .await
        .expect("ListPhones")
        .into_inner();
    assert_eq!(list.data.len(), 1);
    let p = &list.data[0];
    assert_eq!(p.id, phone_id);
    assert_eq!(p.meta_phone_number_id, PHONE);
    assert!(p.is_default && p.is_registered);
    assert_eq!(
        list.meta.and_then(|m| m.pagination),
        Some(pb::Pagination {
            page: 1,
            limit: 50,
            total: 1,
            has_more: false
        })
    );
    let got = phones
        .get_phone(authed(
            pb::GetPhoneRequest {
                phone_id: phone_id.clone(),
            },
            &key,
        ))
        .await
        .expect("GetPhone")
        .into_inner()
        .data
        .expect("data");
    assert_eq!(got.meta_phone_number_id, PHONE);
    assert_eq!(got.waba_id, p.waba_id);

    let w = wabas
        .list_wabas(authed(pb::ListWabasRequest::default(), &key))
        .await
        .expect("ListWabas")
        .into_inner();
    assert_eq!(w.data.len(), 1);
    assert_eq!(w.data[0].id, p.waba_id);
    assert_eq!(w.data[0].meta_waba_id.as_deref(), Some(WABA));
    assert_eq!(w.data[0].phone_count, 1);
    let one = wabas
        .get_waba(authed(
            pb::GetWabaRequest {
                waba_id: p.waba_id.clone(),
            },
            &key,
        ))
        .await
        .expect("GetWaba")
        .into_inner()
        .data
        .expect("data");
    assert_eq!(one.token_last4.as_deref(), Some(last4(&tok)));

    let h = phones
        .get_phone_health(authed(
            pb::GetPhoneHealthRequest {
                phone_id: phone_id.clone(),
            },
            &key,
        ))
        .await
        .expect("GetPhoneHealth")
        .into_inner()
        .data
        .expect("data");
    assert_eq!(h.phone_id, phone_id);
    assert!(h.is_registered && h.resync_pending);
    assert_eq!(
        h.capabilities,
        Some(pb::PhoneCapabilities {
            can_receive_messages: true,
            can_send_messages: true,
            can_send_templates: true
        })
    );
    assert_eq!(h.can_send_message, pb::HealthLevel::Available as i32);
    assert!(h.issues.is_empty(), "{h:?}");

    let me = accounts
        .get_me(authed(pb::GetMeRequest {}, &key))
        .await
        .expect("GetMe")
        .into_inner()
        .data
        .expect("data")
        .config
        .expect("config");
    assert!(me.credentials_configured && me.credentials_verified && me.sandbox);
    assert_eq!(me.phone_number_id.as_deref(), Some(PHONE));
    assert_eq!(me.waba_id.as_deref(), Some(WABA));

    // Errors carry the contract's reason.
    let e = phones
        .get_phone(authed(
            pb::GetPhoneRequest {
                phone_id: "not-a-uuid".into(),
            },
            &key,
        ))
        .await
        .expect_err("malformed id");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc_reason(&e), "VALIDATION_ERROR");
    assert!(e.message().contains("phoneId"), "{e:?}");
    let e = phones
        .get_phone(authed(
            pb::GetPhoneRequest {
                phone_id: uuid::Uuid::new_v4().to_string(),
            },
            &key,
        ))
        .await
        .expect_err("unknown id");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(grpc_reason(&e), "NOT_FOUND");
    let e = phones
        .list_phones(tonic::Request::new(pb::ListPhonesRequest::default()))
        .await
        .expect_err("no key");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert_eq!(grpc_reason(&e), "UNAUTHORIZED");

    // The same health over grpc-web, as the dashboard reads it.
    let web: pb::GetPhoneHealthResponse = s
        .grpc_web()
        .call(
            "/wagate.v1.PhoneService/GetPhoneHealth",
            Some(&key),
            &pb::GetPhoneHealthRequest {
                phone_id: phone_id.clone(),
            },
        )
        .await
        .expect("grpc-web GetPhoneHealth");
    let web = web.data.expect("data");
    assert_eq!(web.phone_id, phone_id);
    assert_eq!(web.capabilities, h.capabilities);
    assert_eq!(web.quality_rating.as_deref(), Some("GREEN"));

    // Delete over gRPC: configured no more, a second delete is NOT_FOUND.
    let gone = accounts
        .delete_credentials(authed(pb::DeleteCredentialsRequest {}, &key))
        .await
        .expect("DeleteCredentials")
        .into_inner()
        .data
        .expect("data");
    assert!(!gone.configured && gone.token_last4.is_none());
    let e = accounts
        .delete_credentials(authed(pb::DeleteCredentialsRequest {}, &key))
        .await
        .expect_err("nothing to delete");
    assert_eq!(grpc_reason(&e), "NOT_FOUND");
    let e = accounts
        .verify_credentials(authed(pb::VerifyCredentialsRequest {}, &key))
        .await
        .expect_err("nothing to verify");
    assert_eq!(grpc_reason(&e), "CONFLICT");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_stored_encrypted_and_never_returned() {
    let s = TestServer::start().await;
    let (key, tok, phone_id) = connected(&s, "secret@example.com").await;
    let rest = s.rest();

    let stored = s.stored_tokens().await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let sealed = stored[0].access_token_enc.clone().expect("a sealed token");
    assert_eq!(stored[0].token_last4.as_deref(), Some(last4(&tok)));
    let plain = tok.as_bytes();
    assert!(
        sealed.len() > plain.len(),
        "sealed with a nonce and a tag: {} bytes",
        sealed.len()
    );
    assert!(
        !sealed.windows(plain.len()).any(|w| w == plain),
        "the plaintext token is in access_token_enc"
    );
    // Not even a recognisable part of it (the part after Meta's EAAG prefix).
    let tail = &plain[8..24];
    assert!(!sealed.windows(tail.len()).any(|w| w == tail));

    // Saving the same token again seals it afresh (no deterministic ciphertext).
    let (st, _) = s
        .put_credentials(
            &key,
            json!({"accessToken": tok, "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200);
    let again = s.stored_tokens().await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].access_token_enc.as_deref(), Some(&sealed[..]));

    // No response ever contains the token; the WABA shows only its last four.
    let (st, v) = verify(&s, &key).await;
    assert_eq!(st, 200);
    let mut bodies = vec![v];
    for path in [
        "/auth/me".to_owned(),
        "/v1/wabas".to_owned(),
        "/v1/phones".to_owned(),
        format!("/v1/phones/{phone_id}"),
        format!("/v1/phones/{phone_id}/health"),
    ] {
        let r = rest.send("GET", &path, Some(&key), None, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(!r.text.contains(&tok), "{path} leaks the token");
        assert!(!r.text.contains("accessToken"), "{path}: {}", r.text);
        bodies.push(r.body);
    }
    assert!(bodies.iter().all(|b| !b.to_string().contains(&tok)));
    let (_, wabas) = rest.get("/v1/wabas", Some(&key)).await;
    assert_eq!(wabas["data"][0]["tokenLast4"], last4(&tok));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_credentials_are_rejected_naming_the_field_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let (key, _) = s.register("invalid@example.com").await;
    let good = token("valid");
    let cases = [
        (
            json!({"phoneNumberId": PHONE, "wabaId": WABA}),
            "accessToken",
        ),
        (
            json!({"accessToken": "   ", "phoneNumberId": PHONE}),
            "accessToken",
        ),
        (
            json!({"accessToken": "EAAG with spaces in it", "phoneNumberId": PHONE}),
            "accessToken",
        ),
        (
            json!({"accessToken": 12345, "phoneNumberId": PHONE}),
            "accessToken",
        ),
        (json!({"accessToken": good}), "phoneNumberId"),
        (
            json!({"accessToken": good, "phoneNumberId": "  "}),
            "phoneNumberId",
        ),
        (
            json!({"accessToken": good, "phoneNumberId": "+1 555-093-4873"}),
            "phoneNumberId",
        ),
        (
            json!({"accessToken": good, "phoneNumberId": "10654035224292a"}),
            "phoneNumberId",
        ),
        (
            json!({"accessToken": good, "phoneNumberId": PHONE, "wabaId": "waba-1"}),
            "wabaId",
        ),
        (
            json!({"accessToken": good, "phoneNumberId": PHONE, "wabaId": "-102290129340398"}),
            "wabaId",
        ),
    ];
    for (body, field) in cases {
        let reply = s.put_credentials(&key, body.clone()).await;
        assert_error(&reply, 400, "VALIDATION_ERROR", Some(field));
        assert!(
            !reply.1.to_string().contains(&good),
            "the error echoes the token: {}",
            reply.1
        );
    }
    // Nothing was stored.
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], false);
    assert_eq!(me["data"]["config"]["credentialsVerified"], false);
    assert_eq!(me["data"]["config"]["phoneNumberId"], Value::Null);
    assert_eq!(me["data"]["config"]["wabaId"], Value::Null);
    let (_, phones) = s.rest().get("/v1/phones", Some(&key)).await;
    assert_eq!(phones["data"], json!([]));
    assert_eq!(phones["meta"]["pagination"]["total"], 0);
    let (_, wabas) = s.rest().get("/v1/wabas", Some(&key)).await;
    assert_eq!(wabas["data"], json!([]));
    assert!(s.stored_tokens().await.is_empty());

    // With nothing saved: verify is a CONFLICT that says what to do, delete a NOT_FOUND.
    let reply = verify(&s, &key).await;
    assert_error(&reply, 409, "CONFLICT", None);
    assert!(
        reply.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("PUT /auth/me/credentials")),
        "{}",
        reply.1
    );
    let reply = s.rest().delete("/auth/me/credentials", Some(&key)).await;
    assert_error(&reply, 404, "NOT_FOUND", None);

    // Without a key: UNAUTHORIZED.
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/credentials",
            None,
            Some(json!({"accessToken": good, "phoneNumberId": PHONE})),
            &[],
        )
        .await;
    assert_error(&(r.status, r.body), 401, "UNAUTHORIZED", None);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organization_can_neither_take_nor_see_a_phone() {
    let s = TestServer::start().await;
    let rest = s.rest();
    let (a_key, _, a_phone) = connected(&s, "owner@example.com").await;
    let (_, a_wabas) = rest.get("/v1/wabas", Some(&a_key)).await;
    let a_waba = a_wabas["data"][0]["id"].as_str().expect("id").to_owned();
    let (b_key, _) = s.register("other@example.com").await;

    // The same phone number id for another organization: CONFLICT, nothing kept.
    let reply = s
        .put_credentials(
            &b_key,
            json!({"accessToken": token("b"), "phoneNumberId": PHONE, "wabaId": "109999999999999"}),
        )
        .await;
    assert_error(&reply, 409, "CONFLICT", None);
    let (_, me) = rest.get("/auth/me", Some(&b_key)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], false);
    let (_, b_wabas) = rest.get("/v1/wabas", Some(&b_key)).await;
    assert_eq!(b_wabas["meta"]["pagination"]["total"], 0, "{b_wabas}");
    let mut grpc = AccountServiceClient::new(s.channel().await);
    let e = grpc
        .set_credentials(authed(
            pb::SetCredentialsRequest {
                access_token: token("b"),
                phone_number_id: PHONE.into(),
                waba_id: None,
            },
            &b_key,
        ))
        .await
        .expect_err("taken");
    assert_eq!(grpc_reason(&e), "CONFLICT");

    // The owner saving it again is no conflict.
    let (st, put) = s
        .put_credentials(
            &a_key,
            json!({"accessToken": token("a2"), "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["data"]["phoneId"], a_phone.as_str());

    // Another organization's ids are NOT_FOUND, everywhere.
    for path in [
        format!("/v1/phones/{a_phone}"),
        format!("/v1/phones/{a_phone}/health"),
        format!("/v1/wabas/{a_waba}"),
    ] {
        assert_error(&rest.get(&path, Some(&b_key)).await, 404, "NOT_FOUND", None);
    }
    let (st, filtered) = rest
        .get(&format!("/v1/phones?wabaId={a_waba}"), Some(&b_key))
        .await;
    assert_eq!(st, 200, "{filtered}");
    assert_eq!(filtered["data"], json!([]));
    let (_, b_phones) = rest.get("/v1/phones", Some(&b_key)).await;
    assert_eq!(b_phones["data"], json!([]));
    // Ids that do not exist at all look the same.
    let nobody = uuid::Uuid::new_v4();
    assert_error(
        &rest
            .get(&format!("/v1/phones/{nobody}"), Some(&a_key))
            .await,
        404,
        "NOT_FOUND",
        None,
    );

    // Malformed ids: VALIDATION_ERROR naming the parameter.
    for (path, field) in [
        ("/v1/phones/not-a-uuid", "phoneId"),
        ("/v1/phones/106540352242922/health", "phoneId"),
        ("/v1/wabas/102290129340398", "wabaId"),
        ("/v1/phones?wabaId=nope", "wabaId"),
    ] {
        assert_error(
            &rest.get(path, Some(&a_key)).await,
            400,
            "VALIDATION_ERROR",
            Some(field),
        );
    }
    // No key at all.
    assert_error(
        &rest.get("/v1/phones", None).await,
        401,
        "UNAUTHORIZED",
        None,
    );
    assert_error(
        &rest.get("/v1/wabas", None).await,
        401,
        "UNAUTHORIZED",
        None,
    );

    // The owner still has its phone, as default.
    let (_, a_phones) = rest.get("/v1/phones", Some(&a_key)).await;
    assert_eq!(a_phones["data"][0]["id"], a_phone.as_str());
    assert_eq!(a_phones["data"][0]["isDefault"], true);

    // Two organizations racing for a new phone number id: one wins, the other
    // gets CONFLICT and keeps nothing.
    let (c_key, _) = s.register("racer@example.com").await;
    let race = "106540352249999";
    let body = |t: &str| json!({"accessToken": token(t), "phoneNumberId": race});
    let (b, c) = tokio::join!(
        s.put_credentials(&b_key, body("b")),
        s.put_credentials(&c_key, body("c"))
    );
    let mut statuses = [b.0, c.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", b.1, c.1);
    let (loser_key, loser) = if b.0 == 409 {
        (&b_key, &b)
    } else {
        (&c_key, &c)
    };
    assert_error(loser, 409, "CONFLICT", None);
    let (_, me) = rest.get("/auth/me", Some(loser_key)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], false, "{me}");
    let (_, w) = rest.get("/v1/wabas", Some(loser_key)).await;
    assert_eq!(w["meta"]["pagination"]["total"], 0, "{w}");
    s.stop().await;
}

/// A WABA's template and account notices go to the organization holding
/// its id: another organization may not claim it with a token of its own
/// (it once received the owner's notices too).
#[tokio::test(flavor = "multi_thread")]
async fn a_waba_id_belongs_to_one_organization() {
    let s = TestServer::start().await;
    let rest = s.rest();
    let (owner, _, _) = connected(&s, "waba-owner@example.com").await;
    let (claimer, _) = s.register("waba-claimer@example.com").await;
    let reply = s
        .put_credentials(
            &claimer,
            json!({"accessToken": token("claim"), "phoneNumberId": "106540352240001", "wabaId": WABA}),
        )
        .await;
    assert_error(&reply, 409, "CONFLICT", None);
    let msg = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("wabaId"), "{msg}");
    let (_, me) = rest.get("/auth/me", Some(&claimer)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], false, "{me}");
    let (_, w) = rest.get("/v1/wabas", Some(&claimer)).await;
    assert_eq!(w["meta"]["pagination"]["total"], 0, "{w}");

    // The owner saves it again, with a new token: still its own.
    let (st, put) = s
        .put_credentials(
            &owner,
            json!({"accessToken": token("again"), "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200, "{put}");

    // Two organizations racing for a new WABA id (each with its own phone):
    // one wins, the other gets CONFLICT and keeps nothing.
    let (b, _) = s.register("waba-b@example.com").await;
    let (c, _) = s.register("waba-c@example.com").await;
    let race = "102290129349999";
    let body = |t: &str, phone: &str| json!({"accessToken": token(t), "phoneNumberId": phone, "wabaId": race});
    let (rb, rc) = tokio::join!(
        s.put_credentials(&b, body("b", "106540352240002")),
        s.put_credentials(&c, body("c", "106540352240003"))
    );
    let mut statuses = [rb.0, rc.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{} / {}", rb.1, rc.1);
    let loser = if rb.0 == 409 { &b } else { &c };
    let (_, w) = rest.get("/v1/wabas", Some(loser)).await;
    assert_eq!(w["meta"]["pagination"]["total"], 0, "{w}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_credentials_forgets_the_token_but_keeps_the_phones() {
    let s = TestServer::start().await;
    let rest = s.rest();
    let (key, tok, phone_id) = connected(&s, "delete@example.com").await;
    let (st, v) = verify(&s, &key).await;
    assert_eq!((st, &v["data"]["ok"]), (200, &json!(true)), "{v}");
    let (_, me) = rest.get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsVerified"], true);

    let (st, del) = rest.delete("/auth/me/credentials", Some(&key)).await;
    assert_eq!(st, 200, "{del}");
    assert_eq!(
        del,
        json!({"data": {
            "configured": false, "verified": false, "phoneNumberId": null, "wabaId": null,
            "tokenLast4": null, "phoneId": null, "verifiedAt": null
        }})
    );
    let (_, me) = rest.get("/auth/me", Some(&key)).await;
    let config = &me["data"]["config"];
    assert_eq!(config["credentialsConfigured"], false, "{me}");
    assert_eq!(config["credentialsVerified"], false, "{me}");
    assert_eq!(config["phoneNumberId"], Value::Null, "{me}");
    let stored = s.stored_tokens().await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].access_token_enc.is_none() && stored[0].token_last4.is_none());

    // Verify now explains what is missing.
    let reply = verify(&s, &key).await;
    assert_error(&reply, 409, "CONFLICT", None);
    let msg = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("credentials") && msg.contains("PUT /auth/me/credentials"),
        "{msg}"
    );
    // A second delete: nothing to delete.
    assert_error(
        &rest.delete("/auth/me/credentials", Some(&key)).await,
        404,
        "NOT_FOUND",
        None,
    );

    // Phones and the WABA stay listed (without a token).
    let (_, phones) = rest.get("/v1/phones", Some(&key)).await;
    assert_eq!(phones["meta"]["pagination"]["total"], 1);
    assert_eq!(phones["data"][0]["id"], phone_id.as_str());
    let (st, _) = rest
        .get(&format!("/v1/phones/{phone_id}"), Some(&key))
        .await;
    assert_eq!(st, 200);
    let (_, wabas) = rest.get("/v1/wabas", Some(&key)).await;
    assert_eq!(wabas["data"][0]["tokenLast4"], Value::Null);
    assert_eq!(wabas["data"][0]["phoneCount"], 1);
    // Health says sending stopped, and why; receiving goes on.
    let h = health(&s, &key, &phone_id).await;
    let (receive, send, templates) = capabilities(&h);
    assert!(receive && !send && !templates, "{h}");
    assert!(
        h["issues"]
            .as_array()
            .expect("issues")
            .iter()
            .any(|i| i["blocking"] == true
                && i["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("credentials were removed"))),
        "{h}"
    );

    // New credentials reconnect the same phone, unverified until verified again.
    let tok2 = token("again");
    assert_ne!(tok, tok2);
    let (st, put) = s
        .put_credentials(
            &key,
            json!({"accessToken": tok2, "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["data"]["phoneId"], phone_id.as_str());
    assert_eq!(put["data"]["verified"], false);
    assert_eq!(put["data"]["tokenLast4"], last4(&tok2));
    let (_, me) = rest.get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsConfigured"], true);
    assert_eq!(me["data"]["config"]["credentialsVerified"], false);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_revoked_token_and_health_follows() {
    let s = TestServer::start().await;
    let (key, _) = s.register("revoked@example.com").await;
    let tok = token("revoked");
    s.simulator().revoke_token(&tok);
    let (st, _) = s
        .put_credentials(
            &key,
            json!({"accessToken": tok, "phoneNumberId": PHONE, "wabaId": WABA}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = verify(&s, &key).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["ok"], false, "{v}");
    let t = check(d, "token_valid");
    assert_eq!(t["status"], "failed", "{v}");
    assert_eq!(t["metaErrorCode"], 190, "{v}");
    assert!(
        t["hint"]
            .as_str()
            .is_some_and(|h| h.contains("PUT /auth/me/credentials")),
        "{v}"
    );
    // Every check is reported once, none of them passes on Meta's word with a dead token.
    let ids: BTreeSet<&str> = checks(d).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, CHECK_IDS.into_iter().collect::<BTreeSet<_>>(), "{v}");
    for id in [
        "token_scopes",
        "phone_reachable",
        "phone_registered",
        "waba_subscribed",
    ] {
        assert_ne!(check(d, id)["status"], "ok", "{id}: {v}");
    }
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsVerified"], false);

    let phone_id = me["data"]["config"]["phoneNumberId"].clone();
    assert_eq!(phone_id, PHONE);
    let (_, phones) = s.rest().get("/v1/phones", Some(&key)).await;
    let phone_id = phones["data"][0]["id"].as_str().expect("id").to_owned();
    let h = health_until(&s, &key, &phone_id, "tokenValid false", |h| {
        h["tokenValid"] == false
    })
    .await;
    let (_, send, templates) = capabilities(&h);
    assert!(!send && !templates, "{h}");
    let token_issues = issues(&h, "TOKEN");
    assert_eq!(token_issues.len(), 1, "{h}");
    assert_eq!(token_issues[0]["blocking"], true);
    assert_eq!(token_issues[0]["level"], "BLOCKED");
    assert!(
        token_issues[0]["possibleSolution"].as_str().is_some(),
        "{h}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_a_disconnected_phone_with_a_hint() {
    let s = TestServer::start().await;
    s.simulator().update_phone(
        PHONE,
        PhonePatch {
            status: Some("DISCONNECTED".into()),
            ..Default::default()
        },
    );
    let (key, _, phone_id) = connected(&s, "disconnected@example.com").await;
    let (st, v) = verify(&s, &key).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["ok"], false, "{v}");
    assert_eq!(check(d, "token_valid")["status"], "ok", "{v}");
    assert_eq!(check(d, "phone_reachable")["status"], "ok", "{v}");
    let reg = check(d, "phone_registered");
    assert_eq!(reg["status"], "failed", "{v}");
    assert!(
        reg["message"]
            .as_str()
            .is_some_and(|m| m.contains("DISCONNECTED")),
        "{v}"
    );
    assert!(
        reg["hint"]
            .as_str()
            .is_some_and(|h| h.to_lowercase().contains("register")),
        "{v}"
    );
    assert_eq!(check(d, "waba_subscribed")["status"], "ok", "{v}");
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsVerified"], false);

    // Health: not registered, nothing works, and it says why.
    let h = health(&s, &key, &phone_id).await;
    assert_eq!(h["isRegistered"], false, "{h}");
    assert_eq!(capabilities(&h), (false, false, false), "{h}");
    let reg = issues(&h, "REGISTRATION");
    assert_eq!(reg.len(), 1, "{h}");
    assert_eq!(reg[0]["blocking"], true);

    // Registered again in Meta: verify passes and marks the credentials verified.
    s.simulator().update_phone(
        PHONE,
        PhonePatch {
            status: Some("CONNECTED".into()),
            ..Default::default()
        },
    );
    let (_, v) = verify(&s, &key).await;
    assert_eq!(v["data"]["ok"], true, "{v}");
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["credentialsVerified"], true);
    let h = health_until(&s, &key, &phone_id, "registered again", |h| {
        h["isRegistered"] == true
    })
    .await;
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    assert_eq!(h["issues"], json!([]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_an_unsubscribed_waba_and_skips_without_a_waba_id() {
    let s = TestServer::start().await;
    // Unsubscribe the app from the WABA in the simulator (any bearer token).
    let r = s
        .rest()
        .send(
            "DELETE",
            &format!("/sandbox/v23.0/{WABA}/subscribed_apps"),
            Some("any-token"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"success": true}));

    let (key, _, phone_id) = connected(&s, "unsubscribed@example.com").await;
    let (st, v) = verify(&s, &key).await;
    assert_eq!(st, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["ok"], false, "{v}");
    let sub = check(d, "waba_subscribed");
    assert_eq!(sub["status"], "failed", "{v}");
    assert!(
        sub["hint"]
            .as_str()
            .is_some_and(|h| h.contains("subscribed_apps")),
        "{v}"
    );
    for id in ["token_valid", "phone_reachable", "phone_registered"] {
        assert_eq!(check(d, id)["status"], "ok", "{id}: {v}");
    }
    let h = health(&s, &key, &phone_id).await;
    assert_eq!(h["appSubscribed"], false, "{h}");
    assert_eq!(capabilities(&h), (false, true, true), "{h}");
    let sub = issues(&h, "SUBSCRIPTION");
    assert_eq!(sub.len(), 1, "{h}");
    assert_eq!(sub[0]["blocking"], true);

    // Without a wabaId the subscription cannot be checked: skipped, with a hint, and ok.
    s.wait_resyncs_idle().await;
    let (st, put) = s
        .put_credentials(
            &key,
            json!({"accessToken": token("nowaba"), "phoneNumberId": PHONE}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["data"]["wabaId"], Value::Null);
    let (_, v) = verify(&s, &key).await;
    let d = &v["data"];
    let sub = check(d, "waba_subscribed");
    assert_eq!(sub["status"], "skipped", "{v}");
    assert!(
        sub["hint"].as_str().is_some_and(|h| h.contains("wabaId")),
        "{v}"
    );
    assert_eq!(d["ok"], true, "{v}");
    let (_, me) = s.rest().get("/auth/me", Some(&key)).await;
    assert_eq!(me["data"]["config"]["wabaId"], Value::Null);
    assert_eq!(me["data"]["config"]["credentialsVerified"], true);
    // What was learned about the old WABA's subscription no longer applies.
    let h = health(&s, &key, &phone_id).await;
    assert_ne!(h["appSubscribed"], false, "{h}");
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_resyncs_quality_limits_and_blocks_from_meta() {
    let s = TestServer::start().await;
    let (key, _, phone_id) = connected(&s, "health@example.com").await;
    let first = health_until(&s, &key, &phone_id, "the first resync", |h| {
        h["lastSyncedAt"].is_string() && h["qualityRating"] == "GREEN"
    })
    .await;
    assert_eq!(first["canSendMessage"], "AVAILABLE");
    assert_eq!(first["throughputLevel"], "STANDARD");

    // Meta lowers the quality and limits the number.
    s.simulator().update_phone(
        PHONE,
        PhonePatch {
            quality_rating: Some("YELLOW".into()),
            can_send_message: Some("LIMITED".into()),
            messaging_limit_tier: Some("TIER_10K".into()),
            throughput_mps: Some(1000),
            ..Default::default()
        },
    );
    let h = health_until(&s, &key, &phone_id, "YELLOW and LIMITED", |h| {
        h["qualityRating"] == "YELLOW" && h["canSendMessage"] == "LIMITED"
    })
    .await;
    assert_eq!(h["resyncPending"], true);
    assert_eq!(h["throughputLevel"], "HIGH", "{h}");
    assert_eq!(h["messagingLimit"], "TIER_10K", "{h}");
    // LIMITED keeps every capability and is listed as a non-blocking issue.
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    let limited = issues(&h, "PHONE_NUMBER");
    assert_eq!(limited.len(), 1, "{h}");
    assert_eq!(limited[0]["level"], "LIMITED");
    assert_eq!(limited[0]["blocking"], false);
    assert_eq!(limited[0]["entityId"], PHONE);
    assert!(
        limited[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("display name")),
        "{h}"
    );
    assert_eq!(h["issues"].as_array().map(Vec::len), Some(1), "{h}");
    // The phone resource shows the fresh values too.
    let (_, p) = s
        .rest()
        .get(&format!("/v1/phones/{phone_id}"), Some(&key))
        .await;
    assert_eq!(p["data"]["qualityRating"], "YELLOW");
    assert_eq!(p["data"]["throughputLevel"], "HIGH");
    assert_eq!(p["data"]["messagingLimit"], "TIER_10K");

    // Meta blocks the number: every capability goes, with Meta's error and solution.
    s.simulator().update_phone(
        PHONE,
        PhonePatch {
            can_send_message: Some("BLOCKED".into()),
            ..Default::default()
        },
    );
    let h = health_until(&s, &key, &phone_id, "BLOCKED", |h| {
        h["canSendMessage"] == "BLOCKED"
    })
    .await;
    assert_eq!(capabilities(&h), (false, false, false), "{h}");
    let blocked = issues(&h, "PHONE_NUMBER");
    assert_eq!(blocked.len(), 1, "{h}");
    assert_eq!(blocked[0]["blocking"], true);
    assert_eq!(blocked[0]["level"], "BLOCKED");
    assert_eq!(blocked[0]["errorCode"], 141010);
    assert!(blocked[0]["possibleSolution"].is_string(), "{h}");

    // And back.
    s.simulator().update_phone(
        PHONE,
        PhonePatch {
            can_send_message: Some("AVAILABLE".into()),
            quality_rating: Some("GREEN".into()),
            ..Default::default()
        },
    );
    let h = health_until(&s, &key, &phone_id, "AVAILABLE again", |h| {
        h["canSendMessage"] == "AVAILABLE" && h["qualityRating"] == "GREEN"
    })
    .await;
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    assert_eq!(h["issues"], json!([]));
    assert!(
        h["lastSyncedAt"].as_str() > first["lastSyncedAt"].as_str(),
        "{h} vs {first}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_capability_rules_for_waba_blocks_templates_and_restrictions() {
    let s = TestServer::start().await;
    let (key, _, phone_id) = connected(&s, "rules@example.com").await;
    let (_, v) = verify(&s, &key).await;
    assert_eq!(v["data"]["ok"], true, "{v}");
    let (_, wabas) = s.rest().get("/v1/wabas", Some(&key)).await;
    let waba_id = wabas["data"][0]["id"].as_str().expect("id").to_owned();

    // A snapshot with a BLOCKED WABA (written as a resync would store Meta's
    // health_status), read before the resync it enqueues has run.
    s.wait_resyncs_idle().await;
    s.set_stored_health_status(
        &phone_id,
        &json!({"can_send_message": "BLOCKED", "entities": [
            {"entity_type": "PHONE_NUMBER", "id": PHONE, "can_send_message": "AVAILABLE"},
            {"entity_type": "WABA", "id": WABA, "can_send_message": "BLOCKED",
             "errors": [{"error_code": 131031, "error_description": "Business Account locked",
                         "possible_solution": "Appeal in Business Support Home"}]},
            {"entity_type": "BUSINESS", "id": "1", "can_send_message": "AVAILABLE"}
        ]}),
    )
    .await;
    let h = health(&s, &key, &phone_id).await;
    assert_eq!(h["canSendMessage"], "BLOCKED", "{h}");
    assert_eq!(capabilities(&h), (false, false, false), "{h}");
    let waba = issues(&h, "WABA");
    assert_eq!(waba.len(), 1, "{h}");
    assert_eq!(
        waba[0],
        &json!({"entityType": "WABA", "entityId": WABA, "level": "BLOCKED", "errorCode": 131031,
                "message": "Business Account locked",
                "possibleSolution": "Appeal in Business Support Home", "blocking": true})
    );
    // The resync that call enqueued brings Meta's (simulator's) state back.
    let h = health_until(
        &s,
        &key,
        &phone_id,
        "the resync to replace the snapshot",
        |h| h["canSendMessage"] == "AVAILABLE",
    )
    .await;
    assert_eq!(capabilities(&h), (true, true, true), "{h}");

    // A blocked template blocks only itself.
    s.wait_resyncs_idle().await;
    s.set_stored_health_status(
        &phone_id,
        &json!({"can_send_message": "AVAILABLE", "entities": [
            {"entity_type": "PHONE_NUMBER", "id": PHONE, "can_send_message": "AVAILABLE"},
            {"entity_type": "MESSAGE_TEMPLATE", "id": "77", "can_send_message": "BLOCKED",
             "errors": [{"error_code": 141002, "error_description": "Template paused"}]}
        ]}),
    )
    .await;
    let h = health(&s, &key, &phone_id).await;
    assert_eq!(capabilities(&h), (true, true, true), "{h}");
    let t = issues(&h, "MESSAGE_TEMPLATE");
    assert_eq!(t.len(), 1, "{h}");
    assert_eq!(t[0]["blocking"], false);
    assert_eq!(t[0]["errorCode"], 141002);
    assert_eq!(t[0]["possibleSolution"], Value::Null);

    // Account restrictions: business-initiated removes templates only,
    // customer-initiated removes free-form sending only.
    s.wait_resyncs_idle().await;
    let restrict = |kind: &str| {
        format!(
            "UPDATE wabas SET restrictions = '[{{\"restriction_type\": \"{kind}\", \
             \"expiration\": 1999999999}}]'::jsonb WHERE id = '{waba_id}'"
        )
    };
    assert_eq!(
        s.exec(&restrict("RESTRICTED_BIZ_INITIATED_MESSAGING"))
            .await,
        1
    );
    let h = health_until(&s, &key, &phone_id, "templates restricted", |h| {
        h["capabilities"]["canSendTemplates"] == false
    })
    .await;
    assert_eq!(capabilities(&h), (true, true, false), "{h}");
    assert!(
        issues(&h, "WABA").iter().any(|i| i["message"]
            .as_str()
            .is_some_and(|m| m.contains("RESTRICTED_BIZ_INITIATED_MESSAGING"))),
        "{h}"
    );
    assert_eq!(
        s.exec(&restrict("RESTRICTED_CUSTOMER_INITIATED_MESSAGING"))
            .await,
        1
    );
    let h = health(&s, &key, &phone_id).await;
    assert_eq!(capabilities(&h), (true, false, true), "{h}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn phones_and_wabas_paginate_and_filter_by_waba() {
    let s = TestServer::start().await;
    let rest = s.rest();
    let (key, reg) = s.register("pages@example.com").await;
    let org_id = reg["data"]["organization"]["id"]
        .as_str()
        .expect("org id")
        .to_owned();
    // Three phones through credentials (the last one saved is the default).
    let metas = ["106540352242901", "106540352242902", "106540352242903"];
    let mut ids = Vec::new();
    for m in metas {
        let (st, put) = s
            .put_credentials(
                &key,
                json!({"accessToken": token("p"), "phoneNumberId": m, "wabaId": WABA}),
            )
            .await;
        assert_eq!(st, 200, "{put}");
        ids.push(put["data"]["phoneId"].as_str().expect("phoneId").to_owned());
    }
    // A second WABA with one phone, as Embedded Signup will add them.
    let esu_waba = uuid::Uuid::new_v4();
    let esu_phone = uuid::Uuid::new_v4();
    assert_eq!(
        s.exec(&format!(
            "INSERT INTO wabas (id, org_id, meta_waba_id, name, source, created_at) \
             VALUES ('{esu_waba}', '{org_id}', '103000000000001', 'Signup WABA', \
             'embedded_signup', now() + interval '1 second')"
        ))
        .await,
        1
    );
    assert_eq!(
        s.exec(&format!(
            "INSERT INTO phone_numbers (id, org_id, waba_id, meta_phone_number_id, created_at) \
             VALUES ('{esu_phone}', '{org_id}', '{esu_waba}', '106540352242904', \
             now() + interval '1 second')"
        ))
        .await,
        1
    );

    let page = |p: &Value| p["meta"]["pagination"].clone();
    let list_ids = |p: &Value| -> Vec<String> {
        p["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|x| x["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let (st, p1) = rest.get("/v1/phones?limit=2", Some(&key)).await;
    assert_eq!(st, 200, "{p1}");
    assert_eq!(
        page(&p1),
        json!({"page": 1, "limit": 2, "total": 4, "hasMore": true})
    );
    assert_eq!(list_ids(&p1), ids[..2]);
    let (_, p2) = rest.get("/v1/phones?limit=2&page=2", Some(&key)).await;
    assert_eq!(
        page(&p2),
        json!({"page": 2, "limit": 2, "total": 4, "hasMore": false})
    );
    assert_eq!(list_ids(&p2), [ids[2].clone(), esu_phone.to_string()]);
    let (_, p3) = rest.get("/v1/phones?limit=2&page=3", Some(&key)).await;
    assert_eq!(p3["data"], json!([]));
    assert_eq!(
        page(&p3),
        json!({"page": 3, "limit": 2, "total": 4, "hasMore": false})
    );
    let defaults: Vec<bool> = p1["data"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(p2["data"].as_array().into_iter().flatten())
        .map(|x| x["isDefault"].as_bool().expect("bool"))
        .collect();
    assert_eq!(
        defaults,
        [false, false, true, false],
        "the last saved is the default"
    );

    // WABAs: the credentials one first, then the signup one.
    let (st, w1) = rest.get("/v1/wabas?limit=1", Some(&key)).await;
    assert_eq!(st, 200, "{w1}");
    assert_eq!(
        page(&w1),
        json!({"page": 1, "limit": 1, "total": 2, "hasMore": true})
    );
    assert_eq!(w1["data"][0]["source"], "credentials");
    assert_eq!(w1["data"][0]["phoneCount"], 3);
    let cred_waba = w1["data"][0]["id"].as_str().expect("id").to_owned();
    let (_, w2) = rest.get("/v1/wabas?limit=1&page=2", Some(&key)).await;
    assert_eq!(
        page(&w2),
        json!({"page": 2, "limit": 1, "total": 2, "hasMore": false})
    );
    let w = &w2["data"][0];
    assert_keys(w, &WABA_KEYS);
    assert_eq!(w["id"], esu_waba.to_string());
    assert_eq!(w["source"], "embedded_signup");
    assert_eq!(w["name"], "Signup WABA");
    assert_eq!(w["metaWabaId"], "103000000000001");
    assert_eq!(w["tokenLast4"], Value::Null);
    assert_eq!(w["phoneCount"], 1);

    // ?wabaId= filters, and the total follows the filter.
    let (st, f) = rest
        .get(&format!("/v1/phones?wabaId={cred_waba}"), Some(&key))
        .await;
    assert_eq!(st, 200, "{f}");
    assert_eq!(list_ids(&f), ids);
    assert_eq!(page(&f)["total"], 3);
    let (_, f) = rest
        .get(&format!("/v1/phones?wabaId={esu_waba}&limit=1"), Some(&key))
        .await;
    assert_eq!(list_ids(&f), [esu_phone.to_string()]);
    assert_eq!(
        page(&f),
        json!({"page": 1, "limit": 1, "total": 1, "hasMore": false})
    );
    let (_, f) = rest
        .get(
            &format!("/v1/phones?wabaId={}", uuid::Uuid::new_v4()),
            Some(&key),
        )
        .await;
    assert_eq!(f["data"], json!([]));
    assert_eq!(page(&f)["total"], 0);
    // The same filter over gRPC.
    let mut phones = PhoneServiceClient::new(s.channel().await);
    let g = phones
        .list_phones(authed(
            pb::ListPhonesRequest {
                page: 1,
                limit: 10,
                waba_id: esu_waba.to_string(),
            },
            &key,
        ))
        .await
        .expect("ListPhones")
        .into_inner();
    assert_eq!(g.data.len(), 1);
    assert_eq!(g.data[0].id, esu_phone.to_string());

    // Bad paging parameters name themselves.
    for (path, field) in [
        ("/v1/phones?limit=101", "limit"),
        ("/v1/phones?page=-1", "page"),
        ("/v1/wabas?limit=-5", "limit"),
        ("/v1/phones?limit=abc", "limit"),
    ] {
        assert_error(
            &rest.get(path, Some(&key)).await,
            400,
            "VALIDATION_ERROR",
            Some(field),
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wagate_simulator_subcommand_serves_the_graph_and_control_apis() {
    wagate::install_crypto_provider();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["simulator", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("WAGATE_SIMULATOR_LISTEN")
        .env_remove("WAGATE_SIMULATOR_WEBHOOK_URL")
        .env_remove("WHATSAPP_APP_SECRET")
        .stdin(std::process::Stdio::null())
        .stdout(log.reopen().expect("log"))
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("wagate simulator starts");
    let mut sim = ChildGuard::new(child);
    let output = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Up within 30 s (bounded), or it died: say why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = sim.try_wait() {
            panic!("wagate simulator exited early ({status}): {}", output());
        }
        if let Ok(r) = http.get(format!("{base}/_sim/health")).send().await
            && r.status() == 200
        {
            let body: Value = r.json().await.expect("json");
            assert_eq!(body, json!({"ok": true}));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/_sim/health never answered: {}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A text message through it with the Graph client.
    let graph = wagate_meta::GraphClient::new(wagate_meta::GraphConfig::new(
        url::Url::parse(&format!("{base}/")).expect("url"),
        "v23.0",
    ))
    .expect("graph client");
    let msg = wagate_meta::graph::messages::SendMessage::to(
        "+1 650-555-1234",
        wagate_meta::graph::messages::MessagePayload::text("hello from the subcommand test"),
    );
    let sent = graph
        .send_message("EAAG-subcommand-token", PHONE, &msg)
        .await
        .expect("the simulator accepts the message");
    let wamid = sent.message_id().expect("a wamid").to_owned();
    assert!(wamid.starts_with("wamid."), "{wamid}");

    let log_reply: Value = http
        .get(format!("{base}/_sim/requests?kind=messages.send"))
        .send()
        .await
        .expect("request log")
        .json()
        .await
        .expect("json");
    assert_eq!(log_reply["count"], 1, "{log_reply}");
    let r = &log_reply["data"][0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], format!("/v23.0/{PHONE}/messages"));
    assert_eq!(r["phoneNumberId"], PHONE);
    assert_eq!(r["wamid"], wamid.as_str());
    assert_eq!(r["messageType"], "text");
    assert_eq!(r["body"]["text"]["body"], "hello from the subcommand test");
    assert_eq!(
        r["headers"]["authorization"],
        "Bearer EAAG-subcommand-token"
    );
    assert_eq!(r["httpStatus"], 200);

    // SIGTERM: it stops cleanly, within 10 s.
    let status = sim
        .terminate(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM: {}", output()));
    assert!(status.success(), "{status}: {}", output());
    assert!(
        http.get(format!("{base}/_sim/health"))
            .send()
            .await
            .is_err(),
        "nothing listens any more"
    );
}
