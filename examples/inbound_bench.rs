//! Inbound webhook benchmark, in two phases.
//!
//! 1. Flat out: signed Meta webhook POSTs accepted (stored durably, then
//!    answered 200) per second over many connections as fast as they go,
//!    their latency, how fast processing turns them into message records
//!    meanwhile, and how long the backlog takes to drain afterwards.
//! 2. Sustained: the same connections post at a paced total `--rate` for
//!    `--sustain-secs` (open loop: each connection has its own schedule and
//!    never waits past a due time), while a sampler reads the backlog and the
//!    deliveries processed every second. It answers "does processing keep
//!    up at the target rate?": yes when the backlog at the end is at most one
//!    second of traffic and processing ran at 95% or more of the accepted
//!    rate. `--rate 0` skips it.
//!
//! ```text
//! cargo run --release --example inbound_bench
//! cargo run --release --example inbound_bench -- --secs 30 --connections 64
//! cargo run --release --example inbound_bench -- --rate 8000 --sustain-secs 60
//! ```
//!
//! It starts its own PostgreSQL (the embedded cluster from the machine's
//! binaries, durable like `wagate serve`: fsync and synchronous commit on;
//! or `DATABASE_URL`) and wagate in process (`wagate::server::start`, the
//! code `wagate serve` runs, in sandbox mode), registers an organization and
//! connects a phone, then posts realistic `messages` webhooks (text, some
//! images, some BSUID-only senders, each with its own wamid) signed with the
//! sandbox app secret, from `--connections` keep-alive connections. Processing
//! runs at the same time, as in production.
//!
//! Progress is read the way an operator would, from wagate's `/metrics`
//! (`wagate_inbound_deliveries_total`), against the count of 200s the
//! posters got: counting rows in PostgreSQL every second cost the server
//! under test a tenth of a core.
mod common;

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wagate::server;

const WABA: &str = "102290129340398";
const SECRET: &[u8] = wagate::server::SANDBOX_APP_SECRET.as_bytes();
/// Exact, but a scan: only once a phase has drained.
const PENDING: &str = "SELECT count(*) AS n FROM inbound_webhooks WHERE state = 'pending'";
const INBOUND: &str = "SELECT count(*) AS n FROM messages WHERE direction = 'inbound'";
/// Task numbers of the sustained phase start here, so its wamids never
/// collide with the flat-out phase's (tasks 0.., warm-up 9_999).
const SUSTAINED_TASKS: usize = 10_000;

#[derive(Debug, Parser)]
#[command(
    about = "Inbound webhook (Meta -> wagate) benchmark: flat-out throughput, then whether processing keeps up at a paced rate"
)]
struct Args {
    /// How long to post flat out (phase 1).
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Concurrent keep-alive connections (both phases).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Distinct customers writing in.
    #[arg(long, default_value_t = 5_000)]
    senders: usize,
    /// Database connections of the server.
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
    /// How long to wait for processing to drain after each phase's posting stops.
    #[arg(long, default_value_t = 120)]
    drain_secs: u64,
    /// Target posts per second, in total across all connections, of the
    /// sustained phase (phase 2); 0 skips it.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// How long to post at `--rate` (phase 2).
    #[arg(long, default_value_t = 20)]
    sustain_secs: u64,
}

/// Deliveries answered 200, warm-up included.
static ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// `ACCEPTED` now (spelled out: diesel's `RunQueryDsl::load` is in scope too).
fn accepted_so_far() -> u64 {
    AtomicU64::load(&ACCEPTED, Ordering::Relaxed)
}

/// Deliveries answered 200 beyond the `processed` ones.
fn pending_after(processed: u64) -> u64 {
    accepted_so_far().saturating_sub(processed)
}

/// Reads processing progress from the server's `/metrics`.
#[derive(Clone)]
struct Progress {
    http: reqwest::Client,
    metrics_url: String,
}

impl Progress {
    /// Deliveries processed so far, whatever their outcome.
    async fn processed(&self) -> anyhow::Result<u64> {
        let text = self
            .http
            .get(&self.metrics_url)
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("wagate_inbound_deliveries_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum())
    }

    /// Deliveries answered 200 and not yet processed.
    async fn pending(&self) -> anyhow::Result<u64> {
        Ok(pending_after(self.processed().await?))
    }
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

/// One task's signed webhooks: made up front (that is Meta's work, not
/// wagate's), and made on the fly should the task run out.
struct Bodies {
    task: usize,
    prepared: std::vec::IntoIter<(String, String)>,
    next: u64,
    phone: String,
    senders: usize,
    now: i64,
}

impl Bodies {
    fn next(&mut self) -> (String, String) {
        self.prepared.next().unwrap_or_else(|| {
            self.next += 1;
            signed(&self.phone, self.task, self.next, self.senders, self.now)
        })
    }
}

/// A webhook body and its `x-hub-signature-256`.
fn signed(phone: &str, task: usize, n: u64, senders: usize, now: i64) -> (String, String) {
    let body = payload(phone, task, n, senders, now);
    let sig = wagate_meta::signature::sign(SECRET, body.as_bytes());
    (body, sig)
}

/// `per_task` signed webhooks for each of `tasks`.
fn prepare(
    phone: &str,
    tasks: Range<usize>,
    per_task: u64,
    senders: usize,
    now: i64,
) -> Vec<Bodies> {
    tasks
        .map(|task| Bodies {
            task,
            prepared: (0..per_task)
                .map(|n| signed(phone, task, n, senders, now))
                .collect::<Vec<_>>()
                .into_iter(),
            next: per_task,
            phone: phone.to_owned(),
            senders,
            now,
        })
        .collect()
}

/// A client holding one keep-alive connection, for one task.
fn connection() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
}

/// Posts one signed webhook; its latency when accepted, None when refused or failed.
async fn post(
    client: &reqwest::Client,
    url: &str,
    (body, sig): (String, String),
) -> Option<Duration> {
    let t = Instant::now();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(body)
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => {
            let _ = r.bytes().await;
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
            Some(t.elapsed())
        }
        _ => None,
    }
}

/// What the posting tasks of a phase saw: accepted latencies and failures.
type Posted = anyhow::Result<(Vec<Duration>, u64)>;

/// All tasks' accepted latencies, sorted, and their failure count.
async fn join_posters(tasks: Vec<JoinHandle<Posted>>) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await??;
        latencies.extend(l);
        failed += f;
    }
    latencies.sort();
    Ok((latencies, failed))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// "p50 3.1 ms   p99 12.0 ms" of sorted latencies.
fn p50_p99(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms   p99 {:.1} ms",
        percentile(sorted, 0.50).as_secs_f64() * 1e3,
        percentile(sorted, 0.99).as_secs_f64() * 1e3,
    )
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
    let url = format!("{base}/webhooks/whatsapp");
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

    let progress = Progress {
        http: http.clone(),
        metrics_url: format!("{base}/metrics"),
    };
    // Warm-up: connections, pool, caches.
    for n in 0..200 {
        post(&http, &url, signed(&phone, 9_999, n, args.senders, now)).await;
    }
    wait_drained(&progress, Duration::from_secs(60)).await?;

    flat_out(args, &mut conn, &progress, &url, &phone, now).await?;
    if args.rate > 0 {
        sustained(args, &mut conn, &progress, &url, &phone, now).await?;
    }

    let problems = count(
        &mut conn,
        "SELECT count(*) AS n FROM inbound_webhooks WHERE state NOT IN ('processed', 'pending')",
    )
    .await?;
    println!("deliveries not processed      {problems}");
    running.shutdown().await?;
    Ok(())
}

/// Phase 1: every connection posts as fast as it can for `--secs`.
async fn flat_out(
    args: &Args,
    conn: &mut AsyncPgConnection,
    progress: &Progress,
    url: &str,
    phone: &str,
    now: i64,
) -> anyhow::Result<()> {
    let per_task = (args.secs * 200).max(100);
    let prepared = prepare(phone, 0..args.connections, per_task, args.senders, now);
    let before = count(conn, INBOUND).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.secs);
    let mut tasks = Vec::new();
    for mut bodies in prepared {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let client = connection()?;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            while Instant::now() < deadline {
                match post(&client, &url, bodies.next()).await {
                    Some(latency) => latencies.push(latency),
                    None => failed += 1,
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let (latencies, failed) = join_posters(tasks).await?;
    let elapsed = start.elapsed();
    let backlog = progress.pending().await?;
    let after = count(conn, INBOUND).await?;
    let accepted = latencies.len();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "accepted (stored, then 200)   {accepted} in {secs:.1} s = {:.0}/s",
        accepted as f64 / secs
    );
    println!("refused or failed             {failed}");
    println!(
        "POST latency                  {}   max {:.1} ms",
        p50_p99(&latencies),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    println!(
        "processed into messages       {} in {secs:.1} s = {:.0}/s (while posting)",
        after - before,
        (after - before) as f64 / secs
    );
    println!("backlog when posting stopped  {backlog} deliveries pending");
    drain(args, conn, progress, before, accepted).await
}

/// Phase 2: the connections post at `--rate` in total for `--sustain-secs`,
/// open loop, while a sampler watches the backlog.
async fn sustained(
    args: &Args,
    conn: &mut AsyncPgConnection,
    progress: &Progress,
    url: &str,
    phone: &str,
    now: i64,
) -> anyhow::Result<()> {
    let connections = args.connections as u64;
    let rate = args.rate;
    // Exactly what the schedule below sends; the fallback in Bodies is never needed.
    let per_task = (args.sustain_secs * rate).div_ceil(connections);
    let tasks_range = SUSTAINED_TASKS..SUSTAINED_TASKS + args.connections;
    let prepared = prepare(phone, tasks_range, per_task, args.senders, now);
    let before = count(conn, INBOUND).await?;

    let start = Instant::now();
    let end = start + Duration::from_secs(args.sustain_secs);
    let (stop_sampler, stop) = oneshot::channel();
    let sampler = tokio::spawn(sample_every_second(progress.clone(), start, stop));
    let mut tasks = Vec::new();
    for (slot, mut bodies) in prepared.into_iter().enumerate() {
        let url = url.to_owned();
        let slot = slot as u64;
        tasks.push(tokio::spawn(async move {
            let client = connection()?;
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            for k in 0u64.. {
                // Interleaved schedules add up to `rate` evenly spaced posts per
                // second. Open loop: a task behind schedule posts at once
                // (sleep_until a past instant returns immediately), so the
                // server is offered the load whatever its latency.
                let due =
                    start + Duration::from_secs_f64((k * connections + slot) as f64 / rate as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                match post(&client, &url, bodies.next()).await {
                    Some(latency) => latencies.push(latency),
                    None => failed += 1,
                }
            }
            anyhow::Ok((latencies, failed))
        }));
    }
    let posted = join_posters(tasks).await;
    // Stop the sampler even if posting failed; a dropped receiver is fine.
    let _ = stop_sampler.send(());
    let samples = sampler.await??;
    let (latencies, failed) = posted?;
    let elapsed = start.elapsed();
    let backlog_end = progress.pending().await?;
    let after = count(conn, INBOUND).await?;

    let accepted = latencies.len();
    let processed = after - before;
    let secs = elapsed.as_secs_f64();
    let accepted_rate = accepted as f64 / secs;
    let processed_rate = processed as f64 / secs;
    let backlog_max = samples
        .iter()
        .map(|s| s.pending)
        .max()
        .unwrap_or(0)
        .max(backlog_end);
    // The slowest one-second window shows a stall the average would hide.
    let slowest = samples
        .windows(2)
        .map(|w| (w[1].processed - w[0].processed) as f64 / (w[1].at - w[0].at).as_secs_f64())
        .reduce(f64::min);

    let mut reasons = Vec::new();
    if accepted_rate < 0.95 * rate as f64 {
        // Keeping up with less than the target proves nothing about it.
        reasons.push(format!(
            "accepted {accepted_rate:.0}/s is under 95% of the target {rate}/s"
        ));
    }
    if backlog_end > rate {
        reasons.push(format!(
            "backlog at end {backlog_end} is more than one second of traffic, {rate}"
        ));
    }
    if processed_rate < 0.95 * accepted_rate {
        reasons.push(format!(
            "processed {processed_rate:.0}/s is under 95% of accepted {accepted_rate:.0}/s"
        ));
    }

    println!();
    println!(
        "sustained at {rate}/s for {} s (paced, {} connections)",
        args.sustain_secs, args.connections
    );
    println!(
        "accepted                      {accepted} in {secs:.1} s = {accepted_rate:.0}/s   {}",
        p50_p99(&latencies)
    );
    if failed > 0 {
        println!("refused or failed             {failed}");
    }
    println!(
        "processed into messages       {processed} in {secs:.1} s = {processed_rate:.0}/s (while posting){}",
        slowest.map_or(String::new(), |s| format!(", slowest second {s:.0}/s"))
    );
    println!(
        "backlog                       max {backlog_max}, at end {backlog_end} ({:.1} s of traffic)",
        backlog_end as f64 / rate as f64
    );
    if reasons.is_empty() {
        println!("keeps up                      yes");
    } else {
        println!("keeps up                      no ({})", reasons.join("; "));
    }
    drain(args, conn, progress, before, accepted).await
}

/// One reading of the sampler.
struct Sample {
    at: Duration,
    pending: u64,
    processed: u64,
}

/// The backlog and the deliveries processed every second, from `start`
/// until told to stop.
async fn sample_every_second(
    progress: Progress,
    start: Instant,
    mut stop: oneshot::Receiver<()>,
) -> anyhow::Result<Vec<Sample>> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // A slow reading delays the next rather than bunching readings up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(samples),
            _ = tick.tick() => {
                let processed = progress.processed().await?;
                let pending = pending_after(processed);
                samples.push(Sample { at: start.elapsed(), pending, processed });
            }
        }
    }
}

/// Waits for processing to catch up after a phase, and says how long it took
/// and how many messages the phase's accepted deliveries became.
async fn drain(
    args: &Args,
    conn: &mut AsyncPgConnection,
    progress: &Progress,
    before: i64,
    accepted: usize,
) -> anyhow::Result<()> {
    let drain_start = Instant::now();
    wait_drained(progress, Duration::from_secs(args.drain_secs)).await?;
    let total = count(conn, INBOUND).await?;
    let left = count(conn, PENDING).await?;
    println!(
        "drained in                    {:.1} s; backlog now {left}; {} messages from {} accepted deliveries",
        drain_start.elapsed().as_secs_f64(),
        total - before,
        accepted,
    );
    Ok(())
}

async fn wait_drained(progress: &Progress, max: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + max;
    while Instant::now() < until {
        if progress.pending().await? == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
