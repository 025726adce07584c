//! `RenameProject`.

use super::*;

#[tokio::test]
async fn renaming_a_project_records_the_new_name_and_slug() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(rename("Tea Time"))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_running_project_is_allowed() {
    given(FakeLookup::new())
        .given(vec![created(), started()])
        .when_async(rename("Tea Time"))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_its_current_name_records_nothing() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(rename("  My App  "))
        .await
        .then_expect_events(vec![]);
}

#[tokio::test]
async fn renaming_a_project_to_a_new_spelling_of_its_slug_keeps_the_slug_without_a_lookup() {
    // The lookup is broken, so the rename only succeeds if it is not asked.
    given(FakeLookup::new().broken())
        .given(vec![created()])
        .when_async(rename("my app"))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("my app"),
            slug: slug("my-app"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_a_slug_another_project_holds_is_rejected() {
    let lookup = FakeLookup::new().with_slug_held("tea-time", other_id());
    given(lookup)
        .given(vec![created()])
        .when_async(rename("Tea Time"))
        .await
        .then_expect_error(ProjectError::NameTaken {
            slug: "tea-time".to_owned(),
        });
}

#[tokio::test]
async fn a_slug_held_by_the_project_itself_does_not_block_its_rename() {
    let lookup = FakeLookup::new().with_slug_held("tea-time", id());
    given(lookup)
        .given(vec![created()])
        .when_async(rename("Tea Time"))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectRenamed {
            name: name("Tea Time"),
            slug: slug("tea-time"),
        }]);
}

#[tokio::test]
async fn renaming_a_project_to_a_name_without_a_slug_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(rename("日本"))
        .await
        .then_expect_error(ProjectError::InvalidName(NameError::EmptySlug));
}

#[tokio::test]
async fn renaming_a_project_that_was_never_created_is_rejected() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(rename("Tea Time"))
        .await
        .then_expect_error(ProjectError::NotFound);
}

#[tokio::test]
async fn renaming_a_deleted_project_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), deleted()])
        .when_async(rename("Tea Time"))
        .await
        .then_expect_error(ProjectError::Deleted);
}

#[tokio::test]
async fn a_failed_lookup_while_renaming_is_a_system_failure_not_a_rejection() {
    let error = given(FakeLookup::new().broken())
        .given(vec![created()])
        .when_async(rename("Tea Time"))
        .await
        .inspect_result()
        .unwrap_err();
    assert!(matches!(error, ProjectError::Lookup(_)), "{error:?}");
    assert!(!error.is_rejection());
}
