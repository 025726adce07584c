//! The [`IntegrationEvent`] aggregate: one event a client publishes through
//! the hub, kept in the store like every other event.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{EventSubject, IntegrationCommand, IntegrationError, IntegrationFact};

/// One integration event. Each has its own aggregate id and exactly one
/// stored event (sequence 1); the default value has not been published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrationEvent {
    published: Option<EventSubject>,
}

impl IntegrationEvent {
    /// The subject it was published on, once published.
    pub fn subject(&self) -> Option<&EventSubject> {
        self.published.as_ref()
    }

    /// Decides what `command` means for this integration event: the one
    /// event to record, or why not.
    ///
    /// # Errors
    ///
    /// [`IntegrationError`]: it was published already, or on another hub's
    /// subject.
    pub fn decide(&self, command: IntegrationCommand) -> Result<IntegrationFact, IntegrationError> {
        match command {
            IntegrationCommand::Publish {
                hub_id,
                subject,
                payload,
            } => {
                if self.published.is_some() {
                    return Err(IntegrationError::AlreadyPublished);
                }
                if subject.hub_id() != hub_id {
                    return Err(IntegrationError::ForeignHub {
                        subject_hub: subject.hub_id().to_owned(),
                        hub_id,
                    });
                }
                Ok(IntegrationFact::IntegrationEventPublished { subject, payload })
            }
        }
    }
}

impl Aggregate for IntegrationEvent {
    const TYPE: &'static str = "IntegrationEvent";
    type Command = IntegrationCommand;
    type Event = IntegrationFact;
    type Error = IntegrationError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            IntegrationFact::IntegrationEventPublished { subject, .. } => {
                self.published = Some(subject);
            }
        }
    }
}
