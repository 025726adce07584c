//! Subjects clients publish integration events on: parsing any text never
//! panics, and an accepted subject is a `hub.<hub_id>.<name...>`
//! subject that NATS will take as one literal subject.

#![no_main]

use domain::EventSubject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    if let Ok(subject) = EventSubject::parse(input) {
        let text = subject.as_str();
        assert_eq!(text, input);
        assert!(text.len() <= EventSubject::MAX_LEN);
        let tokens: Vec<&str> = text.split('.').collect();
        assert!(tokens.len() >= EventSubject::MIN_TOKENS);
        assert_eq!(tokens[0], "hub");
        assert_eq!(subject.hub_id(), tokens[1]);
        assert!(tokens
            .iter()
            .all(|t| !t.is_empty() && *t != "*" && *t != ">"));
        assert!(!text.chars().any(|c| c.is_whitespace() || c.is_control()));
        let domain = tokens[2].to_ascii_lowercase();
        assert!(!EventSubject::RESERVED_DOMAINS.contains(&domain.as_str()));
        assert_eq!(subject.local_part(), tokens[2..].join("."));
        assert_eq!(EventSubject::parse(text).as_ref(), Ok(&subject));
    }
});
