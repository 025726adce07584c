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

/// The subscriptions open in this process, shared by every socket.
#[derive(Debug, Default)]
pub struct OpenSubscriptions(AtomicUsize);

impl OpenSubscriptions {
    /// How many are open now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The subscriptions open on one WebSocket; put into the socket's
/// connection data, where the door finds it.
#[derive(Debug, Default, Clone)]
pub struct SocketSubscriptions(Arc<AtomicUsize>);

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

/// One open subscription, counted in the process and on its socket until
/// dropped.
struct SubscriptionSlot {
    open: Arc<OpenSubscriptions>,
    socket: Option<SocketSubscriptions>,
}

impl SubscriptionSlot {
    fn take(
        open: &Arc<OpenSubscriptions>,
        socket: Option<&SocketSubscriptions>,
        limits: &DoorLimits,
    ) -> Result<Self, ServerError> {
        if let Some(socket) = socket {
            if !reserve(&socket.0, limits.max_subscriptions_per_socket) {
                return Err(refusal(
                    codes::TOO_MANY_SUBSCRIPTIONS,
                    format!(
                        "this socket already has {} subscriptions open, the most allowed; \
                         complete one first, or open another socket",
                        limits.max_subscriptions_per_socket
                    ),
                ));
            }
        }
        if !reserve(&open.0, limits.max_subscriptions) {
            if let Some(socket) = socket {
                socket.0.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(refusal(
                codes::TOO_MANY_SUBSCRIPTIONS,
                format!(
                    "the hub already serves {} subscriptions, the most it allows; try again later",
                    limits.max_subscriptions
                ),
            ));
        }
        Ok(Self {
            open: open.clone(),
            socket: socket.cloned(),
        })
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        self.open.0.fetch_sub(1, Ordering::Relaxed);
        if let Some(socket) = &self.socket {
            socket.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Adds one to `counter` unless it is at `max`.
fn reserve(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

fn too_nested(what: &str) -> ServerError {
    refusal(
        codes::INVALID_INPUT,
        format!("the {what} is nested more than {MAX_NESTING} levels deep"),
    )
}

/// Refuses a document whose brackets (`{`, `[`, `(`) nest deeper than
/// [`MAX_NESTING`], outside strings and comments. Reads the text once,
/// without recursion.
///
/// # Errors
/// INVALID_INPUT past the bound.
pub fn check_text_nesting(query: &str) -> ServerResult<()> {
    let bytes = query.as_bytes();
    let (mut i, mut depth) = (0, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_nested("query"));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses variables whose lists and objects nest deeper than
/// [`MAX_NESTING`]. Walks them without recursion.
///
/// # Errors
/// INVALID_INPUT past the bound.
pub fn check_variables_nesting(variables: &Variables) -> ServerResult<()> {
    let mut stack: Vec<(&Value, usize)> = variables.values().map(|value| (value, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        if depth >= MAX_NESTING {
            return Err(too_nested("variables value"));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// What one selection set holds, fragments not yet expanded.
#[derive(Default)]
struct Shape<'a> {
    /// Fields selected directly (in nested sets and inline fragments too).
    fields: usize,
    /// The deepest nesting of sets and inline fragments, fragments aside.
    depth: usize,
    /// Fragments spread, each with the nesting at which it is spread.
    spreads: Vec<(&'a Name, usize)>,
}

/// Walks `set` without recursion.
fn shape(set: &SelectionSet) -> Shape<'_> {
    let mut shape = Shape::default();
    let mut stack = vec![(set, 1usize)];
    while let Some((set, depth)) = stack.pop() {
        shape.depth = shape.depth.max(depth);
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    shape.fields += 1;
                    if !field.node.selection_set.node.items.is_empty() {
                        stack.push((&field.node.selection_set.node, depth + 1));
                    }
                }
                Selection::InlineFragment(inline) => {
                    stack.push((&inline.node.selection_set.node, depth + 1));
                }
                Selection::FragmentSpread(spread) => {
                    shape.spreads.push((&spread.node.fragment_name.node, depth));
                }
            }
        }
    }
    shape
}

/// The size of a fragment or operation with its fragments expanded.
#[derive(Clone, Copy, Default)]
struct Expanded {
    fields: usize,
    depth: usize,
}

/// Refuses a document whose operations select more than `max_fields`
/// fields in all once their fragments are expanded, that nests selection
/// sets and fragment spreads deeper than [`MAX_NESTING`], or that defines a
/// fragment no operation uses (the engine's validation walks every
/// fragment definition, used or not, following its spreads by recursion:
/// five thousand unused fragments in a chain overflow its stack). Each
/// fragment is sized once (spreads of the same fragment reuse its size),
/// without recursion; a spread of an unknown fragment, or a cycle, counts
/// as nothing here (the engine refuses both).
///
/// # Errors
/// QUERY_TOO_LARGE or INVALID_INPUT past the bounds.
pub fn check_expanded_size(document: &ExecutableDocument, max_fields: usize) -> ServerResult<()> {
    let shapes: HashMap<&Name, Shape<'_>> = document
        .fragments
        .iter()
        .map(|(name, fragment)| (name, shape(&fragment.node.selection_set.node)))
        .collect();
    let sizes = expand_fragments(&shapes);
    let mut used: HashSet<&Name> = HashSet::new();
    let mut to_visit: Vec<&Name> = Vec::new();
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        let own = shape(&operation.node.selection_set.node);
        to_visit.extend(own.spreads.iter().map(|(name, _)| *name));
        let size = expand(&own, &sizes);
        if size.depth > MAX_NESTING {
            return Err(too_nested("query (with its fragments expanded)"));
        }
        total = total.saturating_add(size.fields);
    }
    if total > max_fields {
        return Err(refusal(
            codes::QUERY_TOO_LARGE,
            format!(
                "the document selects {} fields once its fragments are expanded, \
                 at most {max_fields} are allowed",
                if total == usize::MAX {
                    "more than 2^64".to_owned()
                } else {
                    total.to_string()
                }
            ),
        ));
    }
    while let Some(name) = to_visit.pop() {
        if used.insert(name) {
            if let Some(shape) = shapes.get(name) {
                to_visit.extend(shape.spreads.iter().map(|(spread, _)| *spread));
            }
        }
    }
    if let Some(unused) = shapes.keys().find(|name| !used.contains(*name)) {
        return Err(refusal(
            codes::INVALID_INPUT,
            format!("fragment \"{unused}\" is never used; remove it"),
        ));
    }
    Ok(())
}

/// A shape's size with the sizes of the fragments it spreads.
fn expand(shape: &Shape<'_>, sizes: &HashMap<&Name, Expanded>) -> Expanded {
    let mut size = Expanded {
        fields: shape.fields,
        depth: shape.depth,
    };
    for (name, at) in &shape.spreads {
        let spread = sizes.get(name).copied().unwrap_or_default();
        size.fields = size.fields.saturating_add(spread.fields);
        // The fragment's top level sits at the spread's level; the hop to it
        // is a level of its own for the visitors that follow spreads.
        size.depth = size.depth.max(at.saturating_add(spread.depth));
    }
    size
}

/// Every fragment's expanded size, in dependency order (an explicit
/// depth-first walk; fragments on a cycle are left at their own size).
fn expand_fragments<'a>(shapes: &HashMap<&'a Name, Shape<'a>>) -> HashMap<&'a Name, Expanded> {
    let mut sizes: HashMap<&Name, Expanded> = HashMap::with_capacity(shapes.len());
    let mut on_path: HashSet<&Name> = HashSet::new();
    for &root in shapes.keys() {
        if sizes.contains_key(root) {
            continue;
        }
        // (fragment, whether its spreads have been pushed)
        let mut stack = vec![(root, false)];
        while let Some((name, expanded)) = stack.pop() {
            let Some(shape) = shapes.get(name) else {
                continue;
            };
            if expanded {
                on_path.remove(name);
                let size = expand(shape, &sizes);
                sizes.insert(name, size);
                continue;
            }
            if sizes.contains_key(name) || !on_path.insert(name) {
                continue;
            }
            stack.push((name, true));
            for (spread, _) in &shape.spreads {
                if !sizes.contains_key(spread) && !on_path.contains(spread) {
                    stack.push((spread, false));
                }
            }
        }
    }
    sizes
}

/// Parses `query` with the checks that surround the parser: the text's
/// nesting before, the expanded size after (the fuzz target's entry).
///
/// # Errors
/// The first check that fails, or the parser's error, as INVALID_INPUT.
pub fn parse_and_check(query: &str, max_fields: usize) -> ServerResult<ExecutableDocument> {
    check_text_nesting(query)?;
    let document = async_graphql::parser::parse_query(query)
        .map_err(|err| refusal(codes::INVALID_INPUT, err.to_string()))?;
    check_expanded_size(&document, max_fields)?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_list(depth: usize) -> String {
        format!(
            "{{ __typename(x: {}1{}) }}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    }

    fn code(error: &ServerError) -> String {
        error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn nesting_past_the_bound_is_refused_before_parsing() {
        assert!(check_text_nesting(&nested_list(MAX_NESTING - 2)).is_ok());
        let error = check_text_nesting(&nested_list(100_000)).unwrap_err();
        assert!(
            error.message.contains("nested more than"),
            "{}",
            error.message
        );
        assert_eq!(code(&error), "\"INVALID_INPUT\"");
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(1000);
        assert!(check_text_nesting(&format!("{{ a(x: \"{deep}\") }}")).is_ok());
        assert!(
            check_text_nesting(&format!("{{ a(x: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}")).is_ok()
        );
        assert!(check_text_nesting(&format!("# {deep}\n{{ a }}")).is_ok());
        assert!(check_text_nesting(&format!("{{ a(x: \"\\\"{deep}\") }}")).is_ok());
        // An unterminated string ends at the line's end.
        assert!(check_text_nesting(&format!("{{ a(x: \"oops\n{deep}) }}")).is_err());
    }

    #[test]
    fn deep_variables_are_refused() {
        let mut value = serde_json::json!(1);
        for _ in 0..MAX_NESTING {
            value = serde_json::json!([value]);
        }
        let variables = Variables::from_json(serde_json::json!({ "v": value }));
        assert!(check_variables_nesting(&variables).is_err());
        let shallow = Variables::from_json(serde_json::json!({ "v": [[{"a": [1]}]] }));
        assert!(check_variables_nesting(&shallow).is_ok());
    }

    /// `levels` fragments, each spreading the previous one twice.
    fn fragment_bomb(levels: usize) -> String {
        let mut query = String::from("query { ...F0 } fragment F1 on Query { __typename }\n");
        query = query.replace("F0", &format!("F{levels}"));
        for level in 2..=levels {
            let previous = level - 1;
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{previous} ...F{previous} }}\n"
            ));
        }
        query
    }

    #[test]
    fn fragments_are_counted_expanded_without_expanding_them() {
        assert!(
            parse_and_check(&fragment_bomb(5), 1000).is_ok(),
            "16 fields"
        );
        let error = parse_and_check(&fragment_bomb(40), 1000).unwrap_err();
        assert_eq!(code(&error), "\"QUERY_TOO_LARGE\"", "{}", error.message);
    }

    #[test]
    fn long_fragment_chains_are_refused_as_too_deep() {
        let mut query = String::from("query { ...F5000 } fragment F0 on Query { __typename }\n");
        for level in 1..=5000 {
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{} }}\n",
                level - 1
            ));
        }
        let error = parse_and_check(&query, 1000).unwrap_err();
        assert!(
            error.message.contains("nested more than"),
            "{}",
            error.message
        );
    }

    #[test]
    fn fragment_cycles_and_unknown_fragments_count_as_nothing() {
        let cycle = "query { ...A } fragment A on Query { a ...B } fragment B on Query { b ...A }";
        assert!(parse_and_check(cycle, 1000).is_ok());
        assert!(parse_and_check("query { ...Missing x }", 1000).is_ok());
    }

    #[test]
    fn unused_fragments_are_refused_before_the_engine_walks_them() {
        let mut query = String::from("{ a }\nfragment F0 on Query { b }\n");
        for level in 1..=5000 {
            query.push_str(&format!(
                "fragment F{level} on Query {{ ...F{} }}\n",
                level - 1
            ));
        }
        let error = parse_and_check(&query, 1000).unwrap_err();
        assert!(error.message.contains("is never used"), "{}", error.message);
        let used = "query { ...A } fragment A on Query { a ...B } fragment B on Query { b }";
        assert!(parse_and_check(used, 1000).is_ok());
    }

    #[test]
    fn the_fields_of_every_operation_count_together() {
        let mut query = String::from("fragment F on Query { a b c d e f g h i j }\n");
        for op in 0..101 {
            query.push_str(&format!("query q{op} {{ ...F }}\n"));
        }
        assert_eq!(
            code(&parse_and_check(&query, 1000).unwrap_err()),
            "\"QUERY_TOO_LARGE\""
        );
    }

    #[test]
    fn aliases_count_as_fields() {
        let fields: Vec<String> = (0..20).map(|i| format!("a{i}: __typename")).collect();
        let query = format!("{{ {} }}", fields.join(" "));
        assert!(parse_and_check(&query, 20).is_ok());
        assert!(parse_and_check(&query, 19).is_err());
    }

    #[test]
    fn slots_are_released_when_dropped() {
        let open = Arc::new(OpenSubscriptions::default());
        let socket = SocketSubscriptions::default();
        let limits = DoorLimits {
            max_fields: 1,
            max_depth: 1,
            max_complexity: 1,
            query_timeout: Duration::from_secs(1),
            max_subscriptions_per_socket: 2,
            max_subscriptions: 3,
        };
        let a = SubscriptionSlot::take(&open, Some(&socket), &limits).unwrap();
        let b = SubscriptionSlot::take(&open, Some(&socket), &limits).unwrap();
        assert!(SubscriptionSlot::take(&open, Some(&socket), &limits).is_err());
        let other = SocketSubscriptions::default();
        let c = SubscriptionSlot::take(&open, Some(&other), &limits).unwrap();
        assert!(
            SubscriptionSlot::take(&open, Some(&other), &limits).is_err(),
            "process full"
        );
        assert_eq!(
            other.0.load(Ordering::Relaxed),
            1,
            "the refused one is not counted"
        );
        drop(a);
        assert!(SubscriptionSlot::take(&open, Some(&socket), &limits).is_ok());
        drop((b, c));
        assert_eq!(open.count(), 0);
    }
}
