//! `RenameProject`.

use super::*;

#[tokio::test]
async fn renaming_a_project_records_the_new_name_and_slug() {
    project()
        .given(vec![created()])
        .when_async(rename("Tea Time").knowing(free()))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_running_project_is_allowed() {
    project()
        .given(vec![created(), started()])
        .when_async(rename("Tea Time").knowing(free()))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_its_current_name_records_nothing() {
    assert_eq!(
        replay(vec![created()]).question(&rename("  My App  ")),
        None
    );
    project()
        .given(vec![created()])
        .when_async(rename("  My App  ").into())
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn renaming_a_project_to_a_new_spelling_of_its_slug_keeps_the_slug_without_a_lookup() {
    assert_eq!(replay(vec![created()]).question(&rename("my app")), None);
    // Facts saying another project holds the slug are not even read.
    project()
        .given(vec![created()])
        .when_async(rename("my app").knowing(held_by(other_id())))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("my app"),
            slug: slug("my-app"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_a_slug_another_project_holds_is_rejected() {
    project()
        .given(vec![created()])
        .when_async(rename("Tea Time").knowing(held_by(other_id())))
        .await
        .then_expect_error(ProjectError::NameTaken {
            slug: "tea-time".to_owned(),
        });
}

#[tokio::test]
async fn a_slug_held_by_the_project_itself_does_not_block_its_rename() {
    project()
        .given(vec![created()])
        .when_async(rename("Tea Time").knowing(held_by(id())))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_a_name_without_a_slug_is_rejected() {
    project()
        .given(vec![created()])
        .when_async(rename("日本").knowing(free()))
        .await
        .then_expect_error(ProjectError::InvalidName(NameError::EmptySlug));
}

#[tokio::test]
async fn renaming_a_project_that_was_never_created_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(rename("Tea Time").knowing(free()))
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn renaming_a_deleted_project_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(rename("Tea Time").knowing(free()))
        .await
        .then_expect_error(ProjectError::Deleted);
}

#[tokio::test]
async fn renaming_a_project_needs_no_free_ports() {
    project()
        .given(vec![created()])
        .when_async(rename("Tea Time").knowing(exhausted()))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[test]
fn renaming_to_a_new_slug_asks_who_holds_it() {
    assert_eq!(
        replay(vec![created()]).question(&rename("Tea Time")),
        Some(Question::SlugHolder {
            slug: slug("tea-time")
        })
    );
}

#[test]
fn a_rename_that_will_be_refused_asks_nothing() {
    assert_eq!(Project::default().question(&rename("Tea Time")), None);
    let deleted = replay(vec![created(), deleted()]);
    assert_eq!(deleted.question(&rename("Tea Time")), None);
    assert_eq!(replay(vec![created()]).question(&rename("日本")), None);
}

#[test]
fn lifecycle_commands_ask_nothing() {
    let running = replay(running());
    for command in [
        ProjectCommand::StartProject,
        ProjectCommand::StopProject,
        ProjectCommand::RestartProject,
        ProjectCommand::DeleteProject,
        complete_start(2),
        complete_stop(4),
    ] {
        assert_eq!(running.question(&command), None, "{command:?}");
    }
}
