//! NATS as users run it: a server list, credentials in the URL or in an
//! nkey file, a stream the hub creates with replicas and retention (and an
//! existing one brought to them), a relay that stays right when old
//! messages expire, and live subscribers that resume at once after NATS
//! comes back.

use std::time::Duration;

use hub_tests::graphql::view;
use hub_tests::jetstream::{context, health, health_report, read_stream};
use hub_tests::views::Health;
use hub_tests::ws::{Protocol, WsClient, PROJECT_CHANGED};
use hub_tests::{wait_until, NatsServer, TestDb, TestHub};
use serde_json::{json, Value};

const ARRIVES: Duration = Duration::from_secs(15);

/// Waits until the hub's relay has published the project `id`'s creation.
async fn published(
    nats_url: &str,
    hub: &TestHub,
    id: &str,
) -> Vec<hub_tests::jetstream::Published> {
    let js = context(nats_url).await;
    wait_until("the relay to publish the creation", ARRIVES, || {
        let (js, stream) = (js.clone(), hub.stream_name());
        async move {
            js.get_stream(&stream).await.ok()?;
            let messages = read_stream(&js, &stream).await;
            messages
                .iter()
                .any(|m| m.body["aggregate_id"] == id)
                .then_some(messages)
        }
    })
    .await
}

#[tokio::test]
async fn a_live_subscriber_gets_its_next_event_within_two_seconds_of_nats_coming_back() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    let hub = TestHub::start_with(config).await;
    let mut client = WsClient::connect_and_init(&hub, Protocol::TransportWs, json!({})).await;
    client.subscribe("live", PROJECT_CHANGED, json!({})).await;
    client.wait_live_creating_probes("live", &hub).await;

    nats.stop();
    wait_until("the hub to see NATS gone", ARRIVES, || async {
        (!health_report(&hub).await.nats.connected).then_some(())
    })
    .await;
    nats.restart().await;
    let back = tokio::time::Instant::now();
    let id = hub.create_project("After The Outage", "/srv/after").await;
    loop {
        let data = client.next_data("live", ARRIVES).await;
        if data["projectChanged"]["id"] == id.as_str() {
            break;
        }
    }
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the subscriber's next delivery came {took:?} after NATS was back"
    );
}

#[tokio::test]
async fn a_server_list_is_taken_and_any_live_server_serves() {
    let nats = NatsServer::start().await;
    let dead = {
        let gone = NatsServer::start().await;
        gone.url()
    };
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = format!("{dead}, {}", nats.url());
    let hub = TestHub::start_with(config).await;
    let id = hub.create_project("Listed", "/srv/listed").await;
    published(&nats.url(), &hub, &id).await;
    assert!(health_report(&hub).await.nats.connected);

    // A list with a malformed entry stops the hub with a sentence.
    let hub_bin = hub_tests::process::cargo_executable(&["-p", "api", "--bin", "hub"]).await;
    let output = std::process::Command::new(hub_bin)
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("NATS_URL", "nats://a:4222,nats://b:port")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run hub serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a NATS server URL"), "{stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// A server that needs `authorization` (a config block).
async fn server_with(authorization: &str) -> NatsServer {
    let dir = std::env::temp_dir().join(format!("hub-test-auth-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("nats.conf");
    std::fs::write(&config, format!("authorization {{ {authorization} }}\n")).unwrap();
    NatsServer::start_with_args(vec!["-c".to_owned(), config.display().to_string()]).await
}

/// A hub given `url` (and `nkey`) connects and relays: its relay catches up
/// after a command, which needs acknowledgements from the server.
async fn relays_through(url: String, nkey: Option<std::path::PathBuf>) {
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = url;
    config.nats.nats_nkey = nkey;
    let mut hub = TestHub::start_with(config).await;
    // The stream is on the private server; it goes with it.
    hub.keep_stream();
    hub.create_project("Authenticated", "/srv/auth").await;
    let report = wait_until(
        "the relay to catch up through the server",
        ARRIVES,
        || async {
            // Kept as JSON too: no field of the report may hold the password.
            let report = health(&hub).await;
            let read: Health = view(&report);
            (read.nats.connected && read.relay_lag == Some(0)).then_some(report)
        },
    )
    .await;
    assert!(!report.to_string().contains("s3cretpw"), "{report}");
}

#[tokio::test]
async fn credentials_in_the_url_or_an_nkey_file_authenticate() {
    let address = |nats: &NatsServer| nats.url().trim_start_matches("nats://").to_owned();

    let users = server_with("user: alice, password: s3cretpw").await;
    relays_through(format!("nats://alice:s3cretpw@{}", address(&users)), None).await;

    let tokens = server_with("token: t0ken-42").await;
    relays_through(format!("nats://t0ken-42@{}", address(&tokens)), None).await;

    let key = nkeys::KeyPair::new_user();
    let nkeys = server_with(&format!("users: [ {{ nkey: {} }} ]", key.public_key())).await;
    let seed = nkeys.dir().join("hub.nk");
    std::fs::write(&seed, key.seed().unwrap()).unwrap();
    relays_through(nkeys.url(), Some(seed)).await;

    // A wrong password is not connected (and says so), and nothing breaks.
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = format!("nats://alice:wrong@{}", address(&users));
    let hub = TestHub::start_with(config).await;
    hub.create_project("Still Served", "/srv/still").await;
    assert!(!health_report(&hub).await.nats.connected);
}

/// A JWT of NATS's decentralized auth: `claims`, issued and signed by
/// `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "jti": uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = encode(claims.to_string().as_bytes());
    let signature = issuer
        .sign(format!("{header}.{body}").as_bytes())
        .expect("sign the JWT");
    format!("{header}.{body}.{}", encode(&signature))
}

#[tokio::test]
async fn a_creds_file_authenticates_against_a_server_in_operator_mode() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        json!({ "type": "operator", "version": 2 }),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "hub-account",
        json!({
            "type": "account",
            "version": 2,
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
            },
        }),
    );
    // JetStream in operator mode needs a system account.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        json!({ "type": "account", "version": 2, "limits": { "subs": -1, "data": -1, "payload": -1, "conn": -1 } }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "hub",
        json!({ "type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1 }),
    );
    let dir =
        std::env::temp_dir().join(format!("hub-test-creds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "operator: {operator_jwt}\nsystem_account: {system_pub}\nresolver: MEMORY\n\
             resolver_preload: {{ {}: {account_jwt}, {system_pub}: {system_jwt} }}\n",
            account.public_key(),
            system_pub = system.public_key(),
        ),
    )
    .unwrap();
    let nats =
        NatsServer::start_with_args(vec!["-c".to_owned(), config.display().to_string()]).await;
    let creds = dir.join("hub.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();

    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    config.nats.nats_creds = Some(creds);
    let mut hub = TestHub::start_with(config).await;
    hub.keep_stream();
    hub.create_project("With Creds", "/srv/creds").await;
    wait_until(
        "the relay to catch up with the creds file",
        ARRIVES,
        || async {
            let report = health_report(&hub).await;
            (report.nats.connected && report.relay_lag == Some(0)).then_some(())
        },
    )
    .await;

    // Without them, the same server refuses the hub.
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    let hub = TestHub::start_with(config).await;
    hub.create_project("Without Creds", "/srv/no-creds").await;
    assert!(!health_report(&hub).await.nats.connected);
}

async fn stream_config(nats_url: &str, stream: &str) -> async_nats::jetstream::stream::Config {
    let js = context(nats_url).await;
    let mut handle = js.get_stream(stream).await.expect("the stream exists");
    handle.info().await.expect("stream info").config.clone()
}

#[tokio::test]
async fn the_stream_is_made_with_the_configured_retention_and_an_existing_one_brought_to_it() {
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    config.nats.nats_max_age = Duration::from_secs(3600);
    config.nats.nats_max_bytes = 10_000_000;
    let mut first = TestHub::start_with(config.clone()).await;
    first.keep_stream();
    let id = first.create_project("Retained", "/srv/retained").await;
    published(&nats.url(), &first, &id).await;
    let made = stream_config(&nats.url(), &first.stream_name()).await;
    assert_eq!(made.max_age, Duration::from_secs(3600));
    assert_eq!(made.max_bytes, 10_000_000);
    assert_eq!(made.num_replicas, 1);
    first.stop().await;

    // Another hub of the same id, with other limits: the stream follows.
    config.nats.nats_max_age = Duration::from_secs(7200);
    config.nats.nats_max_bytes = 0;
    let second = TestHub::start_with(config).await;
    let id = second.create_project("Retained Again", "/srv/again").await;
    let messages = published(&nats.url(), &second, &id).await;
    assert!(messages.len() >= 2, "both creations are in the stream");
    let updated = stream_config(&nats.url(), &second.stream_name()).await;
    assert_eq!(updated.max_age, Duration::from_secs(7200));
    assert_eq!(updated.max_bytes, -1, "no limit");
}

#[tokio::test]
async fn the_relay_stays_right_when_every_message_has_expired() {
    let nats = NatsServer::start().await;
    let db = TestDb::create().await;
    let mut config = TestHub::config(db.url());
    config.nats.nats_url = nats.url();
    config.nats.nats_max_age = Duration::from_secs(1);
    let mut first = TestHub::start_with(config.clone()).await;
    first.keep_stream();
    let old = first.create_project("Expiring", "/srv/expiring").await;
    published(&nats.url(), &first, &old).await;
    let stream = first.stream_name();
    first.stop().await;
    let js = context(&nats.url()).await;
    wait_until("the old messages to expire", ARRIVES, || {
        let (js, stream) = (js.clone(), stream.clone());
        async move {
            let mut handle = js.get_stream(&stream).await.ok()?;
            (handle.info().await.ok()?.state.messages == 0).then_some(())
        }
    })
    .await;

    // The store holds events the stream no longer has: a new hub publishes
    // what comes next, and nothing again.
    let second = TestHub::start_with(config).await;
    let new = second
        .create_project("After Expiry", "/srv/after-expiry")
        .await;
    let messages = published(&nats.url(), &second, &new).await;
    let ids: Vec<&Value> = messages.iter().map(|m| &m.body["aggregate_id"]).collect();
    assert!(
        !ids.contains(&&json!(old)),
        "an expired event is not published again: {ids:?}"
    );
    // The relay moves its checkpoint after the publish: its lag returns to 0.
    wait_until("the relay's lag to return to 0", ARRIVES, || async {
        (health(&second).await["relay_lag"] == 0).then_some(())
    })
    .await;
}
