//! How projects are started and stopped: the orchestrator and its commands.

use std::time::Duration;

use clap::Args;

/// Which [`infrastructure::orchestration::Orchestrator`] starts and stops
/// projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OrchestratorKind {
    /// Runs nothing: every start and stop succeeds at once.
    #[default]
    Noop,
    /// Runs `HUB_SHELL_START` / `HUB_SHELL_STOP` with `sh -c`.
    Shell,
}

/// How projects are started and stopped.
#[derive(Debug, Clone, Args)]
pub struct OrchestrationArgs {
    /// What starting and stopping a project runs: `noop` (nothing; every
    /// start and stop succeeds at once) or `shell` (`HUB_SHELL_START` and
    /// `HUB_SHELL_STOP`).
    #[arg(long, env = "HUB_ORCHESTRATOR", value_enum, default_value_t = OrchestratorKind::Noop)]
    pub orchestrator: OrchestratorKind,

    /// With `shell`: the command line that starts a project, run with
    /// `sh -c` in the project's directory, with HUB_PROJECT_ID,
    /// HUB_PROJECT_NAME, HUB_PROJECT_SLUG, HUB_PROJECT_PATH and
    /// HUB_PORT_BACKEND/FRONTEND/POSTGRES/REDIS set; it must be idempotent,
    /// e.g. `docker compose -p "$HUB_PROJECT_SLUG" up -d --wait`.
    #[arg(long, env = "HUB_SHELL_START")]
    pub shell_start: Option<String>,

    /// With `shell`: the command line that stops a project (same
    /// environment), e.g. `docker compose -p "$HUB_PROJECT_SLUG" down`.
    #[arg(long, env = "HUB_SHELL_STOP")]
    pub shell_stop: Option<String>,

    /// Seconds one start or stop may take; then it is cancelled (a shell
    /// command's process group is killed) and the project goes to ERROR.
    #[arg(long, env = "HUB_ORCHESTRATION_TIMEOUT_SECS", default_value_t = 600)]
    pub orchestration_timeout_secs: u64,
}

impl Default for OrchestrationArgs {
    fn default() -> Self {
        Self {
            orchestrator: OrchestratorKind::Noop,
            shell_start: None,
            shell_stop: None,
            orchestration_timeout_secs: 600,
        }
    }
}

impl OrchestrationArgs {
    /// The configured orchestrator.
    ///
    /// # Errors
    /// `shell` without both command lines.
    pub fn orchestrator(
        &self,
    ) -> Result<std::sync::Arc<dyn infrastructure::orchestration::Orchestrator>, String> {
        use infrastructure::orchestration::{NoopOrchestrator, ShellOrchestrator};
        match self.orchestrator {
            OrchestratorKind::Noop => Ok(std::sync::Arc::new(NoopOrchestrator)),
            OrchestratorKind::Shell => {
                let given = |text: &Option<String>| text.clone().filter(|t| !t.trim().is_empty());
                match (given(&self.shell_start), given(&self.shell_stop)) {
                    (Some(start), Some(stop)) => {
                        Ok(std::sync::Arc::new(ShellOrchestrator::new(start, stop)))
                    }
                    _ => Err(
                        "HUB_ORCHESTRATOR=shell needs both HUB_SHELL_START and HUB_SHELL_STOP \
                              (use `true` for a step that has nothing to do)"
                            .to_owned(),
                    ),
                }
            }
        }
    }

    /// How long one start or stop may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.orchestration_timeout_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_orchestrator_is_noop_and_shell_needs_both_commands() {
        let mut args = OrchestrationArgs::default();
        assert_eq!(args.orchestrator, OrchestratorKind::Noop);
        assert!(args.orchestrator().is_ok());
        args.orchestrator = OrchestratorKind::Shell;
        args.shell_start = Some("docker compose up -d".into());
        assert!(args.orchestrator().is_err());
        args.shell_stop = Some("  ".into());
        assert!(args.orchestrator().is_err());
        args.shell_stop = Some("docker compose down".into());
        assert!(args.orchestrator().is_ok());
        assert_eq!(args.timeout(), Duration::from_secs(600));
    }
}
