//! `hub events`: the flags of `query` (also plain `hub events`), `follow`
//! and `export`, which talk to a running hub over HTTP.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use clap::{Args, Subcommand, ValueEnum};
use secrecy::SecretString;

/// `hub events ...`: read a running hub's event log.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    /// The hub to ask.
    #[command(flatten)]
    pub hub: HubArgs,

    /// What to do (default `query`).
    #[command(subcommand)]
    pub action: Option<EventsCommand>,

    /// `hub events` alone is `hub events query`.
    #[command(flatten)]
    pub query: QueryArgs,
}

/// The `hub events` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Print the events that match, oldest first (the default).
    Query(QueryArgs),
    /// Print events as they are recorded, until Ctrl-C; with `--since`, the
    /// past ones first. Reconnects by itself, resuming after the last event
    /// printed. The count goes to stderr at the end.
    Follow(FollowArgs),
    /// Write the events of a range to a file, page by page.
    Export(ExportArgs),
}

/// Where the hub is and how to sign in.
#[derive(Debug, Clone, Args)]
pub struct HubArgs {
    /// The hub's base URL.
    #[arg(
        long,
        env = "HUB_URL",
        default_value = "http://127.0.0.1:9001",
        global = true
    )]
    pub hub_url: String,

    /// The hub's API token, sent as `Authorization: Bearer` (an empty one is
    /// none). Or HUB_API_TOKEN_FILE.
    #[arg(long, env = "HUB_API_TOKEN", hide_env_values = true, global = true)]
    pub api_token: Option<SecretString>,

    /// The instant relative times (`1h ago`, `yesterday`) count from, RFC
    /// 3339; default the clock. For tests and reproducible output.
    #[arg(long, env = "HUB_CLI_NOW", global = true, value_parser = rfc3339)]
    pub now: Option<DateTime<FixedOffset>>,
}

/// Which events.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Subject pattern: NATS wildcards (`hub.*.audit.>`) or a `LIKE`
    /// pattern with `%`.
    #[arg(long)]
    pub subject: Option<String>,

    /// Only events of this correlation id (one request's events).
    #[arg(long)]
    pub correlation_id: Option<String>,

    /// Only these event types (`ProjectCreated`, `IntegrationEventPublished`);
    /// repeat the flag or separate with commas.
    #[arg(long = "type", value_name = "TYPE", value_delimiter = ',')]
    pub event_types: Vec<String>,

    /// Events recorded at or after this time: RFC 3339, `2026-11-30 14:00`
    /// or `2026-11-30` (local time), `1h ago`, `30m`, `2d`, `today`,
    /// `yesterday`, `last monday`.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

/// `hub events query`.
#[derive(Debug, Clone, Default, Args)]
pub struct QueryArgs {
    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Events recorded before this time (the forms of `--since`).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Print at most this many events (default all that match).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,

    /// Output format; default `table` on a terminal, `jsonl` otherwise.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `hub events follow`.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Output format; default `table` on a terminal, `jsonl` otherwise.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `hub events export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Events recorded before this time (the forms of `--since`).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// File format; default `csv` for a file named `*.csv`, else `jsonl`.
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,

    /// The file to write (replaced if it exists).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns: time, type, subject, aggregate, correlation id.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

impl From<ExportFormat> for Format {
    fn from(format: ExportFormat) -> Self {
        match format {
            ExportFormat::Jsonl => Self::Jsonl,
            ExportFormat::Csv => Self::Csv,
        }
    }
}

fn rfc3339(value: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(value).map_err(|_| {
        format!("expected an RFC 3339 timestamp such as 2026-11-30T14:00:00Z, got {value:?}")
    })
}
