use clap::Parser;
use tracing_subscriber::EnvFilter;
use wagate::config::{Cli, Command, LogFormat, OrgCommand, ServeArgs};
use wagate::database::Database;
use wagate::server::{self, ServerOptions};

#[tokio::main]
async fn main() {
    wagate::install_crypto_provider();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        None => serve(*cli.serve).await,
        Some(Command::Serve(args)) => serve(*args).await,
        Some(Command::Migrate(db)) => migrate(db).await,
        Some(Command::Simulator(_)) => Err(anyhow::anyhow!("the simulator is not wired yet")),
        Some(Command::Org { command }) => org(command).await,
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
    let db = Database::open(&args.db).await?;
    if args.sandbox() {
        tracing::info!("sandbox mode: no Meta app configured (META_APP_ID unset)");
    }
    let running = server::start(ServerOptions {
        listen: args.listen,
        database_url: db.url.clone(),
        pool_size: args.db.pool_size,
        max_body_bytes: args.max_body_bytes,
        cors_origins: args.cors_origins.clone(),
        sandbox: args.sandbox(),
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
