//! The metadata every command carries onto its events.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an event came from: the original event-system design's `origin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The hub that recorded the event.
    pub hub_id: String,
    /// The service inside the hub (e.g. `hub-api`).
    pub service: String,
    /// Who asked for it, when known (`anonymous` otherwise).
    pub user: String,
}

/// Correlation, causation and origin of one command.
///
/// The correlation id ties together everything caused by one request; the
/// causation id names the message that directly caused the events (for a
/// command from a client: the command's own id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMetadata {
    /// Shared by everything one request caused.
    pub correlation_id: String,
    /// The message that directly caused these events.
    pub causation_id: String,
    /// Who and where.
    pub origin: Origin,
}

/// Metadata keys, as stored in the `events.metadata` JSON object.
pub mod keys {
    /// See [`super::CommandMetadata::correlation_id`].
    pub const CORRELATION_ID: &str = "correlation_id";
    /// See [`super::CommandMetadata::causation_id`].
    pub const CAUSATION_ID: &str = "causation_id";
    /// See [`super::Origin::hub_id`].
    pub const HUB_ID: &str = "hub_id";
    /// See [`super::Origin::service`].
    pub const SERVICE: &str = "service";
    /// See [`super::Origin::user`].
    pub const USER: &str = "user";
}

impl CommandMetadata {
    /// Metadata for a command a client sent, correlated with `correlation_id`.
    /// The causation id is a new command id.
    pub fn for_request(correlation_id: impl Into<String>, origin: Origin) -> Self {
        Self {
            correlation_id: correlation_id.into(),
            causation_id: Uuid::new_v4().to_string(),
            origin,
        }
    }

    /// The map cqrs-es copies onto every event of the command.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            (keys::CORRELATION_ID.to_owned(), self.correlation_id.clone()),
            (keys::CAUSATION_ID.to_owned(), self.causation_id.clone()),
            (keys::HUB_ID.to_owned(), self.origin.hub_id.clone()),
            (keys::SERVICE.to_owned(), self.origin.service.clone()),
            (keys::USER.to_owned(), self.origin.user.clone()),
        ])
    }

    /// The correlation id, when the event has one (events written by other
    /// tools may not).
    pub fn correlation(&self) -> Option<String> {
        non_empty(&self.correlation_id)
    }

    /// The causation id, when the event has one.
    pub fn causation(&self) -> Option<String> {
        non_empty(&self.causation_id)
    }

    /// Reads metadata back from a stored event's JSON; missing keys become
    /// empty strings (events written by other tools may lack them).
    pub fn from_json(value: &serde_json::Value) -> Self {
        let get = |key: &str| {
            value
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            correlation_id: get(keys::CORRELATION_ID),
            causation_id: get(keys::CAUSATION_ID),
            origin: Origin {
                hub_id: get(keys::HUB_ID),
                service: get(keys::SERVICE),
                user: get(keys::USER),
            },
        }
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_a_round_trip_through_json() {
        let meta = CommandMetadata::for_request(
            "corr-1",
            Origin {
                hub_id: "hub-a".into(),
                service: "hub-api".into(),
                user: "ada".into(),
            },
        );
        let json = serde_json::to_value(meta.to_map()).unwrap();
        assert_eq!(CommandMetadata::from_json(&json), meta);
    }
}
