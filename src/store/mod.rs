//! The store: the only code that writes SQL. diesel + diesel-async on
//! PostgreSQL (no libpq), with a deadpool pool and embedded migrations.
pub mod accounts;
pub mod api_keys;
pub mod cache;
pub mod contacts;
pub mod conversations;
pub mod dispatch;
pub mod events;
#[doc(hidden)]
pub mod explain;
pub mod idempotency;
pub mod inbound;
pub mod jobs;
pub mod listener;
pub mod messages;
pub mod outbound;
pub mod phones;
pub mod schema;
pub mod webhooks;

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type Conn = Object<AsyncPgConnection>;

/// The id of a row written on a hot path (messages, contacts,
/// conversations, events). The contract's ids are version-4 UUIDs; these
/// are laid out as UUIDv7 is (the creation time in milliseconds first, then
/// 74 bits drawn at random, partly as a counter so ids made in one
/// millisecond keep their order) and marked version 4. Time-ordered, each
/// insert lands at the right edge of its primary-key index instead of on a
/// random page; marked v4, clients that check the version accept them.
pub fn new_id() -> uuid::Uuid {
    let mut bytes = uuid::Uuid::now_v7().into_bytes();
    // The version is the high nibble of byte 6; the variant stays RFC 9562's.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    uuid::Uuid::from_bytes(bytes)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached (pool timeout, connection refused).
    #[error("{0}")]
    Unavailable(String),
    /// A unique constraint rejected the write; carries the constraint name.
    #[error("duplicate value for {0}")]
    Duplicate(String),
    /// PostgreSQL refused a NUL character (U+0000) in a text or jsonb value
    /// (SQLSTATE 22021 or 22P05). The caller's input, not the database, is
    /// at fault; the domain validates strings first, this is the backstop.
    #[error("a text value contains a NUL character")]
    NulCharacter,
    #[error(transparent)]
    Query(DieselError),
    #[error("migrations failed: {0}")]
    Migration(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StoreError::Duplicate(info.constraint_name().unwrap_or("unique").to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
                if nul_character(info.message(), info.details()) =>
            {
                StoreError::NulCharacter
            }
            other => StoreError::Query(other),
        }
    }
}

/// Whether PostgreSQL refused a NUL character: 22021 ("invalid byte sequence
/// for encoding \"UTF8\": 0x00", a text parameter) or 22P05 ("unsupported
/// Unicode escape sequence", detail "\u0000 cannot be converted to text.",
/// jsonb). diesel-async keeps only the message and detail of a database
/// error, not its SQLSTATE, so these are recognised by their wording: the
/// server's English one (the embedded cluster is initialised with
/// `--no-locale`; a server with translated messages only loses the backstop).
fn nul_character(message: &str, details: Option<&str>) -> bool {
    (message.starts_with("invalid byte sequence for encoding") && message.ends_with("0x00"))
        || (message.starts_with("unsupported Unicode escape sequence")
            && details.is_some_and(|d| d.contains("\\u0000")))
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A page of a list: 1-based page number and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub limit: i64,
}

impl PageRequest {
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.limit
    }

    /// Whether the page starts after the last of `total` rows: a list then
    /// answers without reading any, where its query would walk every
    /// matching row's index entry to find none.
    pub fn beyond(&self, total: i64) -> bool {
        self.offset() >= total
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool<AsyncPgConnection>,
    url: String,
    caches: std::sync::Arc<Caches>,
}

/// A phone with its WABA, as sends resolve it.
pub type SendingPhone = (phones::PhoneRow, phones::WabaRow);

/// Hot reads served from memory (see `cache`).
#[derive(Default)]
struct Caches {
    invalidation: cache::Invalidation,
    /// Active API keys by hash (None: no such active key).
    keys: cache::ReadCache<Vec<u8>, Option<api_keys::ApiKeyRow>>,
    /// The sending phone by (organization, phone named or the default).
    phones: cache::ReadCache<(uuid::Uuid, Option<uuid::Uuid>), Option<SendingPhone>>,
    /// When this instance last recorded each key's use.
    touched: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
}

/// Opens a pool connection planning every statement for the data it runs
/// on. The store prepares its statements once per connection; under the
/// default plan cache mode PostgreSQL then settles on one generic plan,
/// built from the statistics of that moment. A connection opened while a
/// queue table was small kept planning it as small once it held a backlog:
/// the inbound claim sorted the whole backlog, and marking a batch done
/// scanned the whole table, on every batch until autovacuum next analyzed
/// it (a minute or more). The store's statements work on batches, so a
/// plan per execution costs little beside them.
async fn setup_connection(url: String) -> diesel::ConnectionResult<AsyncPgConnection> {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    conn.batch_execute("SET plan_cache_mode = force_custom_plan")
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl Store {
    pub fn connect(url: &str, max_connections: usize) -> StoreResult<Self> {
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url| Box::pin(setup_connection(url.to_owned())));
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            url: url.to_owned(),
            caches: Default::default(),
        })
    }

    /// Keeps the hot-read caches coherent: LISTENs for the change trigger
    /// until shutdown. Without it running nothing is cached.
    pub async fn watch_changes(&self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let caches = self.caches.clone();
        listener::listen_events(
            self.clone(),
            cache::CHANNEL,
            move |event| match event {
                listener::ListenEvent::Connected => caches.invalidation.connected(),
                listener::ListenEvent::Notified => caches.invalidation.bump(),
                listener::ListenEvent::Lost => caches.invalidation.lost(),
            },
            shutdown,
        )
        .await
    }

    /// This instance just committed a change to keys, WABAs or phones: its
    /// own cache must not wait for the notification.
    pub(crate) fn changed(&self) {
        self.caches.invalidation.bump();
    }

    /// A connection outside the pool, for LISTEN (it is held for good).
    pub async fn dedicated(&self) -> StoreResult<AsyncPgConnection> {
        AsyncPgConnection::establish(&self.url)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub async fn conn(&self) -> StoreResult<Conn> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(url: &str) -> StoreResult<usize> {
        let conn = AsyncPgConnection::establish(url)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut harness = AsyncMigrationHarness::new(conn);
        // The harness is synchronous (block_in_place): needs the multi-thread runtime.
        let applied = tokio::task::block_in_place(|| harness.run_pending_migrations(MIGRATIONS))
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(applied.len())
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::sql_query("SELECT 1").execute(&mut conn).await?;
        Ok(())
    }

    /// (size, available, max) of the pool, for metrics.
    pub fn pool_status(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.max_size)
    }
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn hot_path_ids_are_version_4_and_in_creation_order() {
        let ids: Vec<uuid::Uuid> = (0..2000).map(|_| new_id()).collect();
        for id in &ids {
            assert_eq!(id.get_version_num(), 4, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids keep their order");
    }
}
