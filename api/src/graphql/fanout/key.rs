//! Which operations can share one stream, and under which key: the same
//! document (formatting aside), operation, variables and access.
//!
//! A subscription is shared when it has exactly one root field, one of
//! `projectChanged`, `projectsChanged` or `events`, without directives on
//! it, and the request carries no extensions. Everything else (queries and
//! mutations over the socket, other documents) runs on its own.

use async_graphql::parser::types::{
    DocumentOperations, Field, OperationDefinition, OperationType, Selection,
};
use async_graphql::{Name, Pos, Positioned, Request, Value, Variables};

use crate::graphql::door::{check_text_nesting, check_variables_nesting};
use crate::graphql::RequestContext;

/// What a subscriber that falls behind its shared stream gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OnLag {
    /// The lag error, telling it where to resume (`events`).
    End,
    /// Caught up from the store, as its own stream would be
    /// (`projectChanged`, `projectsChanged`).
    Replay,
}

/// The identity of a shared stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key {
    document: String,
    operation: Option<String>,
    variables: String,
    authorized: bool,
    may_read: bool,
}

/// A request that can share a stream.
#[derive(Clone, Debug)]
pub(super) struct Shareable {
    pub(super) key: Key,
    pub(super) on_lag: OnLag,
    /// The root field's place in the document and its response key, for
    /// errors the fan-out writes itself.
    pub(super) field: (Pos, String),
    /// Whether the stream only goes live, with nothing of its own first
    /// (`projectChanged` without `id` and `sinceVersion`, `events` without
    /// `after`): a newcomer may then take a running group's items over at
    /// once, without a run of its own.
    pub(super) starts_live: bool,
}

/// Whether `request`, sent by a socket with `access`, can share a stream.
/// The text and variables are checked for nesting before parsing, as the
/// door checks them (the parser does not bound nested values).
pub(super) fn shareable(request: &Request, access: &RequestContext) -> Option<Shareable> {
    if !request.extensions.0.is_empty() {
        return None;
    }
    check_text_nesting(&request.query).ok()?;
    check_variables_nesting(&request.variables).ok()?;
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let operation = match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(operation), None) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
        _ => return None,
    };
    if operation.node.ty != OperationType::Subscription
        || !operation.node.directives.is_empty()
        || operation.node.selection_set.node.items.len() != 1
    {
        return None;
    }
    let Selection::Field(field) = &operation.node.selection_set.node.items[0].node else {
        return None;
    };
    if !field.node.directives.is_empty() {
        return None;
    }
    let on_lag = match field.node.name.node.as_str() {
        "events" => OnLag::End,
        "projectChanged" | "projectsChanged" => OnLag::Replay,
        _ => return None,
    };
    Some(Shareable {
        key: Key {
            document: normalized(&request.query),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
            authorized: access.authorized,
            may_read: access.may_read,
        },
        on_lag,
        field: (
            field.pos,
            field.node.response_key().node.as_str().to_owned(),
        ),
        starts_live: starts_live(&operation.node, field, &request.variables),
    })
}

/// Whether the subscription has no argument that gives it a start of its
/// own (see [`Shareable::starts_live`]): each is absent or null, with
/// `variables` and the operation's defaults in.
fn starts_live(
    operation: &OperationDefinition,
    field: &Positioned<Field>,
    variables: &Variables,
) -> bool {
    let given = |argument: &str| {
        field.node.get_argument(argument).is_some_and(|value| {
            value
                .node
                .clone()
                .into_const_with(|name| Ok::<_, ()>(variable(operation, &name, variables)))
                .is_ok_and(|value| value != Value::Null)
        })
    };
    match field.node.name.node.as_str() {
        "projectChanged" => !given("id") && !given("sinceVersion"),
        "events" => !given("after"),
        _ => false,
    }
}

/// The value of variable `name`: as sent, else its default, else null.
fn variable(operation: &OperationDefinition, name: &Name, variables: &Variables) -> Value {
    variables.get(name).cloned().unwrap_or_else(|| {
        operation
            .variable_definitions
            .iter()
            .find(|definition| definition.node.name.node == *name)
            .and_then(|definition| definition.node.default_value.as_ref())
            .map_or(Value::Null, |value| value.node.clone())
    })
}

/// `document` with its comments and insignificant white space and commas
/// left out, strings kept as written: two documents with the same tokens
/// get the same text. A space is kept between two characters that could
/// belong to one token (names, numbers, `.`, `-`, strings), so no two
/// tokens are ever merged.
pub(super) fn normalized(document: &str) -> String {
    let mut out = String::with_capacity(document.len());
    let mut chars = document.chars().peekable();
    let mut gap = false;
    let joins = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '"' | '+');
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                while chars.next_if(|c| *c != '\n' && *c != '\r').is_some() {}
                gap = true;
            }
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => gap = true,
            '"' => {
                if gap && out.chars().next_back().is_some_and(joins) {
                    out.push(' ');
                }
                gap = false;
                copy_string(&mut chars, &mut out);
            }
            c => {
                if gap && joins(c) && out.chars().next_back().is_some_and(joins) {
                    out.push(' ');
                }
                gap = false;
                out.push(c);
            }
        }
    }
    out
}

/// Copies a string or block string whose opening `"` was just read.
fn copy_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    out.push('"');
    let block = chars.next_if_eq(&'"').is_some();
    if block {
        out.push('"');
        if chars.next_if_eq(&'"').is_none() {
            return; // `""`: the empty string.
        }
        out.push('"');
    }
    let mut quotes = 0;
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' if block => {
                // `\"""` is an escaped triple quote.
                quotes = 0;
                if chars.peek() == Some(&'"') {
                    for _ in 0..3 {
                        if let Some(q) = chars.next_if_eq(&'"') {
                            out.push(q);
                        }
                    }
                }
            }
            '\\' => {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            }
            '"' if block => {
                quotes += 1;
                if quotes == 3 {
                    return;
                }
            }
            '"' => return,
            '\n' | '\r' if !block => return,
            _ => quotes = 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> RequestContext {
        RequestContext {
            correlation_id: "c".to_owned(),
            authorized: true,
            may_read: true,
            user: "anonymous".to_owned(),
        }
    }

    #[test]
    fn formatting_and_comments_do_not_change_the_document() {
        let a = normalized("subscription {\n  projectChanged { id, name } # the name\n}");
        let b = normalized("subscription{projectChanged{id name}}");
        assert_eq!(a, b);
        assert_eq!(b, "subscription{projectChanged{id name}}");
    }

    #[test]
    fn tokens_are_never_merged_and_strings_are_kept() {
        assert_ne!(normalized("{ a b }"), normalized("{ ab }"));
        assert_ne!(normalized("{ f(x: 1 2) }"), normalized("{ f(x: 12) }"));
        assert_eq!(
            normalized("{ f(s: \"a  b, # c\") }"),
            "{f(s:\"a  b, # c\")}"
        );
        assert_eq!(
            normalized("{ f(s: \"\"\"x \\\"\"\" y\"\"\") g }"),
            "{f(s:\"\"\"x \\\"\"\" y\"\"\")g}"
        );
        assert_eq!(normalized("{ f(s: \"\") g }"), "{f(s:\"\")g}");
        assert_ne!(
            normalized("{ f(l: [\"a\" \"b\"]) }"),
            normalized("{ f(l: [\"a\"\"b\"]) }")
        );
        assert_eq!(normalized("{ ... on T { a } }"), "{... on T{a}}");
    }

    #[test]
    fn only_single_field_subscriptions_of_the_live_streams_are_shared() {
        let shared = |query: &str| shareable(&Request::new(query), &access());
        let one = shared("subscription { projectChanged { updatedAt } }").expect("shared");
        assert_eq!(one.on_lag, OnLag::Replay);
        assert_eq!(one.field.1, "projectChanged");
        let aliased = shared("subscription { e: events { id } }").expect("shared");
        assert_eq!(
            (aliased.on_lag, aliased.field.1.as_str()),
            (OnLag::End, "e")
        );
        assert!(shared("query { projects { id } }").is_none());
        assert!(shared("subscription { events { id } projectChanged { id } }").is_none());
        assert!(shared("subscription { events @include(if: true) { id } }").is_none());
        assert!(shared("subscription { ... on Subscription { events { id } } }").is_none());
        assert!(shared("subscription {").is_none(), "does not parse");
        assert!(shared(&format!(
            "subscription {{ events(filter: {}) {{ id }} }}",
            "[".repeat(100)
        ))
        .is_none());
    }

    #[test]
    fn only_streams_without_a_start_of_their_own_start_live() {
        let live = |query: &str, variables: serde_json::Value| {
            let request =
                Request::new(query).variables(async_graphql::Variables::from_json(variables));
            shareable(&request, &access()).expect("shared").starts_live
        };
        let none = serde_json::json!({});
        assert!(live("subscription { projectChanged { id } }", none.clone()));
        assert!(live(
            "subscription { projectChanged(coalesce: true) { id } }",
            none.clone()
        ));
        assert!(live(
            "subscription { events(filter: {}) { id } }",
            none.clone()
        ));
        assert!(!live(
            "subscription { projectChanged(id: \"x\") { id } }",
            none.clone()
        ));
        assert!(!live(
            "subscription { events(after: \"0\") { id } }",
            none.clone()
        ));
        assert!(!live(
            "subscription { projectsChanged { kind } }",
            none.clone()
        ));
        let by_variable = "subscription($id: ID) { projectChanged(id: $id) { id } }";
        assert!(live(by_variable, none.clone()));
        assert!(live(by_variable, serde_json::json!({ "id": null })));
        assert!(!live(by_variable, serde_json::json!({ "id": "x" })));
        let defaulted = "subscription($after: String = \"0\") { events(after: $after) { id } }";
        assert!(!live(defaulted, none.clone()));
        assert!(live(defaulted, serde_json::json!({ "after": null })));
    }

    #[test]
    fn the_key_tells_variables_operations_and_access_apart() {
        let key = |request: Request, access: &RequestContext| {
            shareable(&request, access).expect("shared").key
        };
        let query = "subscription A($id: ID) { projectChanged(id: $id) { id } } subscription B { events { id } }";
        let vars = |id: &str| async_graphql::Variables::from_json(serde_json::json!({ "id": id }));
        let a1 = key(
            Request::new(query).operation_name("A").variables(vars("1")),
            &access(),
        );
        let a2 = key(
            Request::new(query).operation_name("A").variables(vars("2")),
            &access(),
        );
        let b = key(Request::new(query).operation_name("B"), &access());
        assert_ne!(a1, a2);
        assert_ne!(a1, b);
        let reader = RequestContext {
            authorized: false,
            ..access()
        };
        let a1_read = key(
            Request::new(query).operation_name("A").variables(vars("1")),
            &reader,
        );
        assert_ne!(a1, a1_read);
        let again = key(
            Request::new(query.replace(' ', "  "))
                .operation_name("A")
                .variables(vars("1")),
            &access(),
        );
        assert_eq!(a1, again);
        assert!(
            shareable(&Request::new(query), &access()).is_none(),
            "which one?"
        );
    }
}
