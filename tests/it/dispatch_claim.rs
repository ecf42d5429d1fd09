//! The dispatcher's claim reads the batch it claims, not the phone's whole
//! backlog, whatever the planner knows of the table. A bulk campaign fills
//! the queue faster than autovacuum analyses it; a claim planned from
//! missing statistics once hashed and sorted every due message before its
//! LIMIT (0.2–1.8 s a claim under a backlog of 170,000, a CPU kept busy).
//! The test fails with that join (checked).

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;
use wagate::store::dispatch::CLAIM_CANDIDATES;

use crate::harness::pg::fresh_database;
use crate::harness::plans::scans;

const BACKLOG: i64 = 100_000;
const BATCH: i64 = 8;

#[derive(QueryableByName)]
struct Explained {
    #[diesel(sql_type = diesel::sql_types::Json, column_name = "QUERY PLAN")]
    plan: Value,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_reads_its_batch_not_the_backlog_of_a_table_never_analysed() {
    let url = fresh_database().await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    // Never analysed, as a table just filled by a campaign is until
    // autovacuum comes round. The planner then estimates rows from the
    // table's pages, so the rows carry a body of a real message's size.
    for table in ["messages", "pair_pacing"] {
        diesel::sql_query(format!(
            "ALTER TABLE {table} SET (autovacuum_enabled = off)"
        ))
        .execute(&mut conn)
        .await
        .expect("autovacuum off");
    }
    let (org, phone) = (Uuid::now_v7(), Uuid::now_v7());
    let inserted = diesel::sql_query(
        "INSERT INTO messages (id, org_id, phone_id, direction, type, content, payload,
                               status, recipient, next_attempt_at)
         SELECT gen_random_uuid(), $1, $2, 'outbound', 'text',
                jsonb_build_object('body', repeat('x', 700)), '{}', 'queued', '54911' || lpad(g::text, 8, '0'),
                now() - interval '1 hour' + g * interval '1 ms'
           FROM generate_series(1, $3) g",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(phone)
    .bind::<BigInt, _>(BACKLOG)
    .execute(&mut conn)
    .await
    .expect("backlog");
    assert_eq!(inserted as i64, BACKLOG);
    // Recipients sent to a moment ago, as the claims before this one left them.
    diesel::sql_query(
        "INSERT INTO pair_pacing (phone_id, recipient, tat)
         SELECT $1, '54911' || lpad(g::text, 8, '0'), now() + interval '5 s'
           FROM generate_series(1, 50) g",
    )
    .bind::<SqlUuid, _>(phone)
    .execute(&mut conn)
    .await
    .expect("pair pacing");
    let analysed: Vec<Explained> = diesel::sql_query(
        "SELECT to_json(count(*)) AS \"QUERY PLAN\" FROM pg_stats WHERE tablename = 'messages'",
    )
    .load(&mut conn)
    .await
    .expect("pg_stats");
    assert_eq!(analysed[0].plan, 0, "the table must have no statistics");

    let explained: Vec<Explained> =
        diesel::sql_query(format!("EXPLAIN (ANALYZE, FORMAT JSON) {CLAIM_CANDIDATES}"))
            .bind::<SqlUuid, _>(phone)
            .bind::<Timestamptz, _>(chrono::Utc::now())
            .bind::<BigInt, _>(BATCH)
            .load(&mut conn)
            .await
            .expect("explain the claim");
    let root = &explained[0].plan[0]["Plan"];
    assert_eq!(
        root["Actual Rows"], BATCH,
        "the claim returns a batch: {root:#}"
    );
    let read = scans(root, "messages");
    assert!(!read.is_empty(), "no scan of messages in {root:#}");
    let total: f64 = read.iter().map(|s| s.rows).sum();
    assert!(
        total <= BATCH as f64,
        "the claim read {total} due messages for a batch of {BATCH}: {root:#}"
    );
}
