//! What the shell orchestrator's commands can reach, against a real `hub`
//! process: never a directory other than the project's, never one of the
//! hub's secrets; and secrets given as files stay out of the hub's own
//! `/proc/<pid>/environ`.

use std::time::Duration;

use hub_tests::graphql::data;
use hub_tests::ops::payload;
use hub_tests::orchestration::ScratchDir;
use hub_tests::reliability::HubSpec;
use hub_tests::spawned::{hub_id, SpawnedHub};
use hub_tests::{wait_until, TestDb};
use serde_json::{json, Value};

const TOKEN: &str = "tok-3f1c9e6a";
const ARRIVES: Duration = Duration::from_secs(15);

async fn create(hub: &SpawnedHub, name: &str, path: &str, token: &str) -> String {
    let answer = hub
        .http()
        .post(format!("{}/graphql", hub.url()))
        .bearer_auth(token)
        .json(&json!({
            "query": "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id } } }",
            "variables": { "input": { "name": name, "path": path } },
        }))
        .send()
        .await
        .expect("createProject");
    let body: Value = answer.json().await.expect("JSON");
    payload(&body, "createProject")["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createProject failed: {body}"))
        .to_owned()
}

async fn start_project(hub: &SpawnedHub, id: &str, token: &str) -> Value {
    let answer = hub
        .http()
        .post(format!("{}/graphql", hub.url()))
        .bearer_auth(token)
        .json(&json!({
            "query": "mutation($id: ID!) { startProject(id: $id) { project { status } } }",
            "variables": { "id": id },
        }))
        .send()
        .await
        .expect("startProject");
    answer.json().await.expect("JSON")
}

/// Waits until project `id` leaves STARTING; returns it.
async fn settled(hub: &SpawnedHub, id: &str, token: &str) -> Value {
    wait_until("the start to finish", ARRIVES, || async {
        let answer = hub
            .http()
            .post(format!("{}/graphql", hub.url()))
            .bearer_auth(token)
            .json(&json!({
                "query": "query($id: ID!) { project(id: $id) { status lastError } }",
                "variables": { "id": id },
            }))
            .send()
            .await
            .ok()?;
        let body: Value = answer.json().await.ok()?;
        let project = data(&body, "project").clone();
        (project["status"] != "STARTING").then_some(project)
    })
    .await
}

fn shell_env(start: &str) -> Vec<(&str, &str)> {
    vec![
        ("HUB_ORCHESTRATOR", "shell"),
        ("HUB_SHELL_START", start),
        ("HUB_SHELL_STOP", "true"),
        ("HUB_API_TOKEN", TOKEN),
    ]
}

#[tokio::test]
async fn a_start_in_a_missing_directory_fails_clearly_and_runs_nothing() {
    let scratch = ScratchDir::create();
    let start = format!("touch '{}'", scratch.file("ran"));
    let mut hub = SpawnedHub::start("missing-dir", &shell_env(&start)).await;
    let id = create(&hub, "Nowhere", "/nonexistent/nowhere", TOKEN).await;
    start_project(&hub, &id, TOKEN).await;
    let project = settled(&hub, &id, TOKEN).await;
    assert_eq!(project["status"], "ERROR", "{project}");
    let error = project["lastError"].as_str().unwrap_or("");
    assert!(
        error.contains("/nonexistent/nowhere") && error.contains("does not exist"),
        "{error}"
    );
    assert!(scratch.lines("ran").is_empty() && !scratch.path().join("ran").exists());
    hub.assert_alive().await;
}

/// The variables a command saw, from the `env` dump it wrote.
fn dumped(scratch: &ScratchDir) -> Vec<(String, String)> {
    scratch
        .lines("env")
        .into_iter()
        .filter_map(|line| {
            line.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn commands_see_the_project_but_none_of_the_hubs_secrets() {
    let scratch = ScratchDir::create();
    let start = format!("env > '{}'", scratch.file("env"));
    let mut hub = SpawnedHub::start("child-env", &shell_env(&start)).await;
    let id = create(&hub, "Env Dump", scratch.as_str(), TOKEN).await;
    start_project(&hub, &id, TOKEN).await;
    assert_eq!(settled(&hub, &id, TOKEN).await["status"], "RUNNING");
    let seen = dumped(&scratch);
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    for secret in [
        "DATABASE_URL",
        "NATS_URL",
        "HUB_API_TOKEN",
        "HUB_ID",
        "HUB_SHELL_START",
    ] {
        assert!(
            !names.contains(&secret),
            "{secret} reached the command: {names:?}"
        );
    }
    for (_, value) in &seen {
        assert!(!value.contains(TOKEN), "the token reached the command");
        assert!(
            !value.contains(hub.db.url()),
            "the database URL reached the command"
        );
    }
    assert!(seen.contains(&("HUB_PROJECT_ID".to_owned(), id.clone())));
    assert!(seen.contains(&("PWD".to_owned(), scratch.as_str().to_owned())));
    hub.assert_alive().await;
}

#[tokio::test]
async fn secrets_given_as_files_stay_out_of_the_hubs_environment() {
    let scratch = ScratchDir::create();
    let db = TestDb::create().await;
    let nats = hub_tests::hub::nats_url();
    std::fs::write(
        scratch.path().join("database_url"),
        format!("{}\n", db.url()),
    )
    .unwrap();
    std::fs::write(scratch.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(scratch.path().join("nats_url"), &nats).unwrap();
    let start = format!("env > '{}'", scratch.file("env"));
    let mut spec = HubSpec::new(db.url(), &nats, &hub_id("secret-files"));
    spec.unset = vec!["DATABASE_URL".into(), "NATS_URL".into()];
    spec.env = vec![
        ("DATABASE_URL_FILE".into(), scratch.file("database_url")),
        ("HUB_API_TOKEN_FILE".into(), scratch.file("token")),
        ("NATS_URL_FILE".into(), scratch.file("nats_url")),
        ("HUB_ORCHESTRATOR".into(), "shell".into()),
        ("HUB_SHELL_START".into(), start),
        ("HUB_SHELL_STOP".into(), "true".into()),
    ];
    let database_url = db.url().to_owned();
    let mut hub = SpawnedHub::start_spec(db, spec).await;

    let environ = std::fs::read(format!("/proc/{}/environ", hub.process.pid()))
        .expect("read the hub's /proc/<pid>/environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains(TOKEN),
        "the token is in the hub's environ"
    );
    assert!(
        !environ.contains(&database_url),
        "the database URL is in the hub's environ"
    );
    assert!(environ.contains("HUB_API_TOKEN_FILE="));

    // The token from the file is the hub's token.
    let refused = hub
        .graphql(
            "mutation { createProject(input: {name: \"No Token\", path: \"/tmp\"}) { project { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(refused.code(), Some("UNAUTHENTICATED"), "{}", refused.body);
    let id = create(&hub, "With Token", scratch.as_str(), TOKEN).await;
    start_project(&hub, &id, TOKEN).await;
    assert_eq!(settled(&hub, &id, TOKEN).await["status"], "RUNNING");
    let names: Vec<String> = dumped(&scratch).into_iter().map(|(k, _)| k).collect();
    for variable in [
        "DATABASE_URL",
        "DATABASE_URL_FILE",
        "HUB_API_TOKEN_FILE",
        "NATS_URL_FILE",
    ] {
        assert!(
            !names.iter().any(|n| n == variable),
            "{variable} reached the command"
        );
    }
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_secret_given_twice_stops_the_hub_with_a_sentence() {
    let scratch = ScratchDir::create();
    std::fs::write(scratch.path().join("database_url"), "postgres://x").unwrap();
    let hub = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let output = std::process::Command::new(hub)
        .arg("serve")
        .env("DATABASE_URL", "postgres://y")
        .env("DATABASE_URL_FILE", scratch.file("database_url"))
        .output()
        .expect("run hub serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("both DATABASE_URL and DATABASE_URL_FILE are set"),
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}
