//! Given / when / then tests of the integration event rules.

use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type Framework = TestFramework<IntegrationEvent>;

fn subject(s: &str) -> EventSubject {
    EventSubject::parse(s).expect("a valid subject")
}

fn payload() -> EventPayload {
    EventPayload::parse(json!({"status": "passed", "findings": 0})).expect("an object")
}

fn publish(hub_id: &str, on: &str) -> IntegrationCommand {
    IntegrationCommand::Publish {
        hub_id: hub_id.to_owned(),
        subject: subject(on),
        payload: payload(),
    }
}

#[tokio::test]
async fn publishing_records_the_subject_and_payload() {
    Framework::with(())
        .given_no_previous_events()
        .when_async(publish(
            "local-hub",
            "hub.local-hub.audit.security.completed",
        ))
        .await
        .then_expect_events(vec![IntegrationFact::IntegrationEventPublished {
            subject: subject("hub.local-hub.audit.security.completed"),
            payload: payload(),
        }]);
}

#[tokio::test]
async fn a_subject_of_another_hub_is_refused() {
    Framework::with(())
        .given_no_previous_events()
        .when_async(publish(
            "local-hub",
            "hub.other-hub.audit.security.completed",
        ))
        .await
        .then_expect_error(IntegrationError::ForeignHub {
            subject_hub: "other-hub".into(),
            hub_id: "local-hub".into(),
        });
}

#[tokio::test]
async fn publishing_the_same_integration_event_twice_is_refused() {
    Framework::with(())
        .given(vec![IntegrationFact::IntegrationEventPublished {
            subject: subject("hub.h.audit.done"),
            payload: payload(),
        }])
        .when_async(publish("h", "hub.h.audit.done"))
        .await
        .then_expect_error(IntegrationError::AlreadyPublished);
}

#[test]
fn the_stored_form_is_tagged_with_the_event_type() {
    let fact = IntegrationFact::IntegrationEventPublished {
        subject: subject("hub.h.audit.done"),
        payload: payload(),
    };
    assert_eq!(
        serde_json::to_value(&fact).unwrap(),
        json!({"IntegrationEventPublished": {
            "subject": "hub.h.audit.done",
            "payload": {"status": "passed", "findings": 0}
        }})
    );
    assert_eq!(
        cqrs_es::DomainEvent::event_type(&fact),
        IntegrationFact::PUBLISHED
    );
}

#[test]
fn an_applied_event_makes_the_aggregate_published() {
    let mut aggregate = IntegrationEvent::default();
    assert_eq!(aggregate.subject(), None);
    cqrs_es::Aggregate::apply(
        &mut aggregate,
        IntegrationFact::IntegrationEventPublished {
            subject: subject("hub.h.audit.done"),
            payload: payload(),
        },
    );
    assert_eq!(aggregate.subject(), Some(&subject("hub.h.audit.done")));
}
