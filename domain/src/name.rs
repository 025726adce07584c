//! Project names and the slugs made from them.
//!
//! A [`ProjectName`] is what a person types and sees; a [`Slug`] is its
//! URL- and shell-safe form, and it is the slug, not the name, that must be
//! unique among live projects ("My App" and "my-app" collide).

mod fold;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most characters a name may have, and the most bytes a slug may have.
const MAX_LEN: usize = 255;

/// A project's display name: trimmed, 1 to 255 characters, no control
/// characters.
///
/// Deserializing does not re-validate (see [`ProjectName::parse`] for why);
/// parse untrusted input with `parse`, never with serde.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Transparent derive: a name is stored as a plain JSON string, and reading
// it back does not re-run `parse`. Stored events are facts; if the rules ever
// tighten, re-validating history would make old events unloadable.
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// The most characters (not bytes) a name may have.
    pub const MAX_CHARS: usize = MAX_LEN;

    /// Parses a name typed by a person.
    ///
    /// Leading and trailing whitespace is dropped; what is left must be
    /// 1 to [`Self::MAX_CHARS`] characters and free of control characters
    /// (newlines, tabs, DEL, C1 controls such as U+0085).
    ///
    /// # Errors
    ///
    /// [`NameError::Empty`], [`NameError::TooLong`] or
    /// [`NameError::ControlCharacter`].
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let name = input.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let chars = name.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(NameError::TooLong {
                max: Self::MAX_CHARS,
                actual: chars,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The unique, URL-safe form of a project name: lowercase ASCII letters and
/// digits separated by single hyphens, at most 255 bytes.
///
/// Like [`ProjectName`], deserializing trusts the stored string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
// Transparent derive on purpose: stored slugs are not re-validated on read,
// for the same reason as `ProjectName`.
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    /// The most bytes a slug may have (it is ASCII, so also characters).
    pub const MAX_LEN: usize = MAX_LEN;

    /// Derives the slug of a name.
    ///
    /// Letters are lowercased and common Latin accented letters folded to
    /// ASCII (`é` → `e`, `ß` → `ss`, `ø` → `o`); combining accents are
    /// dropped; every other run of characters becomes one hyphen, and
    /// there is none at either end. A slug longer than
    /// [`Self::MAX_LEN`] is cut to that length, so two very long names that
    /// share their first 255 slug bytes share a slug.
    ///
    /// # Errors
    ///
    /// [`NameError::EmptySlug`] when the name has no letter or digit that
    /// folds to ASCII, e.g. `"!!!"` or `"日本"`.
    pub fn from_name(name: &ProjectName) -> Result<Self, NameError> {
        let mut slug = String::with_capacity(name.as_str().len());
        let mut separator_pending = false;
        for c in name.as_str().chars().flat_map(char::to_lowercase) {
            if fold::is_combining_mark(c) {
                continue;
            }
            let mut buf = [0; 4];
            let ascii = if c.is_ascii_alphanumeric() {
                Some(&*c.encode_utf8(&mut buf))
            } else {
                fold::to_ascii(c)
            };
            match ascii {
                Some(text) => {
                    if separator_pending && !slug.is_empty() {
                        slug.push('-');
                    }
                    separator_pending = false;
                    slug.push_str(text);
                }
                None => separator_pending = true,
            }
        }
        if slug.is_empty() {
            return Err(NameError::EmptySlug);
        }
        // All ASCII, so any byte index is a char boundary.
        slug.truncate(Self::MAX_LEN);
        while slug.ends_with('-') {
            slug.pop();
        }
        Ok(Self(slug))
    }

    /// Checks a slug that already exists, e.g. one taken from a URL.
    ///
    /// # Errors
    ///
    /// [`NameError::InvalidSlug`] unless `input` is 1 to
    /// [`Self::MAX_LEN`] bytes of `a-z`, `0-9` and single inner hyphens.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let well_formed = !input.is_empty()
            && input.len() <= Self::MAX_LEN
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !input.starts_with('-')
            && !input.ends_with('-')
            && !input.contains("--");
        if well_formed {
            Ok(Self(input.to_owned()))
        } else {
            Err(NameError::InvalidSlug)
        }
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a name or slug was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing but whitespace.
    #[error("the name is empty; give the project a name")]
    Empty,
    /// More characters than allowed.
    #[error("the name is {actual} characters long; shorten it to at most {max}")]
    TooLong {
        /// The limit, in characters.
        max: usize,
        /// The length of the rejected name, in characters.
        actual: usize,
    },
    /// A newline, tab or other control character.
    #[error("the name contains a control character (such as a newline or tab); remove it")]
    ControlCharacter,
    /// No letter or digit survives slugging.
    #[error(
        "the name needs at least one letter or digit from a-z or 0-9 (accented Latin letters count), because its slug is made from them"
    )]
    EmptySlug,
    /// Not a well-formed slug.
    #[error(
        "a slug may contain only a-z, 0-9 and single hyphens between them, and must be 1 to 255 characters long"
    )]
    InvalidSlug,
}
