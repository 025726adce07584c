//! The hub console (`GET /`) in a real headless Chromium against a real
//! `hub` process: projects change live with no reload, events published
//! over REST reach the tail, a rebuild switches over, a parked event is
//! retried, a command on a stale board is told CONFLICT with the current
//! state, the token is asked for once, a hub restart is survived, and no
//! page asks anything of any origin but the hub's. Screenshots of each page
//! go to `target/console-screenshots/<test>/`.

use hub_tests::browser::Browser;
use hub_tests::nats_server::NatsServer;
use hub_tests::orchestration::{counted_and_gated, ScratchDir};
use hub_tests::reliability::HubSpec;
use hub_tests::spawned::{hub_id, SpawnedHub};
use hub_tests::TestDb;
use serde_json::{json, Value};

/// A hub serving on a port of its own that a restart keeps (so the page's
/// origin stays the same), with the further variables `env`.
async fn console_hub(prefix: &str, env: &[(&str, &str)]) -> SpawnedHub {
    console_hub_on(&hub_tests::hub::nats_url(), prefix, env).await
}

/// A hub as [`console_hub`] gives, on the NATS server at `nats_url`.
async fn console_hub_on(nats_url: &str, prefix: &str, env: &[(&str, &str)]) -> SpawnedHub {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let db = TestDb::create().await;
    let mut spec = HubSpec::new(db.url(), nats_url, &hub_id(prefix));
    spec.env = [
        ("HUB_BIND", format!("127.0.0.1:{port}").as_str()),
        ("HUB_READ_YOUR_WRITES_TIMEOUT_MS", "1000"),
    ]
    .iter()
    .chain(env)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    SpawnedHub::start_spec(db, spec).await
}

/// A script that gives the status of the project row named `name`.
fn status_of(name: &str) -> String {
    format!(
        "const row = [...document.querySelectorAll('#projects-body tr')]\
           .find((r) => r.querySelector('.name')?.textContent === {});\
         return row ? row.dataset.status : null;",
        json!(name)
    )
}

/// A script that is true once the row named `name` has status `status`.
fn has_status(name: &str, status: &str) -> String {
    format!(
        "return (function () {{ {} }})() === {};",
        status_of(name),
        json!(status)
    )
}

const LIVE: &str = "return document.getElementById('connection').dataset.state === 'open' \
    && document.getElementById('page-projects').dataset.ready === 'true';";

/// Opens the console on `page` and waits until it is live.
async fn open(browser: &Browser, hub: &SpawnedHub, page: &str) {
    browser.open(&format!("{}{page}", hub.url())).await;
    browser.wait_for("the console to be live", LIVE).await;
}

/// A browser (screenshots under `test`) on the live event tail.
async fn open_tail(hub: &SpawnedHub, test: &str) -> Browser {
    let browser = Browser::start(test).await;
    open(&browser, hub, "/console/events").await;
    browser
        .wait_for(
            "the tail to be live",
            "return document.getElementById('page-events').dataset.tail === 'live';",
        )
        .await;
    browser
}

/// Clicks the button `action` of the project row named `name`.
async fn act(browser: &Browser, name: &str, action: &str) {
    let script = format!(
        "const row = [...document.querySelectorAll('#projects-body tr')]\
           .find((r) => r.querySelector('.name')?.textContent === {});\
         const button = row?.querySelector('[data-action={}]');\
         if (!button || button.disabled) return false;\
         button.click(); return true;",
        json!(name),
        action
    );
    browser
        .wait_for(&format!("{action} to be offered for {name}"), &script)
        .await;
}

/// Renames the project `id` to "Renamed elsewhere" over GraphQL, as
/// another client; returns its new version.
async fn rename_elsewhere(hub: &SpawnedHub, id: &str) -> i64 {
    let renamed = hub
        .graphql(
            "mutation($id: ID!) { renameProject(id: $id, name: \"Renamed elsewhere\") { project { version } } }",
            json!({ "id": id }),
        )
        .await;
    renamed.body["data"]["renameProject"]["project"]["version"]
        .as_i64()
        .unwrap_or_else(|| panic!("the rename failed: {}", renamed.body))
}

/// Publishes an integration event over REST; returns its subject.
async fn publish(hub: &SpawnedHub, action: &str, correlation: &str) -> String {
    let subject = format!("hub.{}.audit.{action}", hub.hub_id());
    let answer = hub
        .http()
        .post(format!("{}/api/events", hub.url()))
        .json(&json!({ "subject": subject, "payload": { "action": action }, "correlation_id": correlation }))
        .send()
        .await
        .expect("POST /api/events");
    assert_eq!(
        answer.status(),
        201,
        "{}",
        answer.text().await.unwrap_or_default()
    );
    subject
}

/// A script that is true once the tail shows an event on `subject`.
fn in_tail(subject: &str) -> String {
    format!(
        "return [...document.querySelectorAll('#events-body .subject')]\
           .some((cell) => cell.textContent === {});",
        json!(subject)
    )
}

/// Sets the control `id` to `value` and tells the page (`event`).
async fn set(browser: &Browser, id: &str, value: &str, event: &str) {
    browser
        .run(
            "const c = document.getElementById(arguments[0]); c.value = arguments[1];\
             c.dispatchEvent(new Event(arguments[2]));",
            vec![json!(id), json!(value), json!(event)],
        )
        .await;
}

/// Waits until the board shows exactly the projects `names`, in order.
async fn wait_for_names(browser: &Browser, what: &str, names: &[&str]) {
    let script = format!(
        "const names = [...document.querySelectorAll('#projects-body .name')].map((n) => n.textContent);\
         return JSON.stringify(names) === JSON.stringify({});",
        json!(names)
    );
    browser.wait_for(what, &script).await;
}

/// Waits until the projects page shows an error containing `part`;
/// returns the whole message.
async fn projects_error(browser: &Browser, part: &str) -> String {
    let script = format!(
        "const m = document.getElementById('projects-message');\
         return m.classList.contains('error') && m.textContent.includes({}) && m.textContent;",
        json!(part)
    );
    let said = browser
        .wait_for(&format!("an error saying {part}"), &script)
        .await;
    said.as_str().expect("the message").to_owned()
}

async fn text(browser: &Browser, css: &str) -> String {
    browser
        .run(
            "return document.querySelector(arguments[0])?.textContent ?? '';",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Checks the page neither asked another origin for anything nor logged
/// an error (a refused script, a CSP violation, an uncaught exception)
/// other than those containing one of `expected`.
async fn assert_clean(browser: &Browser, hub: &SpawnedHub, expected: &[&str]) {
    browser.assert_only_requested(&hub.url()).await;
    let mut severe = browser.severe_messages().await;
    severe.retain(|message| !expected.iter().any(|e| message.contains(e)));
    assert!(severe.is_empty(), "the page logged errors: {severe:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_created_and_started_in_the_console_goes_starting_then_running_live() {
    let scratch = ScratchDir::create();
    let gate = scratch.file("gate");
    let start = counted_and_gated(&scratch.file("starts"), &gate);
    let hub = console_hub(
        "console-projects",
        &[
            ("HUB_ORCHESTRATOR", "shell"),
            ("HUB_SHELL_START", &start),
            ("HUB_SHELL_STOP", "true"),
        ],
    )
    .await;
    let browser = Browser::start("projects").await;
    open(&browser, &hub, "/").await;

    browser.fill("#create-name", "Console demo").await;
    // The shell orchestrator starts projects whose directory exists.
    browser.fill("#create-path", scratch.as_str()).await;
    browser.click("#create-form button[type=submit]").await;
    browser
        .wait_for(
            "the new project, stopped",
            &has_status("Console demo", "STOPPED"),
        )
        .await;
    act(&browser, "Console demo", "start").await;
    browser
        .wait_for(
            "the project to be STARTING",
            &has_status("Console demo", "STARTING"),
        )
        .await;
    browser.screenshot("projects-starting").await;
    std::fs::write(&gate, "").expect("open the gate");
    browser
        .wait_for(
            "the project to be RUNNING",
            &has_status("Console demo", "RUNNING"),
        )
        .await;

    // Another client's change shows up, with no reload.
    let marker = browser
        .run("return (window.notReloaded = 42);", vec![])
        .await;
    let other = hub.create_project("Made elsewhere").await;
    browser
        .wait_for(
            "another client's project",
            &has_status("Made elsewhere", "STOPPED"),
        )
        .await;
    rename_elsewhere(&hub, &other).await;
    browser
        .wait_for(
            "another client's rename",
            &has_status("Renamed elsewhere", "STOPPED"),
        )
        .await;
    assert_eq!(
        browser.run("return window.notReloaded;", vec![]).await,
        marker
    );

    // A taken name is said in words, with its code; nothing changes.
    browser.fill("#create-name", "Console demo").await;
    browser.fill("#create-path", "/srv/again").await;
    browser.click("#create-form button[type=submit]").await;
    let said = projects_error(&browser, "NAME_TAKEN").await;
    assert!(
        said.contains("Another project already has this name"),
        "{said}"
    );
    let rows = browser
        .run(
            "return document.querySelectorAll('#projects-body tr').length;",
            vec![],
        )
        .await;
    assert_eq!(rows, json!(2));

    // Filtering by status and searching by name.
    set(&browser, "status-filter", "RUNNING", "change").await;
    wait_for_names(&browser, "only the running project", &["Console demo"]).await;
    set(&browser, "status-filter", "", "change").await;
    set(&browser, "name-search", "elsewhere", "input").await;
    wait_for_names(
        &browser,
        "only the project searched for",
        &["Renamed elsewhere"],
    )
    .await;
    set(&browser, "name-search", "", "input").await;
    browser
        .wait_for(
            "both projects again",
            "return document.querySelectorAll('#projects-body tr').length === 2;",
        )
        .await;
    browser.screenshot("projects").await;
    browser.resize(390, 844).await;
    browser.screenshot("projects-phone").await;
    browser.resize(1280, 800).await;

    for (page, ready) in [
        (
            "events",
            "return document.getElementById('page-events').dataset.tail === 'live';",
        ),
        (
            "read-models",
            "return document.getElementById('read-models').dataset.loaded === 'true';",
        ),
        (
            "health",
            "return document.getElementById('health').dataset.loaded === 'true';",
        ),
    ] {
        browser.click(&format!("nav a[data-page='{page}']")).await;
        browser.wait_for(&format!("the {page} page"), ready).await;
        browser.screenshot(page).await;
    }
    browser.open(&format!("{}/graphql", hub.url())).await;
    browser
        .wait_for(
            "the query console",
            "return !!document.getElementById('run');",
        )
        .await;
    browser.screenshot("query").await;
    assert_clean(&browser, &hub, &[]).await;
    browser.close().await;
}

/// The board is fed through NATS while commands and their answers go
/// through PostgreSQL only: with the hub's NATS server frozen, another
/// client's change does not reach the board, so the console's next command
/// carries a stale `expectedVersion` every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_a_stale_board_says_conflict_with_the_current_state_then_catches_up() {
    let nats = NatsServer::start().await;
    let hub = console_hub_on(&nats.url(), "console-conflict", &[]).await;
    let browser = Browser::start("conflict").await;
    open(&browser, &hub, "/").await;
    let id = hub.create_project("Shown here").await;
    browser
        .wait_for(
            "the project on the board",
            &has_status("Shown here", "STOPPED"),
        )
        .await;

    let frozen = nats.freeze();
    let current = rename_elsewhere(&hub, &id).await;
    let shown_version = browser
        .run(
            "return [...document.querySelectorAll('#projects-body tr')]\
               .find((r) => r.dataset.id === arguments[0]).querySelector('.version').textContent;",
            vec![json!(id)],
        )
        .await;
    assert_eq!(
        shown_version,
        json!((current - 1).to_string()),
        "the board still shows the version before the rename"
    );
    hub.create_project("Made while frozen").await;

    act(&browser, "Shown here", "rename").await;
    browser
        .wait_for(
            "the rename dialog",
            "return document.getElementById('rename-dialog').open;",
        )
        .await;
    browser.fill("#rename-input", "Renamed here").await;
    browser.click("#rename-form button[type=submit]").await;
    let said = projects_error(&browser, "current state").await;
    assert!(said.contains("Someone else changed this project"), "{said}");
    assert!(
        said.contains(&format!(
            "it is now “Renamed elsewhere”, STOPPED, version {current}"
        )),
        "{said}"
    );
    // The console read the project again; the rest of the board is as stale
    // as the feed.
    browser
        .wait_for(
            "the current state on the board",
            &has_status("Renamed elsewhere", "STOPPED"),
        )
        .await;
    assert_eq!(
        browser.run(&status_of("Made while frozen"), vec![]).await,
        Value::Null,
        "nothing reached the board through the frozen NATS server"
    );
    browser.screenshot("projects-conflict").await;

    drop(frozen);
    browser
        .wait_for(
            "the board to catch up",
            &has_status("Made while frozen", "STOPPED"),
        )
        .await;
    wait_for_names(
        &browser,
        "both projects, with the other client's name",
        &["Renamed elsewhere", "Made while frozen"],
    )
    .await;
    let stored = hub
        .graphql(
            "query($id: ID!) { project(id: $id) { name version } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        stored.body["data"]["project"],
        json!({ "name": "Renamed elsewhere", "version": current }),
        "the refused rename changed nothing"
    );
    assert_clean(&browser, &hub, &[]).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_over_rest_reach_the_tail_and_a_pause_loses_none() {
    let hub = console_hub("console-events", &[]).await;
    let browser = open_tail(&hub, "events").await;

    let first = publish(&hub, "security.completed", "audit-1").await;
    browser
        .wait_for("the published event in the tail", &in_tail(&first))
        .await;

    browser.click("#tail-pause").await;
    browser
        .wait_for(
            "the tail to be paused",
            "return document.getElementById('page-events').dataset.tail === 'stopped';",
        )
        .await;
    let while_paused = publish(&hub, "scan.finished", "audit-2").await;
    let shown = browser
        .run(
            &in_tail(&while_paused).replace("return ", "return !"),
            vec![],
        )
        .await;
    assert_eq!(shown, json!(true), "a paused tail shows nothing new");
    browser.click("#tail-pause").await;
    browser
        .wait_for("the event published while paused", &in_tail(&while_paused))
        .await;

    // An event's envelope, payload and correlation chain.
    browser
        .run(
            "[...document.querySelectorAll('#events-body tr')]\
               .find((r) => r.querySelector('.subject').textContent === arguments[0])\
               .querySelector('button').click();",
            vec![json!(first)],
        )
        .await;
    let payload = browser
        .wait_for(
            "the event's details",
            "const chain = document.querySelector('#event-detail .chain');\
             return chain && !chain.textContent.includes('Loading') \
               && document.querySelector('#event-detail .payload').textContent;",
        )
        .await;
    let payload: Value = serde_json::from_str(payload.as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({ "action": "security.completed" }));
    assert!(text(&browser, "#event-detail .envelope")
        .await
        .contains("audit-1"));
    assert!(text(&browser, "#event-detail .chain")
        .await
        .contains(&first));

    // The correlation filter.
    browser.fill("#filter-correlation", "audit-2").await;
    browser.click("#event-filter button[type=submit]").await;
    browser
        .wait_for(
            "only the events of audit-2",
            &format!(
                "const subjects = [...document.querySelectorAll('#events-body .subject')].map((c) => c.textContent);\
                 return subjects.length === 1 && subjects[0] === {};",
                json!(while_paused)
            ),
        )
        .await;
    browser.screenshot("events").await;
    browser.resize(390, 844).await;
    browser.screenshot("events-phone").await;
    assert_clean(&browser, &hub, &[]).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_retried_and_a_rebuild_reaches_switched_in_the_console() {
    let hub = console_hub("console-read-models", &[]).await;
    let pool = hub.db.pool().await;
    hub.create_project("Fine one").await;
    // The "bug": the projection cannot write this project's row.
    sqlx::query(
        "ALTER TABLE projects ADD CONSTRAINT projects_console_bug CHECK (name <> 'Poison')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let answer = hub
        .graphql(
            "mutation { createProject(input: {name: \"Poison\", path: \"/srv/poison\"}) { stale } }",
            json!({}),
        )
        .await;
    assert_eq!(
        answer.body["data"]["createProject"]["stale"], true,
        "{}",
        answer.body
    );

    let browser = Browser::start("read-models").await;
    open(&browser, &hub, "/console/read-models").await;
    let error = browser
        .wait_for(
            "the parked event and its error",
            "return document.querySelector(\"article[data-name='projects'] .parked-error\")?.textContent;",
        )
        .await;
    assert!(
        error.as_str().unwrap().contains("projects_console_bug"),
        "{error}"
    );
    browser.screenshot("read-models-parked").await;

    sqlx::query("ALTER TABLE projects DROP CONSTRAINT projects_console_bug")
        .execute(&pool)
        .await
        .unwrap();
    browser
        .click("article[data-name='projects'] [data-action='retry']")
        .await;
    browser
        .wait_for(
            "the retry to replay it",
            "const card = document.querySelector(\"article[data-name='projects']\");\
             return card.querySelector('.retry-outcome')?.textContent.includes('1 replayed, 0 still parked') \
               && !!card.querySelector('.parked-none');",
        )
        .await;
    let project = hub
        .graphql(
            "{ projects(search: \"Poison\") { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        project.body["data"]["projects"]["edges"][0]["node"]["name"],
        "Poison"
    );

    browser
        .click("article[data-name='projects'] [data-action='rebuild']")
        .await;
    let said = browser
        .wait_for(
            "the rebuild to switch over",
            "const state = document.querySelector(\"article[data-name='projects'] .rebuild-state\");\
             return state?.dataset.state === 'switched' && state.textContent;",
        )
        .await;
    assert!(said.as_str().unwrap().contains("switched"), "{said}");
    let bar = browser
        .run(
            "const bar = document.querySelector(\"article[data-name='projects'] progress\");\
             return [bar.value, bar.max];",
            vec![],
        )
        .await;
    assert_eq!(bar[0], bar[1], "a full bar: {bar}");
    browser.screenshot("read-models").await;
    assert_clean(&browser, &hub, &[]).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_asks_for_the_token_once_and_sends_it_everywhere() {
    let hub = console_hub("console-token", &[("HUB_API_TOKEN", "console-s3cret")]).await;
    let browser = Browser::start("token").await;
    browser.open(&hub.url()).await;
    browser
        .wait_for(
            "the token prompt",
            "return document.getElementById('token-dialog').open;",
        )
        .await;
    browser.screenshot("token-prompt").await;
    browser.fill("#token-input", "wrong").await;
    browser.click("#token-form button[type=submit]").await;
    browser
        .wait_for(
            "the wrong token to be refused",
            "return document.getElementById('token-message').textContent.includes('did not accept');",
        )
        .await;
    browser.fill("#token-input", "console-s3cret").await;
    browser.click("#token-form button[type=submit]").await;
    browser.wait_for("the console to be live", LIVE).await;
    assert_eq!(
        browser
            .run(
                "return document.getElementById('token-dialog').open;",
                vec![]
            )
            .await,
        json!(false)
    );
    let id = hub_create_with_token(&hub, "Behind a token").await;
    browser
        .wait_for(
            "the project over the socket",
            &has_status("Behind a token", "STOPPED"),
        )
        .await;

    // Asked once: a reload (same tab) does not ask again.
    browser.open(&format!("{}/console/health", hub.url())).await;
    browser.wait_for("the console to be live", LIVE).await;
    browser
        .wait_for(
            "the health details, which need the token",
            "return document.querySelector('#health .database')?.textContent === 'connected';",
        )
        .await;
    assert_eq!(
        browser
            .run(
                "return document.getElementById('token-dialog').open;",
                vec![]
            )
            .await,
        json!(false)
    );
    browser.screenshot("health").await;
    browser.click("nav a[data-page='projects']").await;
    act(&browser, "Behind a token", "delete").await;
    browser
        .wait_for(
            "the deleted project to leave the board",
            &format!(
                "return (function () {{ {} }})() === null;",
                status_of("Behind a token")
            ),
        )
        .await;
    assert!(!id.is_empty());
    // The page's first question, before it had the token, and the wrong one.
    assert_clean(&browser, &hub, &["status of 401 (Unauthorized)"]).await;
    browser.close().await;
}

async fn hub_create_with_token(hub: &SpawnedHub, name: &str) -> String {
    let answer: Value = hub
        .http()
        .post(format!("{}/graphql", hub.url()))
        .bearer_auth("console-s3cret")
        .json(&json!({
            "query": "mutation($name: String!) { createProject(input: {name: $name, path: \"/srv/t\"}) { project { id } } }",
            "variables": { "name": name },
        }))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("JSON");
    answer["data"]["createProject"]["project"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_reconnects_after_a_hub_restart_and_catches_up() {
    let mut hub = console_hub("console-restart", &[]).await;
    let browser = open_tail(&hub, "restart").await;
    let before = publish(&hub, "before.restart", "restart-1").await;
    browser.wait_for("the first event", &in_tail(&before)).await;

    hub.process.kill().await;
    browser
        .wait_for(
            "the console to say it is reconnecting",
            "return document.getElementById('connection').dataset.state === 'reconnecting';",
        )
        .await;
    browser.screenshot("reconnecting").await;
    hub.process.restart().await;
    // Recorded before the console is back: it must catch up on them.
    let after = publish(&hub, "after.restart", "restart-2").await;
    hub.create_project("After the restart").await;
    browser
        .wait_for(
            "the console to be live again",
            "return document.getElementById('connection').dataset.state === 'open';",
        )
        .await;
    browser
        .wait_for("the event recorded after the restart", &in_tail(&after))
        .await;
    let before_count = browser
        .run(
            &format!(
                "return [...document.querySelectorAll('#events-body .subject')]\
                   .filter((c) => c.textContent === {}).length;",
                json!(before)
            ),
            vec![],
        )
        .await;
    assert_eq!(before_count, json!(1), "no event shown twice");
    browser.click("nav a[data-page='projects']").await;
    browser
        .wait_for(
            "the project created after the restart",
            &has_status("After the restart", "STOPPED"),
        )
        .await;
    browser.screenshot("after-restart").await;
    // The failed connections while the hub was down are logged as errors:
    // only the origins are checked here.
    browser.assert_only_requested(&hub.url()).await;
    browser.close().await;
}

#[tokio::test]
async fn the_console_pages_are_served_under_the_strict_policy_and_only_to_loopback_hosts() {
    let hub = console_hub("console-pages", &[]).await;
    let addr = hub.addr();
    let host = [("Host", addr.as_str())];
    for path in ["/", "/console", "/console/events", "/console/read-models"] {
        let page = hub_tests::raw::request(&addr, "GET", path, &host, "").await;
        assert_eq!(page.status, 200, "{path}");
        assert_eq!(
            page.header("content-security-policy"),
            Some(api::http::console::CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(page.body.contains("/console/assets/app.js"), "{path}");
    }
    let script =
        hub_tests::raw::request(&addr, "GET", "/console/assets/client.js", &host, "").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(script.header("x-content-type-options"), Some("nosniff"));
    for path in [
        "/console/nope",
        "/console/assets/nope.js",
        "/console/assets/..%2Fconsole.rs",
    ] {
        let missing = hub_tests::raw::request(&addr, "GET", path, &host, "").await;
        assert_eq!(missing.status, 404, "{path}");
    }
    // DNS rebinding: a page on another name gets no console either.
    let rebound =
        hub_tests::raw::request(&addr, "GET", "/", &[("Host", "attacker.example")], "").await;
    assert_eq!(rebound.status, 421);
}
