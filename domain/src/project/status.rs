//! Where a project is in its lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lifecycle state of a project.
///
/// `Starting` and `Stopping` last while the orchestrator works on a
/// request; `Error` follows a failed start or stop. See
/// [`lifecycle`](crate::project::lifecycle) for every transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum ProjectStatus {
    /// Not running; the state right after creation.
    #[default]
    Stopped,
    /// On its way up.
    Starting,
    /// Up.
    Running,
    /// On its way down.
    Stopping,
    /// The last start or stop failed; it may be started or stopped again.
    Error,
    /// Deleted; kept readable, never changed again.
    Deleted,
}

impl ProjectStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ProjectStatus; 6] = [
        Self::Stopped,
        Self::Starting,
        Self::Running,
        Self::Stopping,
        Self::Error,
        Self::Deleted,
    ];

    /// The stable upper-case code used in read models and APIs, e.g.
    /// `"RUNNING"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stopped => "STOPPED",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::Error => "ERROR",
            Self::Deleted => "DELETED",
        }
    }
}

impl fmt::Display for ProjectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectStatus {
    type Err = ParseStatusError;

    /// Parses the code [`ProjectStatus::as_str`] produces (exact case).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == input)
            .ok_or_else(|| ParseStatusError {
                input: input.chars().take(64).collect(),
            })
    }
}

impl TryFrom<String> for ProjectStatus {
    type Error = ParseStatusError;

    /// Parses an owned code, as a column read from the database holds it.
    fn try_from(input: String) -> Result<Self, ParseStatusError> {
        input.parse()
    }
}

/// A string that is not one of the [`ProjectStatus`] codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not a project status; expected one of STOPPED, STARTING, RUNNING, STOPPING, ERROR, DELETED")]
pub struct ParseStatusError {
    input: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_code() {
        for status in ProjectStatus::ALL {
            assert_eq!(status.as_str().parse::<ProjectStatus>(), Ok(status));
            assert_eq!(ProjectStatus::try_from(status.to_string()), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
        }
    }

    #[test]
    fn the_codes_are_the_upper_case_names() {
        let codes: Vec<&str> = ProjectStatus::ALL
            .iter()
            .map(ProjectStatus::as_str)
            .collect();
        assert_eq!(
            codes,
            ["STOPPED", "STARTING", "RUNNING", "STOPPING", "ERROR", "DELETED"]
        );
    }

    #[test]
    fn an_unknown_or_lower_case_code_is_rejected() {
        for input in ["", "running", "RUN", "DELETED "] {
            assert!(input.parse::<ProjectStatus>().is_err(), "{input:?}");
            assert!(
                ProjectStatus::try_from(input.to_owned()).is_err(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_new_project_status_defaults_to_stopped() {
        assert_eq!(ProjectStatus::default(), ProjectStatus::Stopped);
    }
}
