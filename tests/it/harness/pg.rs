//! One PostgreSQL per test process (TEST_DATABASE_URL, or a throwaway
//! cluster from the machine's binaries), a migrated template database, and a
//! fresh clone of it per test.
//!
//! The throwaway cluster lives under `/tmp/wgpg*` and is stopped and removed
//! when the test process exits; clusters left by a killed run are removed by
//! the next one, so repeated runs never fill the disk.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::OnceCell;
use wagate_embedded_pg::{Cluster, ClusterOptions};

const TEMPLATE: &str = "wagate_template";
const CLUSTER_PREFIX: &str = "wgpg";
/// A cluster directory this old with no live postmaster was left by a killed
/// run (a live run's directory gets its postmaster.pid within seconds).
const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

struct Server {
    /// URL of a database on the server with rights to create databases.
    admin_url: String,
    url_for: Box<dyn Fn(&str) -> String + Send + Sync>,
}

/// Taken and dropped (which stops PostgreSQL) by `remove_cluster` at exit.
static CLUSTER: Mutex<Option<Cluster>> = Mutex::new(None);
static CLUSTER_DIR: OnceLock<PathBuf> = OnceLock::new();
static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
static SERVER: OnceLock<Server> = OnceLock::new();
static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            let base = url.clone();
            return Server {
                admin_url: url,
                url_for: Box::new(move |db| replace_db(&base, db)),
            };
        }
        remove_stale_clusters(Path::new("/tmp"));
        let dir = tempfile::Builder::new()
            .prefix(CLUSTER_PREFIX)
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        let _ = CLUSTER_DIR.set(dir.clone());
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe { libc::atexit(remove_cluster) };
        let mut opts = ClusterOptions::throwaway(dir);
        opts.max_connections = 300;
        let cluster =
            Cluster::start(opts).expect("test PostgreSQL starts from the system binaries");
        let admin_url = cluster.url("postgres");
        let _ = BIN_DIR.set(cluster.bin_dir().to_path_buf());
        // Every database URL differs from the admin one only in its name.
        let base = admin_url.clone();
        *CLUSTER.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
        Server {
            admin_url,
            url_for: Box::new(move |db| replace_db(&base, db)),
        }
    })
}

/// At process exit: stop the throwaway cluster and delete its directory.
extern "C" fn remove_cluster() {
    let cluster = CLUSTER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(cluster);
    if let Some(dir) = CLUSTER_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes `<tmp>/wgpg*` directories left by runs that were killed before
/// `remove_cluster` ran: old, and with no live postmaster.
fn remove_stale_clusters(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(CLUSTER_PREFIX));
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if is_ours && old && !postmaster_alive(&path.join("pgdata")) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn postmaster_alive(pgdata: &Path) -> bool {
    let pid = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok());
    // SAFETY: signal 0 only checks that the process exists.
    pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
}

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

async fn exec(url: &str, sql: &str) -> Result<(), diesel::result::Error> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))?;
    diesel::sql_query(sql).execute(&mut conn).await.map(|_| ())
}

/// A new database cloned from the migrated template.
pub async fn fresh_database() -> String {
    let srv = server();
    TEMPLATE_READY
        .get_or_init(|| async {
            let _ = exec(
                &srv.admin_url,
                &format!("DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)"),
            )
            .await;
            exec(&srv.admin_url, &format!("CREATE DATABASE {TEMPLATE}"))
                .await
                .expect("create template");
            wagate::store::Store::migrate(&(srv.url_for)(TEMPLATE))
                .await
                .expect("migrate template");
        })
        .await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut attempt = 0;
    loop {
        match exec(
            &srv.admin_url,
            &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
        )
        .await
        {
            Ok(()) => break,
            // Two clones at once can briefly see each other on the template.
            Err(e) if attempt < 20 && e.to_string().contains("being accessed") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    (srv.url_for)(&name)
}

/// The PostgreSQL binary directory of the test cluster (for pgbench, psql).
#[allow(dead_code)]
pub fn bin_dir() -> Option<std::path::PathBuf> {
    server();
    BIN_DIR.get().cloned()
}
