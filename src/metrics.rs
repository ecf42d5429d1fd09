//! Prometheus metrics: requests by route and code, latency histograms, pool
//! usage, and Meta webhook deliveries processed by outcome. Rendered as text
//! at `/metrics`.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Set by handlers that route by themselves (the REST transcoder) so the
/// metric carries the route template, not the raw path.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteOnly, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    inbound: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wagate");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        let pool = Family::<PoolLabels, Gauge>::default();
        let inbound = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests by route and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state",
            pool.clone(),
        );
        registry.register(
            "inbound_deliveries",
            "Meta webhook deliveries processed by this instance, by outcome (processed, unparseable, unrouted, failed)",
            inbound.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            pool,
            inbound,
        }
    }

    /// Counts `n` deliveries that ended as `outcome` (an `inbound_webhooks.state`).
    pub fn inbound_done(&self, outcome: &'static str, n: u64) {
        self.inbound
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n);
    }

    pub fn set_pool(&self, size: usize, available: usize, max: usize) {
        for (state, v) in [("open", size), ("idle", available), ("max", max)] {
            self.pool
                .get_or_create(&PoolLabels {
                    state: state.into(),
                })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            return String::new();
        }
        out
    }

    fn observe(&self, route: String, code: String, secs: f64) {
        self.latency
            .get_or_create(&RouteOnly {
                route: route.clone(),
            })
            .observe(secs);
        self.requests
            .get_or_create(&RequestLabels { route, code })
            .inc();
    }
}

/// What the recording middleware needs: the metrics, and the path of every
/// RPC served. A gRPC request is labelled with its path only when it names
/// one of those; anything else shares the `not_found` label with unknown
/// REST routes, so callers cannot mint a series per made-up path.
#[derive(Clone)]
pub struct Tracking {
    metrics: Arc<Metrics>,
    grpc_methods: Arc<HashSet<String>>,
}

impl Tracking {
    pub fn new(metrics: Arc<Metrics>, grpc_methods: impl IntoIterator<Item = String>) -> Self {
        Self {
            metrics,
            grpc_methods: Arc::new(grpc_methods.into_iter().collect()),
        }
    }
}

/// The label of every request that matched no route.
pub const NOT_FOUND_ROUTE: &str = "not_found";

/// Middleware recording every request.
pub async fn track(State(t): State<Tracking>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let is_grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let grpc_route = is_grpc.then(|| {
        let path = req.uri().path();
        if t.grpc_methods.contains(path) {
            path.to_owned()
        } else {
            NOT_FOUND_ROUTE.to_owned()
        }
    });
    let resp = next.run(req).await;
    let route = if let Some(label) = resp.extensions().get::<RouteLabel>() {
        label.0.clone()
    } else if let Some(route) = grpc_route {
        route
    } else {
        matched.unwrap_or_else(|| "unmatched".into())
    };
    let code = match resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
    {
        Some(grpc) => format!("grpc_{grpc}"),
        None => resp.status().as_u16().to_string(),
    };
    t.metrics
        .observe(route, code, start.elapsed().as_secs_f64());
    resp
}
