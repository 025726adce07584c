//! The `hub` binary: parse the configuration, then migrate, serve, or
//! inspect and rebuild the read models.

use anyhow::Context as _;
use api::config::{Cli, Command, LogFormat};
use api::App;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate(database) => {
            api::telemetry::init(LogFormat::Text);
            let pool = infrastructure::db::connect_lazy(&database.db_config())
                .context("while configuring the database pool")?;
            infrastructure::db::migrate(&pool)
                .await
                .context("while applying database migrations")?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Projections(args) => {
            api::telemetry::init(LogFormat::Text);
            api::cli::projections(&args).await
        }
        Command::Serve(config) => {
            api::telemetry::init(config.log_format);
            let app = App::build(&config).await?;
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("while binding {}", config.bind))?;
            app.serve(listener, shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            sig.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
