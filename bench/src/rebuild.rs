//! Scenario `rebuild`: events per second rebuilding `projects` and
//! `event_log` from N stored events, with `hub projections rebuild` run as a
//! process (so its peak memory is its own).
//!
//! The history is written straight into a fresh store: P projects with K
//! events each (one `ProjectCreated`, then start/stop request and completion
//! cycles), interleaved so that every batch touches many projects (the worst
//! case for the `projects` upserts).

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::database::BenchDatabase;
use crate::hub_process::peak_rss_mib_of;

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct RebuildConfig {
    /// Projects in the history.
    pub projects: i64,
    /// Events per project.
    pub events_per_project: i64,
}

/// One read model's rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildRun {
    /// Read model.
    pub name: String,
    /// Events replayed.
    pub events: i64,
    /// Wall time of the `hub projections rebuild` process.
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
    /// Peak RSS of the rebuilding process in MiB.
    pub peak_rss_mib: Option<f64>,
}

const SEED: &str = "\
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Project', md5('p' || p)::uuid::text, s,
       CASE WHEN s = 1 THEN 'ProjectCreated'
            ELSE (ARRAY['ProjectStartRequested','ProjectStarted','ProjectStopRequested','ProjectStopped'])[(s - 2) % 4 + 1] END,
       '1.0',
       CASE WHEN s = 1 THEN json_build_object('ProjectCreated', json_build_object(
                'project_id', md5('p' || p)::uuid, 'name', 'Project ' || p, 'slug', 'project-' || p,
                'path', '/srv/project-' || p,
                'ports', json_build_object('backend', 20000 + 4 * p, 'frontend', 20001 + 4 * p,
                                           'postgres', 20002 + 4 * p, 'redis', 20003 + 4 * p)))
            ELSE json_build_object((ARRAY['ProjectStartRequested','ProjectStarted','ProjectStopRequested','ProjectStopped'])[(s - 2) % 4 + 1], '{}'::json) END,
       '{\"correlation_id\":\"seed\",\"causation_id\":\"seed\",\"hub_id\":\"bench\",\"service\":\"seed\",\"user\":\"seed\"}'
FROM generate_series(1, $1::int) s, generate_series(0, $2::int - 1) p
ORDER BY s, p";

/// Runs `hub ARGS` on `database_url` (as `hub_id`, when given); returns the
/// process's peak RSS (sampled until it exits).
pub(crate) async fn hub(
    binary: &Path,
    database_url: &str,
    hub_id: Option<&str>,
    args: &[&str],
) -> anyhow::Result<Option<f64>> {
    let mut command = tokio::process::Command::new(binary);
    if let Some(hub_id) = hub_id {
        command.env("HUB_ID", hub_id);
    }
    let mut child = command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("while running hub {}", args.join(" ")))?;
    let pid = child.id();
    let mut peak: Option<f64> = None;
    let status = loop {
        if let Some(mib) = pid.and_then(peak_rss_mib_of) {
            peak = Some(peak.map_or(mib, |p| p.max(mib)));
        }
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
        }
    };
    if !status.success() {
        bail!("hub {} failed with {status}", args.join(" "));
    }
    Ok(peak)
}

/// Seeds a fresh store and rebuilds each read model from it.
///
/// # Errors
/// When the database cannot be prepared or a rebuild fails.
pub async fn run(
    binary: &Path,
    admin_url: &str,
    config: &RebuildConfig,
) -> anyhow::Result<Vec<RebuildRun>> {
    let database = BenchDatabase::migrated(admin_url, "hub_bench_rebuild", binary).await?;
    let url = database.url.clone();
    let outcome = async {
        let mut conn = PgConnection::connect(&url).await?;
        sqlx::query(SEED)
            .bind(config.events_per_project as i32)
            .bind(config.projects as i32)
            .execute(&mut conn)
            .await
            .context("while seeding the history")?;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&mut conn)
            .await?;
        let mut runs = Vec::new();
        for model in ["projects", "event_log"] {
            let began = Instant::now();
            let peak_rss_mib = hub(binary, &url, None, &["projections", "rebuild", model]).await?;
            let seconds = began.elapsed().as_secs_f64();
            runs.push(RebuildRun {
                name: model.to_owned(),
                events,
                seconds,
                events_per_second: events as f64 / seconds.max(1e-9),
                peak_rss_mib,
            });
        }
        anyhow::Ok(runs)
    }
    .await;
    database.drop_database().await;
    outcome
}
