//! A real `hub serve` process: started on port 0, killed with `SIGKILL`,
//! restarted on the same database, hub id and stream.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Child;
use tokio::sync::OnceCell;

use crate::process::{cargo_executable, Output};

/// How long a hub may take to build its application and serve (migrations,
/// a busy machine).
const STARTS_WITHIN: Duration = Duration::from_secs(60);

/// The `hub` binary, built once per test process.
async fn executable() -> PathBuf {
    static HUB: OnceCell<PathBuf> = OnceCell::const_new();
    HUB.get_or_init(|| cargo_executable(&["-p", "api", "--bin", "hub"]))
        .await
        .clone()
}

/// Where a hub serves right now (`http://127.0.0.1:<port>`), or nothing
/// while it is down. Clients read it before each request, so they follow a
/// restarted hub to its new port and never talk to whatever process takes
/// the old one.
#[derive(Clone, Debug, Default)]
pub struct Endpoint(Arc<RwLock<Option<String>>>);

impl Endpoint {
    /// The base URL, while the hub serves.
    pub fn get(&self) -> Option<String> {
        self.0.read().expect("endpoint lock").clone()
    }

    fn set(&self, url: Option<String>) {
        *self.0.write().expect("endpoint lock") = url;
    }
}

/// How to run a hub: what `hub serve` is given in its environment.
#[derive(Clone, Debug)]
pub struct HubSpec {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `NATS_URL`.
    pub nats_url: String,
    /// `HUB_ID` (the stream is the default `HUB_<HUB_ID>`).
    pub hub_id: String,
    /// Further variables (`HUB_DB_ACQUIRE_TIMEOUT_MS`, ...).
    pub env: Vec<(String, String)>,
    /// Variables not to set at all (e.g. `DATABASE_URL`, when
    /// `DATABASE_URL_FILE` is in `env`).
    pub unset: Vec<String>,
    /// The open-file limit (soft and hard) of the process, when not the
    /// test's own.
    pub open_file_limit: Option<u64>,
}

impl HubSpec {
    /// A spec with no further variables.
    pub fn new(database_url: &str, nats_url: &str, hub_id: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            nats_url: nats_url.to_owned(),
            hub_id: hub_id.to_owned(),
            env: Vec::new(),
            unset: Vec::new(),
            open_file_limit: None,
        }
    }

    /// The JetStream stream the hub relays to.
    pub fn stream(&self) -> String {
        infrastructure::nats::StreamSettings::default_name(&self.hub_id)
    }
}

/// A `hub serve` child process. Killed when dropped.
pub struct HubProcess {
    executable: PathBuf,
    spec: HubSpec,
    child: Option<Child>,
    output: Output,
    endpoint: Endpoint,
    http: reqwest::Client,
    starts: u32,
    startups: Vec<Duration>,
}

impl HubProcess {
    /// Builds the binary (once) and starts a hub; returns once it serves.
    ///
    /// # Panics
    /// When it exits or does not serve within a minute.
    pub async fn start(spec: HubSpec) -> Self {
        crate::init_logging();
        let mut hub = Self {
            executable: executable().await,
            spec,
            child: None,
            output: Output::default(),
            endpoint: Endpoint::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            starts: 0,
            startups: Vec::new(),
        };
        hub.spawn().await;
        hub
    }

    /// Where it serves, followed across restarts.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    /// The base URL.
    ///
    /// # Panics
    /// While the hub is down.
    pub fn url(&self) -> String {
        self.endpoint.get().expect("the hub is serving")
    }

    /// How it was started.
    pub fn spec(&self) -> &HubSpec {
        &self.spec
    }

    /// How many times it was started (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// How long each start that reached serving took, from spawning the
    /// process to its "hub is serving" line.
    pub fn startups(&self) -> &[Duration] {
        &self.startups
    }

    /// What the current (or last) process printed.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The last `lines` lines the current (or last) process printed.
    pub fn log_tail(&self, lines: usize) -> String {
        let all = self.output.lines();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process is still alive (it has not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the process with `SIGKILL`, as a crash would, and waits for it.
    /// Clients see the hub as down from before the signal is sent.
    pub async fn kill(&mut self) {
        self.endpoint.set(None);
        if let Some(mut child) = self.child.take() {
            // `start_kill` sends SIGKILL on Unix.
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the process again with the same settings (same database, hub
    /// id and stream); returns once it serves. Kills the running one first,
    /// if any.
    ///
    /// # Panics
    /// When it exits or does not serve within a minute.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Starts the process again and kills it with `SIGKILL` `after` later,
    /// whether or not it serves by then: a crash during start-up (while the
    /// feed consumers activate, the relay reconciles, the process manager
    /// resumes its requests). Leaves the hub down.
    pub async fn crash_while_starting(&mut self, after: Duration) {
        self.kill().await;
        let mut child = self.command().spawn().expect("start the hub");
        self.output = Output::collect(&mut child);
        self.child = Some(child);
        self.starts += 1;
        tokio::time::sleep(after).await;
        self.kill().await;
    }

    /// `GET /health` as JSON; `None` while the hub is down or does not answer.
    pub async fn health(&self) -> Option<Value> {
        let url = self.endpoint.get()?;
        let response = self.http.get(format!("{url}/health")).send().await.ok()?;
        response.json().await.ok()
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.executable);
        command
            .arg("serve")
            .env("DATABASE_URL", &self.spec.database_url)
            .env("NATS_URL", &self.spec.nats_url)
            .env("HUB_ID", &self.spec.hub_id)
            .env("HUB_BIND", "127.0.0.1:0")
            .env("HUB_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            // Many tests run at once on one PostgreSQL: keep the share small.
            .env("HUB_DB_MAX_CONNECTIONS", "10")
            .env("HUB_DB_READ_CONNECTIONS", "4")
            .env_remove("HUB_API_TOKEN")
            .env_remove("HUB_NATS_STREAM")
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in &self.spec.unset {
            command.env_remove(name);
        }
        if let Some(limit) = self.spec.open_file_limit {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: between fork and exec only setrlimit runs, which is
            // async-signal-safe and touches nothing of the parent's.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
    }

    /// The process id of the running process.
    ///
    /// # Panics
    /// While the hub is down.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(tokio::process::Child::id)
            .expect("the hub is running")
    }

    async fn spawn(&mut self) {
        let spawned = tokio::time::Instant::now();
        let mut child = self.command().spawn().expect("start the hub");
        self.output = Output::collect(&mut child);
        self.child = Some(child);
        self.starts += 1;

        let deadline = spawned + STARTS_WITHIN;
        let addr = loop {
            if let Some(addr) = self.serving_address() {
                break addr;
            }
            if !self.is_running() {
                // Let the readers take in the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!(
                    "hub {} exited before serving:\n{}",
                    self.spec.hub_id,
                    self.output.text()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "hub {} did not serve within {STARTS_WITHIN:?}:\n{}",
                self.spec.hub_id,
                self.output.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.startups.push(spawned.elapsed());
        self.endpoint.set(Some(format!("http://{addr}")));
    }

    /// The address in the "hub is serving" line, once printed.
    fn serving_address(&self) -> Option<String> {
        self.output.lines().iter().find_map(|line| {
            let logged: Value = serde_json::from_str(line).ok()?;
            let message = logged["fields"]["message"]
                .as_str()
                .or_else(|| logged["message"].as_str())?;
            if !message.contains("hub is serving") {
                return None;
            }
            logged["fields"]["addr"]
                .as_str()
                .or_else(|| logged["addr"].as_str())
                .map(str::to_owned)
        })
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.endpoint.set(None);
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
