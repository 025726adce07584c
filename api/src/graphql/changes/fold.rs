//! The versions a stream of events makes: each project event folded into
//! its project's row. Events that follow the last one folded in are folded
//! as they come (the envelope carries the stored event:
//! [`Envelope::to_stored`]); after a gap, or for a project first met
//! mid-history, the project's events after the last one folded in are read
//! from the store instead (one read by the primary key per project and
//! batch of events ready together), so no version is ever skipped.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::Aggregate as _;
use domain::Project;
use futures::{Stream, StreamExt as _};
use infrastructure::nats::Envelope;
use projections::projects::Version;
use projections::ProjectVersions;
use sqlx::PgPool;
use uuid::Uuid;

use crate::live_events::LiveError;

/// Events taken from the stream at most at once (those ready together).
const BATCH: usize = 256;

/// Only the last version of each project, in the order of those last ones.
pub(super) fn latest_per_project(versions: Vec<Version>) -> Vec<Version> {
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
pub(super) fn versions(
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
                if event.aggregate_type != Project::TYPE {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use infrastructure::feed::{FeedPosition, StoredEvent};
    use infrastructure::CommandMetadata;
    use projections::ProjectRow;
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
            aggregate_type: Project::TYPE.to_owned(),
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
                status: domain::ProjectStatus::Stopped,
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
