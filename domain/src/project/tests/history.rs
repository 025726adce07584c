//! Replaying histories: the version and pending request the aggregate keeps,
//! and histories written before orchestration (`ProjectStarted` and
//! `ProjectStopped` without a request before them).

use super::*;

#[test]
fn the_version_is_the_number_of_events_applied() {
    assert_eq!(Project::default().version(), 0);
    assert_eq!(replay(vec![created()]).version(), 1);
    assert_eq!(replay(then(running(), [stop_requested()])).version(), 4);
}

#[test]
fn a_request_is_pending_under_the_sequence_of_its_event() {
    let starting = replay(vec![created(), start_requested()]);
    assert_eq!(starting.status(), Some(ProjectStatus::Starting));
    assert_eq!(
        starting.pending_request(),
        Some(PendingRequest {
            sequence: 2,
            kind: RequestKind::Start
        })
    );

    let restarting = replay(then(running(), [restart_requested()]));
    assert_eq!(restarting.status(), Some(ProjectStatus::Stopping));
    assert_eq!(
        restarting.pending_request(),
        Some(PendingRequest {
            sequence: 4,
            kind: RequestKind::Restart
        })
    );
}

#[test]
fn each_completion_sets_its_status_and_ends_the_request() {
    let cases = [
        (running(), ProjectStatus::Running),
        (failed(), ProjectStatus::Error),
        (
            then(running(), [stop_requested(), stopped()]),
            ProjectStatus::Stopped,
        ),
        (
            then(running(), [stop_requested(), stop_failed("x")]),
            ProjectStatus::Error,
        ),
    ];
    for (events, status) in cases {
        let project = replay(events.clone());
        assert_eq!(project.status(), Some(status), "{events:?}");
        assert_eq!(project.pending_request(), None, "{events:?}");
    }
}

#[test]
fn a_completed_restart_is_starting_under_its_new_request() {
    let project = replay(then(
        running(),
        [restart_requested(), stopped(), start_requested()],
    ));
    assert_eq!(project.status(), Some(ProjectStatus::Starting));
    assert_eq!(
        project.pending_request().map(|p| (p.sequence, p.kind)),
        Some((6, RequestKind::Start))
    );
}

#[test]
fn a_rename_during_a_start_keeps_the_request_pending() {
    let project = replay(vec![
        created(),
        start_requested(),
        ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        },
    ]);
    assert_eq!(project.status(), Some(ProjectStatus::Starting));
    assert_eq!(project.pending_request().map(|p| p.sequence), Some(2));
    assert_eq!(project.version(), 3);
}

// --- histories from before orchestration -------------------------------------

/// created (1), started (2) and stopped (3) directly, as the hub recorded
/// them before starts and stops became requests.
fn old_history() -> Vec<ProjectEvent> {
    vec![created(), started(), stopped(), started()]
}

#[test]
fn an_old_history_of_direct_starts_and_stops_replays_to_its_status() {
    let project = replay(old_history());
    assert_eq!(project.status(), Some(ProjectStatus::Running));
    assert_eq!(project.pending_request(), None);
    assert_eq!(project.version(), 4);
    let stopped = replay(vec![created(), started(), stopped()]);
    assert_eq!(stopped.status(), Some(ProjectStatus::Stopped));
}

#[tokio::test]
async fn a_project_running_from_an_old_history_can_be_stopped_through_a_request() {
    project()
        .given(old_history())
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_events(vec![stop_requested()]);
}

#[tokio::test]
async fn a_stop_requested_after_an_old_history_is_completed_by_its_sequence() {
    project()
        .given(then(old_history(), [stop_requested()]))
        .when_async(complete_stop(5).into())
        .await
        .then_expect_events(vec![stopped()]);
}

#[tokio::test]
async fn a_project_stopped_in_an_old_history_can_be_started_through_a_request() {
    project()
        .given(vec![created(), started(), stopped()])
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_events(vec![start_requested()]);
}

#[tokio::test]
async fn an_old_direct_start_completes_no_request() {
    project()
        .given(old_history())
        .when_async(complete_start(2).into())
        .await
        .then_expect_error(not_pending(2, "start"));
}

#[test]
fn a_snapshot_without_version_or_pending_request_still_loads() {
    // The shape `Project` had before orchestration.
    let json = serde_json::json!({"state": {
        "id": id(),
        "name": "My App",
        "slug": "my-app",
        "path": "/srv/projects/my-app",
        "ports": first_block(),
        "status": "Running",
    }});
    let project: Project = serde_json::from_value(json).unwrap();
    assert_eq!(project.status(), Some(ProjectStatus::Running));
    assert_eq!(project.pending_request(), None);
}
