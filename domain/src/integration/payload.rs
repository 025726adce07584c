//! [`EventPayload`]: the body of an integration event, a JSON object.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not an object; says what kind of JSON value was given instead
    /// (`an array`, `a string`, ...).
    #[error("the payload must be a JSON object, e.g. {{\"status\": \"ok\"}}; got {0}")]
    NotAnObject(&'static str),
    /// A key or string holds U+0000, which the event log cannot store.
    #[error("the payload contains the NUL character (\\u0000) in a key or string; remove it")]
    Nul,
}

/// A JSON object, published as the event's `payload` as given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventPayload(Map<String, Value>);

impl EventPayload {
    /// Accepts `value` when it is a JSON object.
    ///
    /// # Errors
    /// [`PayloadError`] for any other JSON value.
    pub fn parse(value: Value) -> Result<Self, PayloadError> {
        let kind = match value {
            Value::Object(map) if holds_nul(&map) => return Err(PayloadError::Nul),
            Value::Object(map) => return Ok(Self(map)),
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
        };
        Err(PayloadError::NotAnObject(kind))
    }

    /// The object's fields.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The payload as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

/// Whether any key or string in `map`, at any depth, contains U+0000.
fn holds_nul(map: &Map<String, Value>) -> bool {
    fn value_holds_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(value_holds_nul),
            Value::Object(map) => holds_nul(map),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    map.iter()
        .any(|(key, value)| key.contains('\0') || value_holds_nul(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_objects_are_payloads() {
        let payload = EventPayload::parse(json!({"status": "ok", "n": [1, 2]})).unwrap();
        assert_eq!(payload.to_value(), json!({"status": "ok", "n": [1, 2]}));
        assert!(EventPayload::parse(json!({})).is_ok());
        for (value, kind) in [
            (json!(null), "null"),
            (json!(true), "a boolean"),
            (json!(1.5), "a number"),
            (json!("{}"), "a string"),
            (json!([{"a": 1}]), "an array"),
        ] {
            assert_eq!(
                EventPayload::parse(value),
                Err(PayloadError::NotAnObject(kind))
            );
        }
    }

    #[test]
    fn a_nul_character_anywhere_is_refused() {
        for value in [
            json!({"a": "x\u{0}y"}),
            json!({"a\u{0}": 1}),
            json!({"a": [{"b": ["\u{0}"]}]}),
        ] {
            assert_eq!(EventPayload::parse(value), Err(PayloadError::Nul));
        }
        assert!(EventPayload::parse(json!({"a": "é ✓ \u{1}"})).is_ok());
    }

    #[test]
    fn a_payload_serializes_as_the_bare_object() {
        let payload = EventPayload::parse(json!({"a": 1})).unwrap();
        assert_eq!(serde_json::to_value(&payload).unwrap(), json!({"a": 1}));
        assert!(serde_json::from_value::<EventPayload>(json!([1])).is_err());
    }
}
