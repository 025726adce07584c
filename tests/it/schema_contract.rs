//! `schema.graphql` is the contract frontend code generation builds on: it
//! must equal the schema the code serves.

use std::path::PathBuf;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql")
}

#[test]
fn the_checked_in_schema_matches_the_code() {
    let actual = api::graphql::sdl();
    let path = checked_in_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &actual).expect("write schema.graphql");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "schema.graphql is out of date with the code; review the change and regenerate it with \
         `UPDATE_SCHEMA=1 cargo test -p hub-tests --test it schema_contract::`"
    );
}

#[test]
fn the_schema_has_the_operations_the_frontend_uses() {
    let sdl = api::graphql::sdl();
    for needle in [
        "project(id: ID, slug: String): Project",
        "projectStats: ProjectStats!",
        "createProject(input: CreateProjectInput!): ProjectPayload!",
        "startProject(id: ID!, expectedVersion: Int): ProjectPayload!",
        "projectChanged(id: ID, sinceVersion: Int, coalesce: Boolean! = false): Project!",
        "projectsChanged(after: String): ProjectChange!",
        "events(filter: EventFilter, after: String): Event!",
        "enum ProjectStatus",
    ] {
        assert!(sdl.contains(needle), "the schema lacks `{needle}`");
    }
}
