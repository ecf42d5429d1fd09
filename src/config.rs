//! Command line and configuration: flags with matching environment variables.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "wagate",
    version,
    about = "A self-hostable, multi-tenant, gRPC-first platform in front of Meta's WhatsApp Cloud API",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `wagate` with no sub-command is `wagate serve`.
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
    /// Log format.
    #[arg(
        long,
        env = "WAGATE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: gRPC, grpc-web and REST on one port (the default).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Run the Cloud API simulator on its own port.
    Simulator(SimulatorArgs),
    /// Operator commands on organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Operator commands on Meta's webhook deliveries.
    Inbound {
        #[command(subcommand)]
        command: InboundCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Set an organization's plan (basic, pro, ultra, mega).
    SetPlan {
        /// Organization id (UUID).
        #[arg(long)]
        org: String,
        #[arg(long)]
        plan: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// List deliveries that need an operator: unrouted (a phone number or
    /// WABA no organization has), unparseable, or failed after every retry.
    Unrouted {
        /// At most this many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Process a stored delivery again (e.g. once its phone is connected).
    Reprocess {
        /// The delivery's id (from `wagate inbound unrouted`).
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory for local state, including the embedded PostgreSQL cluster.
    #[arg(long, env = "WAGATE_DATA_DIR", default_value = "wagate-data")]
    pub data_dir: PathBuf,
    /// Use this PostgreSQL instead of the embedded one.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Connections in the pool.
    #[arg(long, env = "WAGATE_DB_POOL_SIZE", default_value_t = 32)]
    pub pool_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (gRPC, grpc-web and REST share it).
    #[arg(long, env = "WAGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub dispatch: DispatchArgs,
    /// Public base URL (for hosted pages and links); defaults to http://<listen>.
    #[arg(long, env = "WAGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest request accepted: a REST body, or a gRPC request message.
    #[arg(long, env = "WAGATE_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Origins allowed by CORS (comma-separated); unset allows any origin without credentials.
    #[arg(long, env = "WAGATE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Meta app id. Without a Meta app, wagate runs in sandbox mode against the built-in simulator.
    #[arg(long, env = "META_APP_ID")]
    pub meta_app_id: Option<String>,
    /// Meta app secret (Embedded Signup code exchange, debug_token).
    #[arg(long, env = "META_APP_SECRET", hide_env_values = true)]
    pub meta_app_secret: Option<String>,
    /// Secret Meta signs webhooks with (X-Hub-Signature-256).
    #[arg(long, env = "WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub whatsapp_app_secret: Option<String>,
    /// Token Meta presents when verifying the webhook URL.
    #[arg(long, env = "WHATSAPP_VERIFY_TOKEN", hide_env_values = true)]
    pub whatsapp_verify_token: Option<String>,
    /// Graph API base URL.
    #[arg(long, env = "META_GRAPH_URL")]
    pub meta_graph_url: Option<String>,
    /// Graph API version.
    #[arg(long, env = "META_API_VERSION", default_value = "v23.0")]
    pub meta_api_version: String,
    /// Key that encrypts stored Meta access tokens (base64 of 32 bytes).
    #[arg(long, env = "WAGATE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// Outgoing webhooks.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Allow webhook URLs on private and loopback addresses (local development
    /// and tests only). Link-local, cloud metadata and reserved addresses stay refused.
    #[arg(long, env = "WAGATE_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Delays between attempts after each failure (ms, s, m, h, d); attempts
    /// = delays + 1. The default is the documented schedule; lengthen it to
    /// retry over days, e.g. 1m,5m,15m,1h,6h,12h,1d,1d.
    #[arg(
        long,
        env = "WAGATE_WEBHOOKS_RETRY_SCHEDULE",
        default_value = "1m,5m,15m,1h"
    )]
    pub webhooks_retry_schedule: String,
    /// Longest delay a receiver's Retry-After may ask for.
    #[arg(long, env = "WAGATE_WEBHOOKS_RETRY_AFTER_MAX", default_value = "1h")]
    pub webhooks_retry_after_max: String,
    /// Time allowed for one attempt (connect to the end of the response).
    #[arg(long, env = "WAGATE_WEBHOOKS_TIMEOUT", default_value = "15s")]
    pub webhooks_timeout: String,
    /// Attempts in flight per instance.
    #[arg(long, env = "WAGATE_WEBHOOKS_CONCURRENCY", default_value_t = 256)]
    pub webhooks_concurrency: usize,
    /// Attempts in flight per endpoint, across all instances, so one slow
    /// receiver cannot hold up the others.
    #[arg(
        long,
        env = "WAGATE_WEBHOOKS_ENDPOINT_CONCURRENCY",
        default_value_t = 16
    )]
    pub webhooks_endpoint_concurrency: usize,
}

impl WebhookArgs {
    pub fn options(&self) -> anyhow::Result<crate::delivery::WebhookOptions> {
        use crate::domain::webhooks::schedule::{RetrySchedule, parse_duration, parse_schedule};
        let bad = |flag: &str, e: String| anyhow::anyhow!("{flag}: {e}");
        let timeout = parse_duration(&self.webhooks_timeout)
            .map_err(|e| bad("WAGATE_WEBHOOKS_TIMEOUT", e))?;
        if timeout.is_zero() {
            anyhow::bail!("WAGATE_WEBHOOKS_TIMEOUT must be more than zero");
        }
        Ok(crate::delivery::WebhookOptions {
            allow_private: self.webhooks_allow_private,
            schedule: RetrySchedule {
                delays: parse_schedule(&self.webhooks_retry_schedule)
                    .map_err(|e| bad("WAGATE_WEBHOOKS_RETRY_SCHEDULE", e))?,
                retry_after_max: parse_duration(&self.webhooks_retry_after_max)
                    .map_err(|e| bad("WAGATE_WEBHOOKS_RETRY_AFTER_MAX", e))?,
                ..RetrySchedule::default()
            },
            timeout,
            concurrency: self.webhooks_concurrency.max(1),
            endpoint_concurrency: self.webhooks_endpoint_concurrency.max(1),
            ..crate::delivery::WebhookOptions::default()
        })
    }
}

impl ServeArgs {
    /// Sandbox mode: no Meta app configured.
    pub fn sandbox(&self) -> bool {
        self.meta_app_id.is_none()
    }
}

#[derive(Debug, Clone, Args)]
pub struct SimulatorArgs {
    /// Address the simulator listens on.
    #[arg(
        long,
        env = "WAGATE_SIMULATOR_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,
    /// App secret the simulator signs its webhooks with.
    #[arg(
        long,
        env = "WHATSAPP_APP_SECRET",
        default_value = "sandbox-app-secret",
        hide_env_values = true
    )]
    pub app_secret: String,
    /// Where the simulator posts its webhooks (wagate's /webhooks/whatsapp).
    #[arg(long, env = "WAGATE_SIMULATOR_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
}

/// The outbound dispatcher.
#[derive(Debug, Clone, Args)]
pub struct DispatchArgs {
    /// Seconds a claimed message is leased to one dispatcher.
    #[arg(
        long = "dispatch-lease-secs",
        env = "WAGATE_DISPATCH_LEASE_SECS",
        default_value_t = 60
    )]
    pub lease_secs: u64,
    /// After a lost lease (a crashed instance), seconds to wait for Meta's status before sending again.
    #[arg(
        long = "dispatch-crash-grace-secs",
        env = "WAGATE_DISPATCH_CRASH_GRACE_SECS",
        default_value_t = 60
    )]
    pub crash_grace_secs: u64,
    /// After a timeout (outcome unknown), seconds to wait for Meta's status before failing the message.
    #[arg(
        long = "dispatch-timeout-grace-secs",
        env = "WAGATE_DISPATCH_TIMEOUT_GRACE_SECS",
        default_value_t = 900
    )]
    pub timeout_grace_secs: u64,
    /// Attempts before a message with retryable errors fails.
    #[arg(
        long = "dispatch-max-attempts",
        env = "WAGATE_DISPATCH_MAX_ATTEMPTS",
        default_value_t = 8
    )]
    pub max_attempts: i32,
}

impl DispatchArgs {
    /// Refuses a lease and crash grace that together end before Meta's
    /// answer may still arrive: a slow but live dispatcher's message would
    /// be claimed again and sent twice.
    pub fn options(&self) -> anyhow::Result<crate::dispatch::DispatchOptions> {
        use std::time::Duration;
        let graph_timeout = crate::dispatch::GRAPH_REQUEST_TIMEOUT.as_secs();
        let held = self.lease_secs.saturating_add(self.crash_grace_secs);
        anyhow::ensure!(
            held > graph_timeout,
            "--dispatch-lease-secs ({}) plus --dispatch-crash-grace-secs ({}) must exceed \
             the {graph_timeout} s a request to Meta may take, or a slow answer could be sent twice",
            self.lease_secs,
            self.crash_grace_secs
        );
        Ok(crate::dispatch::DispatchOptions {
            lease: Duration::from_secs(self.lease_secs.max(1)),
            crash_grace: Duration::from_secs(self.crash_grace_secs),
            timeout_grace: Duration::from_secs(self.timeout_grace_secs),
            max_attempts: self.max_attempts.max(1),
            ..Default::default()
        })
    }
}
