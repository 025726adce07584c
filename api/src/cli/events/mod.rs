//! `hub events query`, `follow` and `export`: a running hub's events over
//! HTTP (never the database), printed or written page by page.
//!
//! Layout:
//! - here: the subcommands, times resolved against now (or `HUB_CLI_NOW`),
//!   the output format a terminal or a pipe gets.
//! - `client`: `GET /api/events` and the event stream.
//! - `error`: [`ClientError`], what failed, in one sentence.
//! - `output`: table, JSON, JSON Lines and CSV writers.
//! - `follow`: the live stream, resumed after the last event on reconnect.
//! - `export`: a range to a file, with progress on a terminal.
//! - `sse`: reading Server-Sent Events.

pub mod client;
pub mod error;
pub mod export;
pub mod follow;
pub mod output;
pub mod sse;

use std::io::{self, IsTerminal as _};

use anyhow::Context as _;
use chrono::{DateTime, Local, Utc};

pub use self::client::{ClientError, Event, EventQuery, HubClient};
use self::output::{EventWriter, TableStyle};
use crate::config::{EventsArgs, EventsCommand, FilterArgs, Format, HubArgs, QueryArgs};

/// Runs a `hub events` subcommand.
///
/// # Errors
/// A time that cannot be read, a hub that cannot be reached or refuses
/// (one sentence each, see [`ClientError`]), or output that cannot be
/// written. A closed pipe (`| head`) is not an error.
pub async fn run(args: &EventsArgs) -> anyhow::Result<()> {
    let client = HubClient::new(&args.hub.hub_url, args.hub.api_token.as_ref())?;
    let result = match &args.action {
        None => query(&client, &args.hub, &args.query).await,
        Some(EventsCommand::Query(query_args)) => query(&client, &args.hub, query_args).await,
        Some(EventsCommand::Follow(follow_args)) => {
            let query = resolve(&args.hub, &follow_args.filter, None)?;
            let format = follow_args.format.unwrap_or_else(default_format);
            follow::follow(&client, &query, format, table_style()).await
        }
        Some(EventsCommand::Export(export_args)) => {
            let query = resolve(&args.hub, &export_args.filter, export_args.until.as_deref())?;
            export::export(&client, &query, export_args).await
        }
    };
    match result {
        Err(err) if is_broken_pipe(&err) => Ok(()),
        other => other,
    }
}

/// `hub events query`: every page until the limit, printed as it comes.
async fn query(client: &HubClient, hub: &HubArgs, args: &QueryArgs) -> anyhow::Result<()> {
    let query = resolve(hub, &args.filter, args.until.as_deref())?;
    let format = args.format.unwrap_or_else(default_format);
    let out = io::BufWriter::new(io::stdout());
    let mut writer = EventWriter::new(out, format, table_style());
    let mut cursor: Option<String> = None;
    loop {
        let wanted = args.limit.map_or(u64::from(client::MAX_PAGE), |limit| {
            limit - writer.written()
        });
        let size =
            u32::try_from(wanted.min(u64::from(client::MAX_PAGE))).unwrap_or(client::MAX_PAGE);
        let page = client.page(&query, size, cursor.as_deref()).await?;
        writer
            .write_batch(&page.events)
            .context("while printing events")?;
        let done = args.limit.is_some_and(|limit| writer.written() >= limit);
        // A page may hold fewer events than asked for, even none, and
        // still have a next one (it stopped at its scan of the log).
        match page.next {
            Some(next) if !done && cursor.as_ref() != Some(&next) => cursor = Some(next),
            _ => break,
        }
    }
    writer.finish().context("while printing events")
}

/// The instant relative times count from: `--now` / `HUB_CLI_NOW`, else
/// the clock, in the local time zone.
fn now(hub: &HubArgs) -> DateTime<Local> {
    hub.now
        .map_or_else(Local::now, |now| now.with_timezone(&Local))
}

/// The filters with `--since` and `until` resolved to instants.
fn resolve(hub: &HubArgs, filter: &FilterArgs, until: Option<&str>) -> anyhow::Result<EventQuery> {
    let now = now(hub);
    let at = |flag: &str, text: Option<&str>| -> anyhow::Result<Option<DateTime<Utc>>> {
        text.map(|text| crate::natural_time::parse(text, &now).with_context(|| flag.to_owned()))
            .transpose()
    };
    let query = EventQuery {
        subject: filter.subject.clone(),
        correlation_id: filter.correlation_id.clone(),
        event_types: filter
            .event_types
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        since: at("--since", filter.since.as_deref())?,
        until: at("--until", until)?,
    };
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if until <= since {
            anyhow::bail!(
                "--until ({}) is not after --since ({}): no event can match",
                client::rfc3339(until),
                client::rfc3339(since)
            );
        }
    }
    Ok(query)
}

/// A table on a terminal, JSON Lines for a pipe or a file.
fn default_format() -> Format {
    if io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Jsonl
    }
}

/// Truncated cells on a terminal; colour there too unless `NO_COLOR` is set.
fn table_style() -> TableStyle {
    let terminal = io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    TableStyle {
        truncate: terminal,
        color: terminal && !no_color,
    }
}

/// Whether `err` is stdout closing under us (`hub events | head`).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
