//! `StartProject`, `StopProject`, `RestartProject` and `DeleteProject`: the
//! requests, and what each status refuses.

use super::*;

// --- StartProject -----------------------------------------------------------

#[tokio::test]
async fn starting_a_stopped_project_requests_a_start() {
    project()
        .given(vec![created()])
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_events(vec![start_requested()]);
}

#[tokio::test]
async fn a_project_stopped_after_running_can_be_started_again() {
    project()
        .given(then(running(), [stop_requested(), stopped()]))
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_events(vec![start_requested()]);
}

#[tokio::test]
async fn a_project_in_error_can_be_started_again() {
    project()
        .given(failed())
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_events(vec![start_requested()]);
}

#[tokio::test]
async fn starting_a_running_project_is_rejected() {
    project()
        .given(running())
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyRunning);
}

#[tokio::test]
async fn starting_a_starting_project_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStarting);
}

#[tokio::test]
async fn starting_a_stopping_project_is_rejected() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStopping);
}

#[tokio::test]
async fn starting_a_project_that_was_never_created_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn starting_a_deleted_project_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::StartProject.into())
        .await
        .then_expect_error(ProjectError::Deleted);
}

// --- StopProject ------------------------------------------------------------

#[tokio::test]
async fn stopping_a_running_project_requests_a_stop() {
    project()
        .given(running())
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_events(vec![stop_requested()]);
}

#[tokio::test]
async fn a_project_in_error_can_be_stopped() {
    project()
        .given(failed())
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_events(vec![stop_requested()]);
}

#[tokio::test]
async fn stopping_a_stopped_project_is_rejected() {
    project()
        .given(vec![created()])
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_error(ProjectError::NotRunning);
}

#[tokio::test]
async fn stopping_a_stopping_project_is_rejected() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStopping);
}

#[tokio::test]
async fn stopping_a_starting_project_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStarting);
}

#[tokio::test]
async fn stopping_a_project_that_was_never_created_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn stopping_a_deleted_project_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::StopProject.into())
        .await
        .then_expect_error(ProjectError::Deleted);
}

// --- RestartProject ---------------------------------------------------------

#[tokio::test]
async fn restarting_a_running_project_requests_a_restart() {
    project()
        .given(running())
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_events(vec![restart_requested()]);
}

#[tokio::test]
async fn a_project_in_error_can_be_restarted() {
    project()
        .given(failed())
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_events(vec![restart_requested()]);
}

#[tokio::test]
async fn restarting_a_stopped_project_is_rejected() {
    project()
        .given(vec![created()])
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_error(ProjectError::NotRunning);
}

#[tokio::test]
async fn restarting_a_starting_project_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStarting);
}

#[tokio::test]
async fn restarting_a_restarting_project_is_rejected() {
    project()
        .given(then(running(), [restart_requested()]))
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStopping);
}

#[tokio::test]
async fn restarting_a_deleted_project_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::RestartProject.into())
        .await
        .then_expect_error(ProjectError::Deleted);
}

// --- DeleteProject ----------------------------------------------------------

#[tokio::test]
async fn deleting_a_stopped_project_deletes_it() {
    project()
        .given(then(running(), [stop_requested(), stopped()]))
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_events(vec![deleted()]);
}

#[tokio::test]
async fn deleting_a_project_in_error_deletes_it() {
    project()
        .given(failed())
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_events(vec![deleted()]);
}

#[tokio::test]
async fn deleting_a_running_project_is_rejected() {
    project()
        .given(running())
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_error(ProjectError::StillRunning);
}

#[tokio::test]
async fn deleting_a_starting_project_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStarting);
}

#[tokio::test]
async fn deleting_a_stopping_project_is_rejected() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_error(ProjectError::AlreadyStopping);
}

#[tokio::test]
async fn deleting_a_project_that_was_never_created_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn deleting_a_deleted_project_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(ProjectCommand::DeleteProject.into())
        .await
        .then_expect_error(ProjectError::Deleted);
}

#[tokio::test]
async fn renaming_a_starting_project_is_allowed() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(rename("Tea Time").into())
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}
