//! What every benchmark sets up the same way: logging to stderr (stdout is
//! the report), a durable PostgreSQL (the embedded cluster, or DATABASE_URL),
//! and a sandbox-mode server's options.
#![allow(dead_code)] // each benchmark uses part of it

use wagate::config::DbArgs;
use wagate::database::Database;
use wagate::server::{MetaOptions, ServerOptions};

/// Logs at `warn` (or RUST_LOG) to stderr.
pub fn init_logging() {
    wagate::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The database a run uses, and the directory holding the embedded cluster
/// (removed when dropped).
pub struct BenchDb {
    pub db: Database,
    pub dir: tempfile::TempDir,
}

/// DATABASE_URL when set, else a fresh durable embedded cluster under /tmp.
pub async fn open_database(prefix: &str, pool_size: usize) -> anyhow::Result<BenchDb> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/tmp")?;
    let db = Database::open(&DbArgs {
        data_dir: dir.path().to_path_buf(),
        database_url: std::env::var("DATABASE_URL").ok(),
        pool_size,
    })
    .await?;
    Ok(BenchDb { db, dir })
}

/// A sandbox-mode server on a free port with a fresh master key.
pub fn server_options(
    database_url: &str,
    pool_size: usize,
    max_body_bytes: usize,
) -> ServerOptions {
    ServerOptions {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        database_url: database_url.to_owned(),
        pool_size,
        max_body_bytes,
        cors_origins: Vec::new(),
        meta: MetaOptions::sandbox_defaults(),
        master_key: wagate::crypto::SecretBox::generate_key(),
        dispatch: Default::default(),
        webhooks: Default::default(),
    }
}
