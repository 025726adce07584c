//! What the store keeps for an integration event.

use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{EventPayload, EventSubject};

/// A fact about an integration event, stored for ever.
///
/// Serialized externally tagged, like every hub event:
/// `{"IntegrationEventPublished": {"subject": ..., "payload": {...}}}`. The
/// feed publishes it on its own `subject` with `payload` as the envelope's
/// payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum IntegrationFact {
    /// A client published an event through the hub.
    IntegrationEventPublished {
        /// Where it is published.
        subject: EventSubject,
        /// Its body.
        payload: EventPayload,
    },
}

impl IntegrationFact {
    /// The stored event type of [`IntegrationFact::IntegrationEventPublished`].
    pub const PUBLISHED: &'static str = "IntegrationEventPublished";
}

impl DomainEvent for IntegrationFact {
    fn event_type(&self) -> String {
        match self {
            Self::IntegrationEventPublished { .. } => Self::PUBLISHED.to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
