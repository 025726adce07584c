//! Upcasters: stored events of older shapes, rewritten on read into the
//! shape [`ProjectEvent`](super::ProjectEvent) has now. History is never
//! edited; every reader (the aggregate's store and the read models) upcasts.
//!
//! | event | stored version | change |
//! | --- | --- | --- |
//! | `ProjectCreated` | `0.9` | flat `backend_port`, `frontend_port`, `postgres_port`, `redis_port` nested into `ports` (`1.0`) |

use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster, SerializedEvent};
use serde_json::{Map, Value};

/// The version [`ProjectEvent`](super::ProjectEvent) writes today.
pub const CURRENT_VERSION: &str = "1.0";

/// The project upcasters, oldest change first, for a cqrs-es event store
/// (`PersistedEventStore::with_upcasters`).
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "ProjectCreated",
        "1.0",
        Box::new(created_ports_nested),
    ))]
}

static UPCASTERS: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// Whether a stored `event_type` at `event_version` has an older shape than
/// today's (some upcaster applies to it).
pub fn is_outdated(event_type: &str, event_version: &str) -> bool {
    UPCASTERS
        .iter()
        .any(|upcaster| upcaster.can_upcast(event_type, event_version))
}

/// A stored project event in today's shape, with the version it now has:
/// every upcaster that applies to `event_type` at `event_version`, in order.
/// Every upcaster leads to [`CURRENT_VERSION`], so an event that any of them
/// changed is reported at that version; others keep theirs. For readers that
/// hand events on (the event log, the NATS relay).
pub fn upcast_event(event_type: &str, event_version: &str, payload: Value) -> (String, Value) {
    if !is_outdated(event_type, event_version) {
        return (event_version.to_owned(), payload);
    }
    (
        CURRENT_VERSION.to_owned(),
        upcast_payload(event_type, event_version, payload),
    )
}

/// A stored payload in today's shape: every upcaster that applies to
/// `event_type` at `event_version`, in order.
fn upcast_payload(event_type: &str, event_version: &str, payload: Value) -> Value {
    let mut event = SerializedEvent::new(
        String::new(),
        0,
        String::new(),
        event_type.to_owned(),
        event_version.to_owned(),
        payload,
        Value::Null,
    );
    for upcaster in UPCASTERS.iter() {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    event.payload
}

/// `ProjectCreated` 0.9 kept its four ports as flat fields; 1.0 nests them
/// in `ports`. A payload already in the new shape is left alone.
fn created_ports_nested(mut payload: Value) -> Value {
    let Some(body) = payload
        .get_mut("ProjectCreated")
        .and_then(Value::as_object_mut)
    else {
        return payload;
    };
    if body.contains_key("ports") {
        return payload;
    }
    let mut ports = Map::new();
    for kind in ["backend", "frontend", "postgres", "redis"] {
        if let Some(port) = body.remove(&format!("{kind}_port")) {
            ports.insert(kind.to_owned(), port);
        }
    }
    body.insert("ports".to_owned(), Value::Object(ports));
    payload
}

#[cfg(test)]
mod tests {
    use cqrs_es::Aggregate as _;

    use super::*;
    use crate::{Project, ProjectEvent};
    use serde_json::json;

    fn old_created() -> Value {
        json!({"ProjectCreated": {
            "project_id": "5b0c2a4e-3f5d-4d6c-9f1a-2b3c4d5e6f70",
            "name": "Old project",
            "slug": "old-project",
            "path": "/srv/old",
            "backend_port": 20000,
            "frontend_port": 20001,
            "postgres_port": 20002,
            "redis_port": 20003
        }})
    }

    #[test]
    fn a_0_9_project_created_reads_as_today_s_event() {
        let payload = upcast_payload("ProjectCreated", "0.9", old_created());
        let event: ProjectEvent = serde_json::from_value(payload).expect("the current shape");
        let ProjectEvent::ProjectCreated { ports, name, .. } = event else {
            panic!("still a ProjectCreated");
        };
        assert_eq!(name.as_str(), "Old project");
        assert_eq!(
            (ports.backend, ports.frontend, ports.postgres, ports.redis),
            (20000, 20001, 20002, 20003)
        );
    }

    #[test]
    fn an_upcast_event_is_reported_at_the_current_version() {
        let (version, payload) = upcast_event("ProjectCreated", "0.9", old_created());
        assert_eq!(version, CURRENT_VERSION);
        assert!(payload["ProjectCreated"]["ports"].is_object());
        let current = json!({"ProjectStarted": {}});
        assert_eq!(
            upcast_event("ProjectStarted", "0.9", current.clone()),
            ("0.9".to_owned(), current)
        );
    }

    #[test]
    fn current_events_and_other_types_are_left_alone() {
        let current = json!({"ProjectCreated": {"ports": {"backend": 1}}});
        assert_eq!(
            upcast_payload("ProjectCreated", CURRENT_VERSION, current.clone()),
            current
        );
        let old_shape = old_created();
        assert_eq!(
            upcast_payload("ProjectRenamed", "0.9", old_shape.clone()),
            old_shape
        );
    }

    #[test]
    fn the_cqrs_upcaster_also_moves_the_version_on() {
        let upcasters = upcasters();
        let event = SerializedEvent::new(
            "id".into(),
            1,
            Project::TYPE.into(),
            "ProjectCreated".into(),
            "0.9".into(),
            old_created(),
            Value::Null,
        );
        assert!(upcasters[0].can_upcast("ProjectCreated", "0.9"));
        assert!(!upcasters[0].can_upcast("ProjectCreated", "1.0"));
        let upcast = upcasters[0].upcast(event);
        assert_eq!(upcast.event_version, "1.0.0");
        assert!(upcast.payload["ProjectCreated"]["ports"].is_object());
    }
}
