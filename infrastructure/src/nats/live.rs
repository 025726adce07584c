//! Live events for this process: one ordered JetStream consumer on the hub's
//! stream, fanned out in memory to every subscriber (GraphQL subscriptions,
//! the event socket). A change made through any hub process reaches the
//! subscribers of every process, because all of them read the same stream.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::connection::Reconnections;
use super::envelope::Envelope;
use super::stream::{ensure_stream, NatsError, StreamSettings};

/// The in-memory fan-out of the hub's stream.
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<Envelope>>,
    task: JoinHandle<()>,
}

impl LiveFeed {
    /// Starts reading new messages of the stream in `settings`. `capacity`
    /// is how many events a subscriber may fall behind before it is told to
    /// resume. Each time `connections` changes (the client connected again
    /// after losing its server), the stream's consumer is made anew at once,
    /// from the last message passed on, rather than when the old one's
    /// heartbeats are missed.
    pub fn start(
        js: jetstream::Context,
        settings: StreamSettings,
        capacity: usize,
        connections: Reconnections,
    ) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        let task = tokio::spawn(run(js, settings, sender.clone(), connections));
        Self { sender, task }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }

    /// How many receivers are open.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    js: jetstream::Context,
    settings: StreamSettings,
    sender: broadcast::Sender<Arc<Envelope>>,
    mut connections: Reconnections,
) {
    // The stream sequence of the last message passed on; after an outage the
    // consumer resumes right after it, so nothing published meanwhile is missed.
    let mut last_sequence: Option<u64> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        match follow(
            &js,
            &settings,
            &sender,
            &mut last_sequence,
            &mut connections,
        )
        .await
        {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "live event feed from NATS interrupted");
                // A reconnection ends the wait early.
                connections
                    .unless_reconnected(tokio::time::sleep(backoff))
                    .await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn follow(
    js: &jetstream::Context,
    settings: &StreamSettings,
    sender: &broadcast::Sender<Arc<Envelope>>,
    last_sequence: &mut Option<u64>,
    connections: &mut Reconnections,
) -> Result<(), NatsError> {
    connections.mark_seen();
    // A request sent while the connection was being lost gets no answer
    // (it would wait out the request timeout): a reconnection starts over.
    let mut messages = {
        let setup = async {
            let mut stream = ensure_stream(js, settings).await?;
            if last_sequence.is_none() {
                // Start after what the stream holds now, and remember it: if the
                // consumer is interrupted before it passes anything on, it resumes
                // from here rather than from "new" (which would skip what arrived
                // meanwhile).
                *last_sequence = Some(stream.info().await?.state.last_sequence);
            }
            let start_sequence = last_sequence.map_or(1, |seq| seq + 1);
            let deliver_policy = consumer::DeliverPolicy::ByStartSequence { start_sequence };
            let ordered = stream
                .create_consumer(consumer::pull::OrderedConfig {
                    filter_subject: settings.subjects.first().cloned().unwrap_or_default(),
                    deliver_policy,
                    ..Default::default()
                })
                .await?;
            Ok::<_, NatsError>(ordered.messages().await?)
        };
        match connections.unless_reconnected(setup).await {
            Some(messages) => messages?,
            None => return Ok(()),
        }
    };
    tracing::info!(stream = %settings.name, "following the stream for live events");
    loop {
        let Some(message) = connections.unless_reconnected(messages.next()).await else {
            tracing::info!("NATS is back: following the stream anew from the last event passed on");
            return Ok(());
        };
        let Some(message) = message else { break };
        let message = message?;
        if let Ok(info) = message.info() {
            *last_sequence = Some(info.stream_sequence);
        }
        match serde_json::from_slice::<Envelope>(&message.payload) {
            // No receivers is fine: nobody is subscribed right now.
            Ok(envelope) => drop(sender.send(Arc::new(envelope))),
            Err(err) => {
                tracing::debug!(subject = %message.subject, error = %err, "skipping a message that is not a hub event")
            }
        }
    }
    Ok(())
}
