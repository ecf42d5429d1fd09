//! One PostgreSQL per test process (TEST_DATABASE_URL, or a throwaway
//! cluster from the machine's binaries), a migrated template database, and a
//! fresh clone of it per test.
use std::sync::OnceLock;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::sync::OnceCell;
use wagate_embedded_pg::{Cluster, ClusterOptions};

const TEMPLATE: &str = "wagate_template";

struct Server {
    /// URL of a database on the server with rights to create databases.
    admin_url: String,
    url_for: Box<dyn Fn(&str) -> String + Send + Sync>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
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
        let dir = tempfile::Builder::new()
            .prefix("wgpg")
            .tempdir_in("/tmp")
            .expect("tempdir")
            .keep();
        let mut opts = ClusterOptions::throwaway(dir);
        opts.max_connections = 300;
        let cluster = CLUSTER.get_or_init(|| {
            Cluster::start(opts).expect("test PostgreSQL starts from the system binaries")
        });
        Server {
            admin_url: cluster.url("postgres"),
            url_for: Box::new(|db| CLUSTER.get().map(|c| c.url(db)).unwrap_or_default()),
        }
    })
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
    CLUSTER.get().map(|c| c.bin_dir().to_path_buf())
}
