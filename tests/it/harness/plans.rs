//! Reading `EXPLAIN (ANALYZE, FORMAT JSON)` output: how many rows each
//! plan node over a table produced, and how many more it read and threw
//! away, over all its loops.
use serde_json::Value;

/// The rows of one plan node over a table.
#[derive(Debug, Clone, Copy)]
pub struct Scan {
    /// Rows the node produced.
    pub rows: f64,
    /// Rows it read and discarded (its filter and its index recheck).
    pub removed: f64,
}

/// Every node over `table` in the plan rooted at `node`. EXPLAIN gives
/// each count per loop.
pub fn scans(node: &Value, table: &str) -> Vec<Scan> {
    let mut out = Vec::new();
    collect(node, table, &mut out);
    out
}

fn collect(node: &Value, table: &str, out: &mut Vec<Scan>) {
    let num = |key: &str| node[key].as_f64().unwrap_or(0.0);
    if node["Relation Name"] == table {
        let loops = node["Actual Loops"].as_f64().unwrap_or(1.0);
        out.push(Scan {
            rows: num("Actual Rows") * loops,
            removed: (num("Rows Removed by Filter") + num("Rows Removed by Index Recheck")) * loops,
        });
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect(child, table, out);
    }
}

/// The rows the plan read from `table`, kept or discarded.
pub fn rows_examined(plan: &Value, table: &str) -> f64 {
    scans(plan, table).iter().map(|s| s.rows + s.removed).sum()
}
