//! Idempotency keys, scoped per organization and kept 24 hours.
//!
//! A keyed request runs in one transaction that first takes a transaction-
//! scoped advisory lock on (organization, key): a concurrent request with the
//! same key cannot take it and is told the first is still in flight. The key
//! row is written in the same transaction as the request's effects, so a
//! crash leaves neither or both.
use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreResult;
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

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Must run inside the transaction that will hold the request's effects.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    key: &str,
    rpc: &str,
    fingerprint: &[u8],
) -> StoreResult<Claim> {
    let lock: Locked =
        diesel::sql_query("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked")
            .bind::<Text, _>(format!("{org_id}/{key}"))
            .get_result(conn)
            .await?;
    if !lock.locked {
        return Ok(Claim::InFlight);
    }
    let existing: Option<(String, Vec<u8>, Vec<u8>)> = idempotency_keys::table
        .filter(idempotency_keys::org_id.eq(org_id))
        .filter(idempotency_keys::key.eq(key))
        .filter(idempotency_keys::created_at.gt(Utc::now() - Duration::hours(RETENTION_HOURS)))
        .select((
            idempotency_keys::rpc,
            idempotency_keys::fingerprint,
            idempotency_keys::response,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(match existing {
        None => Claim::Fresh,
        Some((stored_rpc, stored_fp, response))
            if stored_rpc == rpc && stored_fp == fingerprint =>
        {
            Claim::Replay(serde_json::from_slice(&response).unwrap_or(serde_json::Value::Null))
        }
        Some(_) => Claim::Mismatch,
    })
}

/// Remembers the response of a fresh request (replacing an expired entry).
pub async fn record(
    conn: &mut AsyncPgConnection,
    org_id: Uuid,
    key: &str,
    rpc: &str,
    fingerprint: &[u8],
    response: &serde_json::Value,
) -> StoreResult<()> {
    let body = serde_json::to_vec(response).unwrap_or_default();
    let now = Utc::now();
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::org_id.eq(org_id),
            idempotency_keys::key.eq(key),
            idempotency_keys::rpc.eq(rpc),
            idempotency_keys::fingerprint.eq(fingerprint),
            idempotency_keys::response.eq(&body),
            idempotency_keys::created_at.eq(now),
        ))
        .on_conflict((idempotency_keys::org_id, idempotency_keys::key))
        .do_update()
        .set((
            idempotency_keys::rpc.eq(rpc),
            idempotency_keys::fingerprint.eq(fingerprint),
            idempotency_keys::response.eq(&body),
            idempotency_keys::created_at.eq(now),
        ))
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
