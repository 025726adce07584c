//! Admin operations on the read models: their state, rebuilding them from
//! the event store while the hub keeps serving, and replaying the events
//! they parked. The same operations as `hub projections list|rebuild|retry`; every one needs the API token when one
//! is configured (reads too: lag and checkpoints are operator business).

use async_graphql::{Context, Enum, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use infrastructure::feed::{retry_parked, RetryError};
use projections::{ProjectionState, ProjectionStatus as Status, Rebuildable};

use super::error::{ApiError, ErrorCode};
use super::RequestContext;
use crate::rebuilds::{RebuildJob, StartError};
use crate::state::GraphqlState;

pub use super::parked::ParkedEvent;

/// Whether a read model serves from a table built in one go.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProjectionStateKind {
    /// Serving from its table; no rebuild under way.
    Live,
    /// Serving from its table while a rebuild (running, or interrupted and
    /// waiting to be continued) fills a new one beside it.
    Rebuilding,
}

/// What the last rebuild started by this hub process did.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RebuildJobState {
    /// Replaying the store.
    Running,
    /// Switched over to the rebuilt table.
    Switched,
    /// Failed (see `error`); starting it again continues where it stopped.
    Failed,
}

/// The last rebuild of a read model started by this hub process.
#[derive(SimpleObject, Clone, Debug)]
pub struct RebuildJobInfo {
    /// Running, switched or failed.
    pub state: RebuildJobState,
    /// Events replayed so far (including earlier, interrupted runs).
    pub done: Option<i64>,
    /// Events to replay in all.
    pub total: Option<i64>,
    /// Events per second of this run.
    pub events_per_second: Option<f64>,
    /// Seconds left at that rate.
    pub eta_seconds: Option<f64>,
    /// Why it failed, in an operator's words.
    pub error: Option<String>,
    /// When it started, switched over or failed.
    pub at: DateTime<Utc>,
}

impl From<RebuildJob> for RebuildJobInfo {
    fn from(job: RebuildJob) -> Self {
        match job {
            RebuildJob::Running {
                started_at,
                progress,
            } => Self {
                state: RebuildJobState::Running,
                done: progress.as_ref().map(|p| p.done),
                total: progress.as_ref().map(|p| p.total),
                events_per_second: progress.as_ref().map(|p| p.rate()),
                eta_seconds: progress
                    .as_ref()
                    .and_then(|p| p.eta())
                    .map(|eta| eta.as_secs_f64()),
                error: None,
                at: started_at,
            },
            RebuildJob::Switched {
                finished_at,
                events,
                rate,
            } => Self {
                state: RebuildJobState::Switched,
                done: Some(events),
                total: Some(events),
                events_per_second: Some(rate),
                eta_seconds: None,
                error: None,
                at: finished_at,
            },
            RebuildJob::Failed { failed_at, error } => Self {
                state: RebuildJobState::Failed,
                done: None,
                total: None,
                events_per_second: None,
                eta_seconds: None,
                error: Some(error),
                at: failed_at,
            },
        }
    }
}

/// One read model: where it stands in the event store.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Projection {
    /// Its name (`projects`, `event_log`).
    pub name: String,
    /// Events it has handled.
    pub handled: i64,
    /// Committed events it has not handled yet.
    pub lag_events: i64,
    /// How long the oldest of those has waited, in seconds.
    pub lag_seconds: f64,
    /// Live, or rebuilding beside the live table.
    pub state: ProjectionStateKind,
    /// While rebuilding: events in the new table so far.
    pub rebuild_done: Option<i64>,
    /// While rebuilding: events to replay in all.
    pub rebuild_total: Option<i64>,
    /// The code version of the projection that built the live table.
    pub version: i32,
    /// The projection's code version in this build; above `version` when
    /// the table is outdated (a rebuild brings it up to date).
    pub code_version: i32,
    /// Whether an older version of the projection built the live table.
    pub outdated: bool,
    /// Events parked after the projection kept failing on them
    /// (`retryParkedEvents` replays them).
    pub parked: i64,
    /// The last rebuild this hub process started, if any.
    pub last_rebuild: Option<RebuildJobInfo>,
}

impl Projection {
    fn new(status: Status, job: Option<RebuildJob>) -> Self {
        let (state, rebuild_done, rebuild_total) = match status.state {
            ProjectionState::Live => (ProjectionStateKind::Live, None, None),
            ProjectionState::Rebuilding { done, total } => {
                (ProjectionStateKind::Rebuilding, Some(done), Some(total))
            }
        };
        Self {
            outdated: status.is_outdated(),
            version: status.version,
            code_version: status.code_version,
            parked: status.parked,
            name: status.name.to_owned(),
            handled: status.handled,
            lag_events: status.lag_events,
            lag_seconds: status.lag_seconds,
            state,
            rebuild_done,
            rebuild_total,
            last_rebuild: job.map(RebuildJobInfo::from),
        }
    }
}

/// What `retryParkedEvents` did.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetryResult {
    /// The read model.
    pub name: String,
    /// Events handled this time, now out of the parking table, in order.
    pub replayed: Vec<ParkedEvent>,
    /// Events still parked: failed again, or held behind one that did.
    pub still_parked: Vec<ParkedEvent>,
}

/// What `skipParkedEvent` did.
#[derive(SimpleObject, Clone, Debug)]
pub struct SkipResult {
    /// The consumer.
    pub name: String,
    /// The event given up on, as it was parked.
    pub skipped: ParkedEvent,
    /// Events of its aggregate still parked behind it (`retryParkedEvents`
    /// replays them).
    pub held_behind: i64,
}

/// Fails unless the request carries the API token (when one is configured).
fn authorize(ctx: &Context<'_>) -> Result<()> {
    Ok(ctx.data::<RequestContext>()?.require_auth()?)
}

/// Every read model's state (`projections` query).
pub(crate) async fn projections(ctx: &Context<'_>) -> Result<Vec<Projection>> {
    authorize(ctx)?;
    let state = ctx.data::<GraphqlState>()?;
    // The rebuilds' state first: a rebuild seen as switched over has then
    // already committed what the database read below shows.
    let jobs = state.rebuilds.jobs();
    let statuses = projections::status::list(state.hub.pool(), &state.hub.id)
        .await
        .map_err(|err| ApiError::database(&err))?;
    Ok(statuses
        .into_iter()
        .map(|status| {
            let job = jobs.get(status.name).cloned();
            Projection::new(status, job)
        })
        .collect())
}

/// Starts rebuilding `names` (every read model when `None`) in the
/// background (`rebuildProjections` mutation); answers with their state.
pub(crate) async fn rebuild(
    ctx: &Context<'_>,
    names: Option<Vec<String>>,
) -> Result<Vec<Projection>> {
    authorize(ctx)?;
    let state = ctx.data::<GraphqlState>()?;
    let targets = match names {
        None => state.rebuilds.targets(),
        Some(names) if names.is_empty() => {
            return Err(ApiError::invalid_input(
                "name at least one read model, or leave `names` out to rebuild them all",
            )
            .into())
        }
        Some(names) => {
            let mut targets: Vec<Rebuildable> = Vec::with_capacity(names.len());
            for name in &names {
                super::query::text_argument("names", name)?;
                let target = state.rebuilds.target(name).map_err(start_error)?;
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            targets
        }
    };
    state.rebuilds.start(targets).map_err(start_error)?;
    projections(ctx).await
}

fn start_error(err: StartError) -> ApiError {
    match &err {
        StartError::Unknown(_) => {
            let names: Vec<&str> = Rebuildable::all("").iter().map(Rebuildable::name).collect();
            ApiError::new(
                ErrorCode::NotFound,
                format!("{err}; the read models are: {}", names.join(", ")),
            )
        }
        StartError::AlreadyRunning(_) => ApiError::new(ErrorCode::Conflict, err.to_string()),
    }
}

/// Replays the parked events of the read model `name` (`retryParkedEvents`
/// mutation), as `hub projections retry` does.
pub(crate) async fn retry(ctx: &Context<'_>, name: String) -> Result<RetryResult> {
    authorize(ctx)?;
    let state = ctx.data::<GraphqlState>()?;
    super::query::text_argument("name", &name)?;
    let target = state.rebuilds.target(&name).map_err(start_error)?;
    let consumer = target.live_consumer();
    let report = retry_parked(state.hub.pool(), consumer.as_ref())
        .await
        .map_err(|err| match &err {
            RetryError::AlreadyRunning(_) => ApiError::new(ErrorCode::Conflict, err.to_string()),
            RetryError::Database(db) if infrastructure::error::is_unavailable(db) => {
                ApiError::unavailable(&err)
            }
            RetryError::Outage(_) => ApiError::unavailable(&err),
            _ => ApiError::internal(&err),
        })?;
    tracing::info!(
        projection = target.name(),
        replayed = report.replayed.len(),
        still_parked = report.still_parked.len(),
        "parked events retried"
    );
    Ok(RetryResult {
        name: target.name().to_owned(),
        replayed: report.replayed.into_iter().map(ParkedEvent::from).collect(),
        still_parked: report
            .still_parked
            .into_iter()
            .map(ParkedEvent::from)
            .collect(),
    })
}

/// Gives up on one parked event of the feed consumer `name`
/// (`skipParkedEvent` mutation), as `hub projections skip` does.
pub(crate) async fn skip(ctx: &Context<'_>, name: String, event_id: ID) -> Result<SkipResult> {
    authorize(ctx)?;
    let state = ctx.data::<GraphqlState>()?;
    super::query::text_argument("name", &name)?;
    let event_id = super::query::parse_uuid("event", &event_id)?;
    let consumer = match state.rebuilds.target(&name) {
        Ok(target) => target.name(),
        Err(_) => projections::status::OTHER_CONSUMERS
            .into_iter()
            .find(|known| *known == name)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("no feed consumer named {name:?}"),
                )
            })?,
    };
    let report = infrastructure::feed::skip_parked(state.hub.pool(), consumer, event_id)
        .await
        .map_err(|err| ApiError::database(&err))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("{consumer} has no parked event {event_id}"),
            )
        })?;
    Ok(SkipResult {
        name: consumer.to_owned(),
        skipped: report.skipped.into(),
        held_behind: report.held_behind,
    })
}
