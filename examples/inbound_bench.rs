//! Inbound webhook benchmark: signed Meta webhook POSTs accepted (stored
//! durably, then answered 200) per second over many connections, their
//! latency, and how fast processing turns them into message records.
//!
//! ```text
//! cargo run --release --example inbound_bench
//! cargo run --release --example inbound_bench -- --secs 30 --connections 64
//! ```
//!
//! It starts its own PostgreSQL (the embedded cluster from the machine's
//! binaries, durable like `wagate serve`: fsync and synchronous commit on;
//! or `DATABASE_URL`) and wagate in process (`wagate::server::start`, the
//! code `wagate serve` runs, in sandbox mode), registers an organization and
//! connects a phone, then posts realistic `messages` webhooks (text, some
//! images, some BSUID-only senders, each with its own wamid) signed with the
//! sandbox app secret, from `--connections` keep-alive connections, for
//! `--secs` seconds. Processing runs at the same time, as in production.
mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use wagate::server;

const WABA: &str = "102290129340398";

#[derive(Debug, Parser)]
#[command(about = "Inbound webhook (Meta -> wagate) throughput benchmark")]
struct Args {
    /// How long to post.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Distinct customers writing in.
    #[arg(long, default_value_t = 5_000)]
    senders: usize,
    /// Database connections of the server.
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
    /// How long to wait for processing to drain after posting stops.
    #[arg(long, default_value_t = 120)]
    drain_secs: u64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<Count>(conn).await?.n)
}

/// A webhook as Meta posts it for one inbound message.
fn payload(phone_number_id: &str, task: usize, n: u64, senders: usize, now: i64) -> String {
    let seq = task as u64 * 1_000_000_000 + n;
    let sender = (seq.wrapping_mul(2_654_435_761) % senders as u64) as usize;
    let phone = format!("1555{sender:07}");
    let wamid = format!("wamid.HBgL{phone}FQIAEhgUM0{task:04}{n:012}A==");
    let (contact, from) = if sender % 10 == 9 {
        // A username user whose phone Meta withholds.
        (
            json!({"profile": {"name": format!("Customer {sender}"), "username": format!("@customer{sender}")},
                   "wa_id": "", "user_id": format!("US.{:020}", sender)}),
            json!({"from": "", "from_user_id": format!("US.{:020}", sender)}),
        )
    } else {
        (
            json!({"profile": {"name": format!("Customer {sender}")}, "wa_id": phone}),
            json!({"from": phone}),
        )
    };
    let mut message = json!({"id": wamid, "timestamp": now.to_string()});
    if n % 8 == 7 {
        message["type"] = json!("image");
        message["image"] = json!({"caption": "Is this one in stock?", "mime_type": "image/jpeg",
            "sha256": "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
            "id": format!("{seq}"),
            "url": format!("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={seq}&ext=1&hash=AbCdEf")});
    } else {
        message["type"] = json!("text");
        message["text"] =
            json!({"body": format!("Hi! I'd like to know whether order #{seq} ships this week.")});
    }
    if let (Value::Object(m), Value::Object(f)) = (&mut message, from) {
        m.extend(f);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
                  "contacts": [contact], "messages": [message]}}]}]})
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let bench = common::open_database("wagate-inbound-bench", args.pool_size).await?;
    let result = run(&args, &bench.db.url).await;
    bench.db.close().await;
    result
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    let running = server::start(common::server_options(
        database_url,
        args.pool_size,
        2 * 1024 * 1024,
    ))
    .await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    // A fresh organization and phone number id per run, so a reused
    // DATABASE_URL works too.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let phone = format!(
        "1065{:011}",
        u64::from_str_radix(&run[..12], 16).unwrap_or(0) % 100_000_000_000
    );
    let reg: Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": format!("bench-{run}@example.com"), "password": "correct horse battery", "name": "Bench"}))
        .send()
        .await?
        .json()
        .await?;
    let key = reg["data"]["apiKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let creds: Value = http
        .put(format!("{base}/auth/me/credentials"))
        .bearer_auth(&key)
        .json(&json!({"accessToken": "EAAGbench0000000000000000000000", "phoneNumberId": phone, "wabaId": WABA}))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(creds["data"]["phoneId"].is_string(), "credentials: {creds}");

    let mut conn = AsyncPgConnection::establish(database_url).await?;
    let secret = wagate::server::SANDBOX_APP_SECRET.as_bytes();
    let now = chrono::Utc::now().timestamp();
    println!(
        "inbound_bench: {} connections, {} s, {} senders, pool {}, durable PostgreSQL{}",
        args.connections,
        args.secs,
        args.senders,
        args.pool_size,
        if std::env::var("DATABASE_URL").is_ok() {
            " (DATABASE_URL)"
        } else {
            " (embedded)"
        },
    );

    // Warm-up: connections, pool, caches.
    for n in 0..200 {
        let body = payload(&phone, 9_999, n, args.senders, now);
        let sig = wagate_meta::signature::sign(secret, body.as_bytes());
        http.post(format!("{base}/webhooks/whatsapp"))
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await?;
    }
    wait_drained(&mut conn, Duration::from_secs(60)).await?;

    // Bodies and signatures are made up front (that is Meta's work, not
    // wagate's); a task that runs out makes more on the fly.
    let per_task = (args.secs as usize * 200).max(100);
    let prepared: Vec<Vec<(String, String)>> = (0..args.connections)
        .map(|task| {
            (0..per_task as u64)
                .map(|n| {
                    let body = payload(&phone, task, n, args.senders, now);
                    let sig = wagate_meta::signature::sign(secret, body.as_bytes());
                    (body, sig)
                })
                .collect()
        })
        .collect();
    let before = count(
        &mut conn,
        "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'",
    )
    .await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.secs);
    let mut tasks = Vec::new();
    for (task, bodies) in prepared.into_iter().enumerate() {
        let url = format!("{base}/webhooks/whatsapp");
        let senders = args.senders;
        let phone = phone.clone();
        tasks.push(tokio::spawn(async move {
            // One connection per task, kept alive.
            let client = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            let mut bodies = bodies.into_iter();
            let mut n = per_task as u64;
            while Instant::now() < deadline {
                let (body, sig) = bodies.next().unwrap_or_else(|| {
                    n += 1;
                    let body = payload(&phone, task, n, senders, now);
                    let sig = wagate_meta::signature::sign(secret, body.as_bytes());
                    (body, sig)
                });
                let t = Instant::now();
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await??;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = start.elapsed();
    let after = count(
        &mut conn,
        "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'",
    )
    .await?;
    let backlog = count(
        &mut conn,
        "SELECT count(*) AS n FROM inbound_webhooks WHERE state = 'pending'",
    )
    .await?;
    latencies.sort();
    let accepted = latencies.len();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "accepted (stored, then 200)   {accepted} in {secs:.1} s = {:.0}/s",
        accepted as f64 / secs
    );
    println!("refused or failed             {failed}");
    println!(
        "POST latency                  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    println!(
        "processed into messages       {} in {secs:.1} s = {:.0}/s (while posting)",
        after - before,
        (after - before) as f64 / secs
    );
    println!("backlog when posting stopped  {backlog} deliveries pending");
    let drain_start = Instant::now();
    wait_drained(&mut conn, Duration::from_secs(args.drain_secs)).await?;
    let total = count(
        &mut conn,
        "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'",
    )
    .await?;
    let left = count(
        &mut conn,
        "SELECT count(*) AS n FROM inbound_webhooks WHERE state = 'pending'",
    )
    .await?;
    println!(
        "drained in                    {:.1} s; backlog now {left}; {} messages from {} accepted deliveries",
        drain_start.elapsed().as_secs_f64(),
        total - before,
        accepted,
    );
    let problems = count(
        &mut conn,
        "SELECT count(*) AS n FROM inbound_webhooks WHERE state NOT IN ('processed', 'pending')",
    )
    .await?;
    println!("deliveries not processed      {problems}");
    running.shutdown().await?;
    Ok(())
}

async fn wait_drained(conn: &mut AsyncPgConnection, max: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + max;
    while Instant::now() < until {
        if count(
            conn,
            "SELECT count(*) AS n FROM inbound_webhooks WHERE state = 'pending'",
        )
        .await?
            == 0
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}
