//! Identifiers. Ids are UUIDs in their own newtypes so a project id cannot be
//! passed where some other id (or any string) is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of a project, fixed when it is created and never reused.
///
/// Serialized as the hyphenated lowercase UUID string, e.g.
/// `"6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21"`; it is also the cqrs-es
/// aggregate id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(Uuid);

// A `Default` that hands out a fresh random id would surprise anyone who
// expects `Default` to be a fixed value, so `new` stands alone.
#[allow(clippy::new_without_default)]
impl ProjectId {
    /// A fresh random (version 4) id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID, e.g. one read back from the database.
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// Parses a project id from its text form.
    ///
    /// Accepts the forms [`Uuid::parse_str`] accepts; the hyphenated form is
    /// the one this type prints.
    ///
    /// # Errors
    ///
    /// [`IdError`] when `input` is not a UUID.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        Uuid::parse_str(input)
            .map(Self)
            .map_err(|_| IdError::new(input))
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Uuid's Display is the hyphenated lowercase form.
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for ProjectId {
    type Err = IdError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

/// A string that is not a valid project id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a valid project id: expected a UUID such as 6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21")]
pub struct IdError {
    input: String,
}

impl IdError {
    /// How much of the rejected input the message repeats; enough to
    /// recognise it without echoing a megabyte back to the caller.
    const SHOWN_CHARS: usize = 64;

    fn new(input: &str) -> Self {
        let mut shown: String = input.chars().take(Self::SHOWN_CHARS).collect();
        if shown.len() < input.len() {
            shown.push('…');
        }
        Self { input: shown }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_displays_as_a_hyphenated_lowercase_uuid() {
        let id = ProjectId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(ProjectId::parse(&text), Ok(id));
    }

    #[test]
    fn two_new_ids_differ() {
        assert_ne!(ProjectId::new(), ProjectId::new());
    }

    #[test]
    fn an_uppercase_uuid_parses_and_prints_lowercase() {
        let id = ProjectId::parse("6F1C2A9E-3B7D-4C1E-9A52-0D8E4F6B7C21").unwrap();
        assert_eq!(id.to_string(), "6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21");
    }

    #[test]
    fn text_that_is_not_a_uuid_is_rejected_with_the_input_in_the_message() {
        let error = ProjectId::parse("abc").unwrap_err();
        assert_eq!(
            error.to_string(),
            "'abc' is not a valid project id: expected a UUID such as 6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21"
        );
    }

    #[test]
    fn empty_text_is_not_a_project_id() {
        assert!(ProjectId::parse("").is_err());
    }

    #[test]
    fn a_huge_rejected_input_is_shortened_in_the_message() {
        let error = ProjectId::parse(&"x".repeat(10_000)).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
    }

    #[test]
    fn an_id_serializes_as_a_plain_string_and_back() {
        let id = ProjectId::parse("6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""6f1c2a9e-3b7d-4c1e-9a52-0d8e4f6b7c21""#);
        assert_eq!(serde_json::from_str::<ProjectId>(&json).unwrap(), id);
    }

    #[test]
    fn from_uuid_and_as_uuid_round_trip() {
        let uuid = Uuid::new_v4();
        assert_eq!(ProjectId::from_uuid(uuid).as_uuid(), uuid);
    }
}
