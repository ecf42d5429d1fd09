//! One port for gRPC (h2c), grpc-web (HTTP/1.1 and HTTP/2, CORS) and REST.
//!
//! gRPC services live under `/{package.Service}/{Method}` behind the
//! authentication layer; grpc-web is translated in front of them; everything
//! else falls through to the REST transcoder, which calls the very same
//! authenticated gRPC router in-process.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use http::{HeaderName, HeaderValue, Method};
use prost_reflect::DescriptorPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::app::{App, AppState, MetaApp};
use crate::auth::layer::AuthLayer;
use crate::crypto::SecretBox;
use crate::metrics::{self, Metrics};
use crate::ops::{self, OpsState};
use crate::rest::{self, Transcoder};
use crate::store::Store;
use crate::workers::Workers;
use crate::{api, pb};

/// What a server needs once its database exists.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub database_url: String,
    pub pool_size: usize,
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
    pub meta: MetaOptions,
    /// Base64 of the 32-byte key that encrypts stored secrets.
    pub master_key: String,
    /// The outbound dispatcher's settings.
    pub dispatch: crate::dispatch::DispatchOptions,
    /// Outgoing webhooks: SSRF override, retry schedule, timeout, concurrency.
    pub webhooks: crate::delivery::WebhookOptions,
}

/// How to reach Meta. With neither an app id nor a Graph URL, wagate runs in
/// sandbox mode: the in-process simulator (mounted at `/sandbox`) is both the
/// Graph API and the source of webhooks.
#[derive(Debug, Clone)]
pub struct MetaOptions {
    pub graph_url: Option<String>,
    pub api_version: String,
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
    /// Secret Meta signs webhooks with (WHATSAPP_APP_SECRET).
    pub webhook_secret: Option<String>,
    /// Token Meta presents when verifying the webhook URL.
    pub verify_token: Option<String>,
}

/// The app secret the sandbox simulator signs webhooks with, unless set.
pub const SANDBOX_APP_SECRET: &str = "sandbox-app-secret";
/// The webhook verify token in sandbox mode, unless set.
pub const SANDBOX_VERIFY_TOKEN: &str = "sandbox-verify-token";

impl MetaOptions {
    pub fn sandbox(&self) -> bool {
        self.app_id.is_none() && self.graph_url.is_none()
    }

    /// Sandbox defaults: a fixed, documented secret and verify token.
    pub fn sandbox_defaults() -> Self {
        Self {
            graph_url: None,
            api_version: wagate_meta::graph::GraphConfig::DEFAULT_API_VERSION.into(),
            app_id: None,
            app_secret: None,
            webhook_secret: None,
            verify_token: None,
        }
    }
}

/// A running server: its address and a handle to stop it gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub app: App,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, stops the workers.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.task.await??;
        for w in self.workers {
            let _ = w.await;
        }
        Ok(())
    }

    /// Resolves when the server stops on its own (it normally does not).
    pub async fn wait_for(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        tokio::select! {
            _ = signal => {}
            r = &mut self.task => { r??; return Ok(()); }
        }
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await
    }
}

/// Migrates the database, connects, binds and starts serving.
pub async fn start(opts: ServerOptions) -> anyhow::Result<RunningServer> {
    let applied = Store::migrate(&opts.database_url).await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    let store = Store::connect(&opts.database_url, opts.pool_size)?;
    let listener = TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let sandbox = opts.meta.sandbox();
    let simulator = sandbox.then(|| {
        let secret = opts
            .meta
            .webhook_secret
            .clone()
            .unwrap_or_else(|| SANDBOX_APP_SECRET.into());
        let mut cfg = wagate_simulator::SimulatorConfig::new(secret);
        cfg.webhook_url = Some(format!("http://{addr}/webhooks/whatsapp"));
        cfg.public_base_url = Some(format!("http://{addr}/sandbox"));
        wagate_simulator::Simulator::new(cfg)
    });
    let graph_url = match (&opts.meta.graph_url, sandbox) {
        (Some(url), _) => url.clone(),
        (None, true) => format!("http://{addr}/sandbox/"),
        (None, false) => wagate_meta::graph::GraphConfig::DEFAULT_BASE_URL.into(),
    };
    let graph_config = wagate_meta::graph::GraphConfig {
        // The dispatcher's lease settings are checked against it.
        request_timeout: crate::dispatch::GRAPH_REQUEST_TIMEOUT,
        ..wagate_meta::graph::GraphConfig::new(
            url::Url::parse(&graph_url)?,
            opts.meta.api_version.clone(),
        )
    };
    let graph = wagate_meta::graph::GraphClient::new(graph_config)?;
    let secrets = SecretBox::from_base64(&opts.master_key)?;
    let webhooks = crate::delivery::Deliverer::new(opts.webhooks.clone(), secrets.clone())?;
    let dispatch_wake = Arc::new(tokio::sync::Notify::new());
    let inbound = crate::inbound::Inbound::new(
        store.clone(),
        Store::connect(&opts.database_url, crate::inbound::PROCESSOR_POOL)?,
        inbound_options(&opts.meta, sandbox),
    );
    let app: App = Arc::new(AppState {
        inbound,
        store: store.clone(),
        sandbox,
        started: Instant::now(),
        workers: Workers::default(),
        meta: MetaApp {
            graph,
            // In sandbox mode the simulator plays the Meta app too (code exchange, debug_token).
            app_id: simulator
                .as_ref()
                .map(|s| s.config().app_id)
                .or_else(|| opts.meta.app_id.clone()),
            app_secret: simulator
                .as_ref()
                .map(|s| s.config().app_secret)
                .or_else(|| opts.meta.app_secret.clone()),
        },
        secrets,
        simulator,
        webhooks,
        outbound: crate::store::outbound::OutboundWriter::spawn(
            store.clone(),
            dispatch_wake.clone(),
        ),
        dispatch_wake,
        metrics: Arc::new(Metrics::new()),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut workers = spawn_workers(&app, shutdown_rx.clone());
    workers.push(tokio::spawn({
        let (store, shutdown) = (store.clone(), shutdown_rx.clone());
        async move { store.watch_changes(shutdown).await }
    }));
    workers.extend(crate::jobs::spawn(&app, shutdown_rx.clone()));
    workers.extend(crate::dispatch::spawn(
        &app,
        opts.dispatch.clone(),
        shutdown_rx.clone(),
    ));
    workers.extend(crate::delivery::spawn(&app, shutdown_rx.clone()));
    workers.extend(crate::inbound::spawn(&app, shutdown_rx.clone()));
    let router = router(&app, &opts).await?;
    let mut rx = shutdown_rx;
    let task = tokio::spawn(async move {
        // Without TCP_NODELAY, a gRPC answer (HEADERS, DATA and trailers,
        // written separately) waits out Nagle and the client's delayed ACK:
        // about 40 ms a call.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, sandbox, graph = %graph_url, "wagate listening (gRPC, grpc-web and REST)");
    Ok(RunningServer {
        addr,
        app,
        shutdown,
        task,
        workers,
    })
}

/// The webhook receiver's secret and verify token: WHATSAPP_APP_SECRET (else
/// the Meta app secret, which is what Meta signs with) and
/// WHATSAPP_VERIFY_TOKEN; in sandbox mode the documented sandbox values.
/// Outside sandbox mode nothing is defaulted: without a secret every
/// delivery is refused.
fn inbound_options(meta: &MetaOptions, sandbox: bool) -> crate::inbound::InboundOptions {
    let app_secret = match (&meta.webhook_secret, sandbox) {
        (Some(s), _) => Some(s.clone()),
        (None, true) => Some(SANDBOX_APP_SECRET.into()),
        (None, false) => meta.app_secret.clone(),
    };
    let verify_token = match (&meta.verify_token, sandbox) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => Some(SANDBOX_VERIFY_TOKEN.into()),
        (None, false) => None,
    };
    crate::inbound::InboundOptions {
        app_secret: app_secret.filter(|s| !s.is_empty()),
        verify_token: verify_token.filter(|t| !t.is_empty()),
    }
}

fn spawn_workers(app: &App, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let store = app.store.clone();
    // Keeps the pool warm and proves the worker runtime is alive; later
    // issues add the dispatcher, inbound processing and webhook delivery.
    let maintenance = app.workers.spawn(
        "maintenance",
        Duration::from_secs(10),
        shutdown,
        move || {
            let store = store.clone();
            async move { store.ping().await.map_err(anyhow::Error::from) }
        },
    );
    vec![maintenance]
}

/// The whole HTTP surface on one router.
pub async fn router(app: &App, opts: &ServerOptions) -> anyhow::Result<Router> {
    let pool = DescriptorPool::decode(pb::DESCRIPTOR)?;
    let (routes, served) = api::grpc_routes(app, opts.max_body_bytes).await?;
    let tracking = metrics::Tracking::new(app.metrics.clone(), api::method_paths(&pool, &served)?);
    let grpc = routes
        .into_axum_router()
        .reset_fallback()
        .layer(middleware::from_fn(api::unreadable::rewrite))
        .layer(AuthLayer::new(
            app.store.clone(),
            rest::routes::public_methods(&pool),
        ));
    let transcoder = Arc::new(Transcoder::new(
        &pool,
        &served,
        grpc.clone(),
        opts.max_body_bytes,
    )?);
    let ops_state = OpsState {
        app: app.clone(),
        openapi: Arc::new(rest::openapi::document(
            transcoder.routes(),
            transcoder.mapping(),
            env!("CARGO_PKG_VERSION"),
        )),
    };
    let ops = Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .with_state(ops_state);
    let grpc_web = grpc
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(middleware::from_fn(rest::bare_errors::grpc_transport));
    // Meta's webhook: hand-written, it needs the raw body for the signature.
    let ops = ops.merge(
        crate::inbound::routes(app).layer(middleware::from_fn_with_state(
            crate::inbound::MAX_BODY_BYTES,
            rest::bare_errors::too_large,
        )),
    );
    let ops = match &app.simulator {
        Some(sim) => ops.nest("/sandbox", sim.router()),
        None => ops,
    };
    let fallback = move |req: Request| {
        let t = transcoder.clone();
        async move { t.handle(req).await }
    };
    Ok(ops
        .merge(grpc_web)
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(tracking, metrics::track))
        .layer(cors(&opts.cors_origins))
        .layer(middleware::from_fn(request_id)))
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(
            [
                "authorization",
                "content-type",
                "idempotency-key",
                "x-request-id",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
            ]
            .map(HeaderName::from_static),
        )
        .expose_headers(
            [
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                "x-request-id",
                "retry-after",
                "idempotent-replayed",
            ]
            .map(HeaderName::from_static),
        )
        .max_age(Duration::from_secs(600))
}

/// Gives every request an id (the caller's `x-request-id`, or a new one),
/// echoes it, and logs the request inside a span carrying it.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    async move {
        let start = Instant::now();
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        tracing::info!(
            status = resp.status().as_u16(),
            elapsed_ms = start.elapsed().as_millis() as u64,
            "request"
        );
        resp
    }
    .instrument(span)
    .await
}
