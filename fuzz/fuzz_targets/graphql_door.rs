//! The GraphQL door: any query text with any variables goes through the
//! hub's real schema (parse, the door's limits, validation, execution up to
//! the first resolver that needs the hub) without a panic or an abort, and
//! a document nested past the bound is refused before it is parsed.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use api::graphql::door::{self, DoorLimits};
use api::graphql::{stateless_schema, HubSchema};
use async_graphql::{Request, Variables};
use libfuzzer_sys::fuzz_target;

fn schema() -> &'static HubSchema {
    static SCHEMA: OnceLock<HubSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        stateless_schema(DoorLimits {
            max_fields: 1000,
            max_depth: 12,
            max_complexity: 50_000,
            query_timeout: Duration::from_secs(1),
            max_subscriptions_per_socket: 100,
            max_subscriptions: 10_000,
        })
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|input: &str| {
    // The text before the first NUL is the query, after it the variables.
    let (query, variables) = input.split_once('\0').unwrap_or((input, "{}"));
    let variables = serde_json::from_str(variables)
        .map(Variables::from_json)
        .unwrap_or_default();
    let too_deep = door::check_text_nesting(query).is_err();
    let request = Request::new(query).variables(variables);
    let response = runtime().block_on(schema().execute(request));
    if too_deep {
        let code = response.errors.first().and_then(|error| {
            error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .map(ToString::to_string)
        });
        assert_eq!(code.as_deref(), Some("\"INVALID_INPUT\""), "{query}");
    }
});
