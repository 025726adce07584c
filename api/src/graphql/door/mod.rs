//! The GraphQL door: the limits every operation meets, on every transport
//! (HTTP and both WebSocket protocols), before the engine's recursive parts
//! touch it.
//!
//! 1. **Nesting** of the document text (`{`, `[`, `(`, outside strings and
//!    comments) and of the variables, before the document is parsed: the
//!    parser bounds nested selection sets but not nested values, and a deep
//!    enough list literal overflows the stack. INVALID_INPUT.
//! 2. **Fields after fragment expansion**, and the depth of selection sets
//!    and fragment spreads after expansion, right after parsing and before
//!    the engine's own checks (its recursion-depth check and validation's
//!    visitors follow every spread: 22 fragments each spreading the
//!    previous twice are four million fields in 900 bytes). The door
//!    parses the document itself and hands it over parsed.
//!    QUERY_TOO_LARGE.
//! 3. **Depth** and **complexity** as validation computes them; a connection
//!    field's complexity is its page size (`first`, or the default) times its
//!    selection's. QUERY_TOO_DEEP and QUERY_TOO_COMPLEX.
//! 4. A **deadline** for queries (QUERY_TIMEOUT). Mutations are not cut
//!    short: one that committed must answer with its result, and each step
//!    of a mutation has its own bound (database acquire, read-your-writes).
//! 5. **Subscriptions** per socket and per process (TOO_MANY_SUBSCRIPTIONS);
//!    the refused `subscribe` gets an error, and the socket stays usable.
//!    Every operation a socket carries counts while it runs: a query or
//!    mutation sent over the socket holds a place until it has answered.
//!    The GraphQL socket takes the place itself, once per operation, before
//!    the operation runs (one subscriber's operation may run more than once
//!    when subscribers share a stream: `graphql::fanout`), and marks its
//!    operations [`SlotHeld`]; other callers are counted here.
//!
//! The batch length limit (BATCH_TOO_LARGE) is checked by the HTTP handler,
//! which sees the batch before it is split into operations.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Name, Request, Response, ServerError, ServerResult, ValidationResult,
    Value, Variables,
};
use futures::stream::BoxStream;
use futures::StreamExt as _;

mod size;
mod subscriptions;

pub use size::{check_expanded_size, check_text_nesting, check_variables_nesting, parse_and_check};
pub use subscriptions::{OpenSubscriptions, SlotHeld, SocketSubscriptions, SubscriptionSlot};

/// Deepest nesting of brackets in a document, or of lists and objects in
/// its variables. Far above what the depth limit lets a query use, far
/// below what overflows the parser's stack.
pub const MAX_NESTING: usize = 64;

/// The limits of [`Door`].
#[derive(Clone, Copy, Debug)]
pub struct DoorLimits {
    /// Most fields an operation may select once its fragments are expanded.
    pub max_fields: usize,
    /// Deepest selection (as validation counts it).
    pub max_depth: usize,
    /// Highest complexity (as validation counts it, page sizes included).
    pub max_complexity: usize,
    /// Longest a query may run.
    pub query_timeout: Duration,
    /// Most subscriptions open at once on one WebSocket.
    pub max_subscriptions_per_socket: usize,
    /// Most subscriptions open at once in this process.
    pub max_subscriptions: usize,
}

/// Machine codes of the door's refusals (`extensions.code`).
pub mod codes {
    /// Too deeply nested, or otherwise not a document the door accepts.
    pub const INVALID_INPUT: &str = "INVALID_INPUT";
    /// Too many fields after fragment expansion.
    pub const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";
    /// Nested deeper than `HUB_GRAPHQL_MAX_DEPTH`.
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    /// More complex than `HUB_GRAPHQL_MAX_COMPLEXITY`.
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// Ran longer than `HUB_GRAPHQL_TIMEOUT_MS`.
    pub const QUERY_TIMEOUT: &str = "QUERY_TIMEOUT";
    /// More operations in one request than `HUB_GRAPHQL_MAX_BATCH`.
    pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
    /// The socket or the hub has as many subscriptions open as it allows.
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
}

/// A refusal with a code, as the engine reports errors.
pub fn refusal(code: &str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

/// Set by the door when an operation begins to execute, for a handler that
/// put it into the request's data: until then, every error is the request's
/// (it did not parse, validate or pass a limit).
#[derive(Debug, Default, Clone)]
pub struct ExecutionStarted(pub Arc<std::sync::atomic::AtomicBool>);

/// The extension applying the limits; add it to the schema.
pub struct Door {
    limits: DoorLimits,
    open: Arc<OpenSubscriptions>,
}

impl Door {
    /// A door with `limits`, counting subscriptions in `open`.
    pub fn new(limits: DoorLimits, open: Arc<OpenSubscriptions>) -> Self {
        Self { limits, open }
    }
}

impl ExtensionFactory for Door {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DoorCheck {
            limits: self.limits,
            open: self.open.clone(),
            operations: Mutex::default(),
        })
    }
}

/// One request's pass through the door.
struct DoorCheck {
    limits: DoorLimits,
    open: Arc<OpenSubscriptions>,
    /// The document's operations and their kinds, for the deadline.
    operations: Mutex<Vec<(Option<Name>, OperationType)>>,
}

#[async_trait::async_trait]
impl Extension for DoorCheck {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Everything here runs before the engine's own checks, some of which
        // follow every fragment spread (its recursion-depth check visits
        // 2^25 selections for 25 fragments each spreading the previous
        // twice): the document is parsed here, checked, and handed over
        // parsed.
        check_text_nesting(&request.query)?;
        check_variables_nesting(&request.variables)?;
        let document = request.parsed_query()?;
        check_expanded_size(document, self.limits.max_fields)?;
        *self.operations.lock().expect("door lock") = document
            .operations
            .iter()
            .map(|(name, operation)| (name.cloned(), operation.node.ty))
            .collect();
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if result.depth > self.limits.max_depth {
            return Err(vec![refusal(
                codes::QUERY_TOO_DEEP,
                format!(
                    "the query is nested too deep: {} levels, at most {} are allowed",
                    result.depth, self.limits.max_depth
                ),
            )]);
        }
        if result.complexity > self.limits.max_complexity {
            return Err(vec![refusal(
                codes::QUERY_TOO_COMPLEX,
                format!(
                    "the query is too complex: {} (each field counts once per item of the pages \
                     around it), at most {} is allowed; ask for smaller pages or fewer fields",
                    result.complexity, self.limits.max_complexity
                ),
            )]);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(started) = ctx.data_opt::<ExecutionStarted>() {
            started.0.store(true, Ordering::Release);
        }
        if self.kind_of(operation_name) != Some(OperationType::Query) {
            return next.run(ctx, operation_name).await;
        }
        let timeout = self.limits.query_timeout;
        match tokio::time::timeout(timeout, next.run(ctx, operation_name)).await {
            Ok(response) => response,
            Err(_) => Response::from_errors(vec![refusal(
                codes::QUERY_TIMEOUT,
                format!(
                    "the query ran longer than {} ms and was stopped; ask for less",
                    timeout.as_millis()
                ),
            )]),
        }
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        if ctx.data_opt::<SlotHeld>().is_some() {
            return next.run(ctx, stream);
        }
        let socket = ctx.data_opt::<SocketSubscriptions>();
        match SubscriptionSlot::take(&self.open, socket, &self.limits) {
            Ok(slot) => next
                .run(ctx, stream)
                .map(move |response| {
                    let _held = &slot;
                    response
                })
                .boxed(),
            Err(error) => {
                futures::stream::once(async move { Response::from_errors(vec![error]) }).boxed()
            }
        }
    }
}

impl DoorCheck {
    /// The kind of the operation that runs: the one named, or the only one.
    fn kind_of(&self, name: Option<&str>) -> Option<OperationType> {
        let operations = self.operations.lock().expect("door lock");
        match name {
            Some(name) => operations
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .map(|(_, kind)| *kind),
            None if operations.len() == 1 => Some(operations[0].1),
            None => None,
        }
    }
}
