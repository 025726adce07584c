//! Where a project lives on disk.
//!
//! Only the text is checked and normalized here; whether the directory
//! exists is a question for the infrastructure, asked when it matters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An absolute, lexically normalized directory path below `/`.
///
/// No repeated or trailing `/`, no `.` or `..` segments, no control
/// characters, at most 4096 bytes. Deserializing does not re-validate
/// (stored events are facts); parse untrusted input with
/// [`ProjectPath::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Transparent derive: stored as a plain JSON string and not re-validated on
// read, so tightening the rules later cannot make old events unloadable.
#[serde(transparent)]
pub struct ProjectPath(String);

impl ProjectPath {
    /// The most bytes a path may have: Linux's `PATH_MAX`.
    pub const MAX_BYTES: usize = 4096;

    /// Parses and normalizes a path typed by a person.
    ///
    /// Repeated `/` collapse, `.` segments go, `..` removes the segment
    /// before it and a trailing `/` is dropped: `"/a//b/./c/"` becomes
    /// `"/a/b/c"` and `"/a/../b"` becomes `"/b"`. This is purely lexical;
    /// symlinks are not followed.
    ///
    /// # Errors
    ///
    /// [`PathError::Empty`], [`PathError::TooLong`] (measured before
    /// normalizing), [`PathError::ControlCharacter`],
    /// [`PathError::NotAbsolute`], [`PathError::EscapesRoot`] when `..`
    /// climbs above `/`, and [`PathError::IsRoot`] when nothing is left
    /// but `/`.
    pub fn parse(input: &str) -> Result<Self, PathError> {
        if input.is_empty() {
            return Err(PathError::Empty);
        }
        if input.len() > Self::MAX_BYTES {
            return Err(PathError::TooLong {
                max: Self::MAX_BYTES,
                actual: input.len(),
            });
        }
        if input.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        if !input.starts_with('/') {
            return Err(PathError::NotAbsolute);
        }

        let mut segments: Vec<&str> = Vec::new();
        for segment in input.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    if segments.pop().is_none() {
                        return Err(PathError::EscapesRoot);
                    }
                }
                name => segments.push(name),
            }
        }
        if segments.is_empty() {
            return Err(PathError::IsRoot);
        }

        let mut path = String::with_capacity(input.len());
        for segment in segments {
            path.push('/');
            path.push_str(segment);
        }
        Ok(Self(path))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a project path was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// No text at all.
    #[error("the path is empty; give the project's directory as an absolute path such as /srv/projects/my-app")]
    Empty,
    /// Does not start with `/`.
    #[error("the path must be absolute: start it with / (for example /srv/projects/my-app)")]
    NotAbsolute,
    /// More bytes than a path may have.
    #[error("the path is {actual} bytes long; shorten it to at most {max}")]
    TooLong {
        /// The limit, in bytes.
        max: usize,
        /// The length of the rejected path, in bytes.
        actual: usize,
    },
    /// A NUL, newline or other control character.
    #[error("the path contains a control character (such as NUL or a newline); remove it")]
    ControlCharacter,
    /// `..` climbs above `/`.
    #[error("the path uses .. to climb above /; remove the extra .. segments")]
    EscapesRoot,
    /// Normalizes to `/` itself.
    #[error("the path must name a directory below /, not / itself")]
    IsRoot,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(input: &str) -> String {
        ProjectPath::parse(input)
            .unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
            .to_string()
    }

    #[test]
    fn a_clean_absolute_path_is_kept_as_is() {
        assert_eq!(normalized("/srv/projects/my-app"), "/srv/projects/my-app");
    }

    #[test]
    fn repeated_slashes_dot_segments_and_the_trailing_slash_are_removed() {
        assert_eq!(normalized("/a//b/./c/"), "/a/b/c");
        assert_eq!(normalized("//a///"), "/a");
        assert_eq!(normalized("/./a/."), "/a");
    }

    #[test]
    fn dot_dot_removes_the_segment_before_it() {
        assert_eq!(normalized("/a/../b"), "/b");
        assert_eq!(normalized("/a/b/c/../../d"), "/a/d");
    }

    #[test]
    fn dot_dot_above_the_root_is_rejected() {
        assert_eq!(ProjectPath::parse("/.."), Err(PathError::EscapesRoot));
        assert_eq!(
            ProjectPath::parse("/a/../../b"),
            Err(PathError::EscapesRoot)
        );
    }

    #[test]
    fn segments_that_only_look_like_dots_are_names() {
        assert_eq!(normalized("/a/.../b"), "/a/.../b");
        assert_eq!(normalized("/a/.hidden"), "/a/.hidden");
    }

    #[test]
    fn the_root_itself_is_rejected() {
        for input in ["/", "//", "/.", "/a/..", "/./"] {
            assert_eq!(
                ProjectPath::parse(input),
                Err(PathError::IsRoot),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_relative_path_is_rejected() {
        for input in ["relative", "./a", "../a", "~/a", " /a"] {
            assert_eq!(
                ProjectPath::parse(input),
                Err(PathError::NotAbsolute),
                "{input:?}"
            );
        }
    }

    #[test]
    fn an_empty_path_is_rejected() {
        assert_eq!(ProjectPath::parse(""), Err(PathError::Empty));
    }

    #[test]
    fn a_path_of_4096_bytes_is_accepted_and_4097_is_rejected() {
        let at_limit = format!("/{}", "a".repeat(4095));
        assert_eq!(normalized(&at_limit).len(), 4096);

        let over = format!("/{}", "a".repeat(4096));
        assert_eq!(
            ProjectPath::parse(&over),
            Err(PathError::TooLong {
                max: 4096,
                actual: 4097
            })
        );
    }

    #[test]
    fn the_length_limit_counts_bytes() {
        // 2048 'é' are 4096 bytes; with the slash, 4097.
        let over = format!("/{}", "é".repeat(2048));
        assert_eq!(
            ProjectPath::parse(&over),
            Err(PathError::TooLong {
                max: 4096,
                actual: 4097
            })
        );
    }

    #[test]
    fn paths_with_nul_or_control_characters_are_rejected() {
        for input in ["/a\0b", "/a\nb", "/a\tb", "/a\u{7f}", "/a\u{85}"] {
            assert_eq!(
                ProjectPath::parse(input),
                Err(PathError::ControlCharacter),
                "{input:?}"
            );
        }
    }

    #[test]
    fn unicode_and_spaces_are_allowed_in_segments() {
        assert_eq!(
            normalized("/home/zoë/My Projects/日本"),
            "/home/zoë/My Projects/日本"
        );
    }

    #[test]
    fn a_path_serializes_as_a_plain_string_and_is_not_revalidated_on_read() {
        let path = ProjectPath::parse("/srv/app").unwrap();
        assert_eq!(serde_json::to_string(&path).unwrap(), r#""/srv/app""#);
        let stored: ProjectPath = serde_json::from_str(r#""relative/../x""#).unwrap();
        assert_eq!(stored.as_str(), "relative/../x");
    }
}
