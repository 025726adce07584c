//! A steady command load: a few concurrent GraphQL clients creating,
//! starting and stopping projects, recording every attempt and whether the
//! hub acknowledged it.
//!
//! A command is *acknowledged* when the hub answered with data (the
//! mutation's project) and no error: the hub promised it is recorded. Every
//! other answer (a connection error while the hub is down, `UNAVAILABLE`, a
//! rejection) promises nothing; such a command may or may not be in the
//! store. Each request carries its own `X-Correlation-ID`, which the hub
//! copies onto the command's events, so the agreement check can find each
//! acknowledged command's event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::{Endpoint, Rng};
use crate::ops;

/// Projects each client keeps; past this it only starts and stops them
/// (the port range holds 2,500 projects).
const PROJECTS_PER_CLIENT: usize = 6;

/// Longest a request may take before the client gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `createProject`.
    Create,
    /// `startProject`.
    Start,
    /// `stopProject`.
    Stop,
}

impl Kind {
    /// The GraphQL mutation field.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Create => "createProject",
            Kind::Start => "startProject",
            Kind::Stop => "stopProject",
        }
    }

    /// The event the command records when it is accepted.
    pub fn event_type(self) -> &'static str {
        match self {
            Kind::Create => "ProjectCreated",
            Kind::Start => "ProjectStartRequested",
            Kind::Stop => "ProjectStopRequested",
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The hub answered with the project: the command is recorded.
    Acked {
        /// The project's id.
        project_id: String,
        /// The project's version in the answer (at least the command's own
        /// event's sequence).
        version: i64,
        /// The project's status in the answer.
        status: String,
    },
    /// The hub answered with a GraphQL error.
    Refused {
        /// Its `extensions.code` (`"<none>"` when missing).
        code: String,
    },
    /// No GraphQL answer: connection refused or cut, timeout, not JSON.
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// One request a client made.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Which client.
    pub client: usize,
    /// What it asked.
    pub kind: Kind,
    /// The `X-Correlation-ID` it sent.
    pub correlation_id: String,
    /// The project it named (`None` for a create).
    pub target: Option<String>,
    /// When it was sent.
    pub started: Instant,
    /// When its answer (or failure) came.
    pub finished: Instant,
    /// The HTTP status, when there was a response.
    pub http_status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Attempt {
    /// How long it took.
    pub fn latency(&self) -> Duration {
        self.finished - self.started
    }

    /// Whether the hub acknowledged it.
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked { .. })
    }

    /// Whether it was sent at or after `from` and finished at or before `to`.
    pub fn within(&self, from: Instant, to: Instant) -> bool {
        self.started >= from && self.finished <= to
    }
}

/// Every attempt of a load, in the order they finished.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// The attempts.
    pub attempts: Vec<Attempt>,
}

impl Ledger {
    /// The acknowledged attempts.
    pub fn acked(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(|a| a.acked())
    }

    /// How many were acknowledged.
    pub fn acked_count(&self) -> usize {
        self.acked().count()
    }

    /// Attempts per outcome: `acked`, `refused:<CODE>`, `failed`.
    pub fn tally(&self) -> HashMap<String, usize> {
        let mut tally = HashMap::new();
        for attempt in &self.attempts {
            let key = match &attempt.outcome {
                Outcome::Acked { .. } => "acked".to_owned(),
                Outcome::Refused { code } => format!("refused:{code}"),
                Outcome::Failed { .. } => "failed".to_owned(),
            };
            *tally.entry(key).or_default() += 1;
        }
        tally
    }

    /// Attempts answered with an HTTP 5xx status.
    pub fn server_errors(&self) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.http_status.is_some_and(|s| s >= 500))
            .collect()
    }
}

/// Concurrent clients sending commands until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Vec<Attempt>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` clients. Each sends its next command as soon as the
    /// last one was answered (with a short random pause), to one of the
    /// `endpoints` that is up (round robin); while none is, it waits briefly
    /// and tries again. `tag` goes into correlation ids and project names.
    pub fn start(endpoints: Vec<Endpoint>, clients: usize, tag: &str, rng: &mut Rng) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("an HTTP client");
        let tasks = (0..clients)
            .map(|index| {
                let client = Client {
                    index,
                    tag: tag.to_owned(),
                    endpoints: endpoints.clone(),
                    http: http.clone(),
                    rng: rng.fork(index as u64),
                    stop: stop.clone(),
                    ledger: ledger.clone(),
                    projects: Vec::new(),
                    sent: 0,
                };
                tokio::spawn(client.run())
            })
            .collect();
        Self {
            stop,
            ledger,
            tasks,
        }
    }

    /// The attempts so far.
    pub fn snapshot(&self) -> Ledger {
        Ledger {
            attempts: self.ledger.lock().expect("ledger lock").clone(),
        }
    }

    /// Acknowledged attempts so far.
    pub fn acked_count(&self) -> usize {
        let ledger = self.ledger.lock().expect("ledger lock");
        ledger.iter().filter(|attempt| attempt.acked()).count()
    }

    /// Waits until `more` further commands have been acknowledged.
    ///
    /// # Panics
    /// When they are not within `timeout`.
    pub async fn wait_for_acks(&self, more: usize, timeout: Duration) {
        let target = self.acked_count() + more;
        crate::wait_until(
            &format!("{more} more acknowledged commands"),
            timeout,
            || async { (self.acked_count() >= target).then_some(()) },
        )
        .await;
    }

    /// Stops the clients (each finishes its request in flight) and returns
    /// every attempt.
    ///
    /// # Panics
    /// When a client panicked.
    pub async fn finish(mut self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        for task in std::mem::take(&mut self.tasks) {
            task.await.expect("a load client panicked");
        }
        let attempts = std::mem::take(&mut *self.ledger.lock().expect("ledger lock"));
        Ledger { attempts }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A project a client created, with the last status it was told.
struct Known {
    id: String,
    status: String,
}

struct Client {
    index: usize,
    tag: String,
    endpoints: Vec<Endpoint>,
    http: reqwest::Client,
    rng: Rng,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Vec<Attempt>>>,
    projects: Vec<Known>,
    sent: u64,
}

impl Client {
    async fn run(mut self) {
        let mut next_endpoint = self.index;
        while !self.stop.load(Ordering::SeqCst) {
            let up = (0..self.endpoints.len())
                .find_map(|i| self.endpoints[(next_endpoint + i) % self.endpoints.len()].get());
            next_endpoint += 1;
            let Some(base) = up else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let attempt = self.send(&base).await;
            let failed = matches!(attempt.outcome, Outcome::Failed { .. });
            self.learn(&attempt);
            self.ledger.lock().expect("ledger lock").push(attempt);
            // Pace the load; after a connection error, give a dying or
            // restarting hub a moment instead of spinning.
            let pause = if failed {
                Duration::from_millis(20)
            } else {
                self.rng.between(Duration::ZERO, Duration::from_millis(15))
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// The next command: create while the client has few projects (and now
    /// and then), else start or stop one of its projects as its last known
    /// status suggests (sometimes the other way, to exercise rejections).
    fn choose(&mut self) -> (Kind, Option<usize>) {
        let few = self.projects.len() < PROJECTS_PER_CLIENT;
        if self.projects.is_empty() || (few && self.rng.below(4) == 0) {
            return (Kind::Create, None);
        }
        let index = self.rng.below(self.projects.len() as u64) as usize;
        // A STARTING or STOPPING project is usually done by the time the
        // next command goes out.
        let suggested = match self.projects[index].status.as_str() {
            "STOPPED" | "STOPPING" => Kind::Start,
            "RUNNING" | "STARTING" => Kind::Stop,
            _ if self.rng.below(2) == 0 => Kind::Start,
            _ => Kind::Stop,
        };
        let kind = if self.rng.below(10) == 0 {
            match suggested {
                Kind::Start => Kind::Stop,
                _ => Kind::Start,
            }
        } else {
            suggested
        };
        (kind, Some(index))
    }

    async fn send(&mut self, base: &str) -> Attempt {
        let (kind, index) = self.choose();
        self.sent += 1;
        let correlation_id = format!("{}-c{}-{}", self.tag, self.index, self.sent);
        let target = index.map(|i| self.projects[i].id.clone());
        let (query, variables) = match (kind, &target) {
            (Kind::Create, _) => (
                ops::CREATE,
                json!({
                    "name": format!("{} c{} p{}", self.tag, self.index, self.sent),
                    "path": format!("/srv/reliability/c{}/{}", self.index, self.sent),
                }),
            ),
            (Kind::Start, Some(id)) => (ops::START, json!({ "id": id })),
            (Kind::Stop, Some(id)) => (ops::STOP, json!({ "id": id })),
            (_, None) => unreachable!("start and stop name a project"),
        };
        let started = Instant::now();
        let sent = self
            .http
            .post(format!("{base}/graphql"))
            .header("x-correlation-id", &correlation_id)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await;
        let (http_status, outcome) = match sent {
            Err(err) => (
                None,
                Outcome::Failed {
                    reason: err.to_string(),
                },
            ),
            Ok(response) => {
                let status = response.status().as_u16();
                let outcome = match response.json::<Value>().await {
                    Ok(body) => judge(&body, kind),
                    Err(err) => Outcome::Failed {
                        reason: format!("HTTP {status}, no JSON: {err}"),
                    },
                };
                (Some(status), outcome)
            }
        };
        Attempt {
            client: self.index,
            kind,
            correlation_id,
            target,
            started,
            finished: Instant::now(),
            http_status,
            outcome,
        }
    }

    /// Remembers created projects and the statuses answers report.
    fn learn(&mut self, attempt: &Attempt) {
        let Outcome::Acked {
            project_id, status, ..
        } = &attempt.outcome
        else {
            return;
        };
        match self.projects.iter_mut().find(|p| p.id == *project_id) {
            Some(known) => known.status.clone_from(status),
            None => self.projects.push(Known {
                id: project_id.clone(),
                status: status.clone(),
            }),
        }
    }
}

/// What a GraphQL answer to a `kind` mutation means.
fn judge(body: &Value, kind: Kind) -> Outcome {
    if let Some(errors) = body["errors"].as_array().filter(|e| !e.is_empty()) {
        return Outcome::Refused {
            code: errors[0]["extensions"]["code"]
                .as_str()
                .unwrap_or("<none>")
                .to_owned(),
        };
    }
    let project = &body["data"][kind.field()]["project"];
    match (
        project["id"].as_str(),
        project["version"].as_i64(),
        project["status"].as_str(),
    ) {
        (Some(id), Some(version), Some(status)) => Outcome::Acked {
            project_id: id.to_owned(),
            version,
            status: status.to_owned(),
        },
        _ => Outcome::Failed {
            reason: format!("an answer without errors or a project: {body}"),
        },
    }
}
