//! Rebuilding state with `apply`, and the error type.

use super::*;

#[test]
fn a_project_that_was_never_created_has_no_state() {
    let project = Project::default();
    assert!(!project.exists());
    assert_eq!(project.id(), None);
    assert_eq!(project.name(), None);
    assert_eq!(project.slug(), None);
    assert_eq!(project.path(), None);
    assert_eq!(project.ports(), None);
    assert_eq!(project.status(), None);
}

#[test]
fn replaying_its_events_rebuilds_a_project() {
    let project = replay(vec![
        created(),
        started(),
        ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        },
    ]);
    assert!(project.exists());
    assert_eq!(project.id(), Some(id()));
    assert_eq!(project.name(), Some(&name("Tea Time")));
    assert_eq!(project.slug(), Some(&slug("tea-time")));
    assert_eq!(project.path(), Some(&path()));
    assert_eq!(project.ports(), Some(first_block()));
    assert_eq!(project.status(), Some(ProjectStatus::Running));
}

#[test]
fn each_lifecycle_event_sets_its_status() {
    assert_eq!(
        replay(vec![created()]).status(),
        Some(ProjectStatus::Stopped)
    );
    assert_eq!(
        replay(vec![created(), started()]).status(),
        Some(ProjectStatus::Running)
    );
    assert_eq!(
        replay(vec![created(), started(), stopped()]).status(),
        Some(ProjectStatus::Stopped)
    );
    assert_eq!(
        replay(vec![created(), start_requested()]).status(),
        Some(ProjectStatus::Starting)
    );
    assert_eq!(
        replay(then(running(), [stop_requested()])).status(),
        Some(ProjectStatus::Stopping)
    );
    assert_eq!(replay(failed()).status(), Some(ProjectStatus::Error));
    let gone = replay(vec![created(), deleted()]);
    assert_eq!(gone.status(), Some(ProjectStatus::Deleted));
    assert!(gone.exists(), "a deleted project can still be read");
}

#[test]
fn events_before_creation_change_nothing() {
    assert_eq!(replay(vec![started(), deleted()]), Project::default());
}

#[test]
fn a_project_snapshot_round_trips_through_json() {
    let project = replay(vec![created(), started()]);
    let json = serde_json::to_string(&project).unwrap();
    assert_eq!(serde_json::from_str::<Project>(&json).unwrap(), project);
}

#[test]
fn rejection_messages_tell_the_caller_what_to_do() {
    let taken = ProjectError::NameTaken {
        slug: "my-app".to_owned(),
    };
    assert_eq!(
        taken.to_string(),
        "another project already uses the slug 'my-app'; choose another name"
    );
    assert_eq!(
        ProjectError::StillRunning.to_string(),
        "the project is still running; stop the project before deleting it"
    );
    assert_eq!(
        ProjectError::AlreadyStarting.to_string(),
        "the project is already starting; wait until it is RUNNING (or ERROR) and try again"
    );
    assert_eq!(
        not_pending(4, "stop").to_string(),
        "request 4 is not a pending stop of this project; it was already completed or never made"
    );
    assert_eq!(
        ProjectError::PortsExhausted.to_string(),
        "no free block of four ports is left in the configured range; delete a project or widen HUB_PORT_RANGE"
    );
}

#[test]
fn the_aggregate_type_is_project() {
    assert_eq!(Project::TYPE, "Project");
}
