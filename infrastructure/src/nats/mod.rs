//! NATS JetStream: the connection, the hub's stream, the envelope and the
//! outbox relay.
//!
//! Layout:
//! - `connection`: [`connect`]: server lists, credentials, reconnecting.
//! - `envelope`: [`Envelope`], the published JSON, and its headers.
//! - `stream`: [`StreamSettings`] and [`ensure_stream`].
//! - `relay`: [`NatsRelay`], the feed consumer that publishes.
//! - `live`: [`LiveFeed`], one stream consumer per process fanned out in memory.

mod connection;
mod envelope;
mod live;
mod relay;
mod stream;

pub use connection::{
    connect, is_connected, parse_servers, NatsConnection, NatsOptions, Reconnections,
};
pub use envelope::{
    format_feed_position, parse_feed_position, Envelope, CAUSATION_HEADER, CORRELATION_HEADER,
    EVENT_TYPE_HEADER, FEED_POSITION_HEADER,
};
pub use live::LiveFeed;
pub use relay::NatsRelay;
pub use stream::{ensure_stream, NatsError, StreamSettings};
