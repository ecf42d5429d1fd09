//! Accepted sends per second: `POST /v1/phones/{phoneId}/messages` over REST
//! and `MessageService/SendPhoneMessage` over gRPC, from concurrent clients,
//! against wagate on the embedded PostgreSQL (durable: fsync and synchronous
//! commit on, as `wagate serve` runs it). In the same run, on the same
//! PostgreSQL, pgbench's single-row INSERT rate, and the ratio of the two.
//!
//! ```text
//! cargo run --release --example send_bench
//! cargo run --release --example send_bench -- --secs 20 --clients 64
//! ```
//!
//! Then the same requests without their text, which validation rejects
//! before anything is stored: the ceiling that the transport,
//! authentication, REST transcoding and validation set, with the load
//! generator sharing the machine, whatever the storage does. Last, REST
//! sends that each carry a new Idempotency-Key, which the writer coalesces
//! too, claiming and recording their keys in the batch's transaction.
//!
//! Every accepted send is a durable write (message, contact, conversation,
//! first timeline entry) acknowledged only after its commit; the writer
//! coalesces concurrent requests into one statement. The
//! dispatcher runs meanwhile, as in production, sending to the in-process
//! simulator at the phone's pace.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use wagate::pb;
use wagate::server;

#[derive(Debug, Parser)]
#[command(
    about = "Accepted sends per second over REST and gRPC, against pgbench's single-row INSERT rate"
)]
struct Args {
    /// Seconds per protocol (and for pgbench).
    #[arg(long, default_value_t = 15)]
    secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Database connections of the server.
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Run {
    name: &'static str,
    count: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    cpu: common::CpuTimes,
}

impl Run {
    fn print(&self) {
        self.print_as("accepted");
    }

    fn print_as(&self, what: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        println!(
            "{:<5} {what} {:>7} in {:>5.1} s = {:>7.0} sends/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {}",
            self.name,
            self.count,
            self.elapsed.as_secs_f64(),
            self.count as f64 / self.elapsed.as_secs_f64(),
            percentile(&l, 0.50).as_secs_f64() * 1000.0,
            percentile(&l, 0.99).as_secs_f64() * 1000.0,
            self.errors
        );
        // Per request answered; the process's share includes the load generator.
        let per = |secs: f64| secs * 1e6 / self.count.max(1) as f64;
        println!(
            "      CPU per request: {:>4.0} µs in this process (server and load generator), {:>4.0} µs in PostgreSQL",
            per(self.cpu.process),
            per(self.cpu.postgres)
        );
    }

    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

async fn drive<F, Fut>(name: &'static str, clients: usize, secs: u64, one: F) -> Run
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let cpu = common::CpuTimes::now();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let stop = stop.clone();
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut n = 0u64;
            while !AtomicBool::load(&stop, Ordering::Relaxed) {
                let t = Instant::now();
                if one(c, n).await {
                    lat.push(t.elapsed());
                } else {
                    errors += 1;
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            latencies.extend(l);
            errors += e;
        }
    }
    // Over the same span as `elapsed`: until the last request in flight ended.
    let cpu = cpu.until(common::CpuTimes::now());
    Run {
        name,
        count: latencies.len(),
        errors,
        elapsed: start.elapsed(),
        latencies,
        cpu,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    common::init_logging();
    let bench = common::open_database("wgbench", args.pool_size).await?;
    let db = &bench.db;
    let running = server::start(common::server_options(
        &db.url,
        args.pool_size,
        2 * 1024 * 1024,
    ))
    .await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let reg: serde_json::Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "bench@example.com", "password": "correct horse battery", "name": "Bench"}))
        .send()
        .await?
        .json()
        .await?;
    let key = reg["data"]["apiKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    http.put(format!("{base}/auth/me/credentials"))
        .bearer_auth(&key)
        .json(&json!({"accessToken": "EAAGbenchmarktoken0001", "phoneNumberId": "106540352242922", "wabaId": "102290129340398"}))
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

    println!(
        "wagate send benchmark: {} clients, {} s per protocol, {} CPUs, embedded PostgreSQL (durable)",
        args.clients,
        args.secs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let url = format!("{base}/v1/phones/{phone_id}/messages");
    // Each phase sends to new recipients (`prefix`): every accepted send
    // creates a contact and a conversation, the heaviest case.
    let rest_phase = |name: &'static str, prefix: &'static str, valid: bool, keyed: bool| {
        let http = http.clone();
        let key = key.clone();
        let url = url.clone();
        drive(name, args.clients, args.secs, move |c, n| {
            let http = http.clone();
            let key = key.clone();
            let url = url.clone();
            async move {
                let to = format!("{prefix}{:03}{:04}", c % 1000, n % 10_000);
                // Rejected: no text, so validation fails before anything is stored.
                let body = if valid {
                    json!({"type": "text", "to": to, "text": "Your order has shipped"})
                } else {
                    json!({"type": "text", "to": to})
                };
                let want = if valid { 202 } else { 400 };
                let mut req = http.post(&url).bearer_auth(&key).json(&body);
                if keyed {
                    req = req.header("idempotency-key", format!("{prefix}-{c}-{n}"));
                }
                req.send().await.is_ok_and(|r| r.status().as_u16() == want)
            }
        })
    };
    let rest = rest_phase("REST", "1555", true, false).await;
    rest.print();

    let mut channels = Vec::new();
    for _ in 0..args.clients {
        channels.push(
            tonic::transport::Endpoint::from_shared(base.clone())?
                .connect()
                .await?,
        );
    }
    let grpc_phase = |name: &'static str, prefix: &'static str, valid: bool| {
        let key = key.clone();
        let phone_id = phone_id.clone();
        let channels = channels.clone();
        drive(name, args.clients, args.secs, move |c, n| {
            let mut client = pb::message_service_client::MessageServiceClient::new(
                channels[c % channels.len()].clone(),
            );
            let key = key.clone();
            let phone_id = phone_id.clone();
            async move {
                let text = valid.then(|| prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(
                        "Your order has shipped".into(),
                    )),
                });
                let mut req = tonic::Request::new(pb::SendPhoneMessageRequest {
                    phone_id,
                    message: Some(pb::OutboundMessage {
                        to: format!("{prefix}{:03}{:04}", c % 1000, n % 10_000),
                        r#type: pb::MessageType::Text as i32,
                        text,
                        ..Default::default()
                    }),
                });
                if let Ok(v) = format!("Bearer {key}").parse() {
                    req.metadata_mut().insert("authorization", v);
                }
                match client.send_phone_message(req).await {
                    Ok(_) => valid,
                    Err(status) => !valid && status.code() == tonic::Code::InvalidArgument,
                }
            }
        })
    };
    let grpc = grpc_phase("gRPC", "1556", true).await;
    grpc.print();

    // The same requests, rejected by validation before anything is written:
    // what the transport, authentication, transcoding and validation cost
    // with the load generator on the same two CPUs. Storage cannot make
    // accepted sends faster than this.
    let rest_ceiling = rest_phase("REST", "1557", false, false).await;
    let grpc_ceiling = grpc_phase("gRPC", "1558", false).await;
    for run in [&rest_ceiling, &grpc_ceiling] {
        run.print_as("rejected before storage");
    }
    // With an Idempotency-Key on every request (a new key each time): the
    // writer's batch takes the keys' locks, stores the sends and records
    // their responses in one transaction.
    let keyed = rest_phase("REST", "1559", true, true).await;
    keyed.print_as("accepted with Idempotency-Key");

    // pgbench on the same PostgreSQL: single-row INSERTs, same client count.
    let cpu = common::CpuTimes::now();
    let pg = pgbench(&db.url, args.clients, args.secs).await;
    // pgbench's backends end with it; give the postmaster a moment to reap
    // them, so their CPU time is counted.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let cpu = cpu.until(common::CpuTimes::now());
    match pg {
        Ok(tps) => {
            println!(
                "pgbench single-row INSERT: {tps:>7.0} tps ({} clients)",
                args.clients
            );
            let per = |secs: f64| secs * 1e6 / (tps * args.secs as f64).max(1.0);
            println!(
                "      CPU per transaction: {:>4.0} µs in pgbench, {:>4.0} µs in PostgreSQL",
                per(cpu.children),
                per(cpu.postgres)
            );
            println!(
                "ratio accepted sends / pgbench INSERT: REST {:.2}x, gRPC {:.2}x",
                rest.rate() / tps,
                grpc.rate() / tps
            );
            println!(
                "ratio rejected before storage / pgbench INSERT: REST {:.2}x, gRPC {:.2}x",
                rest_ceiling.rate() / tps,
                grpc_ceiling.rate() / tps
            );
        }
        Err(e) => println!("pgbench failed: {e:#}"),
    }
    println!(
        "peak RSS (server and load generator, one process): {:.0} MiB",
        peak_rss_mib()
    );
    running.shutdown().await?;
    bench.db.close().await;
    Ok(())
}

/// Runs pgbench with a single-row INSERT script against the server's database.
async fn pgbench(url: &str, clients: usize, secs: u64) -> anyhow::Result<f64> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    diesel::sql_query("CREATE TABLE IF NOT EXISTS bench_insert (id bigserial PRIMARY KEY, org_id uuid, body text, created_at timestamptz DEFAULT now())")
        .execute(&mut conn)
        .await?;
    drop(conn);
    let script = tempfile::Builder::new().suffix(".sql").tempfile()?;
    std::fs::write(
        script.path(),
        "INSERT INTO bench_insert (org_id, body) VALUES (gen_random_uuid(), 'Your order has shipped');\n",
    )?;
    let bin = pg_bin("pgbench");
    // The URL names the unix socket; pgbench takes it as a connection string.
    let out = tokio::process::Command::new(bin)
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(script.path())
        .arg(url)
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pgbench said: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn pg_bin(name: &str) -> std::path::PathBuf {
    let candidates = [
        "/usr/lib/postgresql/15/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/17/bin",
    ];
    candidates
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from(name))
}
