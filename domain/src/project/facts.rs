//! The facts about other projects that a decision needs, looked up before
//! deciding.
//!
//! Whether a slug is taken or which ports are free depends on every other
//! project, not on this aggregate's events. So the aggregate says what it
//! needs to know ([`Project::question`](crate::Project::question)), the
//! command bus looks that up (in the reservation tables,
//! `infrastructure/src/lookup.rs`) and hands the answer in with the command
//! ([`Decide`](crate::project::Decide)); tests write the answer down. The
//! decision itself awaits nothing, and `domain` stays free of I/O.
//!
//! The answers are a snapshot: a concurrent command may take the slug or
//! the ports between the lookup and the commit. The store's reservation
//! trigger (`migrations/0002`) has the last word, and the bus turns its
//! refusal into the same outcome (`NameTaken`, or a retry with other
//! ports).

use crate::{Ports, ProjectId, Slug};

/// What must be looked up before a command can be decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Question {
    /// Creating a project: who holds `slug`, and which block of ports is
    /// free.
    Creation {
        /// The slug the new project's name produces.
        slug: Slug,
    },
    /// Renaming a project to a name with a new slug: who holds that slug.
    SlugHolder {
        /// The slug the new name produces.
        slug: Slug,
    },
}

impl Question {
    /// The slug the command would claim.
    pub fn slug(&self) -> &Slug {
        match self {
            Self::Creation { slug } | Self::SlugHolder { slug } => slug,
        }
    }
}

/// The answer to a [`Question`], as the decision reads it.
///
/// The default knows of no holder and no free ports: the facts of a command
/// that asks nothing. A creation decided on them is refused with
/// `PortsExhausted`, so a caller that skipped the question cannot record a
/// project without ports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The live (not deleted) project that holds the slug asked about, if
    /// any.
    pub slug_holder: Option<ProjectId>,
    /// A block of four ports no live project holds, for a creation; `None`
    /// when the range is exhausted (or the question did not ask). Only a
    /// proposal: the store reserves the ports atomically with the event.
    pub free_ports: Option<Ports>,
}
