//! The job queue: rows claimed with `FOR UPDATE SKIP LOCKED` under a lease
//! (a short transaction, so no HTTP call ever holds one open). Every later
//! change is fenced by the lease token: a worker that lost its lease cannot
//! overwrite anything.
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::jobs;
use super::{Store, StoreResult};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct JobRow {
    pub id: i64,
    pub org_id: Option<Uuid>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub unique_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub locked_until: Option<DateTime<Utc>>,
    pub lease_token: Option<Uuid>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    pub org_id: Option<Uuid>,
    pub kind: String,
    pub payload: serde_json::Value,
    pub unique_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i32,
}

/// Enqueues on an existing connection, so a job commits with the change
/// that caused it. A pending job with the same (kind, unique_key) absorbs it.
pub async fn enqueue_on(conn: &mut AsyncPgConnection, job: &NewJob) -> StoreResult<bool> {
    let n = diesel::insert_into(jobs::table)
        .values(job)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n > 0)
}

impl Store {
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        enqueue_on(&mut conn, job).await
    }

    /// Claims up to `limit` due jobs of these kinds for `lease`.
    pub async fn claim_jobs(
        &self,
        kinds: &[&str],
        limit: i64,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<JobRow>> {
        let mut conn = self.conn().await?;
        let lease_secs = lease.as_secs_f64();
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let rows = diesel::sql_query(
            "WITH c AS (
                SELECT id FROM jobs
                WHERE kind = ANY($1) AND run_at <= now()
                  AND (locked_until IS NULL OR locked_until < now())
                ORDER BY run_at, id
                LIMIT $2
                FOR UPDATE SKIP LOCKED)
             UPDATE jobs j
             SET attempts = j.attempts + 1,
                 locked_until = now() + make_interval(secs => $3),
                 lease_token = gen_random_uuid()
             FROM c WHERE j.id = c.id
             RETURNING j.*",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(kinds)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .bind::<diesel::sql_types::Double, _>(lease_secs)
        .load::<JobByName>(&mut conn)
        .await?;
        Ok(rows.into_iter().map(JobRow::from).collect())
    }

    /// Done: the job is deleted (if we still hold its lease).
    pub async fn complete_job(&self, id: i64, lease: Uuid) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        diesel::delete(
            jobs::table
                .filter(jobs::id.eq(id))
                .filter(jobs::lease_token.eq(lease)),
        )
        .execute(&mut conn)
        .await?;
        Ok(())
    }

    /// Failed: run again at `retry_at`, or (None) give up and keep the row
    /// for inspection with its last error.
    pub async fn fail_job(
        &self,
        id: i64,
        lease: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let target = jobs::table
            .filter(jobs::id.eq(id))
            .filter(jobs::lease_token.eq(lease));
        match retry_at {
            Some(at) => {
                diesel::update(target)
                    .set((
                        jobs::run_at.eq(at),
                        jobs::locked_until.eq(None::<DateTime<Utc>>),
                        jobs::lease_token.eq(None::<Uuid>),
                        jobs::last_error.eq(error),
                    ))
                    .execute(&mut conn)
                    .await?;
            }
            None => {
                // Parked for good, past the end of the claim's range of due
                // jobs (which would otherwise walk every dead job before the
                // live ones); unique_key released so new work can queue.
                diesel::update(target)
                    .set((
                        jobs::kind.eq(diesel::dsl::sql::<diesel::sql_types::Text>(
                            "'dead:' || kind",
                        )),
                        jobs::run_at.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                            "'infinity'",
                        )),
                        jobs::unique_key.eq(None::<String>),
                        jobs::locked_until.eq(None::<DateTime<Utc>>),
                        jobs::last_error.eq(error),
                    ))
                    .execute(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether a job of this kind and key is waiting or running.
    pub async fn job_pending(&self, kind: &str, unique_key: &str) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let n: i64 = jobs::table
            .filter(jobs::kind.eq(kind))
            .filter(jobs::unique_key.eq(unique_key))
            .count()
            .get_result(&mut conn)
            .await?;
        Ok(n > 0)
    }
}

/// `RETURNING j.*` read by column name.
#[derive(QueryableByName)]
#[diesel(table_name = jobs)]
struct JobByName {
    id: i64,
    org_id: Option<Uuid>,
    kind: String,
    payload: serde_json::Value,
    unique_key: Option<String>,
    run_at: DateTime<Utc>,
    attempts: i32,
    max_attempts: i32,
    locked_until: Option<DateTime<Utc>>,
    lease_token: Option<Uuid>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<JobByName> for JobRow {
    fn from(j: JobByName) -> Self {
        JobRow {
            id: j.id,
            org_id: j.org_id,
            kind: j.kind,
            payload: j.payload,
            unique_key: j.unique_key,
            run_at: j.run_at,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            locked_until: j.locked_until,
            lease_token: j.lease_token,
            last_error: j.last_error,
            created_at: j.created_at,
        }
    }
}
