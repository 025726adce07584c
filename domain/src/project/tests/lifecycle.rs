//! `StartProject`, `StopProject` and `DeleteProject`.

use super::*;

#[tokio::test]
async fn starting_a_stopped_project_starts_it() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(ProjectCommand::StartProject)
        .await
        .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn a_project_stopped_after_running_can_start_again() {
    given(FakeLookup::new())
        .given(vec![created(), started(), stopped()])
        .when_async(ProjectCommand::StartProject)
        .await
        .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn starting_a_running_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), started()])
        .when_async(ProjectCommand::StartProject)
        .await
        .then_expect_error(ProjectError::AlreadyRunning);
}

#[tokio::test]
async fn starting_a_project_that_was_never_created_is_rejected() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(ProjectCommand::StartProject)
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn starting_a_deleted_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::StartProject)
        .await
        .then_expect_error(ProjectError::Deleted);
}

// --- StopProject -----------------------------------------------------------

#[tokio::test]
async fn stopping_a_running_project_stops_it() {
    given(FakeLookup::new())
        .given(vec![created(), started()])
        .when_async(ProjectCommand::StopProject)
        .await
        .then_expect_events(vec![stopped()]);
}

#[tokio::test]
async fn stopping_a_stopped_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(ProjectCommand::StopProject)
        .await
        .then_expect_error(ProjectError::NotRunning);
}

#[tokio::test]
async fn stopping_a_project_that_was_never_created_is_rejected() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(ProjectCommand::StopProject)
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn stopping_a_deleted_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::StopProject)
        .await
        .then_expect_error(ProjectError::Deleted);
}

#[tokio::test]
async fn deleting_a_stopped_project_deletes_it() {
    given(FakeLookup::new())
        .given(vec![created(), started(), stopped()])
        .when_async(ProjectCommand::DeleteProject)
        .await
        .then_expect_events(vec![deleted()]);
}

#[tokio::test]
async fn deleting_a_running_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), started()])
        .when_async(ProjectCommand::DeleteProject)
        .await
        .then_expect_error(ProjectError::StillRunning);
}

#[tokio::test]
async fn deleting_a_project_that_was_never_created_is_rejected() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(ProjectCommand::DeleteProject)
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn deleting_a_deleted_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::DeleteProject)
        .await
        .then_expect_error(ProjectError::Deleted);
}
