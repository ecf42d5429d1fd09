//! Sandbox-mode helpers for the Meta-layer tests: the in-process simulator,
//! credentials over REST, direct reads and writes of the test database,
//! bounded polling, and a guard for child processes.
use std::future::Future;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bytea, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;

use super::TestServer;

/// A fresh, Meta-looking access token (no whitespace, long enough).
pub fn token(tag: &str) -> String {
    format!("EAAG{tag}{}", uuid::Uuid::new_v4().simple())
}

/// Calls `f` every 100 ms until it yields `Some`, for at most `timeout`;
/// panics with `what` and the last value seen when time runs out.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[derive(QueryableByName, Debug)]
pub struct StoredToken {
    #[diesel(sql_type = Nullable<Bytea>)]
    pub access_token_enc: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub token_last4: Option<String>,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl TestServer {
    /// The in-process Cloud API simulator of a sandbox-mode server.
    pub fn simulator(&self) -> &wagate_simulator::Simulator {
        self.running
            .as_ref()
            .expect("server running")
            .app
            .simulator
            .as_ref()
            .expect("sandbox mode runs the simulator in-process")
    }

    /// `PUT /auth/me/credentials` with `body`.
    pub async fn put_credentials(&self, key: &str, body: Value) -> (u16, Value) {
        let r = self
            .rest()
            .send("PUT", "/auth/me/credentials", Some(key), Some(body), &[])
            .await;
        (r.status, r.body)
    }

    /// A direct connection to the test's database.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .expect("test database connects")
    }

    /// Every WABA's stored token columns, as the database holds them.
    pub async fn stored_tokens(&self) -> Vec<StoredToken> {
        diesel::sql_query("SELECT access_token_enc, token_last4 FROM wabas ORDER BY created_at")
            .load(&mut self.db().await)
            .await
            .expect("read wabas")
    }

    /// Runs a statement with no parameters; returns the rows it touched.
    pub async fn exec(&self, sql: &str) -> usize {
        diesel::sql_query(sql)
            .execute(&mut self.db().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Sets a phone's stored `health_status` (Meta's object) directly.
    pub async fn set_stored_health_status(&self, phone_id: &str, health: &Value) {
        let n =
            diesel::sql_query("UPDATE phone_numbers SET health_status = $1 WHERE id = $2::uuid")
                .bind::<Jsonb, _>(health)
                .bind::<Text, _>(phone_id)
                .execute(&mut self.db().await)
                .await
                .expect("update health_status");
        assert_eq!(n, 1, "phone {phone_id} exists");
    }

    /// Waits (≤ 10 s) until no phone resync job is queued or running, so
    /// nothing rewrites a phone's snapshot behind the test's back.
    pub async fn wait_resyncs_idle(&self) {
        let this = self;
        poll(
            "phone resync jobs to finish",
            Duration::from_secs(10),
            || async move {
                let c: Count =
                    diesel::sql_query("SELECT count(*) AS n FROM jobs WHERE kind = 'phone.resync'")
                        .get_result(&mut this.db().await)
                        .await
                        .map_err(|e| e.to_string())?;
                if c.n == 0 {
                    Ok(())
                } else {
                    Err(format!("{} pending", c.n))
                }
            },
        )
        .await
    }
}

/// A child process that is SIGKILLed (and reaped) if the test ends without
/// stopping it.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// The child's exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0.as_mut()?.try_wait().expect("try_wait")
    }

    /// SIGTERM, then waits (bounded) for the exit; `None` if it did not exit.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM delivered");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.0 = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
