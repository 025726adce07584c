//! Project changes as subscribers see them: each project's row at every
//! version, folded from the store with the `projects` read model's own fold
//! ([`ProjectVersions`]), not the read model's latest row at delivery time.
//!
//! The events come from the replay-then-live stream
//! ([`replay_then_live`]), which misses nothing at its seam and goes back to
//! the store when the live broadcast lags. Events that follow the last one
//! folded in are folded as they come (the envelope carries the stored
//! event: [`Envelope::to_stored`]); after a gap, or for a project first met
//! mid-history, the project's events after the last one folded in are read
//! from the store instead (one read by the primary key per project and
//! batch of events ready together), so no version is ever skipped.
//!
//! - [`project`]: one project (`projectChanged(id)`): its current state or
//!   the versions after `sinceVersion`, then every later one.
//! - [`board`]: every project (`projectsChanged`): a snapshot or the changes
//!   after a cursor, then every later change.
//! - [`every_project`]: `projectChanged` without an id: every later change.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Enum, SimpleObject};
use futures::{Stream, StreamExt as _};
use infrastructure::feed::{last_readable, FeedPosition};
use infrastructure::nats::Envelope;
use projections::cursor::encode_event_cursor;
use projections::projects::Version;
use projections::{EventFilter, ProjectRow, ProjectVersions, QueryError};
use sqlx::PgPool;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use super::types::Project;
use super::ApiState;
use crate::live_events::{replay_then_live, LiveError, OnLag};

/// Events taken from the stream at most at once (those ready together).
const BATCH: usize = 256;

/// Versions read from the store at once when replaying after `sinceVersion`.
const REPLAY_PAGE: i64 = 100;

/// The aggregate type of projects' events.
const PROJECT: &str = "Project";

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

impl ProjectChange {
    fn of(version: Version) -> Self {
        let kind = if version.row.status == domain::ProjectStatus::Deleted.as_str() {
            ProjectChangeKind::Deleted
        } else if version.row.version == 1 {
            ProjectChangeKind::Created
        } else {
            ProjectChangeKind::Updated
        };
        Self {
            kind,
            project: Some(Project::from(version.row)),
            cursor: encode_event_cursor(version.at),
        }
    }
}

fn is_deleted(row: &ProjectRow) -> bool {
    row.status == domain::ProjectStatus::Deleted.as_str()
}

/// Only the last version of each project, in the order of those last ones.
fn latest_per_project(versions: Vec<Version>) -> Vec<Version> {
    let mut last: HashMap<Uuid, usize> = HashMap::new();
    for (i, version) in versions.iter().enumerate() {
        last.insert(version.row.id, i);
    }
    versions
        .into_iter()
        .enumerate()
        .filter(|(i, version)| last.get(&version.row.id) == Some(i))
        .map(|(_, version)| version)
        .collect()
}

/// The versions the events of `events` make, sorted in feed order, in
/// batches of the events that are ready together. A project in `known` is
/// shown from the version after its row's; one first met mid-history from
/// the version of the first event met (what came before it is before the
/// stream's start). An error ends the stream.
fn versions(
    pool: PgPool,
    events: impl Stream<Item = Result<Arc<Envelope>, LiveError>> + Send + 'static,
    mut known: HashMap<Uuid, ProjectVersions>,
) -> impl Stream<Item = Result<Vec<Version>, LiveError>> + Send + 'static {
    async_stream::stream! {
        let mut batches = std::pin::pin!(events.ready_chunks(BATCH));
        while let Some(batch) = batches.next().await {
            let mut failed = None;
            // Each project's events in the batch, in feed order (which is
            // sequence order within a project).
            let mut touched: Vec<(Uuid, Vec<Arc<Envelope>>)> = Vec::new();
            for event in batch {
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                };
                if event.aggregate_type != PROJECT {
                    continue;
                }
                let Ok(id) = Uuid::parse_str(&event.aggregate_id) else {
                    continue;
                };
                match touched.iter_mut().find(|(seen, _)| *seen == id) {
                    Some((_, events)) => events.push(event),
                    None => touched.push((id, vec![event])),
                }
            }
            if !touched.is_empty() {
                match catch_up(&pool, &mut known, touched).await {
                    Ok(versions) if versions.is_empty() => {}
                    Ok(versions) => yield Ok(versions),
                    Err(err) => {
                        yield Err(LiveError::Store(err));
                        return;
                    }
                }
            }
            if let Some(err) = failed {
                yield Err(err);
                return;
            }
        }
    }
}

/// Folds each touched project up to its last event in the batch: from the
/// events themselves when they are the project's next ones, otherwise (a
/// gap, or a project first met mid-history) from the store.
async fn catch_up(
    pool: &PgPool,
    known: &mut HashMap<Uuid, ProjectVersions>,
    touched: Vec<(Uuid, Vec<Arc<Envelope>>)>,
) -> Result<Vec<Version>, sqlx::Error> {
    let mut conn = None;
    let mut all = Vec::new();
    for (id, events) in touched {
        let project = known.entry(id).or_insert_with(|| ProjectVersions::new(id));
        if let Some(versions) = from_the_feed(project, &events) {
            all.extend(versions);
            continue;
        }
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            continue;
        };
        let conn = match &mut conn {
            Some(conn) => conn,
            None => conn.insert(pool.acquire().await?),
        };
        if project.folded() == 0 && first.sequence > 1 {
            project.skip_to(conn, Some(first.sequence - 1)).await?;
        }
        if project.folded() < last.sequence {
            all.extend(project.catch_up(conn, Some(last.sequence)).await?);
        }
    }
    all.sort_by_key(|version| version.at);
    Ok(all)
}

/// The versions `events` make, folded from the events themselves, when
/// those not yet folded in follow the project's last one without a gap
/// (the first one the creation, for a project not met yet); `None`, with
/// nothing folded in, otherwise.
fn from_the_feed(project: &mut ProjectVersions, events: &[Arc<Envelope>]) -> Option<Vec<Version>> {
    let fresh: Vec<&Arc<Envelope>> = events
        .iter()
        .filter(|event| event.sequence > project.folded())
        .collect();
    let next = project.folded() + 1;
    let follows = fresh
        .iter()
        .zip(next..)
        .all(|(event, sequence)| event.sequence == sequence);
    if !follows || (project.row().is_none() && next != 1) {
        return None;
    }
    let stored: Vec<_> = fresh
        .iter()
        .map(|event| event.to_stored())
        .collect::<Option<_>>()?;
    Some(
        stored
            .iter()
            .filter_map(|event| project.fold(event))
            .collect(),
    )
}

fn replay_from_store() -> OnLag {
    OnLag::Replay(Arc::new(|_skipped| {}))
}

fn store_error(err: sqlx::Error) -> ApiError {
    ApiError::from(QueryError::from(err))
}

/// `projectChanged(id, sinceVersion, coalesce)`: project `id`'s current
/// state, or with `since` each version after it, then every later version;
/// with `coalesce`, only the latest of those pending at once. Ends after
/// the version that deletes the project.
///
/// # Errors
/// NOT_FOUND for a project that does not exist; INVALID_INPUT for a
/// `since` below 0 or past the current version.
pub async fn project(
    state: &ApiState,
    id: Uuid,
    since: Option<i64>,
    coalesce: bool,
) -> Result<impl Stream<Item = Result<Project, LiveError>> + Send + 'static, ApiError> {
    if let Some(since) = since.filter(|since| *since < 0) {
        return Err(ApiError::invalid_input(format!(
            "sinceVersion must be 0 or more (a version a query or an earlier message showed), got {since}"
        )));
    }
    // Subscribe first: every event is then either readable at `start`, and
    // so in the history read after it, or comes after `start`.
    let live = state.live.subscribe();
    let pool = state.read.pool().clone();
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
        first.push(Version {
            row: current,
            at: start,
        });
    }
    let filter = EventFilter {
        aggregate_id: Some(id.to_string()),
        ..EventFilter::default()
    };
    let events = replay_then_live(
        pool.clone(),
        state.hub_id.clone(),
        live,
        filter,
        Some(start),
        replay_from_store(),
    );
    Ok(async_stream::stream! {
        // With `coalesce`, the latest version not sent yet.
        let mut pending = None;
        for version in first {
            if coalesce {
                pending = Some(version);
            } else {
                yield Ok(Project::from(version.row));
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
                    yield Ok(Project::from(version.row));
                }
            }
            if project.folded() < before + REPLAY_PAGE {
                break;
            }
        }
        if let Some(version) = pending {
            yield Ok(Project::from(version.row));
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
                yield Ok(Project::from(version.row));
                if deleted {
                    return;
                }
            }
        }
    })
}

/// `projectChanged` without an id: every version of every project from now
/// on; with `coalesce`, only the latest of each project's pending at once.
///
/// # Errors
/// When the store cannot be read.
pub async fn every_project(
    state: &ApiState,
    coalesce: bool,
) -> Result<impl Stream<Item = Result<Project, LiveError>> + Send + 'static, ApiError> {
    let live = state.live.subscribe();
    let pool = state.read.pool().clone();
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let start = last_readable(&mut conn).await.map_err(store_error)?;
    drop(conn);
    let events = replay_then_live(
        pool.clone(),
        state.hub_id.clone(),
        live,
        EventFilter::default(),
        Some(start),
        replay_from_store(),
    );
    Ok(
        versions(pool, events, HashMap::new()).flat_map(move |batch| {
            let batch = match batch {
                Ok(batch) if coalesce => latest_per_project(batch),
                Ok(batch) => batch,
                Err(err) => return futures::stream::iter(vec![Err(err)]),
            };
            let projects: Vec<_> = batch
                .into_iter()
                .map(|version| Ok(Project::from(version.row)))
                .collect();
            futures::stream::iter(projects)
        }),
    )
}

/// `projectsChanged(after)`: without `after`, every project that is not
/// deleted (`SNAPSHOT`, then `SNAPSHOT_COMPLETE`); with it, nothing yet;
/// then every change after that point, each exactly once, in feed order.
///
/// # Errors
/// When the store or the read model cannot be read.
pub async fn board(
    state: &ApiState,
    after: Option<FeedPosition>,
) -> Result<impl Stream<Item = Result<ProjectChange, LiveError>> + Send + 'static, ApiError> {
    let live = state.live.subscribe();
    let (start, snapshot) = match after {
        Some(after) => (after, None),
        None => {
            let board = state.read.board().await.map_err(ApiError::from)?;
            (board.at, Some(board.rows))
        }
    };
    let known: HashMap<Uuid, ProjectVersions> = snapshot
        .iter()
        .flatten()
        .map(|row| (row.id, ProjectVersions::from_row(row.clone())))
        .collect();
    let pool = state.read.pool().clone();
    let events = replay_then_live(
        pool.clone(),
        state.hub_id.clone(),
        live,
        EventFilter::default(),
        Some(start),
        replay_from_store(),
    );
    let cursor = encode_event_cursor(start);
    let mut first = Vec::new();
    if let Some(rows) = snapshot {
        for row in rows {
            first.push(Ok(ProjectChange {
                kind: ProjectChangeKind::Snapshot,
                project: Some(Project::from(row)),
                cursor: cursor.clone(),
            }));
        }
        first.push(Ok(ProjectChange {
            kind: ProjectChangeKind::SnapshotComplete,
            project: None,
            cursor,
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

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use infrastructure::feed::StoredEvent;
    use infrastructure::CommandMetadata;
    use serde_json::json;

    use super::*;

    fn envelope(id: Uuid, sequence: i64) -> Arc<Envelope> {
        let (event_type, fields) = if sequence == 1 {
            (
                "ProjectCreated",
                json!({
                    "project_id": id, "name": "Feed", "slug": "feed", "path": "/srv/feed",
                    "ports": {"backend": 20000, "frontend": 20001, "postgres": 20002, "redis": 20003},
                }),
            )
        } else {
            (
                "ProjectRenamed",
                json!({"name": format!("Feed {sequence}"), "slug": format!("feed-{sequence}")}),
            )
        };
        let stored = StoredEvent {
            event_id: Uuid::new_v4(),
            position: sequence,
            transaction_id: sequence,
            aggregate_type: PROJECT.to_owned(),
            aggregate_id: id.to_string(),
            sequence,
            event_type: event_type.to_owned(),
            event_version: "1.0".to_owned(),
            payload: json!({ event_type: fields }),
            metadata: CommandMetadata::from_json(&json!({})),
            recorded_at: Utc::now(),
            unreadable: None,
        };
        Arc::new(Envelope::from_stored(&stored, "h"))
    }

    fn shown(versions: Option<Vec<Version>>) -> Option<Vec<i64>> {
        versions.map(|versions| versions.iter().map(|v| v.row.version).collect())
    }

    #[test]
    fn the_next_events_of_a_project_are_folded_from_the_feed() {
        let id = Uuid::new_v4();
        let mut project = ProjectVersions::new(id);
        let events = [envelope(id, 1), envelope(id, 2)];
        assert_eq!(
            shown(from_the_feed(&mut project, &events)),
            Some(vec![1, 2])
        );
        // Already folded in: nothing again; the next ones after them.
        let events = [envelope(id, 2), envelope(id, 3), envelope(id, 4)];
        assert_eq!(
            shown(from_the_feed(&mut project, &events)),
            Some(vec![3, 4])
        );
        assert_eq!(project.row().map(|row| row.name.as_str()), Some("Feed 4"));
    }

    #[test]
    fn a_gap_or_a_project_met_mid_history_is_left_to_the_store() {
        let id = Uuid::new_v4();
        let mut project = ProjectVersions::new(id);
        assert_eq!(shown(from_the_feed(&mut project, &[envelope(id, 3)])), None);
        assert_eq!(project.folded(), 0);
        from_the_feed(&mut project, &[envelope(id, 1), envelope(id, 2)]);
        let gap = [envelope(id, 4), envelope(id, 5)];
        assert_eq!(shown(from_the_feed(&mut project, &gap)), None);
        let hole = [envelope(id, 3), envelope(id, 5)];
        assert_eq!(shown(from_the_feed(&mut project, &hole)), None);
        assert_eq!(project.folded(), 2, "nothing was folded in");
    }

    fn version(id: Uuid, n: i64) -> Version {
        let now = Utc::now();
        Version {
            row: ProjectRow {
                id,
                name: format!("v{n}"),
                slug: format!("v{n}"),
                path: "/srv/v".to_owned(),
                backend_port: 1,
                frontend_port: 2,
                postgres_port: 3,
                redis_port: 4,
                status: "STOPPED".to_owned(),
                version: n,
                created_at: now,
                updated_at: now,
                last_started_at: None,
                last_stopped_at: None,
                last_error: None,
            },
            at: FeedPosition {
                transaction_id: n,
                position: n,
            },
        }
    }

    #[test]
    fn coalescing_keeps_the_latest_version_of_each_project() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let kept: Vec<(Uuid, i64)> = latest_per_project(vec![
            version(a, 1),
            version(b, 1),
            version(a, 2),
            version(b, 2),
            version(a, 3),
        ])
        .iter()
        .map(|v| (v.row.id, v.row.version))
        .collect();
        assert_eq!(kept, [(b, 2), (a, 3)]);
    }
}
