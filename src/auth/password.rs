//! Passwords: argon2id with the crate defaults (19 MiB, t=2, p=1, the OWASP
//! minimum), stored as PHC strings. Hashing runs on the blocking pool: it is
//! deliberately slow, so only so many run at once.
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

pub async fn hash(password: String) -> anyhow::Result<String> {
    on_hashing_pool(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await
}

pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    on_hashing_pool(move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// How many hashes may run at once: half the CPUs (one on two). A burst
/// of registrations, which need no key, queues here instead of taking every
/// core from the requests already running (150 at once made an
/// authenticated request take 1.5 s instead of 4 ms).
fn hashing_permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(hashing_limit()))
}

fn hashing_limit() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / 2).max(1)
}

/// Runs `work` on the blocking pool once a hashing permit is free.
async fn on_hashing_pool<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let _permit = hashing_permits().acquire().await?;
    tokio::task::spawn_blocking(work).await?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_there_are_permits() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(super::on_hashing_pool(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        for t in tasks {
            t.await.expect("task").expect("work");
        }
        let limit = super::hashing_limit();
        let most = most.load(Ordering::SeqCst);
        assert!((1..=limit).contains(&most), "{most} at once, limit {limit}");
    }

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let h = super::hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(
            super::verify("correct horse".into(), h.clone())
                .await
                .expect("verify")
        );
        assert!(!super::verify("wrong".into(), h).await.expect("verify"));
    }
}
