//! Project changes as subscribers see them: each project's row at every
//! version, folded from its events with the `projects` read model's own
//! fold ([`ProjectVersions`]), not the read model's latest row at delivery
//! time.
//!
//! The events come from the replay-then-live stream
//! ([`replay_then_live`]), which misses nothing at its seam and goes back to
//! the store when the live broadcast lags.
//!
//! - [`project`]: one project (`projectChanged(id)`): its current state or
//!   the versions after `sinceVersion`, then every later one.
//! - [`board`]: every project (`projectsChanged`): a snapshot or the changes
//!   after a cursor, then every later change.
//! - [`every_project`]: `projectChanged` without an id: every later change.
//!
//! Layout: this module holds the subscriptions' streams and the board's
//! message type; `fold` turns a stream of events into the versions they
//! make.

mod fold;

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Enum, SimpleObject};
use futures::{Stream, StreamExt as _};
use infrastructure::feed::{last_readable, FeedPosition};
use infrastructure::nats::Envelope;
use projections::cursor::encode_event_cursor;
use projections::projects::Version;
use projections::{EventFilter, ProjectRow, ProjectVersions, QueryError};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use super::fanout::{Mark, Marked};
use super::types::Project;
use crate::live_events::{replay_then_live, LiveError, OnLag};
use crate::state::GraphqlState;
use fold::{latest_per_project, versions};

/// Versions read from the store at once when replaying after `sinceVersion`.
const REPLAY_PAGE: i64 = 100;

/// What a message of `projectsChanged` says happened.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProjectChangeKind {
    /// A project as it is when the subscription starts (without `after`).
    Snapshot,
    /// The snapshot is complete: every project that is not deleted has been
    /// sent (drop the ones you hold that were not). `project` is null.
    SnapshotComplete,
    /// A project was created.
    Created,
    /// A project changed.
    Updated,
    /// A project was deleted: evict it.
    Deleted,
}

/// One message of `projectsChanged`.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectChange {
    /// What happened.
    pub kind: ProjectChangeKind,
    /// The project at the version this change made; null only for
    /// `SNAPSHOT_COMPLETE`.
    pub project: Option<Project>,
    /// Pass it as `after` to `projectsChanged` to continue after this
    /// change (it is an event cursor, as `events(after:)` takes): the
    /// change's event, or for the snapshot the point it was read at.
    pub cursor: String,
}

/// The project at `version`, marked with where it stands.
fn marked(version: Version) -> Marked<Project> {
    Marked {
        mark: Mark::of_version(&version),
        item: Project::from(version.row),
    }
}

impl ProjectChange {
    fn of(version: Version) -> Marked<Self> {
        let mark = Mark::of_version(&version);
        let kind = if is_deleted(&version.row) {
            ProjectChangeKind::Deleted
        } else if version.row.version == 1 {
            ProjectChangeKind::Created
        } else {
            ProjectChangeKind::Updated
        };
        Marked {
            item: Self {
                kind,
                project: Some(Project::from(version.row)),
                cursor: encode_event_cursor(version.at),
            },
            mark,
        }
    }
}

fn is_deleted(row: &ProjectRow) -> bool {
    row.status == domain::ProjectStatus::Deleted
}

/// The events after `start` that pass `filter`: from the store, then live
/// (`live` is subscribed before anything is read); a reader that makes the
/// broadcast lag is caught up from the store.
fn events_after(
    state: &GraphqlState,
    live: broadcast::Receiver<Arc<Envelope>>,
    filter: EventFilter,
    start: FeedPosition,
) -> impl Stream<Item = Result<Arc<Envelope>, LiveError>> + Send + 'static {
    replay_then_live(
        state.hub.read.pool().clone(),
        state.hub.id.clone(),
        live,
        filter,
        Some(start),
        {
            let metrics = state.hub.metrics.clone();
            OnLag::Replay(Arc::new(move |_skipped| metrics.subscription_caught_up()))
        },
    )
}

fn store_error(err: sqlx::Error) -> ApiError {
    ApiError::from(QueryError::from(err))
}

/// `projectChanged(id, sinceVersion, coalesce)`: project `id`'s current
/// state, or with `since` each version after it, then every later version;
/// with `coalesce`, only the latest of those pending at once. Ends after
/// the version that deletes the project. Each version is marked with its
/// event's place in the feed (the current state with the point it was
/// read at).
///
/// # Errors
/// NOT_FOUND for a project that does not exist; INVALID_INPUT for a
/// `since` below 0 or past the current version.
pub async fn project(
    state: &GraphqlState,
    id: Uuid,
    since: Option<i64>,
    coalesce: bool,
) -> Result<impl Stream<Item = Result<Marked<Project>, LiveError>> + Send + 'static, ApiError> {
    if let Some(since) = since.filter(|since| *since < 0) {
        return Err(ApiError::invalid_input(format!(
            "sinceVersion must be 0 or more (a version a query or an earlier message showed), got {since}"
        )));
    }
    // Subscribe first: every event is then either readable at `start`, and
    // so in the history read after it, or comes after `start`.
    let live = state.hub.live.subscribe();
    let pool = state.hub.read.pool().clone();
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let start = last_readable(&mut conn).await.map_err(store_error)?;
    let mut project = ProjectVersions::new(id);
    // The versions up to `since` the subscriber has: folded in, not kept.
    project
        .skip_to(&mut conn, since)
        .await
        .map_err(store_error)?;
    let mut first = Vec::new();
    if since == Some(0) {
        // The creation, which shows that the project exists.
        first = project
            .catch_up(&mut conn, Some(1))
            .await
            .map_err(store_error)?;
    }
    drop(conn);
    let Some(current) = project.row().cloned() else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no project has the id {id}"),
        ));
    };
    if let Some(since) = since.filter(|since| project.folded() < *since) {
        return Err(ApiError::invalid_input(format!(
            "sinceVersion {since} is past the project's current version {}; subscribe without it, or with a version a query showed",
            current.version
        )));
    }
    if since.is_none() {
        // Everything of the project up to `start` is folded in, and maybe
        // later events too (committed after `start` was taken): the
        // current state stands at the later of the two.
        let at = project
            .folded_at()
            .map_or(start, |folded| folded.max(start));
        first.push(Version { row: current, at });
    }
    let filter = EventFilter {
        aggregate_id: Some(id.to_string()),
        ..EventFilter::default()
    };
    let events = events_after(state, live, filter, start);
    Ok(async_stream::stream! {
        // With `coalesce`, the latest version not sent yet.
        let mut pending = None;
        for version in first {
            if coalesce {
                pending = Some(version);
            } else {
                yield Ok(marked(version));
            }
        }
        // The versions after `since`, read page by page, so that a long
        // history is never held at once.
        while since.is_some() {
            let before = project.folded();
            let page = match pool.acquire().await {
                Ok(mut conn) => project.catch_up(&mut conn, Some(before + REPLAY_PAGE)).await,
                Err(err) => Err(err),
            };
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    yield Err(LiveError::Store(err));
                    return;
                }
            };
            for version in page {
                if coalesce {
                    pending = Some(version);
                } else {
                    yield Ok(marked(version));
                }
            }
            if project.folded() < before + REPLAY_PAGE {
                break;
            }
        }
        if let Some(version) = pending {
            yield Ok(marked(version));
        }
        if project.row().is_some_and(is_deleted) {
            return;
        }
        let mut later = std::pin::pin!(versions(pool, events, HashMap::from([(id, project)])));
        while let Some(batch) = later.next().await {
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(err) => {
                    yield Err(err);
                    return;
                }
            };
            if coalesce {
                batch = latest_per_project(batch);
            }
            for version in batch {
                let deleted = is_deleted(&version.row);
                yield Ok(marked(version));
                if deleted {
                    return;
                }
            }
        }
    })
}

/// `projectChanged` without an id: every version of every project from now
/// on (or, with `after`, from that feed position on); with `coalesce`, only
/// the latest of each project's pending at once. Returns where it starts
/// with the stream.
///
/// # Errors
/// When the store cannot be read.
pub async fn every_project(
    state: &GraphqlState,
    coalesce: bool,
    after: Option<FeedPosition>,
) -> Result<
    (
        FeedPosition,
        impl Stream<Item = Result<Marked<Project>, LiveError>> + Send + 'static,
    ),
    ApiError,
> {
    let live = state.hub.live.subscribe();
    let pool = state.hub.read.pool().clone();
    let start = match after {
        Some(after) => after,
        None => {
            let mut conn = pool.acquire().await.map_err(store_error)?;
            last_readable(&mut conn).await.map_err(store_error)?
        }
    };
    let events = events_after(state, live, EventFilter::default(), start);
    Ok((
        start,
        versions(pool, events, HashMap::new()).flat_map(move |batch| {
            let batch = match batch {
                Ok(batch) if coalesce => latest_per_project(batch),
                Ok(batch) => batch,
                Err(err) => return futures::stream::iter(vec![Err(err)]),
            };
            let projects: Vec<_> = batch
                .into_iter()
                .map(|version| Ok(marked(version)))
                .collect();
            futures::stream::iter(projects)
        }),
    ))
}

/// `projectsChanged(after)`: without `after`, every project that is not
/// deleted (`SNAPSHOT`, then `SNAPSHOT_COMPLETE`); with it, nothing yet;
/// then every change after that point, each exactly once, in feed order.
/// The snapshot's messages are marked with the point it was read at (only
/// `SNAPSHOT_COMPLETE` as complete), each change with its event's place.
///
/// # Errors
/// When the store or the read model cannot be read.
pub async fn board(
    state: &GraphqlState,
    after: Option<FeedPosition>,
) -> Result<impl Stream<Item = Result<Marked<ProjectChange>, LiveError>> + Send + 'static, ApiError>
{
    let live = state.hub.live.subscribe();
    let (start, snapshot) = match after {
        Some(after) => (after, None),
        None => {
            let board = state.hub.read.board().await.map_err(ApiError::from)?;
            (board.at, Some(board.rows))
        }
    };
    let known: HashMap<Uuid, ProjectVersions> = snapshot
        .iter()
        .flatten()
        .map(|row| (row.id, ProjectVersions::from_row(row.clone())))
        .collect();
    let pool = state.hub.read.pool().clone();
    let events = events_after(state, live, EventFilter::default(), start);
    let cursor = encode_event_cursor(start);
    let mut first = Vec::new();
    if let Some(rows) = snapshot {
        let part = Mark {
            complete: false,
            ..Mark::through(start)
        };
        for row in rows {
            first.push(Ok(Marked {
                item: ProjectChange {
                    kind: ProjectChangeKind::Snapshot,
                    project: Some(Project::from(row)),
                    cursor: cursor.clone(),
                },
                mark: part,
            }));
        }
        first.push(Ok(Marked {
            item: ProjectChange {
                kind: ProjectChangeKind::SnapshotComplete,
                project: None,
                cursor,
            },
            mark: Mark::through(start),
        }));
    }
    let later = versions(pool, events, known).flat_map(|batch| {
        futures::stream::iter(match batch {
            Ok(batch) => batch
                .into_iter()
                .map(|v| Ok(ProjectChange::of(v)))
                .collect(),
            Err(err) => vec![Err(err)],
        })
    });
    Ok(futures::stream::iter(first).chain(later))
}
