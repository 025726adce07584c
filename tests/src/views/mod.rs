//! Typed views of what the hub answers, read with [`crate::graphql::view`]
//! or [`crate::graphql::data_as`] instead of indexing JSON by hand.
//!
//! Each view is the shape the tests ask for, written down on the test side
//! (not borrowed from the code under test), so a change of the wire format
//! shows here. The GraphQL and REST views refuse a field they do not know
//! and require every field, nullable ones too ([`nullable`]): a view then
//! never hides an extra field a whole-object comparison would have seen,
//! nor reads a field the query did not select as null. [`Health`] reads
//! the fields it names and ignores the rest of a report that grows with
//! the hub.
//!
//! Layout:
//! - `connection`: [`Connection`], a page with its [`Edge`]s and [`PageInfo`].
//! - `project`: [`Project`] (the fields of `ops`' fragment `P`) and the
//!   mutations' [`ProjectPayload`].
//! - `event`: [`Event`] (GraphQL), [`LiveEvent`] (`ws::EVENTS`) and
//!   [`RestEvent`] (an item of a REST event page).
//! - `projection`: [`Projection`] with its [`LastRebuild`], and the admin
//!   answers on [`ParkedEvent`]s.
//! - `health`: [`Health`], `GET /health` with each [`ConsumerHealth`].

use serde::{Deserialize, Deserializer};

mod connection;
mod event;
mod health;
mod project;
mod projection;

pub use connection::{Connection, Edge, PageInfo};
pub use event::{Event, LiveEvent, Origin, RestEvent, RestOrigin};
pub use health::{
    ConsumerHealth, DatabaseHealth, FeedHealth, FeedHolder, Health, HealthStatus, NatsHealth,
    ParkedReport,
};
pub use project::{Ports, Project, ProjectPayload, ProjectStatus};
pub use projection::{
    LastRebuild, ParkedEvent, Projection, ProjectionState, RebuildState, RetryResult, SkipResult,
};

/// For a nullable field that must be there:
/// `#[serde(deserialize_with = "nullable")]`. Serde reads a missing
/// `Option` field as `None`; with this only `null` is `None`, and a field
/// the query did not select (or the hub no longer sends) is an error.
///
/// # Errors
/// When the value is neither `null` nor a `T`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::deserialize(deserializer)
}
