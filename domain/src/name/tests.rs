use super::*;

fn slug_of(name: &str) -> Result<String, NameError> {
    let name = ProjectName::parse(name).expect("the test name should parse");
    Slug::from_name(&name).map(|slug| slug.as_str().to_owned())
}

#[test]
fn a_plain_name_parses_unchanged() {
    assert_eq!(ProjectName::parse("My App").unwrap().as_str(), "My App");
}

#[test]
fn surrounding_whitespace_is_trimmed_but_inner_whitespace_is_kept() {
    let name = ProjectName::parse("  My   App \u{3000}").unwrap();
    assert_eq!(name.as_str(), "My   App");
    assert_eq!(name.to_string(), "My   App");
}

#[test]
fn an_empty_name_is_rejected() {
    assert_eq!(ProjectName::parse(""), Err(NameError::Empty));
}

#[test]
fn a_whitespace_only_name_is_rejected_as_empty() {
    assert_eq!(ProjectName::parse(" \t\n\u{3000} "), Err(NameError::Empty));
}

#[test]
fn a_name_of_255_characters_is_accepted() {
    assert!(ProjectName::parse(&"a".repeat(255)).is_ok());
}

#[test]
fn a_name_of_256_characters_is_rejected() {
    assert_eq!(
        ProjectName::parse(&"a".repeat(256)),
        Err(NameError::TooLong {
            max: 255,
            actual: 256
        })
    );
}

#[test]
fn the_length_limit_counts_characters_not_bytes() {
    // 255 'é' are 510 bytes and still one valid name.
    assert!(ProjectName::parse(&"é".repeat(255)).is_ok());
    assert_eq!(
        ProjectName::parse(&"é".repeat(256)),
        Err(NameError::TooLong {
            max: 255,
            actual: 256
        })
    );
    assert!(ProjectName::parse(&"🚀".repeat(255)).is_ok());
}

#[test]
fn the_length_limit_applies_after_trimming() {
    let padded = format!("   {}   ", "a".repeat(255));
    assert!(ProjectName::parse(&padded).is_ok());
}

#[test]
fn a_ten_thousand_character_name_is_rejected() {
    assert_eq!(
        ProjectName::parse(&"x".repeat(10_000)),
        Err(NameError::TooLong {
            max: 255,
            actual: 10_000
        })
    );
}

#[test]
fn names_with_control_characters_are_rejected() {
    for name in [
        "my\napp",
        "my\tapp",
        "my\rapp",
        "my\0app",
        "my\u{7f}app",
        "my\u{85}app",
        "my\u{1b}[31m",
    ] {
        assert_eq!(
            ProjectName::parse(name),
            Err(NameError::ControlCharacter),
            "{name:?}"
        );
    }
}

#[test]
fn unicode_names_are_accepted_as_typed() {
    for name in [
        "日本のプロジェクト",
        "Café Ünïcode",
        "🚀 launch",
        "Ελληνικά",
    ] {
        assert_eq!(ProjectName::parse(name).unwrap().as_str(), name);
    }
}

#[test]
fn every_name_error_reads_as_a_sentence() {
    let too_long = NameError::TooLong {
        max: 255,
        actual: 300,
    };
    assert_eq!(
        too_long.to_string(),
        "the name is 300 characters long; shorten it to at most 255"
    );
    assert_eq!(
        NameError::Empty.to_string(),
        "the name is empty; give the project a name"
    );
}

#[test]
fn a_slug_lowercases_and_collapses_punctuation_and_spaces_into_one_hyphen() {
    assert_eq!(slug_of("  Hello,   World!! ").unwrap(), "hello-world");
    assert_eq!(slug_of("my_app.v2").unwrap(), "my-app-v2");
    assert_eq!(slug_of("--a--b--").unwrap(), "a-b");
    assert_eq!(slug_of("Release 2024").unwrap(), "release-2024");
}

#[test]
fn a_slug_folds_accented_latin_letters_to_ascii() {
    assert_eq!(slug_of("Café Ünïcode").unwrap(), "cafe-unicode");
    assert_eq!(slug_of("Straße").unwrap(), "strasse");
    assert_eq!(slug_of("Øresund Ångström").unwrap(), "oresund-angstrom");
    assert_eq!(slug_of("Façade Niño").unwrap(), "facade-nino");
    assert_eq!(slug_of("Łódź Œuvre Æsir").unwrap(), "lodz-oeuvre-aesir");
}

#[test]
fn a_slug_drops_combining_accents_instead_of_splitting_the_word() {
    assert_eq!(slug_of("Cafe\u{301}").unwrap(), "cafe");
    assert_eq!(slug_of("İstanbul").unwrap(), "istanbul");
}

#[test]
fn letters_without_an_ascii_spelling_become_separators() {
    assert_eq!(slug_of("api 日本 v2").unwrap(), "api-v2");
    assert_eq!(slug_of("🚀rocket").unwrap(), "rocket");
}

#[test]
fn a_name_without_ascii_letters_or_digits_has_no_slug() {
    for name in ["!!!", "日本", "🚀", "- _ -"] {
        assert_eq!(slug_of(name), Err(NameError::EmptySlug), "{name:?}");
    }
}

#[test]
fn a_slug_is_cut_to_255_bytes_without_a_trailing_hyphen() {
    // 255 'ß' fold to 510 ASCII letters.
    let slug = slug_of(&"ß".repeat(255)).unwrap();
    assert_eq!(slug.len(), 255);

    // A cut that lands right after a separator must not leave it dangling.
    // 127 'ß' fold to 254 letters, so the hyphen is byte 255.
    let name = format!("{} b", "ß".repeat(127));
    let slug = slug_of(&name).unwrap();
    assert_eq!(slug, "s".repeat(254));
}

#[test]
fn every_derived_slug_passes_slug_parse() {
    for name in ["  Hello,   World!! ", "Café Ünïcode", "x", &"ß".repeat(255)] {
        let derived = slug_of(name).unwrap();
        assert_eq!(Slug::parse(&derived).unwrap().as_str(), derived);
    }
}

#[test]
fn well_formed_slugs_parse() {
    for slug in ["a", "hello-world", "v2", "0", "a-b-c-1-2-3"] {
        assert_eq!(Slug::parse(slug).unwrap().to_string(), slug);
    }
    assert!(Slug::parse(&"a".repeat(255)).is_ok());
}

#[test]
fn malformed_slugs_are_rejected() {
    for slug in [
        "",
        "-a",
        "a-",
        "a--b",
        "Hello",
        "hello world",
        "hello_world",
        "café",
        "a\n",
        "-",
        &"a".repeat(256),
    ] {
        assert_eq!(Slug::parse(slug), Err(NameError::InvalidSlug), "{slug:?}");
    }
}

#[test]
fn names_and_slugs_serialize_as_plain_strings() {
    let name = ProjectName::parse("Café").unwrap();
    let slug = Slug::from_name(&name).unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), r#""Café""#);
    assert_eq!(serde_json::to_string(&slug).unwrap(), r#""cafe""#);
    assert_eq!(
        serde_json::from_str::<ProjectName>(r#""Café""#).unwrap(),
        name
    );
    assert_eq!(serde_json::from_str::<Slug>(r#""cafe""#).unwrap(), slug);
}

#[test]
fn stored_names_and_slugs_are_not_revalidated_when_read_back() {
    // History written under looser rules must stay loadable.
    let name: ProjectName = serde_json::from_str(r#""  old\nname  ""#).unwrap();
    assert_eq!(name.as_str(), "  old\nname  ");
    let slug: Slug = serde_json::from_str(r#""Old_Slug""#).unwrap();
    assert_eq!(slug.as_str(), "Old_Slug");
}
