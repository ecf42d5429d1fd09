//! Issue 5, the receiving side: Meta's webhook receiver (verification,
//! signature, durability, idempotency, unparseable and unrouted deliveries,
//! reprocessing), contact identity, statuses into the timeline, and every
//! Meta webhook sample in tests/fixtures/meta/webhooks.
use std::collections::HashMap;
use std::time::Duration;

use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};

use crate::harness::TestServer;

/// The phone number id and WABA of Meta's documentation samples.
pub const PHONE: &str = "106540352242922";
pub const WABA: &str = "102290129340398";

pub use crate::harness::sandbox::poll;

pub fn sim(s: &TestServer) -> &wagate_simulator::Simulator {
    s.running
        .as_ref()
        .expect("running")
        .app
        .simulator
        .as_ref()
        .expect("sandbox mode runs the simulator")
}

pub async fn db(s: &TestServer) -> AsyncPgConnection {
    AsyncPgConnection::establish(&s.database_url)
        .await
        .expect("test database connects")
}

#[derive(QueryableByName)]
struct J {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    j: Value,
}

/// Rows of a query as JSON objects (test-only SQL; quote values with [`lit`]).
pub async fn rows(s: &TestServer, sql: &str) -> Vec<Value> {
    let q = format!("SELECT to_jsonb(t) AS j FROM ({sql}) t");
    diesel::sql_query(&q)
        .load::<J>(&mut db(s).await)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .into_iter()
        .map(|r| r.j)
        .collect()
}

pub async fn exec(s: &TestServer, sql: &str) -> usize {
    diesel::sql_query(sql)
        .execute(&mut db(s).await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A SQL string literal.
pub fn lit(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Registers an organization and connects the samples' phone and WABA
/// with bring-your-own credentials; returns (api key, phone id, WABA id).
pub async fn connect(s: &TestServer, email: &str) -> (String, String, String) {
    connect_phone(s, email, PHONE).await
}

pub async fn connect_phone(s: &TestServer, email: &str, phone: &str) -> (String, String, String) {
    let (key, _) = s.register(email).await;
    let r = s
        .rest()
        .send(
            "PUT",
            "/auth/me/credentials",
            Some(&key),
            Some(json!({
                "accessToken": format!("EAAG{}", uuid::Uuid::new_v4().simple()),
                "phoneNumberId": phone,
                "wabaId": crate::harness::outbound::waba_for(phone),
            })),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let phone_id = r.body["data"]["phoneId"]
        .as_str()
        .expect("phoneId")
        .to_owned();
    let waba = rows(
        s,
        &format!(
            "SELECT waba_id FROM phone_numbers WHERE id = {}::uuid",
            lit(&phone_id)
        ),
    )
    .await;
    let waba_id = waba[0]["waba_id"].as_str().expect("waba").to_owned();
    (key, phone_id, waba_id)
}

/// POSTs a body to the webhook with a header value (None: no header).
pub async fn post_webhook(s: &TestServer, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/webhooks/whatsapp", s.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("x-hub-signature-256", sig);
    }
    let resp = req.send().await.expect("webhook POST");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Signed with the sandbox app secret, as Meta (the simulator) signs.
pub async fn post_signed(s: &TestServer, body: &[u8]) -> u16 {
    let sig = wagate_meta::signature::sign(wagate::server::SANDBOX_APP_SECRET.as_bytes(), body);
    post_webhook(s, body, Some(&sig)).await.0
}

pub async fn post_json(s: &TestServer, v: &Value) -> u16 {
    post_signed(s, v.to_string().as_bytes()).await
}

/// Waits until no delivery is pending.
pub async fn wait_processed(s: &TestServer) {
    poll(
        "webhook deliveries to be processed",
        Duration::from_secs(15),
        || async {
            let r = rows(
                s,
                "SELECT count(*) AS n FROM inbound_webhooks WHERE state = 'pending'",
            )
            .await;
            match r[0]["n"].as_i64() {
                Some(0) => Ok(()),
                n => Err(format!("{n:?} pending")),
            }
        },
    )
    .await
}

/// A `messages` webhook with one text message.
pub fn text_payload(phone: &str, from: &str, wamid: &str, body: &str, ts: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": ts.to_string(),
                      "type": "text", "text": {"body": body}}]
    }}]}]})
}

pub fn status_payload(phone: &str, status: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone},
        "statuses": [status]
    }}]}]})
}

/// An outbound message as the dispatcher leaves it once Meta accepted it
/// (or still processing, without a wamid); returns its id.
pub async fn outbound(s: &TestServer, phone_id: &str, wamid: Option<&str>, status: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let wamid = wamid.map_or("NULL".to_owned(), lit);
    exec(
        s,
        &format!(
            "INSERT INTO messages (id, org_id, phone_id, direction, type, content, payload, status, recipient, wamid)
             SELECT {id}::uuid, org_id, id, 'outbound', 'text', '{{\"body\":\"hi\"}}', '{{}}', {status}, '16505551234', {wamid}
               FROM phone_numbers WHERE id = {phone}::uuid",
            id = lit(&id),
            status = lit(status),
            phone = lit(phone_id),
        ),
    )
    .await;
    id
}

pub async fn message(s: &TestServer, id: &str) -> Value {
    rows(
        s,
        &format!("SELECT * FROM messages WHERE id = {}::uuid", lit(id)),
    )
    .await
    .pop()
    .expect("message exists")
}

/// The webhook-sourced timeline of a message: [(status, note)].
pub async fn timeline(s: &TestServer, id: &str) -> Vec<(String, Option<String>)> {
    rows(
        s,
        &format!(
            "SELECT status, note FROM message_events WHERE message_id = {}::uuid AND source = 'webhook' ORDER BY id",
            lit(id)
        ),
    )
    .await
    .into_iter()
    .map(|r| {
        (
            r["status"].as_str().unwrap_or_default().to_owned(),
            r["note"].as_str().map(str::to_owned),
        )
    })
    .collect()
}

pub async fn events(s: &TestServer, event: &str) -> Vec<Value> {
    rows(
        s,
        &format!(
            "SELECT data FROM webhook_events WHERE event = {} ORDER BY created_at",
            lit(event)
        ),
    )
    .await
    .into_iter()
    .map(|r| r["data"].clone())
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verification_answers_the_bare_challenge_only_to_the_right_token() {
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let get = |q: &'static str| {
        let url = format!("{}/webhooks/whatsapp?{q}", s.base);
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.expect("GET");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let ok =
        get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=sandbox-verify-token")
            .await;
    assert_eq!(ok, (200, "1158201444".to_owned()));
    for bad in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
        "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=sandbox-verify-token",
        "hub.challenge=1158201444&hub.verify_token=sandbox-verify-token",
        "hub.mode=subscribe&hub.challenge=1158201444",
        "",
    ] {
        let (status, body) = get(bad).await;
        assert_eq!(status, 403, "{bad}");
        assert!(!body.contains("1158201444"), "{bad}: {body}");
    }
    s.stop().await;
}

async fn count_deliveries(s: &TestServer) -> Option<i64> {
    rows(s, "SELECT count(*) AS n FROM inbound_webhooks").await[0]["n"].as_i64()
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_bad_signatures_get_401_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let body = text_payload(PHONE, "16505551234", "wamid.SIG", "hi", 1_750_000_000).to_string();
    let bytes = body.as_bytes();
    let good = wagate_meta::signature::sign(wagate::server::SANDBOX_APP_SECRET.as_bytes(), bytes);
    let other_secret = wagate_meta::signature::sign(b"someone-else", bytes);
    let tampered = wagate_meta::signature::sign(
        wagate::server::SANDBOX_APP_SECRET.as_bytes(),
        format!("{body} ").as_bytes(),
    );
    for sig in [
        None,
        Some(""),
        Some("sha256="),
        Some("sha256=zz"),
        Some(other_secret.as_str()),
        Some(tampered.as_str()),
        Some(&good.replace("sha256=", "sha1=")),
    ] {
        let (status, _) = post_webhook(&s, bytes, sig).await;
        assert_eq!(status, 401, "{sig:?}");
    }
    assert_eq!(
        count_deliveries(&s).await,
        Some(0),
        "nothing stored for refused deliveries"
    );
    // Over 3 MB: refused before the signature is even checked, not stored.
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let big_sig = wagate_meta::signature::sign(wagate::server::SANDBOX_APP_SECRET.as_bytes(), &big);
    assert_eq!(post_webhook(&s, &big, Some(&big_sig)).await.0, 413);
    assert_eq!(count_deliveries(&s).await, Some(0));
    assert_eq!(post_webhook(&s, bytes, Some(&good)).await.0, 200);
    assert_eq!(count_deliveries(&s).await, Some(1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_delivery_is_stored_when_its_200_arrives() {
    let s = TestServer::start().await;
    // Concurrent deliveries share the writers' batches; each one's row
    // exists as soon as its own 200 is back (3 MB bodies included).
    let mut tasks = Vec::new();
    for i in 0..48 {
        let base = s.base.clone();
        let url = s.database_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut v = text_payload("999000111", "16505551234", &format!("wamid.D{i}"), "x", 1);
            if i == 0 {
                // Near Meta's 3 MB cap.
                v["entry"][0]["changes"][0]["value"]["padding"] =
                    json!("p".repeat(3 * 1024 * 1024 - 600));
            }
            let body = v.to_string().into_bytes();
            let sig =
                wagate_meta::signature::sign(wagate::server::SANDBOX_APP_SECRET.as_bytes(), &body);
            let resp = reqwest::Client::new()
                .post(format!("{base}/webhooks/whatsapp"))
                .header("x-hub-signature-256", sig)
                .body(body.clone())
                .send()
                .await
                .expect("POST");
            assert_eq!(resp.status().as_u16(), 200);
            let mut conn = AsyncPgConnection::establish(&url).await.expect("db");
            #[derive(QueryableByName)]
            struct N {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let n: N =
                diesel::sql_query("SELECT count(*) AS n FROM inbound_webhooks WHERE body = $1")
                    .bind::<diesel::sql_types::Bytea, _>(body)
                    .get_result(&mut conn)
                    .await
                    .expect("count");
            assert_eq!(n.n, 1, "delivery {i} stored before its 200");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_twice_or_the_same_wamid_twice_is_processed_once() {
    let s = TestServer::start().await;
    let (_, phone_id, _) = connect(&s, "dup@example.com").await;
    let first = text_payload(PHONE, "16505551234", "wamid.DUP", "hello", 1_750_000_000);
    assert_eq!(post_json(&s, &first).await, 200);
    assert_eq!(post_json(&s, &first).await, 200);
    // The same wamid in another delivery (another batch of Meta's).
    let mut other = text_payload(PHONE, "16505551234", "wamid.DUP", "hello", 1_750_000_000);
    other["entry"][0]["time"] = json!(1_750_000_100);
    assert_eq!(post_json(&s, &other).await, 200);
    wait_processed(&s).await;
    let msgs = rows(
        &s,
        "SELECT id, status, direction FROM messages WHERE wamid = 'wamid.DUP'",
    )
    .await;
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["status"], "delivered");
    let conv = rows(
        &s,
        &format!(
            "SELECT unread_count FROM conversations WHERE phone_id = {}::uuid",
            lit(&phone_id)
        ),
    )
    .await;
    assert_eq!(conv, vec![json!({"unread_count": 1})]);
    assert_eq!(events(&s, "message.received").await.len(), 1);
    let states = rows(&s, "SELECT state FROM inbound_webhooks ORDER BY id").await;
    assert_eq!(states, vec![json!({"state": "processed"}); 3]);

    // A status delivered twice is recorded once.
    let out = outbound(&s, &phone_id, Some("wamid.OUT1"), "sent").await;
    let delivered = status_payload(
        PHONE,
        json!({"id": "wamid.OUT1", "status": "delivered",
        "timestamp": "1750000200", "recipient_id": "16505551234"}),
    );
    assert_eq!(post_json(&s, &delivered).await, 200);
    assert_eq!(post_json(&s, &delivered).await, 200);
    wait_processed(&s).await;
    assert_eq!(
        timeline(&s, &out).await,
        vec![("delivered".to_owned(), None)]
    );
    assert_eq!(events(&s, "message.status_updated").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unparseable_payloads_are_kept_marked_and_not_retried() {
    let s = TestServer::start().await;
    assert_eq!(post_signed(&s, b"this is not json").await, 200);
    assert_eq!(
        post_signed(&s, br#"{"object":"page","entry":[]}"#).await,
        200
    );
    assert_eq!(
        post_signed(
            &s,
            br#"{"object":"whatsapp_business_account","entry":[{"changes":[]}]}"#
        )
        .await,
        200
    );
    wait_processed(&s).await;
    let r = rows(&s, "SELECT state, attempts, last_error, convert_from(body, 'UTF8') AS body FROM inbound_webhooks ORDER BY id").await;
    assert_eq!(r.len(), 3);
    for row in &r {
        assert_eq!(row["state"], "unparseable", "{row}");
        assert_eq!(row["attempts"], 1, "{row}");
        assert!(
            row["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{row}"
        );
    }
    assert_eq!(r[0]["body"], "this is not json", "kept verbatim");
    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains(r#"wagate_inbound_deliveries_total{outcome="unparseable"} 3"#),
        "{metrics}"
    );
    // Never claimed again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = rows(
        &s,
        "SELECT attempts FROM inbound_webhooks WHERE attempts <> 1",
    )
    .await;
    assert!(again.is_empty(), "{again:?}");
    s.stop().await;
}

/// Runs `wagate <args>` against the test's database.
fn cli(s: &TestServer, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(args)
        .env("DATABASE_URL", &s.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("wagate runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn unrouted_events_are_kept_listed_and_reprocessed_once_the_phone_is_connected() {
    let s = TestServer::start().await;
    let msg = text_payload(
        PHONE,
        "16505551234",
        "wamid.EARLY",
        "anyone there?",
        1_750_000_000,
    );
    assert_eq!(post_json(&s, &msg).await, 200);
    let template = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": 1751247548,
        "changes": [{"field": "message_template_status_update", "value": {"event": "APPROVED",
        "message_template_id": 1, "message_template_name": "t", "message_template_language": "en"}}]}]});
    assert_eq!(post_json(&s, &template).await, 200);
    wait_processed(&s).await;
    let r = rows(
        &s,
        "SELECT id, state, unrouted_phone_ids FROM inbound_webhooks ORDER BY id",
    )
    .await;
    assert_eq!(r[0]["state"], "unrouted");
    assert_eq!(r[0]["unrouted_phone_ids"], json!([PHONE]));
    assert_eq!(r[1]["state"], "unrouted");
    assert_eq!(r[1]["unrouted_phone_ids"], json!([format!("waba:{WABA}")]));
    assert!(rows(&s, "SELECT 1 FROM messages").await.is_empty());

    // The operator sees them.
    let (ok, out) = cli(&s, &["inbound", "unrouted"]);
    assert!(ok, "{out}");
    let id = r[0]["id"].as_i64().expect("id");
    assert!(out.contains(&format!("{id}\t")), "{out}");
    assert!(out.contains(PHONE) && out.contains("unrouted"), "{out}");

    // Once the phone is connected, reprocessing delivers the message.
    let (_, phone_id, _) = connect(&s, "late@example.com").await;
    let (ok, out) = cli(&s, &["inbound", "reprocess", &id.to_string()]);
    assert!(ok, "{out}");
    let (ok, out) = cli(&s, &["inbound", "reprocess", "987654321"]);
    assert!(
        !ok && out.contains("no webhook delivery 987654321"),
        "{out}"
    );
    poll("the reprocessed delivery", Duration::from_secs(10), || async {
        let m = rows(&s, &format!("SELECT content FROM messages WHERE wamid = 'wamid.EARLY' AND phone_id = {}::uuid", lit(&phone_id))).await;
        if m.len() == 1 { Ok(()) } else { Err(format!("{m:?}")) }
    })
    .await;
    let r = rows(
        &s,
        &format!("SELECT state, unrouted_phone_ids FROM inbound_webhooks WHERE id = {id}"),
    )
    .await;
    assert_eq!(
        r[0],
        json!({"state": "processed", "unrouted_phone_ids": null})
    );
    // Operators see the outcomes on /metrics.
    let metrics = metrics_text(&s).await;
    for line in [
        r#"wagate_inbound_deliveries_total{outcome="unrouted"} 2"#,
        r#"wagate_inbound_deliveries_total{outcome="processed"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    s.stop().await;
}

async fn metrics_text(s: &TestServer) -> String {
    s.rest().send("GET", "/metrics", None, None, &[]).await.text
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_never_move_backwards_and_failures_carry_metas_error() {
    let s = TestServer::start().await;
    let (_, phone_id, _) = connect(&s, "order@example.com").await;
    let m = outbound(&s, &phone_id, Some("wamid.ORDER"), "processing").await;
    let st = |status: &str, ts: i64| {
        status_payload(
            PHONE,
            json!({"id": "wamid.ORDER", "status": status, "timestamp": ts.to_string(),
            "recipient_id": "16505551234",
            "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}}),
        )
    };
    // read before delivered, then sent after both, then a late failure.
    for (status, ts) in [("read", 30), ("delivered", 20), ("sent", 10)] {
        assert_eq!(post_json(&s, &st(status, 1_750_000_000 + ts)).await, 200);
        wait_processed(&s).await;
        assert_eq!(message(&s, &m).await["status"], "read", "after {status}");
    }
    let tl: Vec<String> = timeline(&s, &m).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        tl,
        ["read", "delivered", "sent"],
        "every status recorded once, in arrival order"
    );
    let row = message(&s, &m).await;
    assert_eq!(row["pricing"]["category"], "utility", "pricing kept");
    assert!(row["error_message"].is_null());
    // Only `read` moved the message: one event.
    assert_eq!(events(&s, "message.status_updated").await.len(), 1);
    assert!(events(&s, "message.sent").await.is_empty());

    // Failed: Meta's errors[] into errorMessage, code, title, details.
    let f = outbound(&s, &phone_id, Some("wamid.FAIL"), "sent").await;
    let failed = status_payload(
        PHONE,
        json!({"id": "wamid.FAIL", "status": "failed", "timestamp": "1751142888",
        "recipient_id": "16505551234", "errors": [{"code": 131049,
        "title": "This message was not delivered to maintain healthy ecosystem engagement.",
        "message": "This message was not delivered to maintain healthy ecosystem engagement.",
        "error_data": {"details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."},
        "href": "/documentation/business-messaging/whatsapp/support/error-codes"}]}),
    );
    assert_eq!(post_json(&s, &failed).await, 200);
    wait_processed(&s).await;
    let row = message(&s, &f).await;
    assert_eq!(row["status"], "failed");
    assert_eq!(row["error_code"], 131049);
    assert_eq!(
        row["error_title"],
        "This message was not delivered to maintain healthy ecosystem engagement."
    );
    assert_eq!(
        row["error_details"],
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    );
    let em = row["error_message"].as_str().expect("errorMessage");
    assert!(
        em.contains("healthy ecosystem engagement") && em.contains("failed to be delivered"),
        "{em}"
    );
    let ev = events(&s, "message.status_updated").await;
    let last = ev.last().expect("event");
    assert_eq!(last["status"], "failed");
    assert_eq!(last["error"]["code"], 131049);
    assert_eq!(last["errorMessage"], em);
    // A failure after delivery does not undo it.
    let d = outbound(&s, &phone_id, Some("wamid.DLV"), "delivered").await;
    let late = status_payload(
        PHONE,
        json!({"id": "wamid.DLV", "status": "failed", "timestamp": "1751142999",
        "errors": [{"code": 131026, "title": "Message undeliverable"}]}),
    );
    assert_eq!(post_json(&s, &late).await, 200);
    wait_processed(&s).await;
    assert_eq!(message(&s, &d).await["status"], "delivered");

    // `sent` moves a processing message and says so.
    let p = outbound(&s, &phone_id, None, "processing").await;
    let sent = status_payload(
        PHONE,
        json!({"id": "wamid.BYCALLBACK", "status": "sent", "timestamp": "1751143000",
        "recipient_id": "16505551234", "biz_opaque_callback_data": p}),
    );
    assert_eq!(post_json(&s, &sent).await, 200);
    wait_processed(&s).await;
    let row = message(&s, &p).await;
    assert_eq!(row["status"], "sent");
    assert_eq!(
        row["wamid"], "wamid.BYCALLBACK",
        "matched by biz_opaque_callback_data, wamid learned"
    );
    let sent_events = events(&s, "message.sent").await;
    assert_eq!(sent_events.len(), 1);
    assert_eq!(sent_events[0]["messageId"], p);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn early_statuses_wait_for_their_wamid_and_are_reconciled() {
    use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
    use wagate::store::messages::MessageRow;
    use wagate::store::schema::messages;

    let s = TestServer::start().await;
    let (_, phone_id, _) = connect(&s, "early@example.com").await;
    let m = outbound(&s, &phone_id, None, "processing").await;
    for (status, ts) in [("delivered", 20), ("sent", 10)] {
        let p = status_payload(
            PHONE,
            json!({"id": "wamid.SOON", "status": status,
            "timestamp": (1_750_000_000 + ts).to_string(), "recipient_id": "16505551234"}),
        );
        assert_eq!(post_json(&s, &p).await, 200);
        assert_eq!(post_json(&s, &p).await, 200, "redelivered");
    }
    wait_processed(&s).await;
    let orphans = rows(
        &s,
        "SELECT wamid, status->>'status' AS status FROM orphan_statuses ORDER BY id",
    )
    .await;
    assert_eq!(orphans.len(), 2, "kept once each: {orphans:?}");
    assert_eq!(message(&s, &m).await["status"], "processing");

    // The dispatcher records the wamid and reconciles, in one transaction.
    let mut conn = db(&s).await;
    let id = uuid::Uuid::parse_str(&m).expect("uuid");
    conn.transaction::<_, diesel::result::Error, _>(async |c| {
        let row: MessageRow = diesel::update(messages::table.find(id))
            .set(messages::wamid.eq("wamid.SOON"))
            .returning(MessageRow::as_returning())
            .get_result(c)
            .await?;
        wagate::domain::inbound::reconcile_orphans(c, &row)
            .await
            .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
    })
    .await
    .expect("reconciled");
    let row = message(&s, &m).await;
    assert_eq!(row["status"], "delivered");
    let tl: Vec<String> = timeline(&s, &m).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(tl, ["sent", "delivered"]);
    assert!(rows(&s, "SELECT 1 FROM orphan_statuses").await.is_empty());
    assert_eq!(events(&s, "message.sent").await.len(), 1);
    assert_eq!(events(&s, "message.status_updated").await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_organization_deletes_its_inbox_and_nothing_else() {
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect(&s, "gone@example.com").await;
    let (kept_key, kept_phone, _) = connect_phone(&s, "kept@example.com", "106540352242999").await;
    for (phone, wamid) in [(PHONE, "wamid.GONE"), ("106540352242999", "wamid.KEPT")] {
        let payload = text_payload(phone, "16505551234", wamid, "hello", 1_750_000_000);
        assert_eq!(post_json(&s, &payload).await, 200);
    }
    wait_processed(&s).await;
    for (key, phone) in [(&key, &phone_id), (&kept_key, &kept_phone)] {
        let r = s
            .rest()
            .send(
                "POST",
                &format!("/v1/phones/{phone}/messages"),
                Some(key),
                Some(json!({"type": "text", "to": "16505551234", "text": "Hello!"})),
                &[],
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // Timelines grow meanwhile (the dispatcher sends), so they are compared
    // as at least what they were.
    let count = |phone: &str| {
        format!(
            "SELECT (SELECT count(*) FROM contacts WHERE phone_id = {p}::uuid) AS contacts,
                    (SELECT count(*) FROM conversations WHERE phone_id = {p}::uuid) AS conversations,
                    (SELECT count(*) FROM messages WHERE phone_id = {p}::uuid) AS messages,
                    (SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id
                      WHERE m.phone_id = {p}::uuid) AS timeline",
            p = lit(phone)
        )
    };
    for phone in [&phone_id, &kept_phone] {
        let before = rows(&s, &count(phone)).await;
        assert_eq!(before[0]["contacts"], 1, "{before:?}");
        assert_eq!(before[0]["conversations"], 1, "{before:?}");
        assert_eq!(before[0]["messages"], 2, "{before:?}");
        assert!(before[0]["timeline"].as_i64() >= Some(1), "{before:?}");
    }

    // Deleted once the dispatcher is done with the sends: a delete racing the
    // dispatcher's locks may be chosen as a deadlock victim (and retried).
    poll("the sends to be sent", Duration::from_secs(15), || async {
        let busy = rows(
            &s,
            "SELECT count(*) AS n FROM messages
              WHERE status IN ('queued', 'processing', 'retrying')",
        )
        .await;
        match busy[0]["n"].as_i64() {
            Some(0) => Ok(()),
            n => Err(format!("{n:?} not sent yet")),
        }
    })
    .await;
    exec(
        &s,
        &format!(
            "DELETE FROM organizations WHERE id = (SELECT org_id FROM phone_numbers WHERE id = {}::uuid)",
            lit(&phone_id)
        ),
    )
    .await;
    assert_eq!(
        rows(&s, &count(&phone_id)).await[0],
        json!({"contacts": 0, "conversations": 0, "messages": 0, "timeline": 0})
    );
    let orphans = rows(
        &s,
        "SELECT count(*) AS n FROM message_events e
          WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id)",
    )
    .await;
    assert_eq!(orphans[0]["n"], 0, "timelines of deleted messages");
    let kept = rows(&s, &count(&kept_phone)).await;
    assert_eq!(kept[0]["contacts"], 1, "{kept:?}");
    assert_eq!(kept[0]["conversations"], 1, "{kept:?}");
    assert_eq!(kept[0]["messages"], 2, "{kept:?}");
    assert!(kept[0]["timeline"].as_i64() >= Some(1), "{kept:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_changes_relink_the_contact_and_keep_its_history() {
    let s = TestServer::start().await;
    let (key, phone_id, _) = connect(&s, "ids@example.com").await;
    let base = 1_750_000_000;
    assert_eq!(
        post_json(
            &s,
            &text_payload(PHONE, "16505551234", "wamid.I1", "old number", base)
        )
        .await,
        200
    );
    wait_processed(&s).await;
    // A message from the new number overtakes the number-change notice.
    assert_eq!(
        post_json(
            &s,
            &text_payload(PHONE, "12195555358", "wamid.I2", "new number", base + 20)
        )
        .await,
        200
    );
    wait_processed(&s).await;
    assert_eq!(rows(&s, "SELECT 1 FROM contacts").await.len(), 2);
    let change = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
            "messages": [{"from": "16505551234", "id": "wamid.I3", "timestamp": (base + 10).to_string(),
                "system": {"body": "User Sheena Nelson changed from 16505551234 to 12195555358",
                           "wa_id": "12195555358", "type": "user_changed_number"},
                "type": "system"}]}}]}]});
    assert_eq!(post_json(&s, &change).await, 200);
    wait_processed(&s).await;
    let contacts = rows(
        &s,
        "SELECT id, wa_id, identifier, identifier_type FROM contacts",
    )
    .await;
    assert_eq!(contacts.len(), 1, "merged: {contacts:?}");
    assert_eq!(contacts[0]["wa_id"], "12195555358");
    assert_eq!(contacts[0]["identifier"], "12195555358");
    let convs = rows(&s, "SELECT id, unread_count, contact_id FROM conversations").await;
    assert_eq!(convs.len(), 1, "{convs:?}");
    assert_eq!(
        convs[0]["unread_count"], 2,
        "two customer messages; the notice does not count"
    );
    let msgs = rows(&s, "SELECT wamid FROM messages WHERE conversation_id = (SELECT id FROM conversations) ORDER BY meta_timestamp").await;
    assert_eq!(
        msgs,
        vec![
            json!({"wamid": "wamid.I1"}),
            json!({"wamid": "wamid.I3"}),
            json!({"wamid": "wamid.I2"})
        ]
    );
    assert_eq!(
        rows(&s, "SELECT DISTINCT contact_id FROM messages").await,
        vec![json!({"contact_id": contacts[0]["id"]})],
        "every message is the kept contact's"
    );
    // Redelivering the old notice changes nothing.
    assert_eq!(post_json(&s, &change).await, 200);
    wait_processed(&s).await;
    assert_eq!(rows(&s, "SELECT 1 FROM contacts").await.len(), 1);

    // BSUID regenerated: user_id_update moves the contact to the new BSUID.
    let with_bsuid = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
            "contacts": [{"profile": {"name": "Sheena", "username": "@sheena"}, "wa_id": "12195555358", "user_id": "US.111"}],
            "messages": [{"from": "12195555358", "from_user_id": "US.111", "id": "wamid.I4",
                "timestamp": (base + 30).to_string(), "type": "text", "text": {"body": "hi"}}]}}]}]});
    assert_eq!(post_json(&s, &with_bsuid).await, 200);
    let update = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": base + 40, "changes": [{"field": "user_id_update",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE},
            "user_id_update": [{"wa_id": "12195555358", "detail": "User id for 12195555358 has been updated.",
                "user_id": {"previous": "US.111", "current": "US.222"},
                "parent_user_id": {"previous": null, "current": "US.ENT.9"}, "timestamp": base + 40}]}}]}]});
    assert_eq!(post_json(&s, &update).await, 200);
    wait_processed(&s).await;
    let c = rows(&s, "SELECT bsuid, parent_bsuid, identifier, identifier_type, username, profile_name FROM contacts").await;
    assert_eq!(
        c,
        vec![
            json!({"bsuid": "US.222", "parent_bsuid": "US.ENT.9", "identifier": "US.222",
        "identifier_type": "bsuid", "username": "@sheena", "profile_name": "Sheena"})
        ]
    );
    // The conversation, with its whole history, now carries the new identity.
    let (_, list) = s
        .rest()
        .get(&format!("/v1/phones/{phone_id}/conversations"), Some(&key))
        .await;
    let conv = &list["data"][0];
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(conv["contactIdentifier"], "US.222");
    assert_eq!(conv["contactIdentifierType"], "bsuid");
    assert_eq!(conv["contactReplyTo"], "12195555358");
    assert_eq!(conv["contactPhone"], "12195555358");
    assert_eq!(conv["businessScopedUserId"], "US.222");
    assert_eq!(conv["parentBusinessScopedUserId"], "US.ENT.9");
    assert_eq!(conv["username"], "@sheena");
    assert_eq!(conv["contactName"], "Sheena");
    let (_, msgs) = s
        .rest()
        .get(
            &format!(
                "/v1/phones/{phone_id}/conversations/{}/messages",
                conv["id"].as_str().unwrap_or_default()
            ),
            Some(&key),
        )
        .await;
    assert_eq!(msgs["meta"]["pagination"]["total"], 4, "{msgs}");
    let updates = rows(&s, "SELECT field FROM waba_updates").await;
    assert_eq!(updates, vec![json!({"field": "user_id_update"})]);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Every Meta sample.

/// Makes a sample ours: our phone and WABA, wamids unique to the sample (the
/// samples reuse placeholders), restrictions that have not expired yet.
fn adapt(sample: &mut Value, stem: &str) {
    let Some(entries) = sample["entry"].as_array_mut() else {
        return;
    };
    for e in entries {
        e["id"] = json!(WABA);
        let Some(changes) = e["changes"].as_array_mut() else {
            continue;
        };
        for c in changes {
            let v = &mut c["value"];
            if v.get("metadata").is_some() {
                v["metadata"]["phone_number_id"] = json!(PHONE);
            }
            for list in ["messages", "message_echoes", "statuses"] {
                if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
                    for m in items {
                        let id = m["id"].as_str().unwrap_or_default().to_owned();
                        m["id"] = json!(format!("{id}.{stem}"));
                    }
                }
            }
            if let Some(r) = v.get_mut("restriction_info").and_then(Value::as_array_mut) {
                for x in r {
                    x["expiration"] = json!(chrono::Utc::now().timestamp() + 86_400);
                }
            }
        }
    }
}

const KNOWN_TYPES: [&str; 16] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
    "revoke",
    "edit",
];

fn expected_kind(m: &Value) -> &'static str {
    let t = m["type"].as_str().unwrap_or_default();
    match KNOWN_TYPES.iter().find(|k| **k == t) {
        Some(k) if *k == "unsupported" || m.get(t).is_some() => k,
        _ => "unsupported",
    }
}

/// What the stored content must show for a message object.
fn check_content(stem: &str, m: &Value, kind: &str, content: &Value) {
    let t = m["type"].as_str().unwrap_or_default();
    let p = &m[t];
    let ctx = format!("{stem}: {content}");
    match kind {
        "text" => assert_eq!(content["body"], p["body"], "{ctx}"),
        "image" | "video" | "audio" | "document" | "sticker" => {
            assert_eq!(content["id"], p["id"], "{ctx}");
            assert_eq!(
                content["url"],
                p.get("url").cloned().unwrap_or(Value::Null),
                "{ctx}"
            );
            assert_eq!(content.get("mimeType"), p.get("mime_type"), "{ctx}");
            assert_eq!(content.get("sha256"), p.get("sha256"), "{ctx}");
            if kind != "audio" && kind != "sticker" {
                assert_eq!(content.get("caption"), p.get("caption"), "{ctx}");
            }
            if kind == "document" {
                assert_eq!(content.get("filename"), p.get("filename"), "{ctx}");
            }
        }
        "location" => {
            assert_eq!(
                content["latitude"].as_f64(),
                p["latitude"].as_f64(),
                "{ctx}"
            );
            assert_eq!(
                content["longitude"].as_f64(),
                p["longitude"].as_f64(),
                "{ctx}"
            );
            assert_eq!(content.get("name"), p.get("name"), "{ctx}");
        }
        "contacts" => assert_eq!(content["contacts"], m["contacts"], "{ctx}"),
        "interactive" => {
            let it = p["type"].as_str().unwrap_or_default();
            assert_eq!(content["type"], it, "{ctx}");
            if it == "button_reply" || it == "list_reply" {
                assert_eq!(content["id"], p[it]["id"], "{ctx}");
                assert_eq!(content["title"], p[it]["title"], "{ctx}");
            }
            if it == "nfm_reply" {
                let parsed: Value =
                    serde_json::from_str(p[it]["response_json"].as_str().unwrap_or("null"))
                        .unwrap_or(Value::Null);
                assert_eq!(content["response"], parsed, "{ctx}");
            }
        }
        "button" => {
            assert_eq!(content["text"], p["text"], "{ctx}");
            assert_eq!(content["payload"], p["payload"], "{ctx}");
        }
        "reaction" => {
            let emoji = p["emoji"].as_str().unwrap_or_default();
            assert_eq!(content["emoji"], emoji, "{ctx}");
            assert_eq!(content["removed"], emoji.is_empty(), "{ctx}");
            assert_eq!(content["messageId"], p["message_id"], "{ctx}");
        }
        "order" => {
            let n = p["product_items"].as_array().map(Vec::len);
            assert_eq!(content["productItems"].as_array().map(Vec::len), n, "{ctx}");
            assert_eq!(content.get("catalogId"), p.get("catalog_id"), "{ctx}");
        }
        "system" => assert_eq!(content["type"], p["type"], "{ctx}"),
        "unsupported" => {
            if m.get("errors").is_some() {
                assert_eq!(
                    content["errors"][0]["code"], m["errors"][0]["code"],
                    "{ctx}"
                );
            }
        }
        "revoke" => assert_eq!(
            content["originalMessageId"], p["original_message_id"],
            "{ctx}"
        ),
        "edit" => {
            assert_eq!(
                content["originalMessageId"], p["original_message_id"],
                "{ctx}"
            );
            assert_eq!(content["message"]["type"], p["message"]["type"], "{ctx}");
        }
        other => panic!("{stem}: unexpected kind {other}"),
    }
    if let Some(c) = m.get("context")
        && let Some(id) = c.get("id")
    {
        assert_eq!(&content["context"]["messageId"], id, "{ctx}");
    }
    if m.get("referral").is_some() {
        assert_eq!(
            content["referral"]["sourceUrl"], m["referral"]["source_url"],
            "{ctx}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_meta_webhook_sample_produces_its_records() {
    let s = TestServer::start().await;
    let (key, phone_id, waba_id) = connect(&s, "samples@example.com").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/meta/webhooks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 90, "{} samples", files.len());
    let mut checked: HashMap<&'static str, usize> = HashMap::new();
    let mut bsuid_only = 0;
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut sample: Value =
            serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        adapt(&mut sample, &stem);
        // Statuses need their outbound message first.
        let mut outbound_ids = HashMap::new();
        for e in sample["entry"].as_array().cloned().unwrap_or_default() {
            for c in e["changes"].as_array().cloned().unwrap_or_default() {
                for st in c["value"]["statuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let wamid = st["id"].as_str().unwrap_or_default().to_owned();
                    let id = outbound(&s, &phone_id, Some(&wamid), "processing").await;
                    outbound_ids.insert(wamid, id);
                }
            }
        }
        assert_eq!(post_json(&s, &sample).await, 200, "{stem}");
        wait_processed(&s).await;
        let state = rows(
            &s,
            "SELECT state, last_error FROM inbound_webhooks ORDER BY id DESC LIMIT 1",
        )
        .await;
        assert_eq!(state[0]["state"], "processed", "{stem}: {state:?}");

        for e in sample["entry"].as_array().cloned().unwrap_or_default() {
            let time = e["time"].as_i64();
            for c in e["changes"].as_array().cloned().unwrap_or_default() {
                let field = c["field"].as_str().unwrap_or_default().to_owned();
                let v = &c["value"];
                for m in v["messages"].as_array().cloned().unwrap_or_default() {
                    let wamid = m["id"].as_str().unwrap_or_default();
                    let r = rows(&s, &format!(
                        "SELECT m.direction, m.status, m.type, m.content, m.payload, m.conversation_id,
                                c.wa_id, c.bsuid, c.username, c.profile_name
                           FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id
                          WHERE m.wamid = {}", lit(wamid))).await;
                    assert_eq!(r.len(), 1, "{stem}: message {wamid}");
                    let r = &r[0];
                    assert_eq!(r["direction"], "inbound", "{stem}");
                    assert_eq!(
                        r["status"], "delivered",
                        "{stem}: inbound messages show delivered"
                    );
                    let kind = expected_kind(&m);
                    assert_eq!(r["type"], kind, "{stem}");
                    assert_eq!(r["payload"], m, "{stem}: Meta's raw object kept");
                    check_content(&stem, &m, kind, &r["content"]);
                    let system_change = m["system"]["type"].as_str();
                    let from = m["from"].as_str().filter(|f| !f.is_empty());
                    if let Some(from) = from {
                        let want = match system_change {
                            Some("user_changed_number") => {
                                m["system"]["wa_id"].as_str().unwrap_or(from)
                            }
                            _ => from,
                        };
                        assert_eq!(r["wa_id"], want, "{stem}");
                    }
                    if let Some(uid) = m["from_user_id"].as_str().filter(|u| !u.is_empty()) {
                        assert_eq!(r["bsuid"], uid, "{stem}");
                    }
                    if from.is_none() && m["from_user_id"].as_str().is_some_and(|u| !u.is_empty()) {
                        bsuid_only += 1;
                        assert!(r["wa_id"].is_null(), "{stem}: no phone");
                        let conv = r["conversation_id"].as_str().expect("conversation");
                        let (st, got) = s
                            .rest()
                            .get(
                                &format!("/v1/phones/{phone_id}/conversations/{conv}"),
                                Some(&key),
                            )
                            .await;
                        assert_eq!(st, 200, "{got}");
                        let d = &got["data"];
                        assert_eq!(d["contactIdentifierType"], "bsuid", "{stem}");
                        assert_eq!(d["contactIdentifier"], m["from_user_id"], "{stem}");
                        assert_eq!(d["contactReplyTo"], m["from_user_id"], "{stem}");
                        assert!(d["contactPhone"].is_null(), "{stem}: {d}");
                        assert_eq!(d["businessScopedUserId"], m["from_user_id"], "{stem}");
                        assert!(d["parentBusinessScopedUserId"].is_null(), "{stem}");
                        assert_eq!(
                            d["username"], v["contacts"][0]["profile"]["username"],
                            "{stem}"
                        );
                        assert_eq!(
                            d["contactName"], v["contacts"][0]["profile"]["name"],
                            "{stem}"
                        );
                    }
                    let ev = rows(&s, &format!(
                        "SELECT data FROM webhook_events WHERE event = 'message.received' AND data->>'wamid' = {}", lit(wamid))).await;
                    assert_eq!(ev.len(), 1, "{stem}: message.received");
                    for k in [
                        "contactId",
                        "contactIdentifier",
                        "contactIdentifierType",
                        "contactReplyTo",
                        "contactPhone",
                        "contactName",
                        "businessScopedUserId",
                        "parentBusinessScopedUserId",
                        "username",
                    ] {
                        assert!(ev[0]["data"].get(k).is_some(), "{stem}: event data has {k}");
                    }
                    *checked.entry("message").or_default() += 1;
                }
                for m in v["message_echoes"].as_array().cloned().unwrap_or_default() {
                    let wamid = m["id"].as_str().unwrap_or_default();
                    let r = rows(&s, &format!("SELECT direction, status, type, content FROM messages WHERE wamid = {}", lit(wamid))).await;
                    assert_eq!(r.len(), 1, "{stem}: echo {wamid}");
                    assert_eq!(r[0]["direction"], "outbound", "{stem}");
                    assert_eq!(r[0]["status"], "sent", "{stem}");
                    let kind = expected_kind(&m);
                    assert_eq!(r[0]["type"], kind, "{stem}");
                    check_content(&stem, &m, kind, &r[0]["content"]);
                    *checked.entry("echo").or_default() += 1;
                }
                for st in v["statuses"].as_array().cloned().unwrap_or_default() {
                    let wamid = st["id"].as_str().unwrap_or_default();
                    let id = &outbound_ids[wamid];
                    let row = message(&s, id).await;
                    let want = match st["status"].as_str().unwrap_or_default() {
                        "played" => "read",
                        other => other,
                    };
                    assert_eq!(row["status"], want, "{stem}");
                    let tl = timeline(&s, id).await;
                    assert_eq!(tl.len(), 1, "{stem}: {tl:?}");
                    assert_eq!(tl[0].0, want, "{stem}");
                    if st.get("pricing").is_some() {
                        assert_eq!(row["pricing"], st["pricing"], "{stem}: pricing kept");
                    }
                    if want == "failed" {
                        assert_eq!(row["error_code"], st["errors"][0]["code"], "{stem}");
                        let em = row["error_message"].as_str().unwrap_or_default();
                        let said = st["errors"][0]["message"]
                            .as_str()
                            .or(st["errors"][0]["title"].as_str())
                            .unwrap_or_default();
                        assert!(!em.is_empty() && em.contains(said), "{stem}: {em}");
                    }
                    *checked.entry("status").or_default() += 1;
                }
                if v["errors"].is_array() || v["user_preferences"].is_array() {
                    let r = rows(&s, &format!(
                        "SELECT field, event, phone_id FROM waba_updates WHERE field = {} AND phone_id = {}::uuid",
                        lit(&field), lit(&phone_id))).await;
                    assert!(!r.is_empty(), "{stem}: notice kept");
                    *checked.entry("notice").or_default() += 1;
                }
                if v.get("metadata").is_some() {
                    continue;
                }
                // WABA-level fields: kept once as a WABA update...
                let at = time.map_or(String::new(), |t| {
                    format!(" AND occurred_at = to_timestamp({t})")
                });
                let r = rows(&s, &format!(
                    "SELECT event, value FROM waba_updates WHERE waba_id = {}::uuid AND field = {}{at}",
                    lit(&waba_id), lit(&field))).await;
                assert!(
                    r.iter().any(|u| u["value"] == *v),
                    "{stem}: WABA update kept verbatim: {r:?}"
                );
                // ...and applied.
                let name = v["message_template_name"].as_str();
                let lang = v["message_template_language"].as_str();
                match field.as_str() {
                    "message_template_status_update"
                    | "template_category_update"
                    | "message_template_quality_update"
                    | "message_template_components_update" => {
                        let t = rows(&s, &format!(
                            "SELECT meta_template_id, status, category, quality_score FROM templates WHERE name = {} AND language = {}",
                            lit(name.unwrap_or_default()), lit(lang.unwrap_or_default()))).await;
                        assert_eq!(t.len(), 1, "{stem}: template record");
                        let t = &t[0];
                        assert_eq!(
                            t["meta_template_id"],
                            v["message_template_id"].to_string(),
                            "{stem}"
                        );
                        match field.as_str() {
                            "message_template_status_update" => {
                                assert_eq!(t["status"], v["event"], "{stem}");
                                assert_eq!(t["category"], v["message_template_category"], "{stem}");
                                let ev = events(&s, "template.status_updated").await;
                                assert!(
                                    ev.iter().any(|e| e["name"] == v["message_template_name"]
                                        && e["status"] == v["event"]),
                                    "{stem}: {ev:?}"
                                );
                            }
                            "template_category_update" => {
                                assert_eq!(t["category"], v["new_category"], "{stem}")
                            }
                            "message_template_quality_update" => {
                                assert_eq!(t["quality_score"], v["new_quality_score"], "{stem}")
                            }
                            _ => {}
                        }
                        *checked.entry("template").or_default() += 1;
                    }
                    "phone_number_quality_update" => {
                        let p = rows(&s, &format!("SELECT messaging_limit, throughput_level, throughput_mps FROM phone_numbers WHERE id = {}::uuid", lit(&phone_id))).await;
                        assert_eq!(p[0]["messaging_limit"], v["current_limit"], "{stem}");
                        if v["event"] == "THROUGHPUT_UPGRADE" {
                            assert_eq!(p[0]["throughput_level"], "HIGH", "{stem}");
                            assert_eq!(p[0]["throughput_mps"], 1000, "{stem}");
                        }
                        let ev = events(&s, "phone_number.health_updated").await;
                        assert!(
                            ev.iter().any(|e| e["messagingLimit"] == v["current_limit"]),
                            "{stem}"
                        );
                        *checked.entry("phone").or_default() += 1;
                    }
                    "account_update" => {
                        assert!(r.iter().any(|u| u["event"] == v["event"]), "{stem}");
                        let w = rows(
                            &s,
                            &format!(
                                "SELECT restrictions FROM wabas WHERE id = {}::uuid",
                                lit(&waba_id)
                            ),
                        )
                        .await;
                        let p = rows(
                            &s,
                            &format!(
                                "SELECT app_subscribed FROM phone_numbers WHERE id = {}::uuid",
                                lit(&phone_id)
                            ),
                        )
                        .await;
                        match v["event"].as_str().unwrap_or_default() {
                            "ACCOUNT_RESTRICTION" => {
                                let types: Vec<&str> = w[0]["restrictions"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|r| r["restriction_type"].as_str())
                                    .collect();
                                assert_eq!(
                                    types,
                                    [
                                        "RESTRICTED_BIZ_INITIATED_MESSAGING",
                                        "RESTRICTED_ADD_PHONE_NUMBER_ACTION"
                                    ],
                                    "{stem}"
                                );
                            }
                            "PARTNER_APP_UNINSTALLED" | "PARTNER_REMOVED" => {
                                assert_eq!(p[0]["app_subscribed"], false, "{stem}")
                            }
                            "PARTNER_APP_INSTALLED" | "ACCOUNT_RECONNECTED" => {
                                assert_eq!(p[0]["app_subscribed"], true, "{stem}")
                            }
                            _ => {}
                        }
                        *checked.entry("account").or_default() += 1;
                    }
                    _ => {
                        *checked.entry("other").or_default() += 1;
                    }
                }
            }
        }
    }
    // The health rules read the restrictions (checked last: reading the
    // health queues a resync, which would race the checks above).
    let (_, h) = s
        .rest()
        .get(&format!("/v1/phones/{phone_id}/health"), Some(&key))
        .await;
    let issues: Vec<&str> = h["data"]["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["message"].as_str())
        .collect();
    assert!(
        issues
            .iter()
            .any(|m| m.contains("RESTRICTED_BIZ_INITIATED_MESSAGING")),
        "{h}"
    );
    assert_eq!(h["data"]["capabilities"]["canSendTemplates"], false, "{h}");
    // Account updates are visible to the customer too.
    let (st, updates) = s
        .rest()
        .get(
            &format!("/v1/wabas/{waba_id}/updates?field=account_update&limit=100"),
            Some(&key),
        )
        .await;
    assert_eq!(st, 200, "{updates}");
    let n = updates["meta"]["pagination"]["total"]
        .as_i64()
        .unwrap_or_default();
    assert_eq!(n as usize, checked["account"], "{updates}");
    assert!(
        updates["data"][0]["value"]["event"].is_string(),
        "{updates}"
    );
    // Meta's objects come back over REST as they were kept, numbers
    // included: a template id is an integer, not 1.04e15.
    let (st, templates) = s
        .rest()
        .get(
            &format!("/v1/wabas/{waba_id}/updates?field=message_template_status_update&limit=100"),
            Some(&key),
        )
        .await;
    assert_eq!(st, 200, "{templates}");
    let listed = templates["data"].as_array().cloned().unwrap_or_default();
    assert!(!listed.is_empty(), "{templates}");
    for u in &listed {
        let kept = rows(
            &s,
            &format!(
                "SELECT value FROM waba_updates WHERE id = {}::uuid",
                lit(u["id"].as_str().unwrap_or_default())
            ),
        )
        .await;
        assert_eq!(kept.len(), 1, "{u}");
        assert_eq!(u["value"], kept[0]["value"], "verbatim over REST");
        assert!(u["value"]["message_template_id"].is_u64(), "{u}");
    }
    assert!(bsuid_only >= 1, "at least one BSUID-only sample");
    for k in [
        "message", "echo", "status", "notice", "template", "phone", "account", "other",
    ] {
        assert!(checked.get(k).is_some_and(|n| *n > 0), "{k}: {checked:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_events_match_record_event() {
    let s = TestServer::start().await;
    let (key, _, waba_id) = connect(&s, "events@example.com").await;
    let mut endpoints = Vec::new();
    for body in [
        json!({"url": "https://93.184.216.34/all", "events": ["*"]}),
        json!({"url": "https://93.184.216.34/statuses", "events": ["message.status_updated"]}),
        json!({"url": "https://93.184.216.34/waba", "events": ["message.received"], "wabaId": waba_id}),
        json!({"url": "https://93.184.216.34/off", "events": ["*"], "isActive": false}),
    ] {
        let (st, created) = s
            .rest()
            .post("/v1/outgoing-webhooks", Some(&key), body)
            .await;
        assert_eq!(st, 201, "{created}");
        endpoints.push(created["data"]["id"].as_str().expect("id").to_owned());
    }
    let p = text_payload(PHONE, "16505551234", "wamid.EV", "hi", 1_750_000_000);
    assert_eq!(post_json(&s, &p).await, 200);
    wait_processed(&s).await;
    let batched = rows(&s, "SELECT id, org_id, waba_id, event, data FROM webhook_events WHERE event = 'message.received'").await;
    assert_eq!(batched.len(), 1);
    let b = &batched[0];

    // The same event through record_event.
    let mut conn = db(&s).await;
    let org = uuid::Uuid::parse_str(b["org_id"].as_str().expect("org")).expect("uuid");
    let waba = uuid::Uuid::parse_str(&waba_id).expect("uuid");
    let single = wagate::store::events::record_event(
        &mut conn,
        wagate::store::events::NewEvent {
            org_id: org,
            waba_id: Some(waba),
            event: wagate::store::events::MESSAGE_RECEIVED,
            data: b["data"].clone(),
        },
    )
    .await
    .expect("record_event");
    let r = rows(
        &s,
        &format!(
            "SELECT org_id, waba_id, event, data FROM webhook_events WHERE id = {}::uuid",
            lit(&single.to_string())
        ),
    )
    .await;
    let mut want = b.clone();
    want.as_object_mut().expect("object").remove("id");
    assert_eq!(r, vec![want], "the same event row");
    let deliveries = |event_id: String| {
        let s = &s;
        async move {
            rows(s, &format!(
                "SELECT org_id, endpoint_id, event, trigger FROM webhook_deliveries WHERE event_id = {}::uuid ORDER BY endpoint_id",
                lit(&event_id))).await
        }
    };
    let from_batch = deliveries(b["id"].as_str().expect("id").to_owned()).await;
    let from_single = deliveries(single.to_string()).await;
    assert_eq!(from_batch, from_single, "the same deliveries");
    let mut subscribed: Vec<String> = from_batch
        .iter()
        .map(|d| d["endpoint_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    subscribed.sort();
    let mut expected = vec![endpoints[0].clone(), endpoints[2].clone()];
    expected.sort();
    assert_eq!(
        subscribed, expected,
        "'*' and the WABA's message.received endpoint, not the inactive or unsubscribed ones"
    );
    s.stop().await;
}
