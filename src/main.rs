use clap::Parser;
use tracing_subscriber::EnvFilter;
use wagate::config::{Cli, Command, LogFormat, OrgCommand, ServeArgs};
use wagate::database::Database;
use wagate::server::{self, MetaOptions, ServerOptions};

#[tokio::main]
async fn main() {
    wagate::install_crypto_provider();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        None => serve(*cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(db)) => migrate(db).await,
        Some(Command::Simulator(args)) => simulator(args).await,
        Some(Command::Org { command }) => org(command).await,
        Some(Command::Inbound { command }) => inbound(command).await,
    };
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("wagate: {e:#}");
        std::process::exit(1);
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let meta = MetaOptions {
        graph_url: args.meta_graph_url.clone(),
        api_version: args.meta_api_version.clone(),
        app_id: args.meta_app_id.clone(),
        app_secret: args.meta_app_secret.clone(),
        webhook_secret: args.whatsapp_app_secret.clone(),
        verify_token: args.whatsapp_verify_token.clone(),
    };
    let master_key = master_key(&args, meta.sandbox())?;
    let dispatch = args.dispatch.options()?;
    let webhooks = args.webhooks.options()?;
    if webhooks.allow_private {
        tracing::warn!(
            "WAGATE_WEBHOOKS_ALLOW_PRIVATE is set: outgoing webhooks may reach private and loopback addresses"
        );
    }
    let db = Database::open(&args.db).await?;
    if meta.sandbox() {
        tracing::info!(
            "sandbox mode: no Meta app configured (META_APP_ID and META_GRAPH_URL unset); the built-in Cloud API simulator at /sandbox stands in for Meta"
        );
    }
    let running = server::start(ServerOptions {
        listen: args.listen,
        database_url: db.url.clone(),
        pool_size: args.db.pool_size,
        max_body_bytes: args.max_body_bytes,
        cors_origins: args.cors_origins.clone(),
        meta,
        master_key,
        dispatch,
        webhooks,
    })
    .await;
    let result = match running {
        Ok(running) => running.wait_for(shutdown_signal()).await,
        Err(e) => Err(e),
    };
    db.close().await;
    result
}

async fn migrate(db_args: wagate::config::DbArgs) -> anyhow::Result<()> {
    let db = Database::open(&db_args).await?;
    let applied = wagate::store::Store::migrate(&db.url).await;
    db.close().await;
    println!("{} migration(s) applied", applied?);
    Ok(())
}

async fn org(command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::SetPlan { org, plan, db } => {
            let plan = wagate::domain::plans::Plan::parse(&plan).ok_or_else(|| {
                anyhow::anyhow!("unknown plan {plan:?}: use basic, pro, ultra or mega")
            })?;
            let org_id =
                uuid::Uuid::parse_str(&org).map_err(|_| anyhow::anyhow!("--org must be a UUID"))?;
            let database = Database::open(&db).await?;
            let result = async {
                wagate::store::Store::migrate(&database.url).await?;
                let store = wagate::store::Store::connect(&database.url, 1)?;
                wagate::domain::accounts::set_plan(&store, org_id, plan).await?;
                anyhow::Ok(())
            }
            .await;
            database.close().await;
            result?;
            println!("organization {org_id} is now on the {plan} plan");
            Ok(())
        }
    }
}

async fn inbound(command: wagate::config::InboundCommand) -> anyhow::Result<()> {
    use wagate::config::InboundCommand;
    let db = match &command {
        InboundCommand::Unrouted { db, .. } | InboundCommand::Reprocess { db, .. } => db.clone(),
    };
    let database = Database::open(&db).await?;
    let result = async {
        wagate::store::Store::migrate(&database.url).await?;
        let store = wagate::store::Store::connect(&database.url, 1)?;
        match command {
            InboundCommand::Unrouted { limit, .. } => {
                let rows = store.inbound_problems(limit.clamp(1, 10_000)).await?;
                if rows.is_empty() {
                    println!("no unrouted, unparseable or failed webhook deliveries");
                }
                for r in rows {
                    println!(
                        "{}\t{}\t{}\tattempts={}\tbytes={}\tphones={}\t{}",
                        r.id,
                        r.received_at.to_rfc3339(),
                        r.state,
                        r.attempts,
                        r.size,
                        r.unrouted_phone_ids.unwrap_or_default().join(","),
                        r.last_error.unwrap_or_default()
                    );
                }
            }
            InboundCommand::Reprocess { id, .. } => {
                if !store.reprocess_inbound(id).await? {
                    anyhow::bail!("no webhook delivery {id}");
                }
                println!("webhook delivery {id} queued for processing");
            }
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// WAGATE_MASTER_KEY, or in sandbox mode a key kept in the data directory
/// (created on first start), so a demo needs no setup.
fn master_key(args: &ServeArgs, sandbox: bool) -> anyhow::Result<String> {
    if let Some(k) = &args.master_key {
        wagate::crypto::SecretBox::from_base64(k)?;
        return Ok(k.clone());
    }
    if !sandbox {
        anyhow::bail!(
            "WAGATE_MASTER_KEY is required when a Meta app is configured: it encrypts stored access tokens (generate one with `openssl rand -base64 32`)"
        );
    }
    std::fs::create_dir_all(&args.db.data_dir)?;
    let path = args.db.data_dir.join("master.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        return Ok(k.trim().to_owned());
    }
    let key = wagate::crypto::SecretBox::generate_key();
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(key.as_bytes())?;
    }
    tracing::warn!(path = %path.display(), "sandbox mode: generated a master key in the data directory; set WAGATE_MASTER_KEY in production");
    Ok(key)
}

async fn simulator(args: wagate::config::SimulatorArgs) -> anyhow::Result<()> {
    let mut cfg = wagate_simulator::SimulatorConfig::new(args.app_secret);
    cfg.webhook_url = args.webhook_url;
    let sim = wagate_simulator::Simulator::new(cfg);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "Cloud API simulator listening (Graph API under /v23.0/..., control API under /_sim)");
    tokio::select! {
        r = sim.serve(listener) => r?,
        _ = shutdown_signal() => {}
    }
    Ok(())
}
