//! What a caller can ask of a project.

use crate::{ProjectId, ProjectName, ProjectPath};

/// A request to change a project. Its values are already parsed, so
/// `handle` only decides whether the request fits the project's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectCommand {
    /// Register a new project; the hub derives its slug and reserves its
    /// ports.
    CreateProject {
        /// The id the new project will have; also its aggregate id.
        project_id: ProjectId,
        /// Its display name.
        name: ProjectName,
        /// The directory it lives in.
        path: ProjectPath,
    },
    /// Start a stopped project.
    StartProject,
    /// Stop a running project.
    StopProject,
    /// Give the project a new name (and so a new slug).
    RenameProject {
        /// The new display name.
        name: ProjectName,
    },
    /// Delete a stopped project; its slug and ports become free.
    DeleteProject,
}
