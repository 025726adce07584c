//! Reading what the relay put into a JetStream stream, and the hub's health
//! report, for relay and outage tests.

use std::collections::{HashMap, HashSet};

use async_nats::jetstream;
use serde_json::Value;
use uuid::Uuid;

use crate::TestHub;

/// Asserts that the stream's hub events are exactly `stored` (event ids in
/// feed order), each once and per aggregate in order; other messages, such
/// as probes, are ignored.
///
/// # Panics
/// When they differ.
pub fn assert_stream_holds(messages: &[Published], stored: &[Uuid]) {
    assert_once_and_in_aggregate_order(messages);
    let published: Vec<Uuid> = hub_events(messages)
        .iter()
        .filter_map(|message| message.event_id())
        .collect();
    assert_eq!(
        published, stored,
        "the stream holds the store's events in feed order"
    );
}

/// One message of a stream, as stored.
#[derive(Clone, Debug)]
pub struct Published {
    /// The stream sequence.
    pub sequence: u64,
    /// The subject it was published on.
    pub subject: String,
    /// The `Nats-Msg-Id` header (the event id for hub events).
    pub msg_id: Option<String>,
    /// The `Hub-Feed-Position` header (only on hub events).
    pub feed_position: Option<String>,
    /// The JSON body (`Value::Null` when it is not JSON).
    pub body: Value,
}

impl Published {
    /// The event id in the body, for hub events.
    pub fn event_id(&self) -> Option<Uuid> {
        self.body["id"].as_str().and_then(|id| id.parse().ok())
    }
}

/// A JetStream context on the server at `url`.
///
/// # Panics
/// When the server cannot be reached.
pub async fn context(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url)
        .await
        .unwrap_or_else(|err| panic!("connect to NATS at {url}: {err}"));
    jetstream::new(client)
}

/// How many messages `stream` holds; `None` when it does not exist or the
/// server does not answer.
pub async fn message_count(js: &jetstream::Context, stream: &str) -> Option<u64> {
    let mut stream = js.get_stream(stream).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

/// Every message `stream` holds, in stream order.
///
/// # Panics
/// When the stream does not exist or a message cannot be read.
pub async fn read_stream(js: &jetstream::Context, stream: &str) -> Vec<Published> {
    let mut handle = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|err| panic!("stream {stream} exists: {err}"));
    let state = handle.info().await.expect("stream info").state.clone();
    let mut out = Vec::with_capacity(state.messages as usize);
    if state.messages == 0 {
        return out;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = handle
            .get_raw_message(sequence)
            .await
            .unwrap_or_else(|err| panic!("read message {sequence} of {stream}: {err}"));
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|value| value.as_str().to_owned())
        };
        out.push(Published {
            sequence,
            subject: message.subject.to_string(),
            msg_id: header("Nats-Msg-Id"),
            feed_position: header(infrastructure::nats::FEED_POSITION_HEADER),
            body: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
        });
    }
    out
}

/// The hub events among `messages` (those carrying a feed position).
pub fn hub_events(messages: &[Published]) -> Vec<&Published> {
    messages
        .iter()
        .filter(|message| message.feed_position.is_some())
        .collect()
}

/// Asserts that every hub event in `messages` appears once, that its
/// `Nats-Msg-Id` is its body id, and that each aggregate's events are in
/// sequence order.
///
/// # Panics
/// On a duplicate, a mismatched id or an out-of-order aggregate.
pub fn assert_once_and_in_aggregate_order(messages: &[Published]) {
    let mut seen = HashSet::new();
    let mut last_sequence: HashMap<String, i64> = HashMap::new();
    for message in hub_events(messages) {
        let id = message
            .event_id()
            .unwrap_or_else(|| panic!("message {} has an event id", message.sequence));
        assert_eq!(
            message.msg_id.as_deref(),
            Some(id.to_string().as_str()),
            "Nats-Msg-Id is the event id"
        );
        assert!(
            seen.insert(id),
            "event {id} is in the stream twice (again at stream sequence {})",
            message.sequence
        );
        let aggregate = message.body["aggregate_id"].as_str().unwrap_or_default();
        let sequence = message.body["sequence"].as_i64().unwrap_or_default();
        let previous = last_sequence.insert(aggregate.to_owned(), sequence);
        assert_eq!(
            previous.unwrap_or(0) + 1,
            sequence,
            "events of aggregate {aggregate} are published in sequence order"
        );
    }
}

/// `GET /health` as JSON, whatever the status code.
///
/// # Panics
/// When the hub does not answer with JSON.
pub async fn health(hub: &TestHub) -> Value {
    health_at(hub.http(), &hub.url()).await
}

/// `GET /health` as a typed report (the full one: the hub has no token, or
/// the request may read everything).
///
/// # Panics
/// When the hub does not answer with a full report.
pub async fn health_report(hub: &TestHub) -> crate::views::Health {
    crate::graphql::view(&health(hub).await)
}

/// `GET /health` of the hub at `url`, as JSON.
///
/// # Panics
/// When the hub does not answer with JSON.
pub async fn health_at(http: &reqwest::Client, url: &str) -> Value {
    http.get(format!("{url}/health"))
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("/health answers JSON")
}

/// Deletes a stream when dropped: for streams a test creates itself.
pub struct DeleteStreamOnDrop {
    /// The NATS server.
    pub url: String,
    /// The stream.
    pub stream: String,
}

impl Drop for DeleteStreamOnDrop {
    fn drop(&mut self) {
        let (url, stream) = (self.url.clone(), self.stream.clone());
        let deleted = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(crate::hub::delete_stream(&url, &stream));
        })
        .join();
        drop(deleted);
    }
}
