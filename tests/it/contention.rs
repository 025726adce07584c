//! Contention: 200 concurrent mixed commands on 5 projects. Every answer is
//! a success or a clear, typed rejection; every history the store keeps is
//! a valid lifecycle; the read model ends on each aggregate's last event.

use std::time::Duration;

use futures::stream::{self, StreamExt as _};
use hub_tests::graphql::{data, first_error};
use hub_tests::ops::{self, Response};
use hub_tests::{wait_until, TestDb, TestHub};
use serde_json::{json, Value};
use sqlx::Row as _;

const PROJECTS: usize = 5;
const COMMANDS: usize = 200;
const PARALLELISM: usize = 16;
/// The codes a rejected command may carry under contention.
const CLEAR_REJECTIONS: [&str; 4] = ["INVALID_TRANSITION", "CONFLICT", "NAME_TAKEN", "NOT_FOUND"];

/// One command of the mix.
#[derive(Clone, Copy, Debug)]
enum Command {
    Start,
    Stop,
    Restart,
    Rename(usize),
    Delete,
}

impl Command {
    /// The mutation, its field and its variables for project `id`.
    fn request(self, id: &str) -> (&'static str, &'static str, Value) {
        match self {
            Self::Start => (ops::START, "startProject", json!({ "id": id })),
            Self::Stop => (ops::STOP, "stopProject", json!({ "id": id })),
            Self::Restart => (ops::RESTART, "restartProject", json!({ "id": id })),
            // A small pool of names, so that renames collide (NAME_TAKEN).
            Self::Rename(n) => (
                ops::RENAME,
                "renameProject",
                json!({ "id": id, "name": format!("Contended {n}") }),
            ),
            Self::Delete => (ops::DELETE, "deleteProject", json!({ "id": id })),
        }
    }
}

/// A fixed, seeded mix: mostly start, stop and rename; some restarts; a
/// few deletes late in the run.
fn mix() -> Vec<(usize, Command)> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..COMMANDS)
        .map(|i| {
            let project = next() % PROJECTS;
            let roll = next() % 100;
            let command = match roll {
                0..=29 => Command::Start,
                30..=59 => Command::Stop,
                60..=84 => Command::Rename(next() % 8),
                85..=95 => Command::Restart,
                _ if i > COMMANDS / 2 => Command::Delete,
                _ => Command::Start,
            };
            (project, command)
        })
        .collect()
}

/// What may follow, given the pending request (if any).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pending {
    None,
    Start,
    Stop,
    Restart,
    /// A restart's stop succeeded: its start request comes next.
    RestartStart,
}

/// Checks one project's history (event types in sequence order, with their
/// sequences); returns a description of the first violation.
fn lifecycle_violation(events: &[(i64, String)]) -> Option<String> {
    for (i, (sequence, _)) in events.iter().enumerate() {
        if *sequence != i as i64 + 1 {
            return Some(format!("sequence {sequence} at position {}", i + 1));
        }
    }
    match events.first() {
        Some((_, first)) if first == "ProjectCreated" => {}
        other => return Some(format!("the first event is {other:?}, not ProjectCreated")),
    }
    let mut pending = Pending::None;
    let mut deleted = false;
    for (sequence, event) in &events[1..] {
        if deleted {
            return Some(format!("{event} at {sequence} after ProjectDeleted"));
        }
        let bad = |why: &str| {
            Some(format!(
                "{event} at {sequence}: {why} (pending {pending:?})"
            ))
        };
        if pending == Pending::RestartStart && event != "ProjectStartRequested" {
            return bad("a restart's stop is not followed by its start request");
        }
        pending = match (event.as_str(), pending) {
            ("ProjectStartRequested", Pending::None | Pending::RestartStart) => Pending::Start,
            ("ProjectStopRequested", Pending::None) => Pending::Stop,
            ("ProjectRestartRequested", Pending::None) => Pending::Restart,
            ("ProjectStarted" | "ProjectStartFailed", Pending::Start) => Pending::None,
            ("ProjectStopped", Pending::Restart) => Pending::RestartStart,
            ("ProjectStopped" | "ProjectStopFailed", Pending::Stop)
            | ("ProjectStopFailed", Pending::Restart) => Pending::None,
            ("ProjectRenamed", pending) => pending,
            ("ProjectDeleted", Pending::None) => {
                deleted = true;
                Pending::None
            }
            _ => return bad("not allowed here"),
        };
    }
    (pending != Pending::None).then(|| format!("the history ends with a {pending:?} request open"))
}

#[test]
fn the_lifecycle_check_rejects_broken_histories() {
    let history = |types: &[&str]| -> Vec<(i64, String)> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| (i as i64 + 1, (*t).to_owned()))
            .collect()
    };
    assert_eq!(
        lifecycle_violation(&history(&[
            "ProjectCreated",
            "ProjectStartRequested",
            "ProjectRenamed",
            "ProjectStarted",
            "ProjectRestartRequested",
            "ProjectStopped",
            "ProjectStartRequested",
            "ProjectStartFailed",
            "ProjectDeleted",
        ])),
        None
    );
    for broken in [
        &["ProjectStartRequested"][..],
        &[
            "ProjectCreated",
            "ProjectStartRequested",
            "ProjectStartRequested",
        ],
        &["ProjectCreated", "ProjectStarted"],
        &["ProjectCreated", "ProjectStartRequested"],
        &["ProjectCreated", "ProjectDeleted", "ProjectRenamed"],
        &[
            "ProjectCreated",
            "ProjectRestartRequested",
            "ProjectStopped",
            "ProjectRenamed",
        ],
    ] {
        assert!(
            lifecycle_violation(&history(broken)).is_some(),
            "{broken:?}"
        );
    }
    let mut gap = history(&["ProjectCreated", "ProjectRenamed"]);
    gap[1].0 = 3;
    assert!(lifecycle_violation(&gap).is_some());
}

/// The response's verdict: `Ok(())` for data, `Err(code)` for a clear
/// rejection; panics on anything else.
fn judge(command: Command, field: &str, response: &Response) -> Result<(), String> {
    assert!(
        !response.status.is_server_error(),
        "{command:?} answered {}: {}",
        response.status,
        response.body
    );
    match response.body["errors"].as_array() {
        None => {
            assert!(
                data(&response.body, field)["project"].is_object(),
                "{command:?} answered neither data nor errors: {}",
                response.body
            );
            Ok(())
        }
        Some(errors) => {
            assert_eq!(errors.len(), 1, "{command:?}: {}", response.body);
            let code = response.code().unwrap_or_default().to_owned();
            assert!(
                CLEAR_REJECTIONS.contains(&code.as_str()),
                "{command:?} was rejected with code {code:?}: {}",
                response.body
            );
            let message = first_error(&response.body).message;
            assert!(
                !message.trim().is_empty(),
                "{command:?} was rejected without a message: {}",
                response.body
            );
            Err(code)
        }
    }
}

#[tokio::test]
async fn two_hundred_concurrent_mixed_commands_leave_valid_lifecycles_and_clear_rejections() {
    let db = TestDb::create().await;
    let hub = TestHub::start(db.url()).await;
    let mut ids = Vec::new();
    for i in 0..PROJECTS {
        ids.push(
            hub.create_project(&format!("Contested {i}"), &format!("/srv/contested/{i}"))
                .await,
        );
    }

    let verdicts: Vec<(Command, Result<(), String>)> = stream::iter(mix())
        .map(|(project, command)| {
            let (query, field, variables) = command.request(&ids[project]);
            let hub = &hub;
            async move {
                let response = hub.graphql_response(query, variables, &[]).await;
                (command, judge(command, field, &response))
            }
        })
        .buffer_unordered(PARALLELISM)
        .collect()
        .await;

    assert_eq!(verdicts.len(), COMMANDS);
    let accepted = verdicts.iter().filter(|(_, v)| v.is_ok()).count();
    assert!(
        accepted >= PROJECTS,
        "some commands were accepted: {verdicts:?}"
    );
    assert!(
        verdicts.iter().any(|(_, v)| v.is_err()),
        "contention rejected some commands: {verdicts:?}"
    );

    // The orchestrator completes requests after the mutations answered.
    wait_until(
        "no project to be STARTING or STOPPING",
        Duration::from_secs(30),
        || async {
            let mut settled = true;
            for id in &ids {
                let project = hub.project(id).await;
                let status = project["status"].as_str().unwrap_or_default();
                settled &= status != "STARTING" && status != "STOPPING";
            }
            settled.then_some(())
        },
    )
    .await;

    let pool = db.pool().await;
    for id in &ids {
        let rows = sqlx::query(
            "SELECT sequence, event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(id)
        .fetch_all(&pool)
        .await
        .expect("read the project's history");
        let history: Vec<(i64, String)> = rows
            .iter()
            .map(|row| (row.get("sequence"), row.get("event_type")))
            .collect();
        if let Some(violation) = lifecycle_violation(&history) {
            panic!("project {id} has an invalid lifecycle: {violation}\n{history:?}");
        }
        let last = history.last().map(|(sequence, _)| *sequence);
        let version = wait_until(
            &format!("the read model of {id} to reach its last sequence {last:?}"),
            Duration::from_secs(10),
            || async {
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM projects WHERE id = $1::uuid")
                        .bind(id)
                        .fetch_optional(&pool)
                        .await
                        .expect("read the projects row");
                (version == last).then_some(version)
            },
        )
        .await;
        assert_eq!(version, last);
    }
    pool.close().await;
}
