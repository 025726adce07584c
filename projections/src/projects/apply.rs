//! Folding one event into the `projects` rows held in memory.

use std::collections::HashMap;

use serde::Deserialize as _;

use domain::{ProjectEvent, ProjectStatus};
use infrastructure::feed::StoredEvent;
use uuid::Uuid;

use super::{ProjectRow, ProjectionError};

/// Applies one event to the rows in memory; returns whether a row changed.
pub(super) fn apply(
    rows: &mut HashMap<Uuid, ProjectRow>,
    id: Uuid,
    event: &StoredEvent,
) -> Result<bool, ProjectionError> {
    // Read from the stored payload, copied only when an older shape must be
    // upcast first.
    let current = event.in_current_shape();
    let parsed = ProjectEvent::deserialize(&current.payload).map_err(|source| {
        ProjectionError::Malformed {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            source,
        }
    })?;
    let at = event.recorded_at;
    if let ProjectEvent::ProjectCreated {
        name,
        slug,
        path,
        ports,
        ..
    } = &parsed
    {
        if rows.contains_key(&id) {
            // Already applied (a replay over an existing row).
            return Ok(false);
        }
        let row = ProjectRow {
            id,
            name: name.as_str().to_owned(),
            slug: slug.as_str().to_owned(),
            path: path.as_str().to_owned(),
            backend_port: i32::from(ports.backend),
            frontend_port: i32::from(ports.frontend),
            postgres_port: i32::from(ports.postgres),
            redis_port: i32::from(ports.redis),
            status: ProjectStatus::Stopped,
            version: event.sequence,
            created_at: at,
            updated_at: at,
            last_started_at: None,
            last_stopped_at: None,
            last_error: None,
        };
        rows.insert(id, row);
        return Ok(true);
    }
    let Some(row) = rows.get_mut(&id) else {
        return Err(ProjectionError::UnknownProject {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
        });
    };
    if event.sequence <= row.version {
        // Already applied (a replay over an existing row).
        return Ok(false);
    }
    // `lastError` stays through a new request and changes only with its
    // outcome: set by a failure, cleared by a success. `ProjectStarted` and
    // `ProjectStopped` mean the same with or without a request before them
    // (histories from before orchestration have none).
    match parsed {
        ProjectEvent::ProjectCreated { .. } => {}
        ProjectEvent::ProjectStartRequested {} => {
            row.status = ProjectStatus::Starting;
        }
        ProjectEvent::ProjectStopRequested {} | ProjectEvent::ProjectRestartRequested {} => {
            row.status = ProjectStatus::Stopping;
        }
        ProjectEvent::ProjectStarted {} => {
            row.status = ProjectStatus::Running;
            row.last_started_at = Some(at);
            row.last_error = None;
        }
        ProjectEvent::ProjectStopped {} => {
            row.status = ProjectStatus::Stopped;
            row.last_stopped_at = Some(at);
            row.last_error = None;
        }
        ProjectEvent::ProjectStartFailed { reason }
        | ProjectEvent::ProjectStopFailed { reason } => {
            row.status = ProjectStatus::Error;
            row.last_error = Some(reason.as_str().to_owned());
        }
        ProjectEvent::ProjectRenamed { name, slug } => {
            row.name = name.as_str().to_owned();
            row.slug = slug.as_str().to_owned();
        }
        ProjectEvent::ProjectDeleted {} => {
            row.status = ProjectStatus::Deleted;
        }
    }
    row.version = event.sequence;
    row.updated_at = at;
    Ok(true)
}
