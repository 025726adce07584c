//! The GraphQL API: schema, roots, types and errors, the door ([`door`]):
//! the limits every operation meets on every transport, the project
//! changes subscriptions stream ([`changes`]), and the fan-out that shares
//! one stream between subscribers of the same operation ([`fanout`]).

pub mod admin;
pub mod changes;
pub mod door;
pub mod error;
pub mod event_connection;
pub mod fanout;
pub mod mutation;
pub mod parked;
pub mod query;
pub mod subscription;
pub mod types;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_graphql::Schema;

use crate::state::GraphqlState;

use self::door::{Door, DoorLimits, OpenSubscriptions};
use self::error::{ApiError, ErrorCode};
use self::mutation::MutationRoot;
use self::query::QueryRoot;
use self::subscription::SubscriptionRoot;

/// The hub's schema.
pub type HubSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// How many GraphQL subscription streams hold a receiver of the live feed,
/// so that `/metrics` counts subscribers rather than receivers (the
/// subscribers of one operation share one stream: [`fanout`]).
#[derive(Clone, Debug, Default)]
pub struct LiveReaders(Arc<AtomicUsize>);

impl LiveReaders {
    /// How many are open.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one until the returned guard is dropped.
    pub fn hold(&self) -> LiveReader {
        self.0.fetch_add(1, Ordering::Relaxed);
        LiveReader(self.0.clone())
    }
}

/// One stream counted in [`LiveReaders`].
#[derive(Debug)]
pub struct LiveReader(Arc<AtomicUsize>);

impl Drop for LiveReader {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Facts about one request, put into the GraphQL context by the HTTP layer.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// From `X-Correlation-ID`, or new.
    pub correlation_id: String,
    /// Whether the request may change things: true when no token is
    /// configured or the right bearer token was sent.
    pub authorized: bool,
    /// Whether the request may read (subscribe): when it may change things,
    /// or reads are public (`HUB_PUBLIC_READS`).
    pub may_read: bool,
    /// Who is asking, for event origins.
    pub user: String,
}

impl RequestContext {
    /// Fails unless the request may change things.
    ///
    /// # Errors
    /// UNAUTHENTICATED without the configured token.
    pub fn require_auth(&self) -> Result<(), ApiError> {
        if self.authorized {
            Ok(())
        } else {
            Err(Self::unauthenticated())
        }
    }

    /// Fails unless the request may read.
    ///
    /// # Errors
    /// UNAUTHENTICATED without the configured token, unless reads are public.
    pub fn require_read(&self) -> Result<(), ApiError> {
        if self.may_read {
            Ok(())
        } else {
            Err(Self::unauthenticated())
        }
    }

    fn unauthenticated() -> ApiError {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "this operation needs the hub's API token: send the header 'Authorization: Bearer <token>'",
        )
    }
}

/// Limits applied to every operation.
#[derive(Clone, Copy, Debug)]
pub struct SchemaLimits {
    /// What the door checks ([`door`]).
    pub door: DoorLimits,
    /// Whether introspection queries are answered.
    pub introspection: bool,
}

/// Builds the schema around `state`, counting its subscriptions in `open`.
pub fn build_schema(
    state: GraphqlState,
    limits: SchemaLimits,
    open: Arc<OpenSubscriptions>,
) -> HubSchema {
    let builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(state)
        .extension(Door::new(limits.door, open));
    if limits.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema with the door and no state: parses, validates and applies
/// every limit, and fails each resolver that needs the hub (for the fuzz
/// target and the door's tests).
pub fn stateless_schema(limits: DoorLimits) -> HubSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .extension(Door::new(limits, Arc::default()))
        .finish()
}

/// The schema's SDL, without any state (for the checked-in contract).
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .finish()
        .sdl()
}
