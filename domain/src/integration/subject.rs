//! [`EventSubject`]: the NATS subject an integration event is published on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a subject was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventSubjectError {
    /// Nothing given.
    #[error("the subject is empty; use the form hub.<hub_id>.<domain>.<action>, e.g. hub.local-hub.audit.security.completed")]
    Empty,
    /// Longer than [`EventSubject::MAX_LEN`].
    #[error("the subject is {actual} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// What was given.
        actual: usize,
    },
    /// Whitespace or control characters.
    #[error("the subject contains whitespace or control characters")]
    BadCharacter,
    /// `*` or `>`: a published subject names one subject, not a pattern.
    #[error(
        "the subject contains a wildcard ('*' or '>'); events are published on a concrete subject"
    )]
    Wildcard,
    /// A character outside letters, digits, `-` and `_`.
    #[error("the subject contains '{0}'; tokens may only hold ASCII letters, digits, '-' and '_'")]
    Disallowed(char),
    /// `a..b`, a leading or trailing dot.
    #[error("the subject has an empty token; tokens are separated by single dots, as in hub.local-hub.audit.security.completed")]
    EmptyToken,
    /// Not `hub.` first.
    #[error(
        "the subject must start with 'hub.<hub_id>.', as in hub.local-hub.audit.security.completed"
    )]
    NotHub,
    /// Fewer than [`EventSubject::MIN_TOKENS`] tokens.
    #[error("the subject has {actual} tokens; at least {min} are needed: hub.<hub_id>.<name>, e.g. hub.local-hub.deployments or hub.local-hub.audit.security.completed")]
    TooShort {
        /// The minimum.
        min: usize,
        /// What was given.
        actual: usize,
    },
    /// The domain token belongs to the hub's own events.
    #[error("the domain '{0}' is reserved for the hub's own events; choose another third token")]
    ReservedDomain(String),
}

/// A concrete NATS subject of the form `hub.<hub_id>.<name...>`: at least
/// three tokens of ASCII letters, digits, `-` and `_`, no wildcards, at
/// most [`EventSubject::MAX_LEN`] bytes, and a first name token (the
/// domain, as in `hub.<hub_id>.<domain>.<action>`) that is not one of the
/// hub's own (`project`).
///
/// Whether the hub id is *this* hub's is decided by the aggregate, which
/// is told the hub id in the command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventSubject(String);

impl EventSubject {
    /// Longest accepted subject, in bytes.
    pub const MAX_LEN: usize = 255;
    /// Fewest tokens: `hub`, the hub id and a name.
    pub const MIN_TOKENS: usize = 3;
    /// Third tokens (domains) that only the hub's own aggregates publish on,
    /// so that no integration event can pass for one of their events.
    pub const RESERVED_DOMAINS: &'static [&'static str] =
        &[crate::ProjectEvent::DOMAIN, "integrationevent"];

    /// Parses `input`.
    ///
    /// # Errors
    /// See [`EventSubjectError`].
    pub fn parse(input: &str) -> Result<Self, EventSubjectError> {
        if input.is_empty() {
            return Err(EventSubjectError::Empty);
        }
        if input.len() > Self::MAX_LEN {
            return Err(EventSubjectError::TooLong {
                max: Self::MAX_LEN,
                actual: input.len(),
            });
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EventSubjectError::BadCharacter);
        }
        if input.contains(['*', '>']) {
            return Err(EventSubjectError::Wildcard);
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(EventSubjectError::Disallowed(bad));
        }
        let tokens: Vec<&str> = input.split('.').collect();
        if tokens.iter().any(|t| t.is_empty()) {
            return Err(EventSubjectError::EmptyToken);
        }
        if tokens[0] != "hub" {
            return Err(EventSubjectError::NotHub);
        }
        if tokens.len() < Self::MIN_TOKENS {
            return Err(EventSubjectError::TooShort {
                min: Self::MIN_TOKENS,
                actual: tokens.len(),
            });
        }
        let domain = tokens[2].to_ascii_lowercase();
        if Self::RESERVED_DOMAINS.contains(&domain.as_str()) {
            return Err(EventSubjectError::ReservedDomain(tokens[2].to_owned()));
        }
        Ok(Self(input.to_owned()))
    }

    /// The second token: the hub the subject belongs to.
    pub fn hub_id(&self) -> &str {
        self.0.split('.').nth(1).unwrap_or_default()
    }

    /// Everything after `hub.<hub_id>.` (`audit.security.completed`).
    pub fn local_part(&self) -> &str {
        let prefix = "hub.".len() + self.hub_id().len() + 1;
        &self.0[prefix..]
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EventSubject {
    type Error = EventSubjectError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EventSubject> for String {
    fn from(subject: EventSubject) -> Self {
        subject.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_subject_is_kept_with_its_parts() {
        let subject = EventSubject::parse("hub.local-hub.audit.security.completed").unwrap();
        assert_eq!(subject.as_str(), "hub.local-hub.audit.security.completed");
        assert_eq!(subject.hub_id(), "local-hub");
        assert_eq!(subject.local_part(), "audit.security.completed");
        assert!(EventSubject::parse("hub.h.a_b.c-d").is_ok());
        let short = EventSubject::parse("hub.test.example").unwrap();
        assert_eq!(short.hub_id(), "test");
        assert_eq!(short.local_part(), "example");
    }

    #[test]
    fn ugly_subjects_are_refused_with_the_reason() {
        use EventSubjectError as E;
        let cases: &[(&str, EventSubjectError)] = &[
            ("", E::Empty),
            ("hub.h.audit.done ", E::BadCharacter),
            ("hub.h.audit.\tdone", E::BadCharacter),
            ("hub.h.audit.do\u{0}ne", E::BadCharacter),
            ("hub.h.audit.*", E::Wildcard),
            ("hub.h.>", E::Wildcard),
            ("hub.h.au*dit.x", E::Wildcard),
            ("hub.h.audit.%", E::Disallowed('%')),
            ("hub.h.audit.'x", E::Disallowed('\'')),
            ("hub.h.audit.é", E::Disallowed('é')),
            ("hub.h.audit.$sys", E::Disallowed('$')),
            ("hub.h..audit", E::EmptyToken),
            (".hub.h.a.b", E::EmptyToken),
            ("hub.h.a.b.", E::EmptyToken),
            ("nats.h.audit.done", E::NotHub),
            ("HUB.h.audit.done", E::NotHub),
            ("hub.h", E::TooShort { min: 3, actual: 2 }),
            ("hub", E::TooShort { min: 3, actual: 1 }),
            ("hub.h.project", E::ReservedDomain("project".into())),
            (
                "hub.h.integrationevent",
                E::ReservedDomain("integrationevent".into()),
            ),
            ("hub.h.project.created", E::ReservedDomain("project".into())),
            ("hub.h.Project.created", E::ReservedDomain("Project".into())),
        ];
        for (input, expected) in cases {
            assert_eq!(
                EventSubject::parse(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn subjects_longer_than_255_bytes_are_refused() {
        let at_limit = format!("hub.h.audit.{}", "x".repeat(255 - 12));
        assert_eq!(at_limit.len(), 255);
        assert!(EventSubject::parse(&at_limit).is_ok());
        let over = format!("{at_limit}x");
        assert_eq!(
            EventSubject::parse(&over),
            Err(EventSubjectError::TooLong {
                max: 255,
                actual: 256
            })
        );
        assert!(matches!(
            EventSubject::parse(&"a".repeat(10_000)),
            Err(EventSubjectError::TooLong { .. })
        ));
    }

    #[test]
    fn a_subject_deserializes_only_when_valid() {
        let ok: EventSubject = serde_json::from_str("\"hub.h.audit.done\"").unwrap();
        assert_eq!(ok.as_str(), "hub.h.audit.done");
        assert!(serde_json::from_str::<EventSubject>("\"hub.h.*\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"hub.h.audit.done\"");
    }
}
