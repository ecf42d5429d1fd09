//! Listing messages by a status that few or none of an organization's
//! messages have reads the rows it lists and counts, not the
//! organization's whole history: finding the failed messages to retry
//! among a million read ones took 2.4 s, and as long again to count them,
//! when the list walked the organization's index in page order, filtering
//! as it went. It holds whether or not the table has been analysed. The
//! test fails without the status index of migration 13 (checked).

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;
use wagate::store::messages::MessageFilter;
use wagate::store::{PageRequest, Store};

use crate::harness::pg::fresh_database;
use crate::harness::plans::rows_examined;

const HISTORY: i64 = 100_000;
/// Every this many messages of the history failed.
const FAILED_EVERY: i64 = 4_000;

#[tokio::test(flavor = "multi_thread")]
async fn listing_a_rare_or_absent_status_reads_what_it_lists_analysed_or_not() {
    let url = fresh_database().await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    diesel::sql_query("ALTER TABLE messages SET (autovacuum_enabled = off)")
        .execute(&mut conn)
        .await
        .expect("autovacuum off");
    let (org, other, phone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // A history of read messages of a realistic width, a few of them
    // failed; and another organization's failed messages, which no list
    // of the first may show.
    let history = diesel::sql_query(
        "INSERT INTO messages (id, org_id, phone_id, direction, type, content, payload,
                               status, recipient, created_at)
         SELECT gen_random_uuid(), $1, $2, 'outbound', 'text',
                jsonb_build_object('body', repeat('x', 500)), '{}'::jsonb,
                CASE WHEN g % $4 = 0 THEN 'failed' ELSE 'read' END,
                '54911' || lpad(g::text, 8, '0'),
                now() - interval '30 days' + g * interval '1 s'
           FROM generate_series(1, $3) g
         UNION ALL
         SELECT gen_random_uuid(), $5, $2, 'outbound', 'text', '{}'::jsonb, '{}'::jsonb, 'failed',
                '5491100000000', now()
           FROM generate_series(1, 10)",
    )
    .bind::<SqlUuid, _>(org)
    .bind::<SqlUuid, _>(phone)
    .bind::<BigInt, _>(HISTORY)
    .bind::<BigInt, _>(FAILED_EVERY)
    .bind::<SqlUuid, _>(other)
    .execute(&mut conn)
    .await
    .expect("history");
    assert_eq!(history as i64, HISTORY + 10);
    let failed = HISTORY / FAILED_EVERY;

    let store = Store::connect(&url, 2).expect("store");
    let page = PageRequest { page: 1, limit: 50 };
    for analysed in [false, true] {
        if analysed {
            diesel::sql_query("ANALYZE messages")
                .execute(&mut conn)
                .await
                .expect("analyse");
        }
        for (status, expected) in [("failed", failed), ("retrying", 0)] {
            let filter = MessageFilter {
                status: Some(status.into()),
                ..Default::default()
            };
            let (rows, total) = store.list_messages(org, &filter, page).await.expect("list");
            assert_eq!(total, expected, "{status} counted (analysed: {analysed})");
            assert_eq!(rows.len() as i64, expected, "{status} listed");
            assert!(
                rows.iter()
                    .all(|(m, _)| m.org_id == org && m.status == status),
                "only the organization's {status} messages"
            );
            assert!(
                rows.windows(2)
                    .all(|w| w[0].0.created_at >= w[1].0.created_at),
                "newest first"
            );

            let [count, list] = store
                .explain_list_messages(org, &filter, page)
                .await
                .expect("explain");
            for (what, plan) in [("count", &count), ("page", &list)] {
                let root = &plan[0]["Plan"];
                let read = rows_examined(root, "messages");
                assert!(
                    read <= expected as f64,
                    "the {what} of {status} messages read {read} rows for {expected} \
                     (analysed: {analysed}): {root:#}"
                );
            }
        }
    }
}
