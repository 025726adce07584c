//! Why a start or stop failed, as it is stored and shown.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The reason a start or stop failed: a bounded, non-empty sentence such as
/// `"the start command exited with code 1: port 5432 is in use"`.
///
/// Built with [`FailureReason::new`], which never fails: the orchestrator's
/// output is whatever it is, and a failure must be recordable whatever it
/// says. Stored as a plain JSON string and not re-checked on read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FailureReason(String);

impl FailureReason {
    /// The most bytes a reason keeps; longer text is cut at a character
    /// boundary and marked with `…`.
    pub const MAX_BYTES: usize = 4096;

    /// What an empty reason becomes.
    pub const UNKNOWN: &'static str = "the operation failed without saying why";

    /// A reason from any text: trimmed, NUL characters removed (PostgreSQL
    /// text cannot hold them), at most [`Self::MAX_BYTES`] bytes, and
    /// [`Self::UNKNOWN`] when nothing is left.
    pub fn new(text: impl AsRef<str>) -> Self {
        let cleaned: String = text.as_ref().chars().filter(|c| *c != '\0').collect();
        let trimmed = cleaned.trim();
        if trimmed.is_empty() {
            return Self(Self::UNKNOWN.to_owned());
        }
        if trimmed.len() <= Self::MAX_BYTES {
            return Self(trimmed.to_owned());
        }
        const MARK: &str = "…";
        let mut end = Self::MAX_BYTES - MARK.len();
        while !trimmed.is_char_boundary(end) {
            end -= 1;
        }
        Self(format!("{}{MARK}", &trimmed[..end]))
    }

    /// The reason as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_trimmed() {
        assert_eq!(FailureReason::new("  exit 1\n").as_str(), "exit 1");
    }

    #[test]
    fn an_empty_or_blank_reason_becomes_the_unknown_reason() {
        for text in ["", "   ", "\n\t", "\0"] {
            assert_eq!(FailureReason::new(text).as_str(), FailureReason::UNKNOWN);
        }
    }

    #[test]
    fn nul_characters_are_removed() {
        assert_eq!(FailureReason::new("a\0b").as_str(), "ab");
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary_and_marked() {
        let long = "é".repeat(5000);
        let reason = FailureReason::new(&long);
        assert!(reason.as_str().len() <= FailureReason::MAX_BYTES);
        assert!(reason.as_str().ends_with('…'));
        assert!(reason.as_str().starts_with("éé"));
    }

    #[test]
    fn a_reason_of_exactly_the_limit_is_kept_whole() {
        let text = "x".repeat(FailureReason::MAX_BYTES);
        assert_eq!(FailureReason::new(&text).as_str(), text);
    }

    #[test]
    fn a_reason_keeps_unicode_and_inner_newlines() {
        let text = "exit 2:\nfehler: Datei nicht gefunden 🚫";
        assert_eq!(FailureReason::new(text).as_str(), text);
    }

    #[test]
    fn a_reason_serializes_as_a_plain_string() {
        let reason = FailureReason::new("boom");
        assert_eq!(serde_json::to_string(&reason).unwrap(), r#""boom""#);
        let back: FailureReason = serde_json::from_str(r#""boom""#).unwrap();
        assert_eq!(back, reason);
    }
}
