//! Project names and slugs: parsing any text never panics, and whatever is
//! accepted keeps the promises the rest of the hub relies on.

#![no_main]

use domain::{ProjectName, Slug};
use libfuzzer_sys::fuzz_target;

/// `a-z`, `0-9` and single inner hyphens, 1 to 255 bytes: what URLs,
/// reservations and the `Slug` type assume.
fn well_formed_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= Slug::MAX_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--")
}

fuzz_target!(|input: &str| {
    if let Ok(name) = ProjectName::parse(input) {
        let text = name.as_str();
        assert_eq!(text, input.trim(), "a name is its input, trimmed");
        assert!(!text.is_empty());
        assert!(text.chars().count() <= ProjectName::MAX_CHARS);
        assert!(!text.chars().any(char::is_control), "no control characters");
        assert_eq!(
            ProjectName::parse(text).as_ref(),
            Ok(&name),
            "parsing a name again changes nothing"
        );
        if let Ok(slug) = Slug::from_name(&name) {
            assert!(
                well_formed_slug(slug.as_str()),
                "bad slug {slug:?} from {text:?}"
            );
            assert_eq!(
                Slug::parse(slug.as_str()).as_ref(),
                Ok(&slug),
                "a derived slug parses as itself"
            );
            let again = ProjectName::parse(slug.as_str()).expect("a slug is a valid name");
            assert_eq!(
                Slug::from_name(&again).as_ref(),
                Ok(&slug),
                "a slug is its own slug"
            );
        }
    }
    match Slug::parse(input) {
        Ok(slug) => {
            assert_eq!(slug.as_str(), input);
            assert!(well_formed_slug(input));
        }
        Err(_) => assert!(!well_formed_slug(input)),
    }
});
