//! The interface through which the aggregate asks for facts it cannot know.
//!
//! Whether a slug is taken or which ports are free depends on every other
//! project, not on this aggregate's events. The infrastructure answers from
//! its reservation tables; tests answer from memory. Either way `domain`
//! stays free of I/O.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::{Ports, ProjectId, Slug};

/// Facts about other projects that the [`Project`](crate::Project)
/// aggregate needs when it decides.
#[async_trait::async_trait]
pub trait ProjectLookup: Send + Sync {
    /// The live (not deleted) project that currently holds `slug`, if any.
    ///
    /// # Errors
    ///
    /// [`LookupError`] when the answer could not be found out.
    async fn slug_holder(&self, slug: &Slug) -> Result<Option<ProjectId>, LookupError>;

    /// A block of four ports that no live project holds, or `None` when the
    /// range is exhausted.
    ///
    /// This is only a proposal: the reservation itself is made atomically
    /// with the event by the store.
    ///
    /// # Errors
    ///
    /// [`LookupError`] when the answer could not be found out.
    async fn free_ports(&self, project_id: ProjectId) -> Result<Option<Ports>, LookupError>;

    /// What creating a project needs to know: the holder of `slug` (as
    /// [`ProjectLookup::slug_holder`]) and a free block of ports (as
    /// [`ProjectLookup::free_ports`]). The default asks each in turn; an
    /// implementation may answer both at once (one database round trip).
    ///
    /// # Errors
    ///
    /// [`LookupError`] when either answer could not be found out.
    async fn for_creation(
        &self,
        slug: &Slug,
        project_id: ProjectId,
    ) -> Result<(Option<ProjectId>, Option<Ports>), LookupError> {
        let holder = self.slug_holder(slug).await?;
        let ports = self.free_ports(project_id).await?;
        Ok((holder, ports))
    }
}

/// The cqrs-es `Services` of the [`Project`](crate::Project) aggregate: a
/// shared handle to a [`ProjectLookup`]. Cheap to clone.
#[derive(Clone)]
pub struct ProjectServices(Arc<dyn ProjectLookup>);

impl ProjectServices {
    /// Wraps a lookup implementation.
    pub fn new(lookup: impl ProjectLookup + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// The lookup this handle shares.
    pub fn lookup(&self) -> &dyn ProjectLookup {
        self.0.as_ref()
    }
}

impl From<Arc<dyn ProjectLookup>> for ProjectServices {
    /// Shares a lookup that is already behind an `Arc`.
    fn from(lookup: Arc<dyn ProjectLookup>) -> Self {
        Self(lookup)
    }
}

impl Deref for ProjectServices {
    type Target = dyn ProjectLookup;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl fmt::Debug for ProjectServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectServices").finish_non_exhaustive()
    }
}

/// A lookup through [`ProjectLookup`] failed: a system failure, not a
/// rejection of the command.
#[derive(Debug, thiserror::Error)]
#[error("looking up {what} failed: {source}")]
pub struct LookupError {
    /// What was being looked up, e.g. `"the slug holder"`.
    pub what: &'static str,
    /// The underlying failure.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl LookupError {
    /// A failure to look up `what`, caused by `source`.
    pub fn new(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what,
            source: source.into(),
        }
    }
}

/// Two lookup errors are equal when they describe the same failure: same
/// `what`, same source message. The sources' types are not compared; this
/// exists so [`ProjectError`](crate::ProjectError) can be compared in tests.
impl PartialEq for LookupError {
    fn eq(&self, other: &Self) -> bool {
        self.what == other.what && self.source.to_string() == other.source.to_string()
    }
}
