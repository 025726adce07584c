//! `hub projections list`, `rebuild`, `retry` and `skip`: the feed
//! consumers' state, the read models' rebuild with a progress line on a
//! terminal (plain log lines otherwise), and the replay or skipping of
//! parked events. `hub events` is in [`events`].

use std::io::{IsTerminal as _, Write as _};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use infrastructure::feed::{retry_parked, skip_parked, ParkedEvent};
use projections::{
    rebuild, status, Progress, ProjectionState, ProjectionStatus, RebuildOptions, RebuildOutcome,
    Rebuildable,
};
use sqlx::PgPool;

use crate::config::{ProjectionsArgs, ProjectionsCommand};

pub mod events;

/// How often progress is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Runs a `hub projections` subcommand.
///
/// # Errors
/// Fails when the database cannot be reached, the read model is unknown, a
/// rebuild fails (what it did so far is kept: run it again to continue), or
/// a retry leaves events parked.
pub async fn projections(args: &ProjectionsArgs) -> anyhow::Result<()> {
    let pool = infrastructure::db::connect_lazy(&args.database.db_config())
        .context("while configuring the database pool")?;
    infrastructure::db::migrate(&pool)
        .await
        .context("while applying database migrations")?;
    match &args.action {
        ProjectionsCommand::List => {
            list(&pool, &args.hub_id).await?;
            held_back(&pool, args.feed_stall_warn_secs).await
        }
        ProjectionsCommand::Retry { name } => {
            let target = Rebuildable::by_name(name, &args.hub_id).with_context(|| {
                format!("no read model named {name:?} (try `hub projections list`)")
            })?;
            retry(&pool, &target).await
        }
        ProjectionsCommand::Skip { name, event_id } => {
            skip(&pool, &args.hub_id, name, *event_id).await
        }
        ProjectionsCommand::Rebuild {
            name,
            all,
            batch_size,
        } => {
            let targets = if *all {
                Rebuildable::all(&args.hub_id)
            } else {
                let name = name.as_deref().unwrap_or_default();
                let target = Rebuildable::by_name(name, &args.hub_id).with_context(|| {
                    format!("no read model named {name:?} (try `hub projections list`)")
                })?;
                vec![target]
            };
            let options = RebuildOptions {
                batch_size: (*batch_size).max(1),
                ..RebuildOptions::default()
            };
            for target in targets {
                let finished = tokio::select! {
                    result = rebuild_one(&pool, &target, &options) => result?,
                    _ = tokio::signal::ctrl_c() => false,
                };
                if !finished {
                    eprintln!();
                    tracing::warn!(
                        projection = target.name(),
                        "rebuild interrupted; run it again to continue from its checkpoint"
                    );
                    return Ok(());
                }
            }
            Ok(())
        }
    }
}

async fn list(pool: &PgPool, hub_id: &str) -> anyhow::Result<()> {
    let statuses = status::list(pool, hub_id)
        .await
        .context("while reading the projections' state")?;
    println!(
        "{:<20} {:>22} {:>12} {:>10} {:>10} {:>8} {:>8}  STATE",
        "NAME", "CHECKPOINT", "HANDLED", "LAG", "LAG (s)", "VERSION", "PARKED"
    );
    for s in statuses {
        println!("{}", list_line(&s));
    }
    let others = status::other_consumers(pool)
        .await
        .context("while reading the feed consumers' state")?;
    for c in others {
        let checkpoint = format!("{}:{}", c.checkpoint.transaction_id, c.checkpoint.position);
        println!(
            "{:<20} {:>22} {:>12} {:>10} {:>10.1} {:>8} {:>8}  live",
            c.name, checkpoint, c.handled, c.lag_events, c.lag_seconds, "-", c.parked
        );
    }
    Ok(())
}

/// Names the open transactions that append events and have held the feed
/// back for `warn_secs` or more.
async fn held_back(pool: &PgPool, warn_secs: u64) -> anyhow::Result<()> {
    let holders = infrastructure::feed::fence_holders(pool, 5)
        .await
        .context("while reading the transactions that hold the feed back")?;
    for holder in holders
        .iter()
        .filter(|holder| holder.open_seconds >= warn_secs as f64)
    {
        println!(
            "feed held back {:.1} s by pid {} (database {}, application {:?}, {})",
            holder.open_seconds,
            holder.pid,
            holder.database.as_deref().unwrap_or("?"),
            holder.application_name.as_deref().unwrap_or(""),
            holder.state.as_deref().unwrap_or("?"),
        );
    }
    Ok(())
}

/// Gives up on one parked event of a consumer.
async fn skip(pool: &PgPool, hub_id: &str, name: &str, event_id: uuid::Uuid) -> anyhow::Result<()> {
    let known =
        Rebuildable::by_name(name, hub_id).is_some() || status::OTHER_CONSUMERS.contains(&name);
    if !known {
        anyhow::bail!("no feed consumer named {name:?} (try `hub projections list`)");
    }
    let report = skip_parked(pool, name, event_id)
        .await
        .with_context(|| format!("while skipping a parked event of {name}"))?
        .with_context(|| format!("{name} has no parked event {event_id}"))?;
    println!("skipped   {}", describe(&report.skipped));
    if report.held_behind > 0 {
        println!(
            "{} event(s) of the same aggregate are still parked behind it: run `hub projections retry {name}`",
            report.held_behind
        );
    }
    Ok(())
}

/// One row of `hub projections list`.
fn list_line(s: &ProjectionStatus) -> String {
    let state = match s.state {
        ProjectionState::Live => "live".to_owned(),
        ProjectionState::Rebuilding { done, total } => {
            format!("rebuilding ({done}/{total})")
        }
    };
    let checkpoint = format!("{}:{}", s.checkpoint.transaction_id, s.checkpoint.position);
    // `1 -> 2`: built by version 1, this build's projection is version 2.
    let version = if s.version == s.code_version {
        s.version.to_string()
    } else {
        format!("{} -> {}", s.version, s.code_version)
    };
    format!(
        "{:<20} {:>22} {:>12} {:>10} {:>10.1} {:>8} {:>8}  {state}",
        s.name, checkpoint, s.handled, s.lag_events, s.lag_seconds, version, s.parked
    )
}

/// Replays a read model's parked events; fails while any stays parked, so
/// a script can tell.
async fn retry(pool: &PgPool, target: &Rebuildable) -> anyhow::Result<()> {
    let name = target.name();
    let consumer = target.live_consumer();
    let report = retry_parked(pool, consumer.as_ref())
        .await
        .with_context(|| format!("while replaying the parked events of {name}"))?;
    println!(
        "{name}: {} replayed, {} still parked",
        report.replayed.len(),
        report.still_parked.len()
    );
    for event in &report.replayed {
        println!("replayed  {}", describe(event));
    }
    for event in &report.still_parked {
        let why = match (&event.error, event.held_behind) {
            (Some(error), _) => format!("failed: {error}"),
            (None, Some(first)) => format!("held behind {first}"),
            (None, None) => String::new(),
        };
        println!("parked    {}  {why}", describe(event));
    }
    if !report.still_parked.is_empty() {
        anyhow::bail!(
            "{} event(s) of {name} are still parked; fix the cause and run the retry again",
            report.still_parked.len()
        );
    }
    Ok(())
}

/// `<event id> <type> <aggregate type>/<id>#<sequence> at <tx>:<position>`
fn describe(event: &ParkedEvent) -> String {
    format!(
        "{} {} {}/{}#{} at {}:{}",
        event.event_id,
        event.event_type,
        event.aggregate_type,
        event.aggregate_id,
        event.sequence,
        event.transaction_id,
        event.position
    )
}

/// Rebuilds one read model; returns whether it switched over.
async fn rebuild_one(
    pool: &PgPool,
    target: &Rebuildable,
    options: &RebuildOptions,
) -> anyhow::Result<bool> {
    let name = target.name();
    let terminal = std::io::stderr().is_terminal();
    let mut last_log = Instant::now();
    let outcome = rebuild(pool, target, options, |progress| {
        if terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", progress_line(name, progress));
            let _ = err.flush();
        } else if last_log.elapsed() >= LOG_EVERY {
            last_log = Instant::now();
            tracing::info!(projection = name, "{}", progress_line(name, progress));
        }
        ControlFlow::Continue(())
    })
    .await
    .with_context(|| format!("while rebuilding {name}"))?;
    if terminal {
        eprintln!();
    }
    match outcome {
        RebuildOutcome::Switched(progress) => {
            tracing::info!(
                projection = name,
                events = progress.done,
                this_run = progress.this_run,
                seconds = progress.elapsed.as_secs_f64(),
                events_per_second = progress.rate().round(),
                "rebuilt and switched over"
            );
            Ok(true)
        }
        RebuildOutcome::Stopped(_) => Ok(false),
    }
}

/// `projects: 120000/1000000 events (12.0%), 58000 events/s, ETA 15s`
fn progress_line(name: &str, progress: &Progress) -> String {
    let percent = if progress.total > 0 {
        progress.done as f64 * 100.0 / progress.total as f64
    } else {
        100.0
    };
    let eta = progress
        .eta()
        .map_or_else(|| "-".to_owned(), |eta| format!("{}s", eta.as_secs()));
    format!(
        "{name}: {}/{} events ({percent:.1}%), {:.0} events/s, ETA {eta}",
        progress.done,
        progress.total,
        progress.rate()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_count_rate_and_eta() {
        let progress = Progress {
            done: 500,
            total: 1000,
            this_run: 500,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(
            progress_line("projects", &progress),
            "projects: 500/1000 events (50.0%), 500 events/s, ETA 1s"
        );
    }

    #[test]
    fn the_list_shows_an_outdated_version_and_parked_events() {
        let mut status = ProjectionStatus {
            name: "projects",
            checkpoint: infrastructure::feed::FeedPosition {
                transaction_id: 10,
                position: 3,
            },
            handled: 3,
            lag_events: 0,
            lag_seconds: 0.0,
            state: ProjectionState::Live,
            version: 1,
            code_version: 1,
            parked: 0,
        };
        let line = list_line(&status);
        assert!(line.contains("   1        0  live"), "{line}");
        status.code_version = 2;
        status.parked = 4;
        let line = list_line(&status);
        assert!(line.contains("1 -> 2        4  live"), "{line}");
    }
}
