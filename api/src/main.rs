//! The `hub` binary: parse the configuration, then migrate, serve, inspect
//! and rebuild the read models, or read a running hub's events.

use std::process::ExitCode;

use anyhow::Context as _;
use api::config::{Cli, Command, LogFormat};
use api::App;
use clap::Parser;

fn main() -> ExitCode {
    // Before any thread starts: it sets environment variables.
    if let Err(err) = api::config::secrets::load_files() {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let result = tokio::runtime::Runtime::new()
        .context("while starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A sentence with its causes; the chain with a backtrace only
            // when RUST_BACKTRACE asks for it.
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("error: {err:?}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
        Command::Events(args) => api::cli::events::run(&args).await,
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
