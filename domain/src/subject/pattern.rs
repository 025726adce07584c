//! NATS subject patterns (`hub.*.project.>`), parsed once and usable both in
//! memory and as safe SQL parameters.

/// Why a subject pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Nothing given.
    #[error("the subject pattern is empty")]
    Empty,
    /// Longer than [`SubjectPattern::MAX_LEN`].
    #[error("the subject pattern is {actual} bytes long; at most {max} are allowed")]
    TooLong {
        /// The limit.
        max: usize,
        /// What was given.
        actual: usize,
    },
    /// `a..b`, a leading or trailing dot.
    #[error("the subject pattern has an empty token; tokens are separated by single dots, as in hub.local-hub.project.created")]
    EmptyToken,
    /// Whitespace or control characters.
    #[error("the subject pattern contains whitespace or control characters")]
    BadCharacter,
    /// `>` not last, or a wildcard mixed into a token (`pro*`).
    #[error("wildcards must be whole tokens: '*' matches one token, '>' matches the rest and must come last")]
    MisplacedWildcard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`: exactly one token.
    One,
    /// `>`: one or more tokens, last only.
    Rest,
}

/// A parsed NATS subject pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPattern {
    tokens: Vec<Token>,
}

impl SubjectPattern {
    /// Longest accepted pattern, in bytes.
    pub const MAX_LEN: usize = 512;

    /// Parses `input` with NATS rules.
    ///
    /// # Errors
    /// See [`SubjectError`].
    pub fn parse(input: &str) -> Result<Self, SubjectError> {
        if input.is_empty() {
            return Err(SubjectError::Empty);
        }
        if input.len() > Self::MAX_LEN {
            return Err(SubjectError::TooLong {
                max: Self::MAX_LEN,
                actual: input.len(),
            });
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SubjectError::BadCharacter);
        }
        let parts: Vec<&str> = input.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => return Err(SubjectError::EmptyToken),
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(SubjectError::MisplacedWildcard),
                literal if literal.contains(['*', '>']) => {
                    return Err(SubjectError::MisplacedWildcard)
                }
                literal => Token::Literal(literal.to_owned()),
            };
            tokens.push(token);
        }
        Ok(Self { tokens })
    }

    /// Whether the pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Whether `subject` matches.
    pub fn matches(&self, subject: &str) -> bool {
        let mut parts = subject.split('.');
        for token in &self.tokens {
            match token {
                Token::Rest => return parts.next().is_some_and(|p| !p.is_empty()),
                Token::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Token::Literal(lit) => match parts.next() {
                    Some(p) if p == lit => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// A `LIKE` pattern (escape character `\`) matching every subject that
    /// starts with the pattern's literal prefix: narrows the search with the
    /// subject index before [`Self::sql_regex`] decides.
    pub fn sql_like_prefix(&self) -> String {
        let prefix = self.literal_prefix();
        if self.is_literal() {
            return escape_like(&prefix);
        }
        format!("{}%", escape_like(&prefix))
    }

    /// What every matching subject starts with: the tokens before the first
    /// wildcard, each with its dot (the whole subject when there is none).
    pub fn literal_prefix(&self) -> String {
        let mut prefix = String::new();
        for token in &self.tokens {
            match token {
                Token::Literal(lit) => {
                    prefix.push_str(lit);
                    prefix.push('.');
                }
                Token::One | Token::Rest => return prefix,
            }
        }
        prefix.pop();
        prefix
    }

    /// A PostgreSQL regular expression (`~`) equivalent to the pattern, with
    /// every literal escaped.
    pub fn sql_regex(&self) -> String {
        let parts: Vec<String> = self
            .tokens
            .iter()
            .map(|token| match token {
                Token::Literal(lit) => escape_regex(lit),
                Token::One => "[^.]+".to_owned(),
                Token::Rest => ".+".to_owned(),
            })
            .collect();
        format!("^{}$", parts.join("\\."))
    }
}

impl std::fmt::Display for SubjectPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = self
            .tokens
            .iter()
            .map(|t| match t {
                Token::Literal(lit) => lit.as_str(),
                Token::One => "*",
                Token::Rest => ">",
            })
            .collect();
        f.write_str(&parts.join("."))
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn escape_like(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn escape_regex(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        let p = SubjectPattern::parse("hub.*.project.>").unwrap();
        assert!(p.matches("hub.a.project.created"));
        assert!(p.matches("hub.a.project.start.requested"));
        assert!(!p.matches("hub.a.project"));
        assert!(!p.matches("hub.a.b.project.created"));
        let exact = SubjectPattern::parse("hub.a.project.created").unwrap();
        assert!(exact.matches("hub.a.project.created"));
        assert!(!exact.matches("hub.a.project.created.x"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        assert_eq!(SubjectPattern::parse(""), Err(SubjectError::Empty));
        assert_eq!(SubjectPattern::parse("a..b"), Err(SubjectError::EmptyToken));
        assert_eq!(
            SubjectPattern::parse("a.>.b"),
            Err(SubjectError::MisplacedWildcard)
        );
        assert_eq!(
            SubjectPattern::parse("a.b*"),
            Err(SubjectError::MisplacedWildcard)
        );
        assert_eq!(
            SubjectPattern::parse("a b"),
            Err(SubjectError::BadCharacter)
        );
        assert!(matches!(
            SubjectPattern::parse(&"a".repeat(513)),
            Err(SubjectError::TooLong { .. })
        ));
    }

    #[test]
    fn sql_forms_escape_every_metacharacter() {
        let p = SubjectPattern::parse("hub.a_b%'\\.*").unwrap();
        assert_eq!(p.sql_like_prefix(), "hub.a\\_b\\%'\\\\.%");
        assert_eq!(p.sql_regex(), "^hub\\.a\\_b\\%\\'\\\\\\.[^.]+$");
        let literal = SubjectPattern::parse("hub.x.project.created").unwrap();
        assert_eq!(literal.sql_like_prefix(), "hub.x.project.created");
    }
}
