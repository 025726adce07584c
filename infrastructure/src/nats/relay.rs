//! The outbox relay: a feed consumer that publishes every committed event to
//! JetStream, exactly once.
//!
//! How "exactly once" holds:
//! - The feed hands the relay each committed event in feed order, and only
//!   committed events (the store is the outbox).
//! - A batch is published pipelined, every acknowledgement is awaited, and
//!   only then does the runner move the checkpoint. A batch that fails is
//!   published again from the checkpoint.
//! - A repeat within the stream's duplicate window is dropped by JetStream
//!   (`Nats-Msg-Id` is the event id).
//! - The messages of a batch are chained: each but the first carries
//!   `Nats-Expected-Last-Msg-Id` naming the one before it, so JetStream
//!   stores one only right after its predecessor. What a batch leaves in
//!   the stream is therefore always a prefix of it, in feed order, even
//!   when the connection drops mid-batch (the server it was sent to dies
//!   with some messages, and the client sends the rest to another server
//!   after reconnecting: unchained, those would be stored past the hole,
//!   and the reconciliation below would take the hole for published).
//!   When another publisher's message (or a duplicate) comes between two
//!   links, the rest of the batch is refused and published again as a new
//!   chain from the refused message: every retry stores at least one.
//! - A repeat after the window (the relay died between publishing and
//!   checkpointing and stayed down longer) is prevented by reconciling:
//!   each time the relay becomes the active one, and after any failure, it
//!   reads the feed position of the last hub event in the stream and skips
//!   what is not past it (a prefix, so nothing before it is missing). After
//!   each acknowledged batch the relay also remembers the batch's last
//!   position, so a checkpoint that fails to commit does not make this
//!   process publish the batch again.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use sqlx::PgConnection;
use tokio::sync::Mutex;

use super::connection::Reconnections;
use super::envelope::{
    format_feed_position, parse_feed_position, Envelope, CAUSATION_HEADER, CORRELATION_HEADER,
    EVENT_TYPE_HEADER, FEED_POSITION_HEADER,
};
use super::stream::{ensure_stream, NatsError, StreamSettings};
use crate::feed::{ConsumerError, FeedConsumer, FeedPosition, StoredEvent};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};

/// How far back from the stream's end the relay looks for its own last
/// message (other publishers may have added messages after it).
const RECONCILE_SCAN: u64 = 1000;

/// The header that chains a message to the one before it.
const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// How a pipelined, chained publish of a batch ended.
enum Published {
    /// Every message is in the stream.
    All,
    /// The messages before `index` are in the stream; the one at `index`
    /// was refused because something else came last (so were those after
    /// it, chained to it).
    ChainBroken { index: usize },
}

/// Publishes the event feed to JetStream.
pub struct NatsRelay {
    js: jetstream::Context,
    settings: StreamSettings,
    hub_id: String,
    ack_timeout: Duration,
    /// Changes each time the client connects again (see
    /// [`NatsRelay::with_reconnections`]).
    reconnections: Option<Reconnections>,
    /// `None`: reconcile before the next batch. `Some(w)`: skip events at or
    /// before `w` (already in the stream).
    watermark: Mutex<Option<Option<FeedPosition>>>,
}

impl NatsRelay {
    /// The consumer name (its checkpoint key).
    pub const NAME: &'static str = "nats_relay";

    /// A relay for hub `hub_id` into the stream described by `settings`.
    pub fn new(
        js: jetstream::Context,
        settings: StreamSettings,
        hub_id: impl Into<String>,
    ) -> Self {
        Self {
            js,
            settings,
            hub_id: hub_id.into(),
            ack_timeout: Duration::from_secs(10),
            reconnections: None,
            watermark: Mutex::new(None),
        }
    }

    /// Tries a batch again at once when the client connects again while
    /// the relay waits for JetStream (its reconciliation or the batch's
    /// acknowledgements; `reconnections` changes on each connection): a
    /// request or publish sent while the connection was being lost gets
    /// no answer, and would wait out its timeout. Publishing again is
    /// safe: the relay reconciles first, and JetStream drops duplicates.
    #[must_use]
    pub fn with_reconnections(mut self, reconnections: Reconnections) -> Self {
        self.reconnections = Some(reconnections);
        self
    }

    /// Ensures the stream exists and finds the last event it holds.
    async fn reconcile(&self) -> Result<Option<FeedPosition>, NatsError> {
        let mut stream = ensure_stream(&self.js, &self.settings).await?;
        let info = stream.info().await?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if info.state.messages == 0 {
            return Ok(None);
        }
        let floor = first.max(last.saturating_sub(RECONCILE_SCAN));
        let mut seq = last;
        while seq >= floor && seq > 0 {
            // A message deleted from the stream cannot be read: skip it.
            if let Ok(message) = stream.get_raw_message(seq).await {
                let position = message
                    .headers
                    .get(FEED_POSITION_HEADER)
                    .and_then(|v| parse_feed_position(v.as_str()));
                if position.is_some() {
                    return Ok(position);
                }
            }
            seq -= 1;
        }
        Ok(None)
    }

    fn message(
        &self,
        event: &StoredEvent,
    ) -> Result<(Envelope, HeaderMap, Vec<u8>), serde_json::Error> {
        let envelope = Envelope::from_stored(event, &self.hub_id);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.event_id.to_string().as_str());
        headers.insert(
            FEED_POSITION_HEADER,
            format_feed_position(event.feed_position()).as_str(),
        );
        headers.insert(EVENT_TYPE_HEADER, event.event_type.as_str());
        if let Some(correlation) = &envelope.correlation_id {
            headers.insert(CORRELATION_HEADER, correlation.as_str());
        }
        if let Some(causation) = &envelope.causation_id {
            headers.insert(CAUSATION_HEADER, causation.as_str());
        }
        let body = serde_json::to_vec(&envelope)?;
        Ok((envelope, headers, body))
    }

    /// Publishes `events` pipelined, each chained to the one before it,
    /// and awaits every acknowledgement.
    async fn publish_chained(&self, events: &[&StoredEvent]) -> Result<Published, NatsError> {
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(events.len());
        let mut previous: Option<String> = None;
        for event in events {
            let (envelope, mut headers, body) = self.message(event)?;
            if let Some(previous) = &previous {
                headers.insert(EXPECTED_LAST_MSG_ID, previous.as_str());
            }
            previous = Some(event.event_id.to_string());
            acks.push(
                self.js
                    .publish_with_headers(envelope.subject, headers, body.into())
                    .await?,
            );
        }
        for (index, ack) in acks.into_iter().enumerate() {
            let acked = tokio::time::timeout(self.ack_timeout, ack)
                .await
                .map_err(|_| "timed out waiting for JetStream to acknowledge a publish")?;
            match acked {
                Ok(_) => {}
                Err(err) if is_chain_broken(&err) && index > 0 => {
                    return Ok(Published::ChainBroken { index })
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(Published::All)
    }

    /// Publishes the events of `events` past `watermark`, starting a new
    /// chain wherever another message came between two links.
    async fn publish(
        &self,
        events: &[StoredEvent],
        watermark: Option<FeedPosition>,
    ) -> Result<(), NatsError> {
        let mut pending: Vec<&StoredEvent> = events
            .iter()
            .filter(|event| watermark.is_none_or(|w| event.feed_position() > w))
            .collect();
        while !pending.is_empty() {
            match self.publish_chained(&pending).await? {
                Published::All => break,
                Published::ChainBroken { index } => {
                    tracing::debug!(
                        published = index,
                        left = pending.len() - index,
                        "another message came between two of the relay's; publishing the rest as a new chain"
                    );
                    pending.drain(..index);
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl FeedConsumer for NatsRelay {
    fn name(&self) -> &str {
        Self::NAME
    }

    /// The relay writes nothing to the database but its checkpoint.
    fn writes(&self, _events: &[StoredEvent]) -> bool {
        false
    }

    /// Every failure to publish is taken for an outage of NATS (retried
    /// until it works, never reported as halted on an event) except those
    /// that would fail the same way every time: an event that does not
    /// serialize, or one larger than the server's `max_payload`. The relay
    /// never skips an event either way.
    fn is_outage(&self, err: &ConsumerError) -> bool {
        !is_permanent_publish_failure(err.as_ref())
    }

    async fn on_activate(&self) {
        // Another process may have published (without checkpointing) while
        // this one was not the active relay: look at the stream again.
        *self.watermark.lock().await = None;
    }

    async fn handle(
        &self,
        _tx: &mut PgConnection,
        events: &[StoredEvent],
    ) -> Result<(), ConsumerError> {
        let mut watermark = self.watermark.lock().await;
        let mut reconnections = self.reconnections.clone();
        if let Some(reconnections) = reconnections.as_mut() {
            reconnections.mark_seen();
        }
        let current = match *watermark {
            Some(current) => current,
            None => {
                let found = unless_reconnected(&mut reconnections, self.reconcile()).await?;
                if let Some(found) = found {
                    tracing::info!(position = %format_feed_position(found), "relay reconciled with the stream's last event");
                }
                *watermark = Some(found);
                found
            }
        };
        match unless_reconnected(&mut reconnections, self.publish(events, current)).await {
            Ok(()) => {
                // Remember what is in the stream now: if the checkpoint then
                // fails to commit, the retry skips it instead of publishing
                // it again (which, after the duplicate window, would double it).
                let published = events.last().map(StoredEvent::feed_position);
                *watermark = Some(current.max(published));
                Ok(())
            }
            Err(err) => {
                // Some of the batch may be in the stream: find out before retrying.
                *watermark = None;
                Err(err)
            }
        }
    }
}

/// `work`, or an error as soon as the client connects again while it runs
/// (when `reconnections` is watched): a request or publish sent while the
/// connection was being lost gets no answer and would wait out its
/// timeout, and the caller may make it again at once.
async fn unless_reconnected<T>(
    reconnections: &mut Option<Reconnections>,
    work: impl Future<Output = Result<T, NatsError>>,
) -> Result<T, NatsError> {
    match reconnections.as_mut() {
        None => work.await,
        Some(reconnections) => reconnections
            .unless_reconnected(work)
            .await
            .unwrap_or_else(|| {
                Err("the NATS connection was made anew while the relay waited for JetStream".into())
            }),
    }
}

/// Whether JetStream refused a chained message because the stream's last
/// message is not the one it names.
fn is_chain_broken(err: &PublishError) -> bool {
    err.kind() == PublishErrorKind::WrongLastMessageId
}

/// Whether publishing failed because of the event itself (see
/// [`NatsRelay`]'s `is_outage`).
fn is_permanent_publish_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.downcast_ref::<serde_json::Error>().is_some() {
            return true;
        }
        if let Some(publish) = err.downcast_ref::<async_nats::jetstream::context::PublishError>() {
            return publish.kind()
                == async_nats::jetstream::context::PublishErrorKind::MaxPayloadExceeded;
        }
        if let Some(publish) = err.downcast_ref::<async_nats::client::PublishError>() {
            return publish.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    use super::*;

    fn boxed(err: impl std::error::Error + Send + Sync + 'static) -> ConsumerError {
        Box::new(err)
    }

    #[test]
    fn only_failures_of_the_event_itself_are_not_outages() {
        let unserializable = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(is_permanent_publish_failure(boxed(unserializable).as_ref()));
        let too_large = PublishError::new(PublishErrorKind::MaxPayloadExceeded);
        assert!(is_permanent_publish_failure(boxed(too_large).as_ref()));

        for outage in [
            boxed(PublishError::new(PublishErrorKind::TimedOut)),
            boxed(PublishError::new(PublishErrorKind::BrokenPipe)),
            boxed(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            ConsumerError::from("timed out waiting for JetStream to acknowledge a publish"),
        ] {
            assert!(!is_permanent_publish_failure(outage.as_ref()), "{outage}");
        }
    }
}
