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
    /// Arrays and objects nest deeper than [`EventPayload::MAX_NESTING`].
    #[error(
        "the payload nests arrays and objects more than {} levels deep",
        EventPayload::MAX_NESTING
    )]
    TooDeep,
    /// A number the store would give back as a different value (or not at
    /// all): PostgreSQL keeps numbers as exact decimals, and reading the
    /// decimal back must give the same number.
    #[error(
        "the payload number {0} cannot be stored exactly (the event store would not give it back \
         as the same number); send it as a string"
    )]
    Unstorable(String),
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
            Value::Object(map) => {
                check_storable(&map)?;
                return Ok(Self(map));
            }
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

impl EventPayload {
    /// Deepest nesting of arrays and objects accepted in a payload (the
    /// payload object itself is level 1).
    pub const MAX_NESTING: usize = 64;
}

/// Checks, without recursion, that the store can keep `map` and give it
/// back as it is: no U+0000 in keys or strings, bounded nesting, and only
/// numbers that survive the trip through PostgreSQL.
fn check_storable(map: &Map<String, Value>) -> Result<(), PayloadError> {
    fn visit_object<'a>(
        map: &'a Map<String, Value>,
        depth: usize,
        stack: &mut Vec<(&'a Value, usize)>,
    ) -> Result<(), PayloadError> {
        if depth > EventPayload::MAX_NESTING {
            return Err(PayloadError::TooDeep);
        }
        for (key, value) in map {
            if key.contains('\0') {
                return Err(PayloadError::Nul);
            }
            stack.push((value, depth + 1));
        }
        Ok(())
    }
    let mut stack = Vec::new();
    visit_object(map, 1, &mut stack)?;
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return Err(PayloadError::Nul),
            Value::Number(n) if !survives_storage(n) => {
                return Err(PayloadError::Unstorable(n.to_string()))
            }
            Value::Array(items) => {
                if depth > EventPayload::MAX_NESTING {
                    return Err(PayloadError::TooDeep);
                }
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            Value::Object(map) => visit_object(map, depth, &mut stack)?,
            _ => {}
        }
    }
    Ok(())
}

/// Whether `n`, stored by PostgreSQL (which keeps the exact decimal the
/// JSON text denotes, written out without an exponent) and read back, is
/// the same number. Integers always are; a float is when the decimal
/// PostgreSQL writes parses back to it, sign included
/// (`1.7976931348623157e308` becomes 309 digits, which JSON parsers refuse
/// as out of range; `-0.0` becomes `0.0`).
fn survives_storage(n: &serde_json::Number) -> bool {
    if n.is_i64() || n.is_u64() {
        return true;
    }
    let Some(value) = n.as_f64() else {
        return false;
    };
    let stored = postgres_decimal(&n.to_string());
    serde_json::from_str::<Value>(&stored)
        .ok()
        .and_then(|back| back.as_f64())
        .is_some_and(|back| back.to_bits() == value.to_bits())
}

/// The text PostgreSQL's `numeric` gives for a JSON number: the exact
/// decimal, with no exponent, its scale the number of fraction digits the
/// text implies (`1.5e-7` gives `0.00000015`, `1e3` gives `1000`, `2.50`
/// gives `2.50`, `-0.0` gives `0.0`: a zero has no sign).
fn postgres_decimal(text: &str) -> String {
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().unwrap_or(0)),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let point = whole.len() as i64 + exponent;
    let (integer, fraction) = if point <= 0 {
        let zeros = usize::try_from(-point).unwrap_or(0);
        ("0".to_owned(), format!("{}{digits}", "0".repeat(zeros)))
    } else {
        let point = usize::try_from(point).unwrap_or(usize::MAX);
        if point >= digits.len() {
            let zeros = point - digits.len();
            (format!("{digits}{}", "0".repeat(zeros)), String::new())
        } else {
            (digits[..point].to_owned(), digits[point..].to_owned())
        }
    };
    let integer = integer.trim_start_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let zero = integer == "0" && fraction.bytes().all(|digit| digit == b'0');
    let sign = if zero { "" } else { sign };
    if fraction.is_empty() {
        format!("{sign}{integer}")
    } else {
        format!("{sign}{integer}.{fraction}")
    }
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

    #[test]
    fn decimals_are_written_out_as_postgresql_does() {
        for (json, stored) in [
            ("1.5e-7", "0.00000015"),
            ("1e21", "1000000000000000000000"),
            ("2.50", "2.50"),
            ("-0.0", "0.0"),
            ("-0e5", "0"),
            ("-0.5", "-0.5"),
            ("0.1", "0.1"),
            ("123.0", "123.0"),
            ("1.25E2", "125"),
            ("-4.5e1", "-45"),
        ] {
            assert_eq!(postgres_decimal(json), stored, "{json}");
        }
        let max = postgres_decimal("1.7976931348623157e308");
        assert_eq!(max.len(), 309);
        assert!(max.starts_with("17976931348623157000"));
    }

    #[test]
    fn only_numbers_the_store_gives_back_unchanged_are_accepted() {
        let refused = EventPayload::parse(json!({"v": {"w": [f64::MAX]}}));
        assert_eq!(
            refused,
            Err(PayloadError::Unstorable("1.7976931348623157e+308".into()))
        );
        // The store keeps no sign on a zero.
        assert_eq!(
            EventPayload::parse(json!({"v": -0.0})),
            Err(PayloadError::Unstorable("-0.0".into()))
        );
        for fine in [
            json!({"v": 1.5, "w": -0.25, "x": 1e21, "y": 5e-324, "z": 1.0e300}),
            json!({"big": u64::MAX, "small": i64::MIN, "pi": std::f64::consts::PI}),
        ] {
            assert!(EventPayload::parse(fine.clone()).is_ok(), "{fine}");
        }
    }

    #[test]
    fn payloads_nested_past_the_bound_are_refused() {
        let mut value = json!(1);
        for _ in 0..EventPayload::MAX_NESTING - 1 {
            value = json!([value]);
        }
        assert!(EventPayload::parse(json!({ "a": value.clone() })).is_ok());
        assert_eq!(
            EventPayload::parse(json!({ "a": [value] })),
            Err(PayloadError::TooDeep)
        );
        let mut object = json!(1);
        for _ in 0..=EventPayload::MAX_NESTING {
            object = json!({ "k": object });
        }
        assert_eq!(EventPayload::parse(object), Err(PayloadError::TooDeep));
    }
}
