//! [`SubjectFilter`]: how a query narrows events by subject. Either a NATS
//! pattern (`hub.*.project.>`) or, for clients of the original event API, a
//! SQL `LIKE` pattern with `%` (`hub.local-hub.audit.%`).

use super::pattern::{escape_like, SubjectError, SubjectPattern};

/// A parsed subject filter; both forms reach SQL only as escaped parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectFilter {
    /// A NATS subject pattern (`*` one token, `>` the rest).
    Nats(SubjectPattern),
    /// A `LIKE` pattern as given: `%` matches any run of characters; every
    /// other character, `_` and `\` included, matches only itself.
    Like(String),
}

impl SubjectFilter {
    /// Parses `input`: a `LIKE` pattern when it contains `%`, a NATS
    /// pattern otherwise.
    ///
    /// # Errors
    /// An empty or too long input, control characters, or (for a NATS
    /// pattern) any [`SubjectError`].
    pub fn parse(input: &str) -> Result<Self, SubjectError> {
        if !input.contains('%') {
            return SubjectPattern::parse(input).map(Self::Nats);
        }
        if input.len() > SubjectPattern::MAX_LEN {
            return Err(SubjectError::TooLong {
                max: SubjectPattern::MAX_LEN,
                actual: input.len(),
            });
        }
        // Whitespace is harmless here (no subject has any, so it matches
        // nothing), but PostgreSQL refuses NUL in text.
        if input.chars().any(char::is_control) {
            return Err(SubjectError::BadCharacter);
        }
        Ok(Self::Like(input.to_owned()))
    }

    /// Whether `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            Self::Nats(pattern) => pattern.matches(subject),
            Self::Like(pattern) => like_matches(pattern, subject),
        }
    }

    /// The one subject the filter matches, when it has no wildcard (a NATS
    /// subject without `*` or `>`): a query can then compare for equality.
    pub fn literal(&self) -> Option<String> {
        match self {
            Self::Nats(pattern) if pattern.is_literal() => Some(pattern.to_string()),
            _ => None,
        }
    }

    /// What every subject the filter matches starts with: the literal
    /// tokens of a NATS pattern before its first wildcard, or a `LIKE`
    /// pattern's text before its first `%`. Empty when the filter starts
    /// with a wildcard.
    pub fn literal_prefix(&self) -> String {
        match self {
            Self::Nats(pattern) => pattern.literal_prefix(),
            Self::Like(pattern) => pattern.split('%').next().unwrap_or_default().to_owned(),
        }
    }

    /// A `LIKE` pattern (escape character `\`) for the filter: the literal
    /// prefix of a NATS pattern, or the `LIKE` pattern with `_` and `\`
    /// escaped.
    pub fn sql_like(&self) -> String {
        match self {
            Self::Nats(pattern) => pattern.sql_like_prefix(),
            Self::Like(pattern) => pattern
                .split('%')
                .map(escape_like)
                .collect::<Vec<_>>()
                .join("%"),
        }
    }

    /// Whether [`Self::sql_like`] alone decides: a literal NATS subject (its
    /// `LIKE` pattern is the subject itself) or a `LIKE` pattern. Then
    /// [`Self::sql_regex`] adds nothing, and a query can leave it out.
    pub fn is_decided_by_like(&self) -> bool {
        match self {
            Self::Nats(pattern) => pattern.is_literal(),
            Self::Like(_) => true,
        }
    }

    /// A PostgreSQL regular expression that decides after [`Self::sql_like`]:
    /// the NATS pattern's equivalent, or for a `LIKE` pattern the empty
    /// expression, which every subject matches.
    pub fn sql_regex(&self) -> String {
        match self {
            Self::Nats(pattern) => pattern.sql_regex(),
            Self::Like(_) => String::new(),
        }
    }
}

impl std::fmt::Display for SubjectFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nats(pattern) => pattern.fmt(f),
            Self::Like(pattern) => f.write_str(pattern),
        }
    }
}

/// `LIKE` semantics with `%` as the only wildcard.
fn like_matches(pattern: &str, subject: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = subject.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_subject_without_wildcards_is_literal() {
        let literal = |input: &str| SubjectFilter::parse(input).expect("valid").literal();
        assert_eq!(
            literal("hub.a.deploy.failed").as_deref(),
            Some("hub.a.deploy.failed")
        );
        assert_eq!(literal("hub.a_b.x\\y.z").as_deref(), Some("hub.a_b.x\\y.z"));
        assert_eq!(literal("hub.a.*.failed"), None);
        assert_eq!(literal("hub.a.>"), None);
        assert_eq!(literal("hub.a.deploy%"), None);
    }

    #[test]
    fn every_matching_subject_starts_with_the_literal_prefix() {
        let prefix = |input: &str| SubjectFilter::parse(input).expect("valid").literal_prefix();
        assert_eq!(prefix("hub.a.*.failed"), "hub.a.");
        assert_eq!(prefix("hub.a.deploy.>"), "hub.a.deploy.");
        assert_eq!(prefix("hub.a.deploy.failed"), "hub.a.deploy.failed");
        assert_eq!(prefix("*.a.>"), "");
        assert_eq!(prefix(">"), "");
        assert_eq!(prefix("hub.a_b.dep%.f%"), "hub.a_b.dep");
        assert_eq!(prefix("%.failed"), "");
        for (input, subject) in [
            ("hub.a.*.failed", "hub.a.deploy.failed"),
            ("hub.a.deploy.>", "hub.a.deploy.x.y"),
            ("hub.a_b.dep%.f%", "hub.a_b.deploy.failed"),
        ] {
            let filter = SubjectFilter::parse(input).expect("valid");
            assert!(filter.matches(subject));
            assert!(subject.starts_with(&filter.literal_prefix()));
        }
    }

    #[test]
    fn a_percent_makes_a_like_pattern_and_anything_else_a_nats_pattern() {
        assert!(matches!(
            SubjectFilter::parse("hub.*.project.>"),
            Ok(SubjectFilter::Nats(_))
        ));
        assert!(matches!(
            SubjectFilter::parse("hub.x.%"),
            Ok(SubjectFilter::Like(_))
        ));
        assert_eq!(
            SubjectFilter::parse("hub. x"),
            Err(SubjectError::BadCharacter)
        );
        assert!(SubjectFilter::parse("hub.x.%' ; DROP TABLE events;--").is_ok());
        assert_eq!(
            SubjectFilter::parse("hub.%\u{0}"),
            Err(SubjectError::BadCharacter)
        );
        assert!(matches!(
            SubjectFilter::parse(&format!("%{}", "a".repeat(600))),
            Err(SubjectError::TooLong { .. })
        ));
    }

    #[test]
    fn like_patterns_match_with_percent_only() {
        let like = |p: &str| SubjectFilter::parse(p).unwrap();
        assert!(like("hub.h.%").matches("hub.h.audit.done"));
        assert!(like("%.done").matches("hub.h.audit.done"));
        assert!(like("hub.%.audit.%").matches("hub.h.audit.done"));
        assert!(like("%").matches(""));
        assert!(like("hub.h.audit.done%").matches("hub.h.audit.done"));
        assert!(!like("hub.h.%").matches("hub.g.audit.done"));
        assert!(!like("%.done").matches("hub.h.audit.done.x"));
        assert!(!like("hub_h.%").matches("hubxh.audit"), "_ is literal");
        assert!(like("hub_h.%").matches("hub_h.audit"));
        assert!(!like("%ab%ba").matches("aba"), "parts may not overlap");
    }

    #[test]
    fn like_patterns_reach_sql_with_only_percent_unescaped() {
        let like = SubjectFilter::parse("hub.a_b\\%'").unwrap();
        assert_eq!(like.sql_like(), "hub.a\\_b\\\\%'");
        assert_eq!(like.sql_regex(), "");
        let nats = SubjectFilter::parse("hub.x.>").unwrap();
        assert_eq!(nats.sql_like(), "hub.x.%");
        assert_eq!(nats.sql_regex(), "^hub\\.x\\..+$");
    }

    #[test]
    fn only_a_literal_subject_or_a_like_pattern_is_decided_by_like_alone() {
        let decided = |p: &str| SubjectFilter::parse(p).unwrap().is_decided_by_like();
        assert!(decided("hub.h.audit.done"));
        assert!(decided("hub.h.%"));
        assert!(!decided("hub.h.*.done"));
        assert!(!decided("hub.h.>"));
        // A literal's `LIKE` pattern matches exactly that subject.
        let literal = SubjectFilter::parse("hub.a_b.c").unwrap();
        assert_eq!(literal.sql_like(), "hub.a\\_b.c");
    }
}
