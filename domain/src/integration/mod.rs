//! Integration events: events that clients (scripts, other tools) publish
//! through the hub on a subject of their choosing under `hub.<hub_id>.`.
//! Each is an aggregate of its own, so it is stored, relayed and logged like
//! every other event.
//!
//! - [`aggregate`]: [`IntegrationEvent`] and its one rule set.
//! - [`command`]: [`IntegrationCommand`], with its one command `Publish`.
//! - [`event`]: [`IntegrationFact`], with its one event `IntegrationEventPublished`.
//! - [`error`]: [`IntegrationError`], why a publish was refused.
//! - [`subject`]: [`EventSubject`], a concrete subject under `hub.`.
//! - [`payload`]: [`EventPayload`], a JSON object.

pub mod aggregate;
pub mod command;
pub mod error;
pub mod event;
pub mod payload;
pub mod subject;

#[cfg(test)]
mod tests;

pub use aggregate::IntegrationEvent;
pub use command::IntegrationCommand;
pub use error::IntegrationError;
pub use event::IntegrationFact;
pub use payload::{EventPayload, PayloadError};
pub use subject::{EventSubject, EventSubjectError};
