//! The JSON the reservation trigger reads.
//!
//! `hub_reserve_project_resources` (`migrations/0002_project_reservations.sql`)
//! runs inside the insert of each project event and reads the stored
//! payload with JSON operators: `ProjectCreated.slug` and every value of
//! `ProjectCreated.ports`, `ProjectRenamed.slug`, and the event types
//! `ProjectCreated`, `ProjectRenamed` and `ProjectDeleted` of aggregate type
//! `Project`. A change of [`ProjectEvent`]'s serde shape that these paths no
//! longer match would reserve nothing (or fail every create) without a
//! compile error, so these tests fail first and name the trigger. The
//! trigger cannot be edited in place (a released migration is never
//! edited: `migrations/README.md`): a new shape needs a new migration that
//! replaces the function, and these tests then read that one.

use cqrs_es::DomainEvent as _;
use serde_json::Value;

use super::*;

/// The migration that defines the trigger function the tests pin.
const TRIGGER_SQL: &str = include_str!("../../../../migrations/0002_project_reservations.sql");

/// What the trigger must find: a hint naming it, for every failure.
const TRIGGER: &str = "hub_reserve_project_resources (migrations/0002) reads project events' \
     JSON; a new event shape needs a new migration replacing it";

/// The object under the stored payload's tag: what the trigger's
/// `NEW.payload -> '<event type>'` gives, for the event type postgres-es
/// stores in `events.event_type`.
fn body(event: &ProjectEvent) -> Value {
    let payload = serde_json::to_value(event).expect("project events serialize");
    let event_type = event.event_type();
    payload
        .get(&event_type)
        .cloned()
        .unwrap_or_else(|| panic!("no {event_type:?} tag in {payload}: {TRIGGER}"))
}

/// Asserts that the trigger matches `event`'s stored type and, when it reads
/// the payload, reads it under that type's tag.
fn trigger_matches(event: &ProjectEvent, reads_payload: bool) {
    let event_type = event.event_type();
    trigger_reads(&format!("WHEN '{event_type}' THEN"));
    if reads_payload {
        trigger_reads(&format!("NEW.payload -> '{event_type}'"));
    }
}

/// Asserts that the trigger's SQL still contains `fragment`.
fn trigger_reads(fragment: &str) {
    assert!(
        TRIGGER_SQL.contains(fragment),
        "the trigger no longer contains {fragment:?}: update these tests with it"
    );
}

fn created(name: &str, ports: Ports) -> ProjectEvent {
    let name = ProjectName::parse(name).unwrap();
    ProjectEvent::ProjectCreated {
        project_id: ProjectId::new(),
        slug: Slug::from_name(&name).unwrap(),
        name,
        path: ProjectPath::parse("/srv/app").unwrap(),
        ports,
    }
}

#[test]
fn the_reservation_trigger_runs_for_the_project_aggregate_type() {
    trigger_reads(&format!("WHEN (NEW.aggregate_type = '{}')", Project::TYPE));
}

#[test]
fn the_reservation_trigger_reads_the_slug_and_every_port_of_project_created() {
    let ports = PortRange::default().block(7).unwrap();
    let event = created("Café App", ports);
    trigger_matches(&event, true);
    trigger_reads("VALUES (body ->> 'slug', NEW.aggregate_id)");
    trigger_reads("json_each_text(body -> 'ports')");
    let created = body(&event);

    assert_eq!(created["slug"], "cafe-app", "{TRIGGER}");
    // The trigger reserves every value of the `ports` object, each cast to
    // an integer: the object must hold the four ports and nothing else.
    let mut reserved = created["ports"]
        .as_object()
        .unwrap_or_else(|| panic!("ProjectCreated.ports is not an object: {TRIGGER}"))
        .values()
        .map(|value| {
            value
                .as_u64()
                .unwrap_or_else(|| panic!("port {value} is not an integer: {TRIGGER}"))
        })
        .collect::<Vec<_>>();
    let mut expected = ports.all().map(u64::from).to_vec();
    expected.sort_unstable();
    reserved.sort_unstable();
    assert_eq!(reserved, expected, "{TRIGGER}");
}

#[test]
fn the_reservation_trigger_reads_the_new_slug_of_project_renamed() {
    let name = ProjectName::parse("Tea App").unwrap();
    let event = ProjectEvent::ProjectRenamed {
        slug: Slug::from_name(&name).unwrap(),
        name,
    };
    trigger_matches(&event, true);
    trigger_reads("SET slug = body ->> 'slug'");

    assert_eq!(body(&event)["slug"], "tea-app", "{TRIGGER}");
}

#[test]
fn the_reservation_trigger_frees_everything_on_the_project_deleted_type_alone() {
    let event = ProjectEvent::ProjectDeleted {};
    // The payload is not read: the stored event type is what it matches.
    trigger_matches(&event, false);
    trigger_reads("DELETE FROM project_slugs WHERE project_id = NEW.aggregate_id;");
    trigger_reads("DELETE FROM project_ports WHERE project_id = NEW.aggregate_id;");
}
