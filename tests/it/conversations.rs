//! Issue 5, conversations: inbound messages injected through the sandbox
//! simulator show up in `GET /v1/phones/{phoneId}/conversations` with the
//! contact identity fields; ordering and pagination; newest-first messages;
//! unread count and the 24-hour window; mark-as-read with Meta's receipt.
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wagate::pb;
use wagate::pb::conversation_service_client::ConversationServiceClient;

use crate::harness::{TestServer, authed, grpc_reason};
use crate::inbound::{PHONE, connect, events, poll, post_json, sim, text_payload, wait_processed};

/// Injects an inbound message through the simulator's control API (as a
/// developer would with curl); returns its wamid once wagate stored it.
async fn inject(s: &TestServer, body: Value) -> String {
    let r = s
        .rest()
        .send("POST", "/sandbox/_sim/inbound", None, Some(body), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["wamid"].as_str().expect("wamid").to_owned()
}

async fn conversations(s: &TestServer, key: &str, phone_id: &str, query: &str) -> Value {
    let (st, body) = s
        .rest()
        .get(
            &format!("/v1/phones/{phone_id}/conversations{query}"),
            Some(key),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    body
}

/// Waits until the phone has `n` conversations; returns the list body.
async fn wait_conversations(s: &TestServer, key: &str, phone_id: &str, n: usize) -> Value {
    poll("conversations", Duration::from_secs(10), || async {
        let body = conversations(s, key, phone_id, "?limit=100").await;
        match body["data"].as_array().map(Vec::len) {
            Some(got) if got == n => Ok(body),
            got => Err(format!("{got:?}: {body}")),
        }
    })
    .await
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("an RFC 3339 time: {v}"))
}

/// A reply to `to` through the outbound API when this build has it (202);
/// otherwise straight through the Graph client, as the dispatcher would.
async fn reply(s: &TestServer, key: &str, phone_id: &str, to: &str, text: &str) {
    let r = s
        .rest()
        .send(
            "POST",
            &format!("/v1/phones/{phone_id}/messages"),
            Some(key),
            Some(json!({"type": "text", "to": to, "text": text})),
            &[],
        )
        .await;
    if r.status == 404
        && r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.contains("phone"))
    {
        eprintln!("no outbound API in this build: replying through the Graph client");
        let app = &s.running.as_ref().expect("running").app;
        let payload = wagate_meta::graph::messages::MessagePayload::text(text);
        let msg = if to.chars().any(|c| c.is_ascii_alphabetic()) {
            wagate_meta::graph::messages::SendMessage::to_user_id(to, payload)
        } else {
            wagate_meta::graph::messages::SendMessage::to(to, payload)
        };
        app.meta
            .graph
            .send_message("EAAGsandbox", PHONE, &msg)
            .await
            .expect("Graph send");
        return;
    }
    assert_eq!(r.status, 202, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_inbound_shows_up_with_identity_fields_and_a_reply_reaches_the_simulator() {
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect(&s, "inbox@example.com").await;
    let with_phone = inject(
        &s,
        json!({"phoneNumberId": PHONE, "from": "16505551234", "fromUserId": "US.13491208655302741918",
               "parentUserId": "US.ENT.11815799212886844830", "username": "@realsheenanelson",
               "name": "Sheena Nelson", "type": "text", "text": "Hello from the sandbox"}),
    )
    .await;
    // A username user whose phone Meta withholds: BSUID only.
    let bsuid_only = inject(
        &s,
        json!({"phoneNumberId": PHONE, "fromUserId": "AR.ABC123", "username": "@customer.name",
               "name": "Customer", "type": "text", "text": "no phone here"}),
    )
    .await;
    let list = wait_conversations(&s, &key, &phone_id, 2).await;
    let by_id = |id: &str| {
        list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["contactIdentifier"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("conversation of {id}: {list}"))
    };
    let a = by_id("US.13491208655302741918");
    assert_eq!(a["contactIdentifierType"], "bsuid");
    assert_eq!(
        a["contactReplyTo"], "16505551234",
        "replies go to the phone when known"
    );
    assert_eq!(a["contactPhone"], "16505551234");
    assert_eq!(a["contactName"], "Sheena Nelson");
    assert_eq!(a["businessScopedUserId"], "US.13491208655302741918");
    assert_eq!(
        a["parentBusinessScopedUserId"],
        "US.ENT.11815799212886844830"
    );
    assert_eq!(a["username"], "@realsheenanelson");
    assert_eq!(a["phoneId"], phone_id);
    assert!(uuid::Uuid::parse_str(a["contactId"].as_str().unwrap_or_default()).is_ok());
    assert_eq!(a["unreadCount"], 1);
    assert_eq!(a["windowOpen"], true);
    assert_eq!(
        time(&a["windowExpiresAt"]) - time(&a["lastMessageAt"]),
        chrono::Duration::hours(24)
    );
    assert!(a["createdAt"].is_string());

    let b = by_id("AR.ABC123");
    assert_eq!(b["contactIdentifierType"], "bsuid");
    assert_eq!(b["contactReplyTo"], "AR.ABC123");
    assert!(b["contactPhone"].is_null(), "{b}");
    assert!(b["parentBusinessScopedUserId"].is_null(), "{b}");
    assert_eq!(b["username"], "@customer.name");

    // message.received carries the same identity.
    wait_processed(&s).await;
    let received = events(&s, "message.received").await;
    let ev = received
        .iter()
        .find(|e| e["wamid"] == with_phone.as_str())
        .expect("event");
    assert_eq!(ev["contactReplyTo"], "16505551234");
    assert_eq!(ev["contactIdentifier"], "US.13491208655302741918");
    assert_eq!(ev["direction"], "inbound");
    assert_eq!(ev["status"], "delivered");
    assert_eq!(ev["content"], json!({"body": "Hello from the sandbox"}));
    let ev = received
        .iter()
        .find(|e| e["wamid"] == bsuid_only.as_str())
        .expect("event");
    assert!(ev["contactPhone"].is_null());

    // Replies to contactReplyTo reach the simulator (phone and BSUID alike).
    for (to, text) in [("16505551234", "Thanks Sheena!"), ("AR.ABC123", "Thanks!")] {
        reply(&s, &key, &phone_id, to, text).await;
        poll(
            "the reply at the simulator",
            Duration::from_secs(15),
            || async {
                let sends = sim(&s).accepted_sends();
                if sends.iter().any(|r| r.recipient.as_deref() == Some(to)) {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?}",
                        sends
                            .iter()
                            .map(|r| r.recipient.clone())
                            .collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conversations_are_ordered_by_latest_message_and_paginated_over_rest_and_grpc() {
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect(&s, "order@example.com").await;
    let now = Utc::now().timestamp();
    for (from, ago) in [
        ("15550000001", 300),
        ("15550000002", 200),
        ("15550000003", 100),
        ("15550000001", 50),
    ] {
        inject(
            &s,
            json!({"phoneNumberId": PHONE, "from": from, "type": "text", "text": "hi", "timestamp": now - ago}),
        )
        .await;
    }
    wait_processed(&s).await;
    let page1 = conversations(&s, &key, &phone_id, "?limit=2").await;
    let phones = |b: &Value| -> Vec<String> {
        b["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["contactPhone"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(phones(&page1), ["15550000001", "15550000003"], "{page1}");
    assert_eq!(
        page1["meta"],
        json!({"pagination": {"page": 1, "limit": 2, "total": 3, "hasMore": true}})
    );
    assert_eq!(page1["data"][0]["unreadCount"], 2);
    let page2 = conversations(&s, &key, &phone_id, "?page=2&limit=2").await;
    assert_eq!(phones(&page2), ["15550000002"]);
    assert_eq!(page2["meta"]["pagination"]["hasMore"], false);

    // The same over gRPC.
    let mut client = ConversationServiceClient::new(s.channel().await);
    let got = client
        .list_conversations(authed(
            pb::ListConversationsRequest {
                phone_id: phone_id.clone(),
                page: 1,
                limit: 2,
            },
            &key,
        ))
        .await
        .expect("gRPC list")
        .into_inner();
    let grpc_phones: Vec<String> = got
        .data
        .iter()
        .filter_map(|c| c.contact_phone.clone())
        .collect();
    assert_eq!(grpc_phones, ["15550000001", "15550000003"]);
    assert_eq!(
        got.meta.and_then(|m| m.pagination).map(|p| p.total),
        Some(3)
    );
    let one = client
        .get_conversation(authed(
            pb::GetConversationRequest {
                phone_id: phone_id.clone(),
                conversation_id: got.data[0].id.clone(),
            },
            &key,
        ))
        .await
        .expect("gRPC get")
        .into_inner();
    assert_eq!(one.data.map(|c| c.unread_count), Some(2));

    // Bad input names the field; unknown and foreign ids are not found.
    let (st, bad) = s
        .rest()
        .get(
            &format!("/v1/phones/{phone_id}/conversations?limit=101"),
            Some(&key),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{bad}"
    );
    let (st, bad) = s
        .rest()
        .get("/v1/phones/not-a-uuid/conversations", Some(&key))
        .await;
    assert_eq!(st, 400, "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("phoneId")),
        "{bad}"
    );
    let (other, _) = s.register("other@example.com").await;
    let (st, nf) = s
        .rest()
        .get(
            &format!("/v1/phones/{phone_id}/conversations"),
            Some(&other),
        )
        .await;
    assert_eq!(
        (st, nf["error"]["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{nf}"
    );
    let conv = page1["data"][0]["id"].as_str().unwrap_or_default();
    let (st, _) = s
        .rest()
        .get(
            &format!("/v1/phones/{phone_id}/conversations/{conv}"),
            Some(&other),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .rest()
        .get(
            &format!(
                "/v1/phones/{phone_id}/conversations/{}",
                uuid::Uuid::new_v4()
            ),
            Some(&key),
        )
        .await;
    assert_eq!(st, 404);
    let err = client
        .list_conversation_messages(authed(
            pb::ListConversationMessagesRequest {
                phone_id: phone_id.clone(),
                conversation_id: conv.to_owned(),
                page: 1,
                limit: 10,
            },
            &other,
        ))
        .await
        .expect_err("another organization's conversation");
    assert_eq!(grpc_reason(&err), "NOT_FOUND");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_newest_first_unread_window_and_mark_read_with_typing() {
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect(&s, "read@example.com").await;
    let now = Utc::now().timestamp();
    let mut wamids = Vec::new();
    for (i, ago) in [(1, 600), (2, 400), (3, 60)] {
        wamids.push(
            inject(
                &s,
                json!({"phoneNumberId": PHONE, "from": "16505551234", "name": "Sheena",
                       "type": "text", "text": format!("message {i}"), "timestamp": now - ago}),
            )
            .await,
        );
    }
    // Someone who wrote 25 hours ago: the window has closed.
    assert_eq!(
        post_json(
            &s,
            &text_payload(
                PHONE,
                "15557654321",
                "wamid.OLD",
                "yesterday",
                now - 25 * 3600
            )
        )
        .await,
        200
    );
    wait_processed(&s).await;
    let list = conversations(&s, &key, &phone_id, "").await;
    let conv = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["contactPhone"] == "16505551234")
        .cloned()
        .expect("conversation");
    let old = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["contactPhone"] == "15557654321")
        .cloned()
        .expect("old conversation");
    assert_eq!(conv["unreadCount"], 3);
    assert_eq!(conv["windowOpen"], true);
    assert_eq!(
        time(&conv["windowExpiresAt"]).timestamp(),
        now - 60 + 24 * 3600
    );
    assert_eq!(time(&conv["lastMessageAt"]).timestamp(), now - 60);
    assert_eq!(old["windowOpen"], false);
    assert!(time(&old["windowExpiresAt"]) < Utc::now());
    let conv_id = conv["id"].as_str().expect("id").to_owned();
    let msgs_path = format!("/v1/phones/{phone_id}/conversations/{conv_id}/messages");

    let (st, msgs) = s.rest().get(&msgs_path, Some(&key)).await;
    assert_eq!(st, 200, "{msgs}");
    let order: Vec<&str> = msgs["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["wamid"].as_str())
        .collect();
    assert_eq!(
        order,
        [wamids[2].as_str(), wamids[1].as_str(), wamids[0].as_str()],
        "newest first"
    );
    for m in msgs["data"].as_array().into_iter().flatten() {
        assert_eq!(m["direction"], "inbound");
        // The decision, pinned: inbound messages show `delivered` until read.
        assert_eq!(m["status"], "delivered", "{m}");
        assert_eq!(m["type"], "text");
        assert_eq!(m["conversationId"], conv_id);
        assert_eq!(m["contactPhone"], "16505551234");
        assert_eq!(m["contactReplyTo"], "16505551234");
        assert!(m["error"].is_null());
    }
    assert_eq!(msgs["data"][0]["content"], json!({"body": "message 3"}));
    let (_, page) = s
        .rest()
        .get(&format!("{msgs_path}?page=2&limit=2"), Some(&key))
        .await;
    assert_eq!(page["data"][0]["wamid"], wamids[0].as_str());
    assert_eq!(
        page["meta"]["pagination"],
        json!({"page": 2, "limit": 2, "total": 3, "hasMore": false})
    );

    // Mark read, with the typing indicator.
    let read_path = format!("/v1/phones/{phone_id}/conversations/{conv_id}/read");
    let r = s
        .rest()
        .send(
            "POST",
            &read_path,
            Some(&key),
            Some(json!({"typingIndicator": true})),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["unreadCount"], 0);
    let reads: Vec<Value> = sim(&s)
        .requests()
        .into_iter()
        .filter(|q| q.kind == "messages.read")
        .filter_map(|q| q.body)
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["status"], "read");
    assert_eq!(
        reads[0]["message_id"],
        wamids[2].as_str(),
        "the latest inbound message"
    );
    assert_eq!(reads[0]["typing_indicator"], json!({"type": "text"}));
    let (_, msgs) = s.rest().get(&msgs_path, Some(&key)).await;
    for m in msgs["data"].as_array().into_iter().flatten() {
        assert_eq!(m["status"], "read", "{m}");
    }

    // A new message is unread again; marking read without typing.
    let w4 = inject(
        &s,
        json!({"phoneNumberId": PHONE, "from": "16505551234", "type": "text", "text": "one more"}),
    )
    .await;
    wait_processed(&s).await;
    let (_, c) = s
        .rest()
        .get(
            &format!("/v1/phones/{phone_id}/conversations/{conv_id}"),
            Some(&key),
        )
        .await;
    assert_eq!(c["data"]["unreadCount"], 1);
    let r = s
        .rest()
        .send("POST", &read_path, Some(&key), Some(json!({})), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reads: Vec<Value> = sim(&s)
        .requests()
        .into_iter()
        .filter(|q| q.kind == "messages.read")
        .filter_map(|q| q.body)
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[1]["message_id"], w4.as_str());
    assert!(reads[1].get("typing_indicator").is_none(), "{}", reads[1]);
    assert_eq!(r.body["data"]["unreadCount"], 0);

    // Marking read a conversation with no inbound message tells Meta nothing.
    let (other_key, _) = s.register("nobody@example.com").await;
    let r = s
        .rest()
        .send("POST", &read_path, Some(&other_key), Some(json!({})), &[])
        .await;
    assert_eq!(r.status, 404, "another organization's conversation");
    s.stop().await;
}
