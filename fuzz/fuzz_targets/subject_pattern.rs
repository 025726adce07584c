//! Subject patterns and filters (what clients filter events with): parsing
//! any text never panics; an accepted pattern prints back as itself, matches
//! the subjects it describes, and its SQL forms carry every character of the
//! input escaped, so nothing a client types becomes SQL syntax.

#![no_main]

use domain::{SubjectFilter, SubjectPattern};
use libfuzzer_sys::fuzz_target;

/// A subject the pattern describes: `*` as one token, `>` as two.
fn instance(pattern: &str) -> String {
    pattern
        .split('.')
        .map(|token| match token {
            "*" => "one",
            ">" => "rest.of",
            literal => literal,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Undoes `LIKE ... ESCAPE '\'` escaping; `None` when the text holds an
/// unescaped `_` or `\` (each would be SQL syntax).
fn unescape_like(sql: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = sql.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '_' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fuzz_target!(|input: &str| {
    // The text before the first NUL is a pattern, after it a subject.
    let (pattern, subject) = input.split_once('\0').unwrap_or((input, ""));
    if let Ok(parsed) = SubjectPattern::parse(pattern) {
        assert_eq!(parsed.to_string(), pattern, "a pattern prints as itself");
        assert!(
            parsed.matches(&instance(pattern)),
            "{pattern} matches its own instance"
        );
        assert_eq!(
            parsed.is_literal(),
            !pattern.split('.').any(|t| t == "*" || t == ">")
        );
        if parsed.is_literal() {
            assert_eq!(parsed.matches(subject), subject == pattern);
            assert_eq!(
                unescape_like(&parsed.sql_like_prefix()).as_deref(),
                Some(pattern)
            );
        }
        let regex = parsed.sql_regex();
        assert!(regex.starts_with('^') && regex.ends_with('$'));
    }
    if let Ok(filter) = SubjectFilter::parse(pattern) {
        let like = filter.sql_like();
        let literal_parts: Vec<String> = like
            .split('%')
            .map(|part| unescape_like(part).expect("every _ and \\ escaped"))
            .collect();
        if let SubjectFilter::Like(text) = &filter {
            assert_eq!(
                &literal_parts.join("%"),
                text,
                "the LIKE form is the input, escaped"
            );
            assert!(filter.sql_regex().is_empty());
        }
        let _ = filter.matches(subject);
    }
});
