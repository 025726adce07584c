//! NATS JetStream: the connection, the hub's stream, the envelope and the
//! outbox relay.
//!
//! Layout:
//! - `envelope`: [`Envelope`], the published JSON, and its headers.
//! - `stream`: [`StreamSettings`] and [`ensure_stream`].
//! - `relay`: [`NatsRelay`], the feed consumer that publishes.
//! - `live`: [`LiveFeed`], one stream consumer per process fanned out in memory.

mod envelope;
mod live;
mod relay;
mod stream;

use std::time::Duration;

pub use envelope::{
    format_feed_position, parse_feed_position, Envelope, CAUSATION_HEADER, CORRELATION_HEADER,
    EVENT_TYPE_HEADER, FEED_POSITION_HEADER,
};
pub use live::LiveFeed;
pub use relay::NatsRelay;
pub use stream::{ensure_stream, NatsError, StreamSettings};

/// Connects to NATS in the background: returns at once, so the hub serves
/// commands while NATS is down, and reconnects forever.
///
/// # Errors
/// When the URL is malformed.
pub async fn connect(url: &str) -> Result<async_nats::Client, NatsError> {
    let client = async_nats::ConnectOptions::new()
        .name("hub")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(url)
        .await?;
    Ok(client)
}

/// Whether the client is connected right now.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}
