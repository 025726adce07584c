//! What a caller can ask of an integration event.

use super::{EventPayload, EventSubject};

/// A request to record an integration event. Its values are already
/// parsed; `handle` checks that the subject belongs to this hub and that
/// the event was not published before.
#[derive(Clone, Debug, PartialEq)]
pub enum IntegrationCommand {
    /// Record `payload` for publication on `subject`.
    Publish {
        /// The id of the hub recording it: the subject's second token must
        /// be this id.
        hub_id: String,
        /// Where the event is published.
        subject: EventSubject,
        /// The event's body.
        payload: EventPayload,
    },
}
