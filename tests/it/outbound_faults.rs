//! Issue 4, outbound messaging when things go wrong: every failure the
//! simulator can play (130429, 131056, 5xx, a timeout after the request
//! left, 131047 and 131026 as failed status webhooks, final synchronous
//! errors) and the state each leaves; a worker killed mid-batch; two
//! instances on one database; the database dropping every connection. The simulator's request log is the ground
//! truth: every message must reach Meta exactly once.
use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use wagate::domain::plans::Plan;
use wagate_simulator::{ConfigPatch, Fault, FaultKind, StatusDelays};

use crate::harness::TestServer;
use crate::harness::outbound::{
    Org, PHONE, accepted_counts, connect, connect_at, external_simulator, free_port, get_message,
    notes_containing, options_for, post, send_ok, sends_of, set_plan, spawn_binary, status_counts,
    wait_all_sent, wait_message, wait_status,
};
use crate::harness::sandbox::poll;

fn timeline(m: &Value) -> &Vec<Value> {
    m["timeline"]
        .as_array()
        .unwrap_or_else(|| panic!("a timeline: {m}"))
}

fn entries<'a>(m: &'a Value, status: &str) -> Vec<&'a Value> {
    timeline(m)
        .iter()
        .filter(|e| e["status"] == status)
        .collect()
}

/// Queues `n` text messages to distinct recipients in one bulk request
/// (the organization needs a paid plan); returns their ids.
async fn bulk(base: &str, org: &Org, first: usize, n: usize) -> Vec<String> {
    let items: Vec<Value> = (first..first + n)
        .map(|i| json!({"type": "text", "to": format!("1650{i:07}"), "text": format!("message {i}")}))
        .collect();
    let r = crate::harness::Rest::new(base)
        .send(
            "POST",
            "/messages/bulk",
            Some(&org.key),
            Some(json!({"messages": items})),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["data"]["rejected"], 0, "{}", r.text);
    r.body["data"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every id reached Meta exactly once, and nothing else did.
fn assert_each_sent_once(sim: &wagate_simulator::Simulator, ids: &[String]) {
    let counts = accepted_counts(sim);
    let twice: Vec<_> = ids
        .iter()
        .filter(|id| counts.get(*id).copied().unwrap_or(0) > 1)
        .collect();
    let never: Vec<_> = ids.iter().filter(|id| !counts.contains_key(*id)).collect();
    assert!(
        twice.is_empty(),
        "{} message(s) sent more than once: {twice:?}",
        twice.len()
    );
    assert!(
        never.is_empty(),
        "{} message(s) never sent: {never:?}",
        never.len()
    );
    let ours: HashSet<&String> = ids.iter().collect();
    let extra: Vec<_> = counts.keys().filter(|id| !ours.contains(id)).collect();
    assert!(extra.is_empty(), "sends of unknown ids: {extra:?}");
    assert_eq!(sim.accepted_sends().len(), ids.len());
}

// ---------------------------------------------------------------------------
// 130429: the phone's throughput.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn phone_throughput_130429_is_retried_until_every_message_is_sent() {
    let s = TestServer::start().await;
    let org = connect(&s, "throughput@example.com").await;
    set_plan(&s, &org, Plan::Pro).await;
    let sim = s.simulator();
    // Meta lets this number send 20 msg/s while wagate paces it at 80.
    sim.set_throughput(PHONE, 20);
    let ids = bulk(&s.base, &org, 0, 30).await;
    wait_all_sent(&s.database_url, 30, Duration::from_secs(60)).await;

    let mut retried = 0;
    for id in &ids {
        let m = get_message(&s.base, &org.key, id).await;
        assert!(m["error"].is_null(), "{m}");
        for e in entries(&m, "retrying") {
            assert_eq!(e["errorCode"], 130429, "{e}");
            assert!(e["errorMessage"].is_string(), "{e}");
            assert!(
                e["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("next attempt")),
                "{e}"
            );
            retried += 1;
        }
        assert_eq!(
            m["attempts"].as_i64(),
            Some(entries(&m, "processing").len() as i64),
            "one processing entry per attempt: {m}"
        );
    }
    // Each 130429 Meta answered is one `retrying` step in a timeline.
    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.error_code == Some(130429))
        .count();
    assert!(refused > 0, "the burst was over Meta's 20 msg/s");
    assert_eq!(retried, refused);
    assert_each_sent_once(sim, &ids);
    let counts = status_counts(&s.database_url).await;
    assert!(!counts.contains_key("failed"), "{counts:?}");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 131056: one recipient's pair rate.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn pair_rate_131056_delays_only_that_recipient() {
    let s = TestServer::start().await;
    let org = connect(&s, "pair@example.com").await;
    let sim = s.simulator();
    // Meta allows this phone 3 messages in a burst to one person, then 1/s.
    sim.update_config(ConfigPatch {
        pair_rate_period_ms: Some(1000),
        pair_rate_burst: Some(3),
        ..Default::default()
    });
    let busy = "16505550042";
    let mut to_busy = Vec::new();
    let mut others = Vec::new();
    for i in 0..5 {
        to_busy.push(
            send_ok(
                &s,
                &org,
                json!({"type": "text", "to": busy, "text": format!("part {i}")}),
            )
            .await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
        others.push(
            send_ok(
                &s,
                &org,
                json!({"type": "text", "to": format!("1650555010{i}"), "text": "hi"}),
            )
            .await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // A recipient Meta always answers 131056 (reserved in the simulator).
    let always = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "15550131056", "text": "never now"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let mut all = to_busy.clone();
    all.extend(others.iter().cloned());
    for id in &all {
        wait_message(
            &s.base,
            &org.key,
            id,
            "the message to be sent",
            Duration::from_secs(30),
            |m| ["sent", "delivered", "read"].contains(&m["status"].as_str().unwrap_or("")),
        )
        .await;
    }
    // The others went out on their first attempt.
    for id in &others {
        let m = get_message(&s.base, &org.key, id).await;
        assert_eq!(m["attempts"], 1, "{m}");
        assert!(entries(&m, "retrying").is_empty(), "{m}");
    }
    // Some of the busy recipient's messages waited, with Meta's 131056.
    let mut waited = 0;
    for id in &to_busy {
        let m = get_message(&s.base, &org.key, id).await;
        for e in entries(&m, "retrying") {
            assert_eq!(e["errorCode"], 131056, "{e}");
            waited += 1;
        }
        assert!(m["error"].is_null(), "{m}");
    }
    // Each 131056 Meta answered for that recipient is one `retrying` step
    // (after the first, wagate holds the recipient's other messages back).
    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.error_code == Some(131056) && r.recipient.as_deref() == Some(busy))
        .count();
    assert!(waited >= 1, "five messages were over the burst of 3");
    assert_eq!(waited, refused);
    assert_each_sent_once(sim, &all);
    // The always-refused recipient is retrying (not failed), with Meta's error.
    let m = get_message(&s.base, &org.key, &always).await;
    assert_eq!(m["status"], "retrying", "{m}");
    let e = entries(&m, "retrying")[0];
    assert_eq!(e["errorCode"], 131056);
    assert!(e["errorTitle"].is_string(), "{e}");
    assert!(sends_of(sim, &always).iter().all(|r| r.wamid.is_none()));
    s.stop().await;
}

// ---------------------------------------------------------------------------
// 5xx: retried with backoff.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_with_backoff_then_sent() {
    let s = TestServer::start().await;
    let org = connect(&s, "5xx@example.com").await;
    let sim = s.simulator();
    sim.inject_fault(Fault::server_error(503).times(2));
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "third time lucky"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m = wait_status(&s, &org, &id, "read").await;
    assert_eq!(m["attempts"], 3, "{m}");
    assert!(m["error"].is_null() && m["errorMessage"].is_null(), "{m}");
    let statuses: Vec<&str> = timeline(&m)
        .iter()
        .map(|e| e["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &statuses[..7],
        [
            "queued",
            "processing",
            "retrying",
            "processing",
            "retrying",
            "processing",
            "sent"
        ],
        "{statuses:?}"
    );
    for (n, e) in entries(&m, "retrying").into_iter().enumerate() {
        assert_eq!(e["attempt"], n as i64 + 1, "{e}");
        assert!(e["errorMessage"].is_string(), "{e}");
        assert!(e["note"].is_string(), "{e}");
    }
    let attempts: Vec<i64> = entries(&m, "processing")
        .iter()
        .filter_map(|e| e["attempt"].as_i64())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0].http_status, Some(503));
    assert_eq!(sent[1].http_status, Some(503));
    assert!(sent[2].wamid.is_some());
    assert_eq!(sent[0].body, sent[2].body, "the same request each time");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_that_gave_up_on_5xx_gets_a_fresh_retry_budget_when_retried() {
    let mut opts = TestServer::options(crate::harness::pg::fresh_database().await);
    opts.dispatch.max_attempts = 2;
    let s = TestServer::start_with(opts).await;
    let org = connect(&s, "budget@example.com").await;
    let sim = s.simulator();
    sim.inject_fault(Fault::server_error(503).times(2));
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "persistent"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m = wait_status(&s, &org, &id, "failed").await;
    assert_eq!(m["attempts"], 2, "gave up at the bound: {m}");
    assert!(
        m["errorMessage"]
            .as_str()
            .is_some_and(|e| e.contains("gave up")),
        "{m}"
    );
    // The customer retries; Meta has one more hiccup, which is retryable.
    sim.inject_fault(Fault::server_error(503).times(1));
    let r = post(
        &s,
        &org.key,
        &format!("/messages/{id}/retry"),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let m = wait_message(
        &s.base,
        &org.key,
        &id,
        "the retried message to be sent or to fail again",
        Duration::from_secs(20),
        |m| {
            m["status"] == "sent"
                || m["status"] == "delivered"
                || m["status"] == "read"
                || m["status"] == "failed"
        },
    )
    .await;
    assert_ne!(
        m["status"], "failed",
        "one transient 503 after a manual retry is retried, not final: {m}"
    );
    assert_eq!(sends_of(sim, &id).len(), 4);
    // Attempts are counted across the retry, and the timeline numbers them
    // 1 to 4 (they were 1, 2, then 1, 2 again).
    let m = get_message(&s.base, &org.key, &id).await;
    assert_eq!(m["attempts"], 4, "{m}");
    let numbers: Vec<i64> = entries(&m, "processing")
        .iter()
        .filter_map(|e| e["attempt"].as_i64())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4], "{m}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_that_outlives_its_lease_is_still_recorded_as_sent_when_meta_answers() {
    // A lease shorter than Meta's answer: the worker is slow, not dead
    // (a stalled process, a long database outage while the outcome waits).
    let mut opts = TestServer::options(crate::harness::pg::fresh_database().await);
    opts.dispatch.lease = Duration::from_secs(1);
    opts.dispatch.crash_grace = Duration::from_secs(30);
    let s = TestServer::start_with(opts).await;
    let org = connect(&s, "slow@example.com").await;
    let sim = s.simulator();
    // No status webhooks: only the dispatcher's own outcome can settle it.
    sim.set_status_delays(StatusDelays::none());
    sim.inject_fault(Fault::delay(Duration::from_millis(3500)).times(1));
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "slowly"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let req = crate::harness::outbound::accepted_send(sim, &id).await;
    let wamid = req.wamid.expect("Meta accepted it");
    // wagate has Meta's answer (the wamid): the message was sent.
    let m = wait_message(
        &s.base,
        &org.key,
        &id,
        "the wamid to be recorded",
        Duration::from_secs(20),
        |m| m["wamid"] == wamid.as_str(),
    )
    .await;
    // Give the settling loop a round to act on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let m2 = get_message(&s.base, &org.key, &id).await;
    assert_eq!(
        m2["status"], "sent",
        "Meta accepted the message and wagate knows its wamid, yet it is not sent: {m}"
    );
    assert_eq!(sends_of(sim, &id).len(), 1);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Timeouts: the outcome is unknown; never resent blindly.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_after_the_request_left_is_not_resent_and_the_status_webhook_settles_it() {
    let s = TestServer::start().await;
    let org = connect(&s, "timeout@example.com").await;
    let sim = s.simulator();
    // Meta accepts the message but the answer never comes back; its status
    // webhooks are held back until the test posts them.
    sim.set_status_delays(StatusDelays::none());
    sim.inject_fault(Fault::new(FaultKind::AcceptThenTimeout { ms: Some(300) }).times(1));
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "did it go?"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m = wait_message(
        &s.base,
        &org.key,
        &id,
        "an unknown outcome in the timeline",
        Duration::from_secs(20),
        |m| {
            timeline(m)
                .iter()
                .any(|e| e["note"].as_str().is_some_and(|n| n.contains("unknown")))
        },
    )
    .await;
    assert_eq!(m["status"], "processing", "{m}");
    assert!(m["wamid"].is_null(), "{m}");
    assert_eq!(m["attempts"], 1);
    // Give the dispatcher time to (wrongly) resend: two lease-settling rounds.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let m = get_message(&s.base, &org.key, &id).await;
    assert_eq!(m["status"], "processing", "still waiting for Meta: {m}");
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 1, "not resent: {sent:?}");
    assert_eq!(
        sent[0].outcome,
        wagate_simulator::Outcome::AcceptedUnanswered
    );
    let wamid = sent[0].wamid.clone().expect("Meta accepted it");

    // Meta's status webhook (our id in biz_opaque_callback_data) settles it.
    sim.emit_status(&wamid, "sent", None).await.expect("sent");
    let m = wait_status(&s, &org, &id, "sent").await;
    assert_eq!(m["wamid"], wamid.as_str(), "learned from the webhook");
    sim.emit_status(&wamid, "delivered", None)
        .await
        .expect("delivered");
    let m = wait_status(&s, &org, &id, "delivered").await;
    assert!(m["error"].is_null(), "{m}");
    assert_eq!(m["attempts"], 1);
    assert_eq!(sends_of(sim, &id).len(), 1, "exactly one request, ever");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_with_no_status_fails_as_outcome_unknown_after_the_grace_and_can_be_retried() {
    let mut opts = TestServer::options(crate::harness::pg::fresh_database().await);
    opts.dispatch.timeout_grace = Duration::from_secs(2);
    let s = TestServer::start_with(opts).await;
    let org = connect(&s, "timeout-grace@example.com").await;
    let sim = s.simulator();
    // The request is held unprocessed and the connection dropped: Meta never
    // had it, but wagate cannot know.
    sim.inject_fault(Fault::new(FaultKind::Timeout { ms: Some(300) }).times(1));
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "lost"}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let m = wait_status(&s, &org, &id, "failed").await;
    assert!(
        m["errorMessage"]
            .as_str()
            .is_some_and(|e| e.contains("outcome unknown")),
        "{m}"
    );
    assert_eq!(m["error"]["title"], "OUTCOME_UNKNOWN", "{m}");
    assert!(m["error"]["message"].is_string(), "{m}");
    let sent = sends_of(sim, &id);
    assert_eq!(sent.len(), 1, "not resent blindly: {sent:?}");
    assert!(sent[0].wamid.is_none());
    // The customer decides: a retry sends it.
    let r = post(
        &s,
        &org.key,
        &format!("/messages/{id}/retry"),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    wait_status(&s, &org, &id, "read").await;
    assert_eq!(
        sends_of(sim, &id)
            .iter()
            .filter(|r| r.wamid.is_some())
            .count(),
        1
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Failures Meta reports: status webhooks and synchronous errors.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn failed_status_webhooks_and_final_errors_leave_failed_messages_with_metas_error() {
    let s = TestServer::start().await;
    let org = connect(&s, "failures@example.com").await;
    let sim = s.simulator();
    // (recipient, Meta's code, whether Meta accepted the request first).
    let cases = [
        ("15550131047", 131047, true),
        ("15550131026", 131026, true),
        ("15553000006", 131026, true),
        ("15550000100", 100, false),
        ("15551131047", 131047, false),
        ("15551131049", 131049, false),
    ];
    let mut ids = Vec::new();
    for (to, _, _) in &cases {
        ids.push(
            send_ok(&s, &org, json!({"type": "text", "to": to, "text": "hello"})).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for ((to, code, accepted), id) in cases.iter().zip(&ids) {
        let m = wait_status(&s, &org, id, "failed").await;
        assert_eq!(m["attempts"], 1, "{to}: one attempt: {m}");
        assert_eq!(m["error"]["code"], *code, "{to}: {m}");
        assert!(
            m["error"]["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{to}: {m}"
        );
        let message = m["errorMessage"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{to}: {m}");
        assert_eq!(m["error"]["message"], message, "{to}");
        let failed = entries(&m, "failed");
        assert_eq!(failed.len(), 1, "{to}: {m}");
        assert_eq!(failed[0]["errorCode"], *code, "{to}");
        assert_eq!(failed[0]["errorMessage"], message, "{to}");
        let sent = sends_of(sim, id);
        assert_eq!(sent.len(), 1, "{to}: never retried: {sent:?}");
        if *accepted {
            // Meta took it, then reported the failure by webhook.
            assert!(sent[0].wamid.is_some(), "{to}");
            assert_eq!(m["wamid"], sent[0].wamid.as_deref().unwrap_or(""), "{to}");
            assert_eq!(failed[0]["source"], "webhook", "{to}");
            assert!(
                m["error"]["details"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{to}: Meta's error_data.details: {m}"
            );
        } else {
            assert_eq!(sent[0].error_code, Some(*code as i64), "{to}");
            assert!(m["wamid"].is_null(), "{to}");
            assert_eq!(failed[0]["source"], "dispatcher", "{to}");
        }
    }
    // 15553000006: sent first, then failed.
    let m = get_message(&s.base, &org.key, &ids[2]).await;
    let statuses: Vec<&str> = timeline(&m)
        .iter()
        .map(|e| e["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses.last(), Some(&"failed"), "{statuses:?}");
    assert!(statuses.contains(&"sent"), "{statuses:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_out_of_order_duplicated_or_skipped_never_move_a_message_backwards() {
    let s = TestServer::start().await;
    let org = connect(&s, "statuses@example.com").await;
    // (recipient, the simulator's status plan, the final status)
    let cases = [
        ("15553000003", "read, delivered, sent (reversed)", "read"),
        ("15553000004", "every status twice", "read"),
        ("15553000005", "sent, read", "read"),
        ("15553000002", "sent, delivered", "delivered"),
        ("15553000001", "sent only", "sent"),
    ];
    let mut ids = Vec::new();
    for (to, _, _) in &cases {
        ids.push(
            send_ok(&s, &org, json!({"type": "text", "to": to, "text": "hello"})).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    // Wait until Meta is done: 3 + 6 + 2 + 2 + 1 status webhooks.
    let sim = s.simulator();
    poll(
        "every status webhook to be delivered",
        Duration::from_secs(20),
        || async {
            let n = sim
                .webhook_deliveries()
                .iter()
                .filter(|d| d.kind.starts_with("status.") && d.delivered)
                .count();
            if n >= 14 {
                Ok(())
            } else {
                Err(format!("{n} delivered"))
            }
        },
    )
    .await;
    for ((to, plan, last), id) in cases.iter().zip(&ids) {
        let m = wait_message(
            &s.base,
            &org.key,
            id,
            &format!("{to} ({plan}) to settle at {last}"),
            Duration::from_secs(20),
            |m| m["status"] == *last && entries(m, last).iter().any(|e| e["source"] == "webhook"),
        )
        .await;
        // Each status Meta reported is in the timeline once.
        for status in ["sent", "delivered", "read"] {
            let from_meta = entries(&m, status)
                .iter()
                .filter(|e| e["source"] == "webhook")
                .count();
            assert!(
                from_meta <= 1,
                "{to} ({plan}): {status} {from_meta} times: {m}"
            );
        }
        assert!(m["error"].is_null(), "{to}: {m}");
        assert!(m["wamid"].is_string(), "{to}: {m}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removed_credentials_stop_sending_with_a_clear_error_until_new_ones_are_set() {
    let s = TestServer::start().await;
    let org = connect(&s, "nocreds@example.com").await;
    let sim = s.simulator();
    let send_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let id = send_ok(
        &s,
        &org,
        json!({"type": "text", "to": "16505551234", "text": "soon", "sendAt": send_at.to_rfc3339()}),
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = s
        .rest()
        .send("DELETE", "/auth/me/credentials", Some(&org.key), None, &[])
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    // New sends are refused up front, naming what to do.
    let r = post(
        &s,
        &org.key,
        &format!("/v1/phones/{}/messages", org.phone_id),
        json!({"type": "text", "to": "16505551234", "text": "now"}),
        &[],
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "CONFLICT");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("credentials")),
        "{}",
        r.text
    );
    // The scheduled one fails when due, without reaching Meta.
    let m = wait_status(&s, &org, &id, "failed").await;
    assert!(
        m["errorMessage"]
            .as_str()
            .is_some_and(|e| e.contains("credentials")),
        "{m}"
    );
    assert!(sends_of(sim, &id).is_empty());
    // New credentials for the same phone; a retry sends it.
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/credentials",
            Some(&org.key),
            Some(
                json!({"accessToken": crate::harness::sandbox::token("again"),
                        "phoneNumberId": PHONE, "wabaId": crate::harness::outbound::WABA}),
            ),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["phoneId"], org.phone_id.as_str());
    let r = post(
        &s,
        &org.key,
        &format!("/messages/{id}/retry"),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    wait_status(&s, &org, &id, "read").await;
    assert_eq!(sends_of(sim, &id).len(), 1);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// A worker killed mid-batch; two instances on one database.
// ---------------------------------------------------------------------------

/// `wagate org set-plan`, as an operator runs it.
fn set_plan_cli(database_url: &str, org: &Org, plan: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "org",
            "set-plan",
            "--org",
            &org.org_id.to_string(),
            "--plan",
            plan,
        ])
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("wagate org set-plan runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_lease_and_crash_grace_shorter_than_a_request_to_meta_are_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "serve",
            "--dispatch-lease-secs",
            "5",
            "--dispatch-crash-grace-secs",
            "10",
        ])
        // Refused before any database is opened.
        .env("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
        .env("RUST_LOG", "warn")
        .output()
        .expect("wagate runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--dispatch-lease-secs (5) plus --dispatch-crash-grace-secs (10)")
            && stderr.contains("15 s"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_leaves_every_message_sent_exactly_once() {
    const N: usize = 400;
    let database_url = crate::harness::pg::fresh_database().await;
    let master_key = wagate::crypto::SecretBox::generate_key();
    let meta = external_simulator().await;
    let sim = &meta.simulator;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("wagate.log");
    // Meta posts its status webhooks to this address; the instance behind
    // it changes when the first one dies (as behind a load balancer).
    sim.set_webhook_url(Some(format!("http://127.0.0.1:{port}/webhooks/whatsapp")));
    let mut first = spawn_binary(
        &database_url,
        &master_key,
        &meta,
        port,
        &[
            // Together past the 15 s a request to Meta may take, as
            // wagate requires.
            "--dispatch-crash-grace-secs",
            "11",
            "--dispatch-lease-secs",
            "5",
        ],
        &log,
        dir.path(),
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let org = connect_at(&base, "crash@example.com", PHONE).await;
    set_plan_cli(&database_url, &org, "mega");
    // Meta answers each send after 300 ms, so that about 24 requests are in
    // flight whenever the instance dies (those never reach Meta).
    sim.inject_fault(Fault::delay(Duration::from_millis(300)));
    // 400 messages at the phone's 80 msg/s: five seconds of sending.
    let ids = bulk(&base, &org, 0, N).await;
    assert_eq!(ids.len(), N);

    poll(
        "the first instance to be sending",
        Duration::from_secs(30),
        || async {
            let n = sim.accepted_sends().len();
            if n >= 100 {
                Ok(())
            } else {
                Err(format!("{n} sent"))
            }
        },
    )
    .await;
    first.kill();
    let at_kill = sim.accepted_sends().len();
    assert!(at_kill < N, "killed mid-batch ({at_kill} of {N} sent)");
    sim.clear_faults();

    // A second instance on the same database, key and Meta, same address.
    let mut opts = options_for(&database_url, &master_key, &meta);
    opts.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    opts.dispatch.crash_grace = Duration::from_secs(3);
    opts.dispatch.lease = Duration::from_secs(5);
    let second = TestServer::start_with(opts).await;
    wait_all_sent(&database_url, N as i64, Duration::from_secs(60)).await;

    assert_each_sent_once(sim, &ids);
    let counts = status_counts(&database_url).await;
    assert!(!counts.contains_key("failed"), "{counts:?}");
    // The crash did leave claimed messages behind: requests in flight that
    // never reached Meta (the client went away) were sent again once their
    // lease and the crash grace ran out, and only those.
    assert!(
        notes_containing(&database_url, "lease expired").await >= 1,
        "the killed instance held leases"
    );
    let gone = sim
        .requests()
        .iter()
        .filter(|r| r.outcome == wagate_simulator::Outcome::ClientGone)
        .count();
    assert!(gone >= 1, "requests were in flight when it died");
    let resent = notes_containing(&database_url, "sending again").await;
    assert!(
        resent >= gone as i64,
        "{gone} requests never reached Meta, {resent} messages sent again"
    );
    second.stop().await;
    drop(meta);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_one_database_send_every_message_exactly_once() {
    const N: usize = 200;
    let database_url = crate::harness::pg::fresh_database().await;
    let master_key = wagate::crypto::SecretBox::generate_key();
    let meta = external_simulator().await;
    let sim = &meta.simulator;
    let a = TestServer::start_with(options_for(&database_url, &master_key, &meta)).await;
    let b = TestServer::start_with(options_for(&database_url, &master_key, &meta)).await;
    sim.set_webhook_url(Some(format!("{}/webhooks/whatsapp", b.base)));
    let org = connect_at(&a.base, "twins@example.com", PHONE).await;
    set_plan(&a, &org, Plan::Mega).await;
    // Half queued through each instance, at the same time: five seconds of
    // sending at the phone's 80 msg/s, both dispatchers claiming.
    let (x, y) = tokio::join!(bulk(&a.base, &org, 0, N), bulk(&b.base, &org, N, N));
    let ids: Vec<String> = x.into_iter().chain(y).collect();

    // Midway, one instance stops gracefully: what it claimed and had not
    // sent goes back to the queue for the other, with no crash grace.
    poll(
        "sending to be under way",
        Duration::from_secs(30),
        || async {
            let n = sim.accepted_sends().len();
            if n >= 150 {
                Ok(())
            } else {
                Err(format!("{n} sent"))
            }
        },
    )
    .await;
    a.stop().await;
    assert!(sim.accepted_sends().len() < 2 * N, "stopped mid-batch");
    wait_all_sent(&database_url, 2 * N as i64, Duration::from_secs(60)).await;
    assert_each_sent_once(sim, &ids);
    let counts = status_counts(&database_url).await;
    assert!(!counts.contains_key("failed"), "{counts:?}");
    assert_eq!(
        notes_containing(&database_url, "lease expired").await,
        0,
        "a graceful stop hands its claims back"
    );
    b.stop().await;
    drop(meta);
}

/// The outbound writers hold connections of their own, outside the pool.
/// When the database drops every connection (a restart, a failover), a send
/// that meets a dropped one fails with an error rather than a 202, and every
/// writer goes on with a fresh connection: sends are stored again, every one
/// of them, as are the ones before.
#[tokio::test(flavor = "multi_thread")]
async fn sends_are_stored_again_after_the_database_drops_every_connection() {
    let s = TestServer::start().await;
    let org = connect(&s, "dropped@example.com").await;
    let path = format!("/v1/phones/{}/messages", org.phone_id);
    let send = |n: usize| {
        let (s, key, path) = (&s, org.key.clone(), path.clone());
        async move {
            post(
                s,
                &key,
                &path,
                json!({"type": "text", "to": format!("54911555{n:05}"), "text": format!("send {n}")}),
                &[],
            )
            .await
        }
    };
    // Concurrent sends, so that the writers have made their connections.
    let before: Vec<Value> = futures_util::future::join_all((0..32).map(send))
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text);
            r.body["data"].clone()
        })
        .collect();

    let ended = crate::inbound::rows(
        &s,
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid() \
            AND backend_type = 'client backend'",
    )
    .await;
    assert!(
        ended.iter().filter(|r| r["ended"] == json!(true)).count() >= 4,
        "the server's connections, the writers' among them: {ended:?}"
    );

    // One after another, so each writer takes its turn: once sends are
    // stored again, none fails.
    let mut after = Vec::new();
    let mut failed = 0;
    for n in 100.. {
        let r = send(n).await;
        if r.status == 202 {
            after.push(r.body["data"].clone());
            if after.len() == 12 {
                break;
            }
            continue;
        }
        assert!(
            after.is_empty(),
            "a send failed after others were stored again: {} {}",
            r.status,
            r.text
        );
        assert!(r.status >= 500, "{} {}", r.status, r.text);
        assert!(
            !r.text.contains("terminat") && !r.text.contains("SQL"),
            "no internal detail in the error: {}",
            r.text
        );
        failed += 1;
        assert!(failed < 40, "still failing: {}", r.text);
    }

    for m in before.iter().take(2).chain(after.iter().take(2)) {
        let id = m["id"].as_str().expect("an id");
        let stored = get_message(&s.base, &org.key, id).await;
        assert_eq!(stored["content"], m["content"], "{stored}");
        // And the dispatcher, on its own fresh connections, sends it.
        wait_status(&s, &org, id, "read").await;
    }
}
