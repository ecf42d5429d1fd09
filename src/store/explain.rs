//! `EXPLAIN (ANALYZE, FORMAT JSON)` of a diesel query: plan tests run the
//! store's own queries, as built, over tables shaped like production's, and
//! check how many rows each plan reads.
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::Json;

/// The query `Q`, run under `EXPLAIN (ANALYZE, FORMAT JSON)`: its result is
/// the plan, with each node's actual rows.
#[derive(Debug, Clone)]
pub struct Explain<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.push_sql("EXPLAIN (ANALYZE, FORMAT JSON) ");
        self.0.walk_ast(out.reborrow())
    }
}

// Not cached as a prepared statement: each explained query runs once.
impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q> Query for Explain<Q> {
    type SqlType = Json;
}
