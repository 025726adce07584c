//! `CreateProject`.

use super::*;

#[tokio::test]
async fn creating_a_project_records_its_slug_and_a_free_block_of_ports() {
    project()
        .given_no_previous_events()
        .when_async(create("My App").knowing(free()))
        .await
        .then_expect_events(vec![created()]);
}

#[tokio::test]
async fn creating_a_project_derives_the_slug_from_an_accented_name() {
    let command = create("Café Ünïcode");
    assert_eq!(
        Project::default().question(&command),
        Some(Question::Creation {
            slug: slug("cafe-unicode")
        })
    );
    project()
        .given_no_previous_events()
        .when_async(command.knowing(free()))
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
    project()
        .given(vec![created()])
        .when_async(create("Another App").knowing(free()))
        .await
        .then_expect_error(ProjectError::AlreadyExists);
}

#[tokio::test]
async fn creating_a_project_with_the_id_of_a_deleted_one_is_rejected() {
    project()
        .given(vec![created(), deleted()])
        .when_async(create("My App").knowing(free()))
        .await
        .then_expect_error(ProjectError::AlreadyExists);
}

#[tokio::test]
async fn creating_a_project_whose_slug_another_project_holds_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(create("MY  APP!").knowing(held_by(other_id())))
        .await
        .then_expect_error(ProjectError::NameTaken {
            slug: "my-app".to_owned(),
        });
}

#[tokio::test]
async fn creating_a_project_whose_name_has_no_slug_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(create("!!!").knowing(free()))
        .await
        .then_expect_error(ProjectError::InvalidName(NameError::EmptySlug));
}

#[tokio::test]
async fn creating_a_project_when_no_block_of_ports_is_free_is_rejected() {
    project()
        .given_no_previous_events()
        .when_async(create("My App").knowing(exhausted()))
        .await
        .then_expect_error(ProjectError::PortsExhausted);
}

#[tokio::test]
async fn a_taken_slug_is_reported_before_exhausted_ports() {
    let facts = Facts {
        slug_holder: Some(other_id()),
        free_ports: None,
    };
    project()
        .given_no_previous_events()
        .when_async(create("My App").knowing(facts))
        .await
        .then_expect_error(ProjectError::NameTaken {
            slug: "my-app".to_owned(),
        });
}

#[tokio::test]
async fn creating_a_project_knowing_nothing_finds_no_free_ports() {
    // A caller that skipped the question cannot record a project without
    // ports.
    project()
        .given_no_previous_events()
        .when_async(create("My App").into())
        .await
        .then_expect_error(ProjectError::PortsExhausted);
}

#[test]
fn creating_asks_who_holds_the_slug_and_which_ports_are_free() {
    assert_eq!(
        Project::default().question(&create("MY  APP!")),
        Some(Question::Creation {
            slug: slug("my-app")
        })
    );
}

#[test]
fn a_create_that_will_be_refused_asks_nothing() {
    let existing = replay(vec![created()]);
    assert_eq!(existing.question(&create("Another App")), None);
    assert_eq!(Project::default().question(&create("!!!")), None);
}
