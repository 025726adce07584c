//! The hub's configuration: command line flags, each also read from an
//! environment variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use domain::PortRange;
use secrecy::SecretString;

/// CommandCenter Hub: event-sourced project lifecycle service.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The hub's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve GraphQL and the HTTP API.
    // Boxed: the serve flags are large next to `Migrate`'s.
    Serve(Box<ServeConfig>),
    /// Apply pending migrations and exit.
    Migrate(DatabaseArgs),
    /// Inspect the read models or rebuild them from the event store.
    Projections(ProjectionsArgs),
}

/// `hub projections ...`: the read models' state and their rebuild.
#[derive(Debug, Clone, Args)]
pub struct ProjectionsArgs {
    /// Database connection.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// This hub's id: the event log's subjects are rebuilt under it.
    #[arg(long, env = "HUB_ID", default_value = "local-hub", value_parser = parse_hub_id)]
    pub hub_id: String,

    /// What to do.
    #[command(subcommand)]
    pub action: ProjectionsCommand,
}

/// The `hub projections` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ProjectionsCommand {
    /// Each read model's checkpoint, lag, code version (`1 -> 2` when the
    /// table was built by an older version), parked events and state (live
    /// or rebuilding).
    List,
    /// Replay a read model's parked (poison) events in feed order, e.g.
    /// after fixing what made them fail; prints what was replayed and what
    /// is still parked, and fails while any event stays parked. Safe while
    /// hubs serve.
    Retry {
        /// The read model (`projects`, `event_log`).
        name: String,
    },
    /// Rebuild a read model beside the live one, then switch to it. Safe
    /// while hubs serve; an interrupted rebuild continues where it stopped.
    Rebuild {
        /// The read model (`projects`, `event_log`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every read model, one after the other.
        #[arg(long)]
        all: bool,
        /// Events per batch (one transaction each).
        #[arg(long, default_value_t = 5000)]
        batch_size: i64,
    },
}

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Most pooled database connections.
    #[arg(long, env = "HUB_DB_MAX_CONNECTIONS", default_value_t = 32)]
    pub db_max_connections: u32,

    /// Milliseconds a request waits for a database connection before it
    /// fails with UNAVAILABLE.
    #[arg(long, env = "HUB_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    pub db_acquire_timeout_ms: u64,
}

impl DatabaseArgs {
    /// The infrastructure's view of these flags.
    pub fn db_config(&self) -> infrastructure::db::DbConfig {
        infrastructure::db::DbConfig {
            url: self.database_url.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
        }
    }
}

/// Everything `hub serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Database connection.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// This hub's id: the second token of every subject (`hub.<id>.project.created`).
    #[arg(long, env = "HUB_ID", default_value = "local-hub", value_parser = parse_hub_id)]
    pub hub_id: String,

    /// Address to listen on.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:9001")]
    pub bind: SocketAddr,

    /// Bearer token required for mutations (and, later, subscriptions and
    /// admin operations). Without it, mutations are open: only acceptable on
    /// a loopback address.
    #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,

    /// Serve on a non-loopback address without an API token.
    #[arg(long, env = "HUB_INSECURE", default_value_t = false)]
    pub insecure: bool,

    /// Ports handed to projects, four per project (backend, frontend,
    /// postgres, redis), e.g. `20000-29999`.
    #[arg(long, env = "HUB_PORT_RANGE", default_value = "20000-29999")]
    pub port_range: PortRange,

    /// Milliseconds a mutation waits for the read model to show its change
    /// before it answers UNAVAILABLE (the change itself is kept).
    #[arg(long, env = "HUB_READ_YOUR_WRITES_TIMEOUT_MS", default_value_t = 5000)]
    pub read_your_writes_timeout_ms: u64,

    /// Longest idle wait in milliseconds between polls of the event store
    /// (writes in this process wake the feed at once).
    #[arg(long, env = "HUB_FEED_POLL_MS", default_value_t = 50)]
    pub feed_poll_ms: u64,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "HUB_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Deepest accepted GraphQL query.
    #[arg(long, env = "HUB_GRAPHQL_MAX_DEPTH", default_value_t = 12)]
    pub graphql_max_depth: usize,

    /// Highest accepted GraphQL query complexity.
    #[arg(long, env = "HUB_GRAPHQL_MAX_COMPLEXITY", default_value_t = 2000)]
    pub graphql_max_complexity: usize,

    /// Answer GraphQL introspection queries (`__schema`, `__type`); turn off
    /// on a public deployment that should not describe its API.
    #[arg(long, env = "HUB_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// NATS server with JetStream; every committed event is published there.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// JetStream stream holding this hub's events (subjects `hub.<hub_id>.>`);
    /// default `HUB_<HUB_ID>`.
    #[arg(long, env = "HUB_NATS_STREAM")]
    pub nats_stream: Option<String>,

    /// Seconds JetStream remembers event ids to drop duplicate publishes.
    #[arg(long, env = "HUB_NATS_DUPLICATE_WINDOW_SECS", default_value_t = 120)]
    pub nats_duplicate_window_secs: u64,

    /// Events a subscriber may fall behind before it is told to resume with `after`.
    #[arg(long, env = "HUB_SUBSCRIBER_BUFFER", default_value_t = 1024)]
    pub subscriber_buffer: usize,

    /// Seconds a WebSocket may stay open without `connection_init`.
    #[arg(long, env = "HUB_WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u64,

    /// Largest accepted WebSocket message in bytes.
    #[arg(long, env = "HUB_WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Log format: `text` (human-readable) or `json`.
    #[arg(long, env = "HUB_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// At start, rebuild (in the background, with zero downtime) every read
    /// model whose table was built by an older version of its projection.
    #[arg(long, env = "HUB_REBUILD_OUTDATED", default_value_t = false, action = clap::ArgAction::Set)]
    pub rebuild_outdated: bool,

    /// What starting and stopping a project runs.
    #[command(flatten)]
    pub orchestration: OrchestrationArgs,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl ServeConfig {
    /// A config with every default, for `database_url` (used by tests).
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database: DatabaseArgs {
                database_url: database_url.into(),
                db_max_connections: 32,
                db_acquire_timeout_ms: 3000,
            },
            hub_id: "local-hub".into(),
            bind: ([127, 0, 0, 1], 9001).into(),
            api_token: None,
            insecure: false,
            port_range: PortRange::default(),
            read_your_writes_timeout_ms: 5000,
            feed_poll_ms: 50,
            max_body_bytes: 256 * 1024,
            graphql_max_depth: 12,
            graphql_max_complexity: 2000,
            graphql_introspection: true,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_stream: None,
            nats_duplicate_window_secs: 120,
            subscriber_buffer: 1024,
            ws_init_timeout_secs: 10,
            ws_max_message_bytes: 64 * 1024,
            log_format: LogFormat::Text,
            rebuild_outdated: false,
            orchestration: OrchestrationArgs::default(),
        }
    }

    /// The JetStream stream's settings.
    pub fn stream_settings(&self) -> infrastructure::nats::StreamSettings {
        let name = self
            .nats_stream
            .clone()
            .unwrap_or_else(|| infrastructure::nats::StreamSettings::default_name(&self.hub_id));
        infrastructure::nats::StreamSettings::for_hub(
            &self.hub_id,
            name,
            Duration::from_secs(self.nats_duplicate_window_secs),
        )
    }

    /// Refuses to expose unauthenticated mutations beyond this machine.
    ///
    /// # Errors
    /// A non-loopback bind address without a token and without `--insecure`.
    pub fn check_exposure(&self) -> Result<(), String> {
        if !self.bind.ip().is_loopback() && self.api_token.is_none() && !self.insecure {
            return Err(format!(
                "refusing to serve on {} without HUB_API_TOKEN: anyone on the network could change projects; \
                 set HUB_API_TOKEN, bind to 127.0.0.1, or pass --insecure",
                self.bind
            ));
        }
        Ok(())
    }
}

/// Which [`infrastructure::orchestration::Orchestrator`] starts and stops
/// projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OrchestratorKind {
    /// Runs nothing: every start and stop succeeds at once.
    #[default]
    Noop,
    /// Runs `HUB_SHELL_START` / `HUB_SHELL_STOP` with `sh -c`.
    Shell,
}

/// How projects are started and stopped.
#[derive(Debug, Clone, Args)]
pub struct OrchestrationArgs {
    /// What starting and stopping a project runs: `noop` (nothing; every
    /// start and stop succeeds at once) or `shell` (`HUB_SHELL_START` and
    /// `HUB_SHELL_STOP`).
    #[arg(long, env = "HUB_ORCHESTRATOR", value_enum, default_value_t = OrchestratorKind::Noop)]
    pub orchestrator: OrchestratorKind,

    /// With `shell`: the command line that starts a project, run with
    /// `sh -c` in the project's directory, with HUB_PROJECT_ID,
    /// HUB_PROJECT_NAME, HUB_PROJECT_SLUG, HUB_PROJECT_PATH and
    /// HUB_PORT_BACKEND/FRONTEND/POSTGRES/REDIS set; it must be idempotent,
    /// e.g. `docker compose -p "$HUB_PROJECT_SLUG" up -d --wait`.
    #[arg(long, env = "HUB_SHELL_START")]
    pub shell_start: Option<String>,

    /// With `shell`: the command line that stops a project (same
    /// environment), e.g. `docker compose -p "$HUB_PROJECT_SLUG" down`.
    #[arg(long, env = "HUB_SHELL_STOP")]
    pub shell_stop: Option<String>,

    /// Seconds one start or stop may take; then it is cancelled (a shell
    /// command's process group is killed) and the project goes to ERROR.
    #[arg(long, env = "HUB_ORCHESTRATION_TIMEOUT_SECS", default_value_t = 600)]
    pub orchestration_timeout_secs: u64,
}

impl Default for OrchestrationArgs {
    fn default() -> Self {
        Self {
            orchestrator: OrchestratorKind::Noop,
            shell_start: None,
            shell_stop: None,
            orchestration_timeout_secs: 600,
        }
    }
}

impl OrchestrationArgs {
    /// The configured orchestrator.
    ///
    /// # Errors
    /// `shell` without both command lines.
    pub fn orchestrator(
        &self,
    ) -> Result<std::sync::Arc<dyn infrastructure::orchestration::Orchestrator>, String> {
        use infrastructure::orchestration::{NoopOrchestrator, ShellOrchestrator};
        match self.orchestrator {
            OrchestratorKind::Noop => Ok(std::sync::Arc::new(NoopOrchestrator)),
            OrchestratorKind::Shell => {
                let given = |text: &Option<String>| text.clone().filter(|t| !t.trim().is_empty());
                match (given(&self.shell_start), given(&self.shell_stop)) {
                    (Some(start), Some(stop)) => {
                        Ok(std::sync::Arc::new(ShellOrchestrator::new(start, stop)))
                    }
                    _ => Err(
                        "HUB_ORCHESTRATOR=shell needs both HUB_SHELL_START and HUB_SHELL_STOP \
                              (use `true` for a step that has nothing to do)"
                            .to_owned(),
                    ),
                }
            }
        }
    }

    /// How long one start or stop may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.orchestration_timeout_secs.max(1))
    }
}

fn parse_hub_id(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(
            "a hub id is 1-64 ASCII letters, digits, '-' or '_' (it becomes a NATS subject token)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_bind_without_a_token_is_refused_unless_insecure() {
        let mut config = ServeConfig::for_database("postgres://x");
        assert!(config.check_exposure().is_ok());
        config.bind = "0.0.0.0:9001".parse().unwrap();
        assert!(config.check_exposure().is_err());
        config.insecure = true;
        assert!(config.check_exposure().is_ok());
        config.insecure = false;
        config.api_token = Some(SecretString::from("t"));
        assert!(config.check_exposure().is_ok());
    }

    #[test]
    fn hub_ids_must_be_single_subject_tokens() {
        assert!(parse_hub_id("local-hub").is_ok());
        assert!(parse_hub_id("a.b").is_err());
        assert!(parse_hub_id("").is_err());
        assert!(parse_hub_id("*").is_err());
    }

    #[test]
    fn the_default_orchestrator_is_noop_and_shell_needs_both_commands() {
        let mut args = OrchestrationArgs::default();
        assert_eq!(args.orchestrator, OrchestratorKind::Noop);
        assert!(args.orchestrator().is_ok());
        args.orchestrator = OrchestratorKind::Shell;
        args.shell_start = Some("docker compose up -d".into());
        assert!(args.orchestrator().is_err());
        args.shell_stop = Some("  ".into());
        assert!(args.orchestrator().is_err());
        args.shell_stop = Some("docker compose down".into());
        assert!(args.orchestrator().is_ok());
        assert_eq!(args.timeout(), Duration::from_secs(600));
    }

    #[test]
    fn every_flag_is_documented() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
