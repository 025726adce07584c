//! Stored events of older shapes, read in today's shape.
//!
//! History is never edited: an event stored by an older build keeps its
//! payload and version in `events`. Readers that hand events on (the event
//! log, the NATS relay) take them through [`StoredEvent::in_current_shape`],
//! so clients see one shape per event type whatever build stored it. The
//! upcasters themselves are the domain's (`domain::project::upcast`), the
//! same ones the aggregate's store uses.

use std::borrow::Cow;

use cqrs_es::Aggregate as _;
use domain::project::upcast::{is_outdated, upcast_event};
use domain::Project;

use crate::feed::StoredEvent;

impl StoredEvent {
    /// This event in today's shape, with the version it now has; borrowed
    /// when no upcaster applies (nearly always).
    pub fn in_current_shape(&self) -> Cow<'_, StoredEvent> {
        if self.aggregate_type != Project::TYPE
            || !is_outdated(&self.event_type, &self.event_version)
        {
            return Cow::Borrowed(self);
        }
        let (event_version, payload) =
            upcast_event(&self.event_type, &self.event_version, self.payload.clone());
        Cow::Owned(StoredEvent {
            event_version,
            payload,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::CommandMetadata;

    fn stored(aggregate_type: &str, version: &str) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::new_v4(),
            position: 1,
            transaction_id: 1,
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: Uuid::new_v4().to_string(),
            sequence: 1,
            event_type: "ProjectCreated".to_owned(),
            event_version: version.to_owned(),
            payload: json!({"ProjectCreated": {"name": "Old", "backend_port": 20000}}),
            metadata: CommandMetadata::from_json(&json!({})),
            recorded_at: Utc::now(),
            unreadable: None,
        }
    }

    #[test]
    fn an_old_project_event_is_read_in_today_s_shape() {
        let event = stored(Project::TYPE, "0.9");
        let current = event.in_current_shape();
        assert!(matches!(current, Cow::Owned(_)));
        assert_eq!(
            current.event_version,
            domain::project::upcast::CURRENT_VERSION
        );
        assert_eq!(current.body()["ports"]["backend"], 20000);
        assert_eq!(current.event_id, event.event_id);
    }

    #[test]
    fn current_events_and_other_aggregates_are_borrowed_as_they_are() {
        let current = stored(Project::TYPE, domain::project::upcast::CURRENT_VERSION);
        assert!(matches!(current.in_current_shape(), Cow::Borrowed(_)));
        // An integration event may use any type name and version.
        let other = stored(domain::IntegrationEvent::TYPE, "0.9");
        assert!(matches!(other.in_current_shape(), Cow::Borrowed(_)));
    }
}
