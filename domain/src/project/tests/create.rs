//! `CreateProject`.

use super::*;

#[tokio::test]
async fn creating_a_project_records_its_slug_and_a_free_block_of_ports() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(create("My App"))
        .await
        .then_expect_events(vec![created()]);
}

#[tokio::test]
async fn creating_a_project_derives_the_slug_from_an_accented_name() {
    let lookup = FakeLookup::new().with_slug_held("my-app", other_id());
    given(lookup)
        .given_no_previous_events()
        .when_async(create("Café Ünïcode"))
        .await
        .then_expect_events(vec![ProjectEvent::ProjectCreated {
            project_id: id(),
            name: name("Café Ünïcode"),
            slug: slug("cafe-unicode"),
            path: path(),
            ports: first_block(),
        }]);
}

#[tokio::test]
async fn creating_a_project_with_an_id_that_exists_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created()])
        .when_async(create("Another App"))
        .await
        .then_expect_error(ProjectError::AlreadyExists);
}

#[tokio::test]
async fn creating_a_project_with_the_id_of_a_deleted_one_is_rejected() {
    given(FakeLookup::new())
        .given(vec![created(), deleted()])
        .when_async(create("My App"))
        .await
        .then_expect_error(ProjectError::AlreadyExists);
}

#[tokio::test]
async fn creating_a_project_whose_slug_another_project_holds_is_rejected() {
    let lookup = FakeLookup::new().with_slug_held("my-app", other_id());
    given(lookup)
        .given_no_previous_events()
        .when_async(create("MY  APP!"))
        .await
        .then_expect_error(ProjectError::NameTaken {
            slug: "my-app".to_owned(),
        });
}

#[tokio::test]
async fn creating_a_project_whose_name_has_no_slug_is_rejected() {
    given(FakeLookup::new())
        .given_no_previous_events()
        .when_async(create("!!!"))
        .await
        .then_expect_error(ProjectError::InvalidName(NameError::EmptySlug));
}

#[tokio::test]
async fn creating_a_project_when_no_block_of_ports_is_free_is_rejected() {
    given(FakeLookup::new().with_ports_exhausted())
        .given_no_previous_events()
        .when_async(create("My App"))
        .await
        .then_expect_error(ProjectError::PortsExhausted);
}

#[tokio::test]
async fn a_failed_lookup_while_creating_is_a_system_failure_not_a_rejection() {
    let error = given(FakeLookup::new().broken())
        .given_no_previous_events()
        .when_async(create("My App"))
        .await
        .inspect_result()
        .unwrap_err();
    assert!(!error.is_rejection());
    assert_eq!(
        error.to_string(),
        "looking up the slug holder failed: connection refused"
    );
}
