//! Selecting events by subject: NATS subject patterns (`hub.*.project.>`)
//! and the filters clients give (a pattern, or a `LIKE` pattern with `%`),
//! parsed once into forms that are safe both in memory and as SQL
//! parameters. Pure parsing, so it is fuzzed (`fuzz/`) as well as tested.
//!
//! - [`pattern`]: [`SubjectPattern`] and its SQL forms.
//! - [`filter`]: [`SubjectFilter`], a NATS or `LIKE` subject filter.

pub mod filter;
pub mod pattern;

pub use filter::SubjectFilter;
pub use pattern::{SubjectError, SubjectPattern};
