//! What happened to a project: the facts the event store keeps.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::{Ports, ProjectId, ProjectName, ProjectPath, Slug};

/// A fact about a project, stored for ever.
///
/// Serialized externally tagged with struct variants only, so every stored
/// payload is an object: `{"ProjectCreated": {...}}`,
/// `{"ProjectStarted": {}}`. Changing a variant's shape means a new
/// [`DomainEvent::event_version`] and an upcaster, never editing history.
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
    /// The project was started.
    ProjectStarted {},
    /// The project was stopped.
    ProjectStopped {},
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

    /// The last segment of this event's NATS subject: `"created"`,
    /// `"started"`, `"stopped"`, `"renamed"` or `"deleted"`.
    pub fn action(&self) -> &'static str {
        match self {
            Self::ProjectCreated { .. } => "created",
            Self::ProjectStarted {} => "started",
            Self::ProjectStopped {} => "stopped",
            Self::ProjectRenamed { .. } => "renamed",
            Self::ProjectDeleted {} => "deleted",
        }
    }
}

impl DomainEvent for ProjectEvent {
    fn event_type(&self) -> String {
        let name = match self {
            Self::ProjectCreated { .. } => "ProjectCreated",
            Self::ProjectStarted {} => "ProjectStarted",
            Self::ProjectStopped {} => "ProjectStopped",
            Self::ProjectRenamed { .. } => "ProjectRenamed",
            Self::ProjectDeleted {} => "ProjectDeleted",
        };
        name.to_owned()
    }

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
    fn event_type_is_the_variant_name_and_action_the_subject_suffix() {
        let all = [
            (created(), "ProjectCreated", "created"),
            (ProjectEvent::ProjectStarted {}, "ProjectStarted", "started"),
            (ProjectEvent::ProjectStopped {}, "ProjectStopped", "stopped"),
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
