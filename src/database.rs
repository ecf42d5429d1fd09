//! Where the database is: `DATABASE_URL`, or the embedded PostgreSQL cluster
//! started from the machine's own binaries in the data directory.
use std::path::Path;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use wagate_embedded_pg::{Cluster, ClusterOptions, DataDirLock};

use crate::config::DbArgs;

const EMBEDDED_DB: &str = "wagate";

/// Keeps the embedded cluster (and the data-directory lock) alive; stops the
/// cluster cleanly when dropped.
pub struct Database {
    pub url: String,
    embedded: Option<(Cluster, DataDirLock)>,
}

impl Database {
    pub async fn open(args: &DbArgs) -> anyhow::Result<Self> {
        if let Some(url) = &args.database_url {
            return Ok(Self {
                url: url.clone(),
                embedded: None,
            });
        }
        let dir = args.data_dir.clone();
        std::fs::create_dir_all(&dir)?;
        let dir = std::fs::canonicalize(&dir)?;
        let (cluster, lock) = tokio::task::spawn_blocking(move || start_embedded(&dir)).await??;
        ensure_database(&cluster.url("postgres"), EMBEDDED_DB).await?;
        tracing::warn!(
            socket = %cluster.socket_dir().display(),
            "using the embedded PostgreSQL cluster (development and demos); set DATABASE_URL for production"
        );
        Ok(Self {
            url: cluster.url(EMBEDDED_DB),
            embedded: Some((cluster, lock)),
        })
    }

    /// Stops the embedded cluster, if any, and waits for it (a fast
    /// shutdown can take a moment, so it runs on the blocking pool).
    pub async fn close(mut self) {
        if let Some((mut cluster, lock)) = self.embedded.take() {
            let stopped = tokio::task::spawn_blocking(move || {
                let r = cluster.stop();
                drop(lock);
                r
            })
            .await;
            match stopped {
                Ok(Ok(())) => tracing::info!("embedded PostgreSQL stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "stopping the embedded PostgreSQL"),
                Err(e) => tracing::warn!(error = %e, "stopping the embedded PostgreSQL"),
            }
        }
    }
}

fn start_embedded(dir: &Path) -> anyhow::Result<(Cluster, DataDirLock)> {
    let lock = DataDirLock::acquire(dir)?;
    let cluster = Cluster::start(ClusterOptions {
        dir: dir.join("postgres"),
        durable: true,
        max_connections: 200,
        bin_dir: None,
        settings: Vec::new(),
    })?;
    Ok((cluster, lock))
}

/// Creates the database if it does not exist yet.
pub async fn ensure_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(admin_url).await?;
    match diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("already exists") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
