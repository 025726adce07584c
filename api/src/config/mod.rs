//! The hub's configuration: command line flags, each also read from an
//! environment variable (secrets also from files: [`secrets`]).
//!
//! Layout:
//! - here: the subcommands, the database, [`ServeConfig`].
//! - `access`: allowed origins and host names, public reads.
//! - `events`: `hub events query`, `follow` and `export`.
//! - `limits`: what one client may ask (GraphQL, HTTP, WebSockets).
//! - `nats`: the NATS servers, credentials and the hub's stream.
//! - `orchestration`: what starting and stopping a project runs.
//! - `secrets`: `DATABASE_URL_FILE` and the other `*_FILE` variables.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use domain::PortRange;
use infrastructure::append::AppendLimits;
use secrecy::SecretString;

mod access;
mod database;
mod events;
mod limits;
mod nats;
mod orchestration;
pub mod secrets;

pub use access::{effective_token, AccessArgs};
pub use database::{DatabaseArgs, ReadPoolArgs};
pub use events::{
    EventsArgs, EventsCommand, ExportArgs, ExportFormat, FilterArgs, FollowArgs, Format, HubArgs,
    QueryArgs,
};
pub use limits::{door_limits, GraphqlArgs, HttpArgs, WsArgs};
pub use nats::NatsArgs;
pub use orchestration::{OrchestrationArgs, OrchestratorKind};

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
    /// Read a running hub's events over HTTP: query (the default), follow
    /// live, or export to a file.
    Events(Box<EventsArgs>),
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

    /// `list` names an open transaction that appends events once it has
    /// held the feed back this many seconds.
    #[arg(long, env = "HUB_FEED_STALL_WARN_SECS", default_value_t = 5)]
    pub feed_stall_warn_secs: u64,

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
    /// Give up on one parked event of a feed consumer (a read model,
    /// `nats_relay` or `project_orchestrator`), e.g. one whose stored row
    /// cannot be read back: it stays in the event store, and that consumer
    /// never handles it. Events of its aggregate parked behind it stay
    /// parked until `retry`. Safe while hubs serve.
    Skip {
        /// The consumer.
        name: String,
        /// The parked event's id (see `list`, `/health` or the hub's log).
        event_id: uuid::Uuid,
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

/// Everything `hub serve` needs.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Database connection.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The pool of clients' reads.
    #[command(flatten)]
    pub reads: ReadPoolArgs,

    /// This hub's id: the second token of every subject (`hub.<id>.project.created`).
    #[arg(long, env = "HUB_ID", default_value = "local-hub", value_parser = parse_hub_id)]
    pub hub_id: String,

    /// Address to listen on.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:9001")]
    pub bind: SocketAddr,

    /// Bearer token every request needs (but `/health`'s status): queries,
    /// mutations, subscriptions, REST, `/metrics`. Without it (an empty one
    /// counts as none) the hub is open: only acceptable on a loopback
    /// address. Or HUB_API_TOKEN_FILE.
    #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<SecretString>,

    /// Allowed origins and hosts, public reads.
    #[command(flatten)]
    pub access: AccessArgs,

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

    /// Seconds an open transaction that appends events may hold the feed
    /// back before `/health` turns degraded and names it.
    #[arg(long, env = "HUB_FEED_STALL_WARN_SECS", default_value_t = 5)]
    pub feed_stall_warn_secs: u64,

    /// Most commits (commands, published events) appended in one
    /// transaction, 1 to 64; 1 turns group commit off (one transaction per
    /// commit, as many at once as the pool has connections).
    #[arg(long, env = "HUB_GROUP_COMMIT_MAX", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub group_commit_max: u16,

    /// GraphQL limits.
    #[command(flatten)]
    pub graphql: GraphqlArgs,

    /// HTTP limits.
    #[command(flatten)]
    pub http: HttpArgs,

    /// NATS and the hub's stream.
    #[command(flatten)]
    pub nats: NatsArgs,

    /// WebSocket and subscription limits.
    #[command(flatten)]
    pub ws: WsArgs,

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
            reads: ReadPoolArgs {
                db_read_connections: 16,
                db_read_timeout_ms: 10_000,
                events_page_scan_rows: projections::DEFAULT_PAGE_SCAN,
            },
            hub_id: "local-hub".into(),
            bind: ([127, 0, 0, 1], 9001).into(),
            api_token: None,
            access: AccessArgs::default(),
            insecure: false,
            port_range: PortRange::default(),
            read_your_writes_timeout_ms: 5000,
            feed_poll_ms: 50,
            feed_stall_warn_secs: 5,
            group_commit_max: 32,
            graphql: GraphqlArgs::default(),
            http: HttpArgs::default(),
            nats: NatsArgs::default(),
            ws: WsArgs::default(),
            log_format: LogFormat::Text,
            rebuild_outdated: false,
            orchestration: OrchestrationArgs::default(),
        }
    }

    /// How commits are grouped into transactions.
    pub fn append_limits(&self) -> AppendLimits {
        let max_batch = usize::from(self.group_commit_max);
        if max_batch <= 1 {
            AppendLimits {
                max_batch: 1,
                workers: self.database.db_max_connections.max(1) as usize,
            }
        } else {
            AppendLimits {
                max_batch,
                ..AppendLimits::default()
            }
        }
    }

    /// The JetStream stream's settings.
    pub fn stream_settings(&self) -> infrastructure::nats::StreamSettings {
        self.nats.stream_settings(&self.hub_id)
    }

    /// Refuses to expose unauthenticated mutations beyond this machine.
    ///
    /// # Errors
    /// A non-loopback bind address without a token and without `--insecure`.
    pub fn check_exposure(&self) -> Result<(), String> {
        if !self.bind.ip().is_loopback() && self.token().is_none() && !self.insecure {
            let why = if self.api_token.is_some() {
                " (it is set, but empty)"
            } else {
                ""
            };
            return Err(format!(
                "refusing to serve on {} without HUB_API_TOKEN{why}: anyone on the network could change projects; \
                 set HUB_API_TOKEN, bind to 127.0.0.1, or pass --insecure",
                self.bind
            ));
        }
        Ok(())
    }

    /// The API token, unless it is empty or blank (then there is none).
    pub fn token(&self) -> Option<SecretString> {
        effective_token(self.api_token.as_ref())
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
        config.api_token = Some(SecretString::from(" "));
        let refused = config.check_exposure().unwrap_err();
        assert!(refused.contains("empty"), "{refused}");
    }

    #[test]
    fn hub_ids_must_be_single_subject_tokens() {
        assert!(parse_hub_id("local-hub").is_ok());
        assert!(parse_hub_id("a.b").is_err());
        assert!(parse_hub_id("").is_err());
        assert!(parse_hub_id("*").is_err());
    }

    #[test]
    fn every_flag_is_documented() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
