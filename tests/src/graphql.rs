//! Reading GraphQL answers: [`data`] gives a field of `data` or fails with
//! the answer's `errors`; [`data_as`], [`view`] and [`views`] deserialize
//! into the typed views of [`crate::views`]; [`first_error`] reads a
//! refusal.
//!
//! Indexing a `serde_json::Value` by hand reads `Null` when the operation
//! failed, so the assertion that trips is far from the cause and does not
//! show it; these helpers fail where the answer is read, with the answer.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `data.<field>` of a GraphQL answer (JSON `null` when the field is null).
///
/// # Panics
/// When the answer has `errors`, or no `data.<field>`; the message holds
/// the whole answer.
pub fn data<'a>(body: &'a Value, field: &str) -> &'a Value {
    assert!(
        body.get("errors").is_none_or(Value::is_null),
        "{field} failed: {body}"
    );
    body.get("data")
        .and_then(|data| data.get(field))
        .unwrap_or_else(|| panic!("no data.{field} in {body}"))
}

/// `data.<field>` of a GraphQL answer as `T` (an `Option` for a nullable
/// field).
///
/// # Panics
/// As [`data`], and when the field does not have `T`'s shape.
pub fn data_as<T: DeserializeOwned>(body: &Value, field: &str) -> T {
    view(data(body, field))
}

/// `value` as `T`.
///
/// # Panics
/// When `value` does not have `T`'s shape; the message holds the value.
pub fn view<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|err| panic!("not a {}: {err}: {value}", std::any::type_name::<T>()))
}

/// Each of `values` as `T`.
///
/// # Panics
/// As [`view`].
pub fn views<T: DeserializeOwned>(values: &[Value]) -> Vec<T> {
    values.iter().map(view).collect()
}

/// One entry of a GraphQL answer's `errors`, as a client reads it.
#[derive(Debug, Deserialize)]
pub struct GraphqlError {
    /// The sentence for a person.
    pub message: String,
    /// `code`, and anything else the server adds (GraphQL lets it leave
    /// them out).
    #[serde(default)]
    pub extensions: Map<String, Value>,
}

impl GraphqlError {
    /// `extensions.code`.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Value::as_str)
    }
}

/// The first of a GraphQL answer's `errors`.
///
/// # Panics
/// When the answer has none; the message holds the answer.
pub fn first_error(body: &Value) -> GraphqlError {
    let first = body
        .get("errors")
        .and_then(|errors| errors.get(0))
        .unwrap_or_else(|| panic!("expected an error: {body}"));
    view(first)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn data_gives_the_field_and_its_null() {
        let body = json!({ "data": { "project": null, "stats": { "total": 1 } } });
        assert!(data(&body, "project").is_null());
        assert_eq!(data(&body, "stats"), &json!({ "total": 1 }));
    }

    #[test]
    #[should_panic(expected = "NOT_FOUND")]
    fn data_shows_the_errors_of_a_failed_operation() {
        let body = json!({ "data": null, "errors": [{ "message": "no such project",
            "extensions": { "code": "NOT_FOUND" } }] });
        data(&body, "startProject");
    }

    #[test]
    #[should_panic(expected = "no data.project")]
    fn data_refuses_a_field_the_answer_does_not_have() {
        data(&json!({ "data": { "projects": [] } }), "project");
    }

    #[test]
    fn first_error_reads_the_message_and_the_code() {
        let body = json!({ "data": null, "errors": [
            { "message": "taken", "extensions": { "code": "NAME_TAKEN" } },
            { "message": "second" } ] });
        let error = first_error(&body);
        assert_eq!(
            (error.message.as_str(), error.code()),
            ("taken", Some("NAME_TAKEN"))
        );
        let bare = first_error(&json!({ "errors": [{ "message": "m" }] }));
        assert_eq!(bare.code(), None);
    }

    #[test]
    #[should_panic(expected = "expected an error")]
    fn first_error_refuses_an_answer_without_errors() {
        first_error(&json!({ "data": { "project": null } }));
    }

    #[test]
    #[should_panic(expected = "not a")]
    fn view_refuses_a_value_of_another_shape() {
        view::<Vec<String>>(&json!({ "id": 1 }));
    }
}
