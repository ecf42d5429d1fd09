//! Dispatch against the simulator: one phone at the 1,000 msg/s tier, then at
//! the 80 msg/s tier. Prints the achieved rate (from the simulator's own log
//! of accepted sends), how many 130429 ("throughput reached") answers Meta's
//! stand-in gave, and how far the mean rate is from the tier.
//!
//! ```text
//! cargo run --release --example dispatch_bench
//! cargo run --release --example dispatch_bench -- --high-secs 60 --low-secs 60
//! ```
//!
//! Messages are stored first (as scheduled), then released at once, so the
//! run measures the dispatcher alone: claiming per phone under the pacing
//! state in PostgreSQL, sending at each slot, recording outcomes.
mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use wagate::server;

const META_PHONE: &str = "106540352242922";

#[derive(Debug, Parser)]
#[command(about = "Dispatch rate against the Cloud API simulator at the 1,000 and 80 msg/s tiers")]
struct Args {
    /// Seconds of traffic at the 1,000 msg/s tier.
    #[arg(long, default_value_t = 30)]
    high_secs: u64,
    /// Seconds of traffic at the 80 msg/s tier: as long as the other tier,
    /// so one stall of the machine weighs as much in both means.
    #[arg(long, default_value_t = 30)]
    low_secs: u64,
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::init_logging();
    let bench = common::open_database("wgdisp", args.pool_size).await?;
    let db = &bench.db;
    let running = server::start(common::server_options(
        &db.url,
        args.pool_size,
        8 * 1024 * 1024,
    ))
    .await?;
    let sim = running
        .app
        .simulator
        .clone()
        .ok_or_else(|| anyhow::anyhow!("sandbox simulator"))?;
    // The run measures sending: no status webhooks, and many recipients (no pair limit).
    sim.set_status_delays(wagate_simulator::StatusDelays::none());
    sim.set_pair_rate_limit(false);
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let reg: serde_json::Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "dispatch@example.com", "password": "correct horse battery", "name": "Dispatch"}))
        .send()
        .await?
        .json()
        .await?;
    let key = reg["data"]["apiKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let org: uuid::Uuid = reg["data"]["organization"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    wagate::domain::accounts::set_plan(&running.app.store, org, wagate::domain::plans::Plan::Mega)
        .await?;
    http.put(format!("{base}/auth/me/credentials"))
        .bearer_auth(&key)
        .json(&json!({"accessToken": "EAAGbenchmarktoken0001", "phoneNumberId": META_PHONE, "wabaId": "102290129340398"}))
        .send()
        .await?
        .error_for_status()?;
    let phones: serde_json::Value = http
        .get(format!("{base}/v1/phones"))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    let phone_id = phones["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Let the resync queued by the credentials settle before setting the tier.
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "wagate dispatch benchmark: one phone, {} CPUs, embedded PostgreSQL (durable), in-process simulator",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for (mps, secs) in [(1_000u32, args.high_secs), (80, args.low_secs)] {
        let n = mps as usize * secs as usize;
        sim.set_throughput(META_PHONE, mps);
        set_tier(&db.url, &phone_id, mps).await?;
        enqueue(&http, &base, &key, &phone_id, n, mps).await?;
        sim.clear_requests();
        release(&db.url).await?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(secs * 4 + 60);
        loop {
            let sent = sim.accepted_send_count();
            if sent >= n || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = sim.requests();
        let accepted: Vec<_> = log
            .iter()
            .filter(|r| r.kind == "messages.send" && r.wamid.is_some())
            .collect();
        let throttled = log.iter().filter(|r| r.error_code == Some(130429)).count();
        let mut times: Vec<_> = accepted.iter().map(|r| r.at).collect();
        times.sort();
        let (Some(&first), Some(&last)) = (<[_]>::first(&times), <[_]>::last(&times)) else {
            println!("{mps:>5} msg/s tier: nothing was sent");
            continue;
        };
        // A stall anywhere (claim, database, scheduler) shows as one long gap.
        let longest = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
            .num_milliseconds();
        let span = (last - first).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6;
        // n messages span n-1 intervals.
        let rate = (accepted.len().saturating_sub(1)) as f64 / span;
        println!(
            "{mps:>5} msg/s tier: {} of {n} sent in {span:.2} s = {rate:.1} msg/s ({:+.2}% from the tier), 130429 answers: {throttled}, longest pause {longest} ms",
            accepted.len(),
            (rate / f64::from(mps) - 1.0) * 100.0
        );
    }
    running.shutdown().await?;
    bench.db.close().await;
    Ok(())
}

async fn set_tier(url: &str, phone_id: &str, mps: u32) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query(format!(
        "UPDATE phone_numbers SET throughput_mps = {mps} WHERE id = '{phone_id}'"
    ))
    .execute(&mut conn)
    .await?;
    diesel::sql_query(format!(
        "UPDATE phone_pacing SET tat = now() WHERE phone_id = '{phone_id}'"
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Stores `n` messages through the API, scheduled an hour ahead.
async fn enqueue(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    phone_id: &str,
    n: usize,
    tier: u32,
) -> anyhow::Result<()> {
    let send_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut i = 0;
    while i < n {
        let chunk = (n - i).min(1000);
        let messages: Vec<_> = (i..i + chunk)
            .map(|k| json!({"type": "text", "to": format!("1{tier:04}{k:07}"), "text": "Your order has shipped"}))
            .collect();
        http.post(format!("{base}/messages/bulk"))
            .bearer_auth(key)
            .json(&json!({"messages": messages, "phoneId": phone_id, "sendAt": send_at}))
            .send()
            .await?
            .error_for_status()?;
        i += chunk;
    }
    Ok(())
}

/// Makes every scheduled message due now, at once.
async fn release(url: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query("UPDATE messages SET next_attempt_at = now() WHERE status = 'scheduled'")
        .execute(&mut conn)
        .await?;
    diesel::sql_query("SELECT pg_notify('wagate_dispatch', '')")
        .execute(&mut conn)
        .await?;
    Ok(())
}
