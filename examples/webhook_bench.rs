//! Outgoing webhook benchmark: deliveries per second to a local receiver, and
//! an outage run (the receiver goes away and comes back) that counts every
//! event: delivered, duplicated, lost.
//!
//! ```text
//! cargo run --release --example webhook_bench
//! cargo run --release --example webhook_bench -- --events 20000 --endpoints 4 --outage-secs 60
//! cargo run --release --example webhook_bench -- --outage-secs 5      # a quick smoke run
//! ```
//!
//! It starts its own PostgreSQL (the embedded cluster from the machine's
//! binaries, durable like `wagate serve`; or `DATABASE_URL`), wagate in
//! process (`wagate::server::start`, the same code as `wagate serve`) and an
//! axum receiver on 127.0.0.1 that checks signatures and counts
//! `webhook-id`s.
//!
//! Throughput run: the events (and their deliveries) are written first with
//! the server stopped, then a server starts and drains them; the figure is
//! deliveries completed (2xx received and recorded) per second of draining.
//!
//! Outage run: events are recorded at a steady rate while the receiver is up,
//! then down (connections refused) for `--outage-secs`, then up again; the
//! run ends when every delivery is final.
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Parser;
use diesel_async::AsyncConnection;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::database::ensure_database;
use wagate::delivery::WebhookOptions;
use wagate::domain::webhooks::schedule::{RetrySchedule, parse_schedule};
use wagate::domain::webhooks::signing;
use wagate::server::ServerOptions;
use wagate::store::events::{self, NewEvent, record_event};
use wagate::store::{Store, StoreError};

#[derive(Debug, Parser)]
#[command(about = "Outgoing webhook throughput and outage benchmark")]
struct Args {
    /// Events in the throughput run (each goes to every endpoint).
    #[arg(long, default_value_t = 25_000)]
    events: usize,
    /// Endpoints (one organization each) in the throughput run.
    #[arg(long, default_value_t = 4)]
    endpoints: usize,
    /// Attempts in flight per instance.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Attempts in flight per endpoint.
    #[arg(long, default_value_t = 128)]
    endpoint_concurrency: usize,
    /// How long the receiver is down in the outage run (0 skips the run).
    #[arg(long, default_value_t = 60)]
    outage_secs: u64,
    /// Events per second recorded during the outage run.
    #[arg(long, default_value_t = 200)]
    outage_rate: u64,
    /// Retry delays in the outage run; long enough to outlast the outage.
    #[arg(long, default_value = "1s,2s,4s,8s,15s,30s,30s,30s,30s")]
    outage_schedule: String,
    /// Skip the throughput run.
    #[arg(long)]
    skip_throughput: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_logging();
    let args = Args::parse();
    let bench = common::open_database("wagate-bench", 32).await?;
    let (db, dir) = (&bench.db, &bench.dir);
    println!("wagate outgoing webhook benchmark");
    println!(
        "machine: {} CPU(s); PostgreSQL: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if std::env::var("DATABASE_URL").is_ok() {
            "DATABASE_URL"
        } else {
            "embedded cluster (durable, fsync on), same machine"
        }
    );
    println!("load average at start: {}", loadavg());
    let result = async {
        if !args.skip_throughput {
            throughput(&args, &db.url, dir.path()).await?;
        }
        if args.outage_secs > 0 {
            outage(&args, &db.url).await?;
        }
        anyhow::Ok(())
    }
    .await;
    println!();
    println!("load average at the end: {}", loadavg());
    bench.db.close().await;
    result
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews the figures).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ------------------------------------------------------------------ receiver

#[derive(Default)]
struct Counts {
    /// webhook-id -> times received.
    seen: Mutex<HashMap<String, u32>>,
    requests: AtomicU64,
    bad_signatures: AtomicU64,
}

#[derive(Clone)]
struct ReceiverState {
    counts: Arc<Counts>,
    /// The secret every endpoint of the run signs with.
    secret: Arc<String>,
}

async fn receive(State(st): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let id = h("webhook-id").to_owned();
    let n = st.counts.requests.fetch_add(1, Ordering::Relaxed);
    // Verify a sample (every request would make the receiver the bottleneck
    // on a small machine); all of them in the outage run.
    if n % 50 == 0 || st.secret.starts_with("verify-all") {
        let ts = h("webhook-timestamp").parse().unwrap_or(0);
        if !signing::verify(&st.secret, &id, ts, &body, h("webhook-signature")) {
            st.counts.bad_signatures.fetch_add(1, Ordering::Relaxed);
        }
    }
    if let Ok(mut seen) = st.counts.seen.lock() {
        *seen.entry(id).or_default() += 1;
    }
    StatusCode::OK
}

/// A receiver on `addr` (port 0: any); returns its address and a handle
/// that stops it (closing the listener: connections are then refused).
async fn start_receiver(
    addr: SocketAddr,
    state: ReceiverState,
) -> anyhow::Result<(
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(receive).with_state(state);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((addr, stop, task))
}

// ------------------------------------------------------------------ helpers

fn options(database_url: &str, master_key: &str, webhooks: WebhookOptions) -> ServerOptions {
    ServerOptions {
        master_key: master_key.to_owned(),
        webhooks,
        ..common::server_options(database_url, 32, 1024 * 1024)
    }
}

/// Registers an organization and one endpoint (all events) over REST.
async fn org_with_endpoint(base: &str, n: usize, url: &str, secret: &str) -> anyhow::Result<Uuid> {
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": format!("bench{n}-{}@example.com", Uuid::new_v4().simple()), "password": "benchmark password", "name": format!("Bench {n}")}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let key = reg["data"]["apiKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let org: Uuid = reg["data"]["organization"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    http.post(format!("{base}/v1/outgoing-webhooks"))
        .bearer_auth(&key)
        .json(&json!({"url": url, "events": ["*"], "secret": secret}))
        .send()
        .await?
        .error_for_status()?;
    Ok(org)
}

fn message(i: usize) -> Value {
    json!({
        "messageId": Uuid::new_v4(),
        "conversationId": Uuid::new_v4(),
        "phoneNumberId": Uuid::new_v4(),
        "wamid": format!("wamid.bench{i}"),
        "direction": "inbound",
        "type": "text",
        "content": {"body": format!("message {i}")},
        "status": "delivered",
        "contactId": Uuid::new_v4(),
        "contactIdentifier": "15551234567",
        "contactIdentifierType": "phone",
        "contactReplyTo": "15551234567",
        "contactPhone": "15551234567",
    })
}

/// Records `count` message.received events per organization, `batch` per transaction.
async fn record_many(
    store: &Store,
    orgs: &[Uuid],
    count: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let mut conn = store.conn().await?;
    let mut i = 0;
    while i < count {
        let n = batch.min(count - i);
        conn.transaction::<_, StoreError, _>(async |c| {
            for j in i..i + n {
                for org in orgs {
                    record_event(
                        c,
                        NewEvent {
                            org_id: *org,
                            waba_id: None,
                            event: events::MESSAGE_RECEIVED,
                            data: message(j),
                        },
                    )
                    .await?;
                }
            }
            Ok(())
        })
        .await?;
        i += n;
    }
    Ok(())
}

fn tally(counts: &Counts) -> (usize, u64) {
    let seen = counts.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let duplicates: u64 = seen.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    (seen.len(), duplicates)
}

// ------------------------------------------------------------------ runs

async fn throughput(args: &Args, admin_url: &str, data_dir: &Path) -> anyhow::Result<()> {
    let url = fresh_db(admin_url, "bench_throughput").await?;
    let master = wagate::crypto::SecretBox::generate_key();
    let secret = signing::generate_secret();
    let counts = Arc::new(Counts::default());
    let (addr, stop_rx, rx_task) = start_receiver(
        "127.0.0.1:0".parse()?,
        ReceiverState {
            counts: counts.clone(),
            secret: Arc::new(secret.clone()),
        },
    )
    .await?;
    let webhooks = WebhookOptions {
        allow_private: true,
        concurrency: args.concurrency,
        endpoint_concurrency: args.endpoint_concurrency,
        ..WebhookOptions::default()
    };
    // Set up the organizations and endpoints, then stop the server.
    let setup = wagate::server::start(options(&url, &master, webhooks.clone())).await?;
    let base = format!("http://{}", setup.addr);
    let mut orgs = Vec::new();
    for n in 0..args.endpoints.max(1) {
        orgs.push(org_with_endpoint(&base, n, &format!("http://{addr}/hook"), &secret).await?);
    }
    setup.shutdown().await?;

    let total = args.events * orgs.len();
    println!();
    println!(
        "throughput: {} events x {} endpoints = {total} deliveries; concurrency {} per instance, {} per endpoint",
        args.events,
        orgs.len(),
        args.concurrency,
        args.endpoint_concurrency
    );
    let store = Store::connect(&url, 4)?;
    let t = Instant::now();
    record_many(&store, &orgs, args.events, 500).await?;
    let write = t.elapsed();
    println!(
        "  recorded {} events and {total} deliveries in {:.2} s ({:.0} deliveries/s written, 500 events per transaction)",
        total,
        write.as_secs_f64(),
        total as f64 / write.as_secs_f64()
    );

    let cpu_before = cpu(data_dir);
    let server = wagate::server::start(options(&url, &master, webhooks)).await?;
    let t = Instant::now();
    let mut last_report = Instant::now();
    // Progress from the receiver's counter (polling the database would load
    // the machine being measured); the end from the database: every
    // delivery recorded as succeeded.
    loop {
        let received = counts.requests.load(Ordering::Relaxed) as usize;
        if received >= total {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            println!(
                "  ... {received} of {total} received after {:.1} s",
                t.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        if t.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("throughput run did not finish in 10 minutes ({received} of {total})");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let received_at = t.elapsed();
    loop {
        let done = store.count_deliveries("succeeded").await? as usize;
        if done >= total {
            break;
        }
        if t.elapsed() > Duration::from_secs(660) {
            anyhow::bail!("deliveries not all recorded ({done} of {total})");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = t.elapsed();
    let cpu_after = cpu(data_dir);
    server.shutdown().await?;
    let (unique, duplicates) = tally(&counts);
    println!(
        "  received {total} in {:.2} s; all recorded as succeeded (with their attempt log rows) at {:.2} s",
        received_at.as_secs_f64(),
        drain.as_secs_f64(),
    );
    println!(
        "  => {:.0} deliveries/s (2xx received and recorded)",
        total as f64 / drain.as_secs_f64()
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let process = after.0 - before.0;
        let postgres = after.1 - before.1;
        println!(
            "  CPU used while draining: {process:.1} s by wagate and the receiver (one process), {postgres:.1} s by PostgreSQL; \
             {:.0} µs of CPU per delivery, so {:.0} deliveries/s would fill {} CPU(s) with nothing else running",
            (process + postgres) * 1e6 / total as f64,
            total as f64 / (process + postgres) * cpus() as f64,
            cpus()
        );
    }
    println!(
        "  receiver: {} requests, {unique} unique webhook-ids, {duplicates} duplicates, {} bad signatures (of a 1-in-50 sample)",
        counts.requests.load(Ordering::Relaxed),
        counts.bad_signatures.load(Ordering::Relaxed)
    );
    let _ = stop_rx.send(());
    let _ = rx_task.await;
    Ok(())
}

async fn outage(args: &Args, admin_url: &str) -> anyhow::Result<()> {
    let url = fresh_db(admin_url, "bench_outage").await?;
    let master = wagate::crypto::SecretBox::generate_key();
    // "verify-all" marks the receiver to check every signature.
    let secret = format!("verify-all-{}", Uuid::new_v4().simple());
    let counts = Arc::new(Counts::default());
    let state = ReceiverState {
        counts: counts.clone(),
        secret: Arc::new(secret.clone()),
    };
    let (addr, stop_rx, rx_task) = start_receiver("127.0.0.1:0".parse()?, state.clone()).await?;
    let schedule = parse_schedule(&args.outage_schedule).map_err(anyhow::Error::msg)?;
    let webhooks = WebhookOptions {
        allow_private: true,
        schedule: RetrySchedule {
            delays: schedule.clone(),
            ..RetrySchedule::default()
        },
        ..WebhookOptions::default()
    };
    let server = wagate::server::start(options(&url, &master, webhooks)).await?;
    let base = format!("http://{}", server.addr);
    let org = org_with_endpoint(&base, 0, &format!("http://{addr}/hook"), &secret).await?;
    let store = Store::connect(&url, 4)?;

    let up_before = Duration::from_secs(5);
    let outage = Duration::from_secs(args.outage_secs);
    let up_after = Duration::from_secs(10);
    println!();
    println!(
        "outage: {} events/s for {} s; the receiver refuses connections from {} s to {} s; retry schedule {} (+{} attempts max)",
        args.outage_rate,
        (up_before + outage + up_after).as_secs(),
        up_before.as_secs(),
        (up_before + outage).as_secs(),
        args.outage_schedule,
        schedule.len() + 1
    );
    // The producer: a steady rate, 10 transactions a second.
    let producer = {
        let store = store.clone();
        let rate = args.outage_rate.max(1) as usize;
        let total_time = up_before + outage + up_after;
        tokio::spawn(async move {
            let start = Instant::now();
            let mut recorded = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while start.elapsed() < total_time {
                tick.tick().await;
                let due = (start.elapsed().as_secs_f64() * rate as f64) as usize;
                if due > recorded {
                    record_many(&store, &[org], due - recorded, 1000).await?;
                    recorded = due;
                }
            }
            anyhow::Ok(recorded)
        })
    };
    let t = Instant::now();
    tokio::time::sleep(up_before).await;
    let _ = stop_rx.send(());
    let _ = rx_task.await;
    println!("  {:>5.1} s receiver down", t.elapsed().as_secs_f64());
    tokio::time::sleep(outage).await;
    let (_, stop_rx, rx_task) = start_receiver(addr, state).await?;
    println!("  {:>5.1} s receiver back", t.elapsed().as_secs_f64());
    let recorded = producer.await??;
    println!(
        "  {:>5.1} s producer done: {recorded} events",
        t.elapsed().as_secs_f64()
    );
    let limit = Duration::from_secs(schedule.iter().map(Duration::as_secs).sum::<u64>() + 120);
    loop {
        let pending = store.count_deliveries("pending").await?;
        if pending == 0 {
            break;
        }
        if t.elapsed() > up_before + outage + up_after + limit {
            anyhow::bail!("outage run: {pending} deliveries still pending");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settled = t.elapsed();
    let succeeded = store.count_deliveries("succeeded").await?;
    let failed = store.count_deliveries("failed").await?;
    server.shutdown().await?;
    let (unique, duplicates) = tally(&counts);
    let lost = recorded.saturating_sub(unique);
    println!("  {:>5.1} s every delivery final", settled.as_secs_f64());
    println!(
        "  events {recorded}, delivered {unique}, duplicates {duplicates}, lost {lost}; deliveries succeeded {succeeded}, failed {failed}; bad signatures {}",
        counts.bad_signatures.load(Ordering::Relaxed)
    );
    println!(
        "  receiver requests {} (each refused attempt during the outage is retried on the schedule)",
        counts.requests.load(Ordering::Relaxed)
    );
    let _ = stop_rx.send(());
    let _ = rx_task.await;
    if lost > 0 || failed > 0 {
        anyhow::bail!("outage run lost {lost} events ({failed} deliveries failed)");
    }
    Ok(())
}

/// A fresh database on the benchmark's server.
async fn fresh_db(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let url = replace_db(admin_url, name);
    {
        let mut conn =
            diesel_async::AsyncPgConnection::establish(&replace_db(admin_url, "postgres")).await?;
        use diesel_async::RunQueryDsl;
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
    ensure_database(&replace_db(admin_url, "postgres"), name).await?;
    Ok(url)
}

/// `url` with its database name replaced (keeps `?host=` and other parameters).
fn replace_db(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let head = match head.rfind('/') {
        Some(i) if i > head.find("//").map_or(0, |j| j + 1) => &head[..i],
        _ => head,
    };
    match query {
        Some(q) => format!("{head}/{db}?{q}"),
        None => format!("{head}/{db}"),
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU seconds used so far by this process, and by the benchmark's
/// PostgreSQL (its postmaster, its live backends and those that exited).
fn cpu(data_dir: &Path) -> Option<(f64, f64)> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let stat = |pid: &str| -> Option<Vec<String>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may hold spaces.
        let rest = &text[text.rfind(')')? + 2..];
        Some(rest.split_whitespace().map(str::to_owned).collect())
    };
    // Fields after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let secs = |f: &[String], from: usize, to: usize| -> f64 {
        f[from..=to]
            .iter()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum::<f64>()
            / tick
    };
    let own = stat("self").map(|f| secs(&f, 11, 12))?;
    let postmaster = find_file(data_dir, "postmaster.pid", 4)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.lines().next().map(str::to_owned))?;
    let mut pg = stat(&postmaster).map(|f| secs(&f, 11, 14))?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.bytes().all(|b| b.is_ascii_digit())
            && let Some(f) = stat(&name)
            && f.get(1) == Some(&postmaster)
        {
            pg += secs(&f, 11, 12);
        }
    }
    Some((own, pg))
}

fn find_file(dir: &Path, name: &str, depth: usize) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if depth > 0
            && path.is_dir()
            && let Some(found) = find_file(&path, name, depth - 1)
        {
            return Some(found);
        }
    }
    None
}
