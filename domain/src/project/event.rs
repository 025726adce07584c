//! What happened to a project: the facts the event store keeps.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::project::FailureReason;
use crate::{Ports, ProjectId, ProjectName, ProjectPath, Slug};

/// A fact about a project, stored for ever.
///
/// Serialized externally tagged with struct variants only, so every stored
/// payload is an object: `{"ProjectCreated": {...}}`,
/// `{"ProjectStarted": {}}`.
///
/// # Versions
///
/// Every variant is at [`DomainEvent::event_version`] `"1.0"`. Adding a
/// variant (as orchestration added the `*Requested` and `*Failed` events)
/// needs no new version: old readers never meet it in old histories.
/// Changing an existing variant's shape means a new version and an
/// upcaster, never editing history.
///
/// # Read by SQL
///
/// The reservation trigger (`migrations/0002`) reads `ProjectCreated`'s
/// `slug` and `ports` and `ProjectRenamed`'s `slug` from the stored JSON,
/// and matches `ProjectDeleted` by type. The `reservation_trigger` tests
/// pin that shape; a change of it needs a migration replacing the trigger.
///
/// # Lifecycle, old and new
///
/// Since orchestration, a start is `ProjectStartRequested` followed by
/// `ProjectStarted` or `ProjectStartFailed`, and a stop is
/// `ProjectStopRequested` (or `ProjectRestartRequested`) followed by
/// `ProjectStopped` or `ProjectStopFailed`. Histories written before that
/// hold `ProjectStarted` and `ProjectStopped` directly, without a request
/// before them; they keep their meaning ("now running", "now stopped"), so
/// those histories still load and project unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectEvent {
    /// The project was registered, with its slug and ports reserved.
    ProjectCreated {
        /// Its id.
        project_id: ProjectId,
        /// Its display name.
        name: ProjectName,
        /// The slug derived from `name`.
        slug: Slug,
        /// Its directory.
        path: ProjectPath,
        /// The block of four ports it owns.
        ports: Ports,
    },
    /// A start was asked for; the project is starting. Completed by
    /// `ProjectStarted` or `ProjectStartFailed`; the event's sequence names
    /// the request.
    ProjectStartRequested {},
    /// The project is running: a requested start succeeded (or, in
    /// histories from before orchestration, it was started directly).
    ProjectStarted {},
    /// A requested start failed; the project is in error.
    ProjectStartFailed {
        /// Why, e.g. the start command's exit code and stderr tail.
        reason: FailureReason,
    },
    /// A stop was asked for; the project is stopping. Completed by
    /// `ProjectStopped` or `ProjectStopFailed`.
    ProjectStopRequested {},
    /// A restart was asked for: a stop request that, once it succeeds, is
    /// followed by `ProjectStartRequested` in the same commit. The project
    /// is stopping.
    ProjectRestartRequested {},
    /// The project is stopped: a requested stop succeeded (or, in histories
    /// from before orchestration, it was stopped directly).
    ProjectStopped {},
    /// A requested stop (or the stop of a restart) failed; the project is
    /// in error.
    ProjectStopFailed {
        /// Why.
        reason: FailureReason,
    },
    /// The project was given a new name and slug.
    ProjectRenamed {
        /// The new display name.
        name: ProjectName,
        /// The slug derived from it.
        slug: Slug,
    },
    /// The project was deleted; its slug and ports are free again.
    ProjectDeleted {},
}

impl ProjectEvent {
    /// The domain these events belong to, as it appears in NATS subjects:
    /// `hub.<hub_id>.project.<action>`.
    pub const DOMAIN: &'static str = "project";

    /// The last segment of this event's NATS subject: the event type
    /// without `Project`, in snake case (`"created"`, `"start_requested"`,
    /// `"started"`, `"start_failed"`, `"stop_requested"`,
    /// `"restart_requested"`, `"stopped"`, `"stop_failed"`, `"renamed"`,
    /// `"deleted"`).
    pub fn action(&self) -> &'static str {
        match self {
            Self::ProjectCreated { .. } => "created",
            Self::ProjectStartRequested {} => "start_requested",
            Self::ProjectStarted {} => "started",
            Self::ProjectStartFailed { .. } => "start_failed",
            Self::ProjectStopRequested {} => "stop_requested",
            Self::ProjectRestartRequested {} => "restart_requested",
            Self::ProjectStopped {} => "stopped",
            Self::ProjectStopFailed { .. } => "stop_failed",
            Self::ProjectRenamed { .. } => "renamed",
            Self::ProjectDeleted {} => "deleted",
        }
    }

    /// The event type as stored (the serde tag), e.g. `"ProjectCreated"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ProjectCreated { .. } => "ProjectCreated",
            Self::ProjectStartRequested {} => "ProjectStartRequested",
            Self::ProjectStarted {} => "ProjectStarted",
            Self::ProjectStartFailed { .. } => "ProjectStartFailed",
            Self::ProjectStopRequested {} => "ProjectStopRequested",
            Self::ProjectRestartRequested {} => "ProjectRestartRequested",
            Self::ProjectStopped {} => "ProjectStopped",
            Self::ProjectStopFailed { .. } => "ProjectStopFailed",
            Self::ProjectRenamed { .. } => "ProjectRenamed",
            Self::ProjectDeleted {} => "ProjectDeleted",
        }
    }
}

impl DomainEvent for ProjectEvent {
    fn event_type(&self) -> String {
        self.type_name().to_owned()
    }

    /// `"1.0"` for every variant; see [`ProjectEvent`]'s "Versions".
    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::PortRange;

    fn created() -> ProjectEvent {
        let name = ProjectName::parse("Café App").unwrap();
        ProjectEvent::ProjectCreated {
            project_id: ProjectId::parse("6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21").unwrap(),
            slug: Slug::from_name(&name).unwrap(),
            name,
            path: ProjectPath::parse("/srv/cafe").unwrap(),
            ports: PortRange::default().block(0).unwrap(),
        }
    }

    fn renamed() -> ProjectEvent {
        let name = ProjectName::parse("Tea App").unwrap();
        ProjectEvent::ProjectRenamed {
            slug: Slug::from_name(&name).unwrap(),
            name,
        }
    }

    /// Serializes, checks the JSON shape, and reads it back.
    fn assert_round_trip(event: ProjectEvent, expected: Value) {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json, expected);
        let back: ProjectEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn project_created_is_stored_as_a_tagged_object_of_plain_values() {
        assert_round_trip(
            created(),
            json!({"ProjectCreated": {
                "project_id": "6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21",
                "name": "Café App",
                "slug": "cafe-app",
                "path": "/srv/cafe",
                "ports": {"backend": 20000, "frontend": 20001, "postgres": 20002, "redis": 20003},
            }}),
        );
    }

    #[test]
    fn events_without_data_are_stored_as_empty_objects() {
        assert_round_trip(
            ProjectEvent::ProjectStarted {},
            json!({"ProjectStarted": {}}),
        );
        assert_round_trip(
            ProjectEvent::ProjectStopped {},
            json!({"ProjectStopped": {}}),
        );
        assert_round_trip(
            ProjectEvent::ProjectDeleted {},
            json!({"ProjectDeleted": {}}),
        );
        assert_eq!(
            serde_json::to_string(&ProjectEvent::ProjectStarted {}).unwrap(),
            r#"{"ProjectStarted":{}}"#
        );
    }

    #[test]
    fn project_renamed_is_stored_with_name_and_slug() {
        assert_round_trip(
            renamed(),
            json!({"ProjectRenamed": {"name": "Tea App", "slug": "tea-app"}}),
        );
    }

    #[test]
    fn failures_are_stored_with_their_reason_as_a_string() {
        assert_round_trip(
            ProjectEvent::ProjectStartFailed {
                reason: FailureReason::new("exit code 1: boom"),
            },
            json!({"ProjectStartFailed": {"reason": "exit code 1: boom"}}),
        );
        assert_round_trip(
            ProjectEvent::ProjectStopFailed {
                reason: FailureReason::new("timed out"),
            },
            json!({"ProjectStopFailed": {"reason": "timed out"}}),
        );
    }

    #[test]
    fn requests_are_stored_as_empty_objects() {
        assert_round_trip(
            ProjectEvent::ProjectStartRequested {},
            json!({"ProjectStartRequested": {}}),
        );
        assert_round_trip(
            ProjectEvent::ProjectStopRequested {},
            json!({"ProjectStopRequested": {}}),
        );
        assert_round_trip(
            ProjectEvent::ProjectRestartRequested {},
            json!({"ProjectRestartRequested": {}}),
        );
    }

    #[test]
    fn event_type_is_the_variant_name_and_action_the_subject_suffix() {
        let failure = || FailureReason::new("x");
        let all = [
            (created(), "ProjectCreated", "created"),
            (
                ProjectEvent::ProjectStartRequested {},
                "ProjectStartRequested",
                "start_requested",
            ),
            (ProjectEvent::ProjectStarted {}, "ProjectStarted", "started"),
            (
                ProjectEvent::ProjectStartFailed { reason: failure() },
                "ProjectStartFailed",
                "start_failed",
            ),
            (
                ProjectEvent::ProjectStopRequested {},
                "ProjectStopRequested",
                "stop_requested",
            ),
            (
                ProjectEvent::ProjectRestartRequested {},
                "ProjectRestartRequested",
                "restart_requested",
            ),
            (ProjectEvent::ProjectStopped {}, "ProjectStopped", "stopped"),
            (
                ProjectEvent::ProjectStopFailed { reason: failure() },
                "ProjectStopFailed",
                "stop_failed",
            ),
            (renamed(), "ProjectRenamed", "renamed"),
            (ProjectEvent::ProjectDeleted {}, "ProjectDeleted", "deleted"),
        ];
        for (event, event_type, action) in all {
            assert_eq!(event.event_type(), event_type);
            assert_eq!(event.action(), action);
            assert_eq!(event.event_version(), "1.0");
            // The event type must be the serde tag, or the store and the
            // payload would disagree about what an event is.
            let json = serde_json::to_value(&event).unwrap();
            assert!(json.get(event_type).is_some(), "{json}");
        }
        assert_eq!(ProjectEvent::DOMAIN, "project");
    }
}
