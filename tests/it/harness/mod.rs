//! Test harness: database per test, server per test, clients.
pub mod clients;
pub mod outbound;
pub mod pg;
pub mod plans;
pub mod sandbox;
pub mod tools;

use serde_json::{Value, json};
use wagate::server::{self, MetaOptions, RunningServer, ServerOptions};

pub use clients::{GrpcWeb, Rest};

/// A server on its own fresh database.
pub struct TestServer {
    pub running: Option<RunningServer>,
    pub base: String,
    /// The test's database, for a second instance on it.
    #[allow(dead_code)]
    pub database_url: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let database_url = pg::fresh_database().await;
        Self::start_on(database_url).await
    }

    /// A second server on an existing database (several instances).
    pub async fn start_on(database_url: String) -> TestServer {
        Self::start_with(Self::options(database_url)).await
    }

    /// What a test server starts with: sandbox mode, a fresh master key.
    pub fn options(database_url: String) -> ServerOptions {
        ServerOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url,
            pool_size: 8,
            max_body_bytes: 64 * 1024,
            cors_origins: Vec::new(),
            meta: MetaOptions::sandbox_defaults(),
            master_key: wagate::crypto::SecretBox::generate_key(),
            dispatch: wagate::dispatch::DispatchOptions::default(),
            webhooks: wagate::delivery::WebhookOptions::default(),
        }
    }

    /// A server with adjusted options.
    pub async fn start_with(opts: ServerOptions) -> TestServer {
        wagate::install_crypto_provider();
        let database_url = opts.database_url.clone();
        let running = server::start(opts).await.expect("server starts");
        let addr = running.addr;
        TestServer {
            running: Some(running),
            base: format!("http://{addr}"),
            database_url,
        }
    }

    pub fn rest(&self) -> Rest {
        Rest::new(&self.base)
    }

    pub fn grpc_web(&self) -> GrpcWeb {
        GrpcWeb::new(&self.base)
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.base.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("gRPC connects")
    }

    /// Registers an organization over REST; returns (api key, full response body).
    pub async fn register(&self, email: &str) -> (String, Value) {
        let (status, body) = self
            .rest()
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery", "name": "Acme Corp"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let key = body["data"]["apiKey"].as_str().expect("apiKey").to_owned();
        (key, body)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }
}

/// Adds `Authorization: Bearer <key>` to a tonic request.
pub fn authed<T>(msg: T, key: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("metadata"),
    );
    req
}

/// The contract code a gRPC error carries (ErrorInfo reason).
pub fn grpc_reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}
