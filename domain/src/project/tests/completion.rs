//! `CompleteStart`, `FailStart`, `CompleteStop` and `FailStop`: only the
//! pending request can be completed, and only once.
//!
//! Sequences in these histories: `created()` is 1, so in
//! `[created, start_requested]` the start request is 2.

use super::*;

// --- CompleteStart / FailStart ------------------------------------------------

#[tokio::test]
async fn completing_the_pending_start_makes_the_project_running() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(complete_start(2).into())
        .await
        .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn failing_the_pending_start_records_the_reason() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(fail_start(2, "exit code 3: no such file").into())
        .await
        .then_expect_events(vec![start_failed("exit code 3: no such file")]);
}

#[tokio::test]
async fn completing_a_start_twice_is_rejected() {
    project()
        .given(running())
        .when_async(complete_start(2).into())
        .await
        .then_expect_error(not_pending(2, "start"));
}

#[tokio::test]
async fn failing_a_start_that_already_succeeded_is_rejected() {
    project()
        .given(running())
        .when_async(fail_start(2, "late timeout").into())
        .await
        .then_expect_error(not_pending(2, "start"));
}

#[tokio::test]
async fn completing_a_start_that_already_failed_is_rejected() {
    project()
        .given(failed())
        .when_async(complete_start(2).into())
        .await
        .then_expect_error(not_pending(2, "start"));
}

#[tokio::test]
async fn a_late_completion_of_an_earlier_start_does_not_complete_the_current_one() {
    // Start 2 failed; start 4 is pending. A completion for 2 must not count for 4.
    project()
        .given(then(failed(), [start_requested()]))
        .when_async(complete_start(2).into())
        .await
        .then_expect_error(not_pending(2, "start"));
}

#[tokio::test]
async fn a_second_start_is_completed_by_its_own_sequence() {
    project()
        .given(then(failed(), [start_requested()]))
        .when_async(complete_start(4).into())
        .await
        .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn completing_a_start_with_a_wrong_sequence_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(complete_start(7).into())
        .await
        .then_expect_error(not_pending(7, "start"));
}

#[tokio::test]
async fn completing_a_start_when_a_stop_is_pending_is_rejected() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(complete_start(4).into())
        .await
        .then_expect_error(not_pending(4, "start"));
}

#[tokio::test]
async fn completing_a_start_of_a_project_that_was_never_created_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(complete_start(1).into())
        .await
        .then_expect_error(ProjectError::NotFound);
}

// --- CompleteStop / FailStop --------------------------------------------------

#[tokio::test]
async fn completing_the_pending_stop_makes_the_project_stopped() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(complete_stop(4).into())
        .await
        .then_expect_events(vec![stopped()]);
}

#[tokio::test]
async fn failing_the_pending_stop_records_the_reason() {
    project()
        .given(then(running(), [stop_requested()]))
        .when_async(fail_stop(4, "timed out after 600 s").into())
        .await
        .then_expect_events(vec![stop_failed("timed out after 600 s")]);
}

#[tokio::test]
async fn completing_a_stop_twice_is_rejected() {
    project()
        .given(then(running(), [stop_requested(), stopped()]))
        .when_async(complete_stop(4).into())
        .await
        .then_expect_error(not_pending(4, "stop"));
}

#[tokio::test]
async fn failing_a_stop_that_already_succeeded_is_rejected() {
    project()
        .given(then(running(), [stop_requested(), stopped()]))
        .when_async(fail_stop(4, "late").into())
        .await
        .then_expect_error(not_pending(4, "stop"));
}

#[tokio::test]
async fn completing_a_stop_when_a_start_is_pending_is_rejected() {
    project()
        .given(vec![created(), start_requested()])
        .when_async(complete_stop(2).into())
        .await
        .then_expect_error(not_pending(2, "stop"));
}

// --- restart ------------------------------------------------------------------

#[tokio::test]
async fn completing_the_stop_of_a_restart_also_requests_the_start() {
    project()
        .given(then(running(), [restart_requested()]))
        .when_async(complete_stop(4).into())
        .await
        .then_expect_events(vec![stopped(), start_requested()]);
}

#[tokio::test]
async fn the_start_of_a_restart_is_completed_by_the_sequence_of_its_start_request() {
    // 4 restart requested, 5 stopped, 6 start requested.
    project()
        .given(then(
            running(),
            [restart_requested(), stopped(), start_requested()],
        ))
        .when_async(complete_start(6).into())
        .await
        .then_expect_events(vec![started()]);
}

#[tokio::test]
async fn completing_the_stop_of_a_restart_twice_is_rejected() {
    project()
        .given(then(
            running(),
            [restart_requested(), stopped(), start_requested()],
        ))
        .when_async(complete_stop(4).into())
        .await
        .then_expect_error(not_pending(4, "stop"));
}

#[tokio::test]
async fn a_failed_stop_of_a_restart_does_not_start() {
    project()
        .given(then(running(), [restart_requested()]))
        .when_async(fail_stop(4, "exit code 1").into())
        .await
        .then_expect_events(vec![stop_failed("exit code 1")]);
}

#[tokio::test]
async fn completing_the_restart_as_a_start_is_rejected() {
    project()
        .given(then(running(), [restart_requested()]))
        .when_async(complete_start(4).into())
        .await
        .then_expect_error(not_pending(4, "start"));
}
