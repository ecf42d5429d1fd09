//! Idempotency keys, scoped per organization and kept 24 hours.
//!
//! A keyed request runs in a transaction that first takes a transaction-
//! scoped advisory lock on (organization, key): a concurrent request with the
//! same key cannot take it and is told the first is still in flight. The key
//! row is written in the same transaction as the request's effects, so a
//! crash leaves neither or both. Keyed single sends share that transaction
//! with others in the outbound writer's batches, so claims and records come
//! in sets, each with a fixed number of statements.
use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Bytea, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreResult;
use super::events::CachedSql;
use super::schema::idempotency_keys;

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;

#[derive(Debug)]
pub enum Claim {
    /// First use (or the earlier use expired): go ahead, then `record`.
    Fresh,
    /// Same key, same request: the stored response.
    Replay(serde_json::Value),
    /// Same key, different request.
    Mismatch,
    /// Same key, and the first request is still running.
    InFlight,
}

/// A keyed request: its organization and key, what it asks (the RPC and a
/// fingerprint of the request), and the response to remember when it is
/// the first.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    pub org_id: Uuid,
    pub key: String,
    pub rpc: &'static str,
    pub fingerprint: Vec<u8>,
    pub response: serde_json::Value,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = SqlUuid)]
    org_id: Uuid,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    rpc: String,
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    response: Vec<u8>,
}

/// Claims each key (see the module docs), in order, with two statements
/// however many: the locks first, then, in a statement that sees whatever
/// committed before the locks were taken, the keys already used. A key
/// named twice is in flight the second time. Must run inside the
/// transaction that will hold the requests' effects.
pub async fn claim(conn: &mut AsyncPgConnection, claims: &[&KeyClaim]) -> StoreResult<Vec<Claim>> {
    let names: Vec<String> = claims
        .iter()
        .map(|c| format!("{}/{}", c.org_id, c.key))
        .collect();
    let locks: Vec<Locked> = CachedSql::new(
        "SELECT pg_try_advisory_xact_lock(hashtextextended(u.name, 0)) AS locked
           FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i) ORDER BY u.i",
    )
    .bind::<Array<Text>, _>(&names)
    .load(conn)
    .await?;
    // A probe of the key's index per claim (`LIMIT 1` keeps it one): as a
    // join, the writer's generic plan hashed the whole table every batch.
    let stored: Vec<Stored> = CachedSql::new(
        "SELECT x.org_id, x.key, x.rpc, x.fingerprint, x.response
           FROM unnest($1::uuid[], $2::text[]) AS u(org_id, key)
          CROSS JOIN LATERAL (
                SELECT k.org_id, k.key, k.rpc, k.fingerprint, k.response
                  FROM idempotency_keys k
                 WHERE k.org_id = u.org_id AND k.key = u.key AND k.created_at > $3
                 LIMIT 1) x",
    )
    .bind::<Array<SqlUuid>, _>(claims.iter().map(|c| c.org_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(Utc::now() - Duration::hours(RETENTION_HOURS))
    .load(conn)
    .await?;
    let mut seen = std::collections::HashSet::new();
    Ok(claims
        .iter()
        .zip(&locks)
        .map(|(c, lock)| {
            if !lock.locked || !seen.insert((c.org_id, c.key.as_str())) {
                return Claim::InFlight;
            }
            match stored
                .iter()
                .find(|x| x.org_id == c.org_id && x.key == c.key)
            {
                None => Claim::Fresh,
                Some(x) if x.rpc == c.rpc && x.fingerprint == c.fingerprint => Claim::Replay(
                    serde_json::from_slice(&x.response).unwrap_or(serde_json::Value::Null),
                ),
                Some(_) => Claim::Mismatch,
            }
        })
        .collect())
}

/// Remembers the responses of fresh requests (replacing expired entries),
/// in one statement. Each key once: the claims [`claim`] found fresh.
pub async fn record(conn: &mut AsyncPgConnection, claims: &[&KeyClaim]) -> StoreResult<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let bodies: Vec<Vec<u8>> = claims
        .iter()
        .map(|c| serde_json::to_vec(&c.response).unwrap_or_default())
        .collect();
    CachedSql::new(
        "INSERT INTO idempotency_keys (org_id, key, rpc, fingerprint, response, created_at)
         SELECT u.org_id, u.key, u.rpc, u.fingerprint, u.response, $6
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[])
                AS u(org_id, key, rpc, fingerprint, response)
         ON CONFLICT (org_id, key) DO UPDATE
            SET rpc = excluded.rpc, fingerprint = excluded.fingerprint,
                response = excluded.response, created_at = excluded.created_at",
    )
    .bind::<Array<SqlUuid>, _>(claims.iter().map(|c| c.org_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(claims.iter().map(|c| c.rpc).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(
        claims
            .iter()
            .map(|c| c.fingerprint.as_slice())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Bytea>, _>(bodies.iter().map(Vec::as_slice).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(Utc::now())
    .execute(conn)
    .await?;
    Ok(())
}

impl super::Store {
    /// Forgets keys older than the retention period; returns how many.
    pub async fn prune_idempotency_keys(&self) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        Ok(diesel::delete(idempotency_keys::table.filter(
            idempotency_keys::created_at.lt(Utc::now() - Duration::hours(RETENTION_HOURS)),
        ))
        .execute(&mut conn)
        .await?)
    }
}
