//! The `shell` orchestrator: runs configured command lines with `sh -c`.
//!
//! # Environment of a command
//!
//! The hub's own environment without the hub's settings (every `HUB_*`
//! variable, `DATABASE_URL*` and `NATS_*`: the database URL, the API token
//! and the NATS credentials among them), plus:
//!
//! | variable | value |
//! | --- | --- |
//! | `HUB_ACTION` | `start` or `stop` |
//! | `HUB_PROJECT_ID` | the project's id (a UUID) |
//! | `HUB_PROJECT_NAME` | its display name |
//! | `HUB_PROJECT_SLUG` | its slug, e.g. `my-app` (unique among live projects) |
//! | `HUB_PROJECT_PATH` | its directory |
//! | `HUB_PORT_BACKEND`, `HUB_PORT_FRONTEND`, `HUB_PORT_POSTGRES`, `HUB_PORT_REDIS` | its four ports |
//!
//! The working directory is the project's directory; when it does not
//! exist, the command is not run and the request fails with that reason.
//! Standard input is empty.
//!
//! # Outcome
//!
//! Exit code 0 is success. Anything else fails the request with the exit
//! code (or signal) and the last lines of stderr (of stdout when stderr is
//! empty) as the reason. When the process manager gives up (the
//! orchestration timeout) or the hub shuts down, the command's whole
//! process group is killed. Processes a command leaves running in the
//! background after it exits are not touched, but must not keep its
//! stdout or stderr open (redirect them), or the hub stops reading after
//! a short grace period.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;

use super::orchestrator::{OrchestrationFailure, Orchestrator, ProjectSpec};

/// Whether the variable `name` is one of the hub's own settings, which a
/// command must not see: every `HUB_*` variable (the token among them),
/// and the database's and NATS's URLs, credentials and their files.
fn is_hub_setting(name: &str) -> bool {
    name.starts_with("HUB_") || name.starts_with("DATABASE_URL") || name.starts_with("NATS_")
}

/// How long output is still read after the command exited (a background
/// process may have inherited its pipes).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Runs `start` and `stop` command lines with `sh -c`; see the module docs
/// for their environment and how their outcome is judged.
#[derive(Clone, Debug)]
pub struct ShellOrchestrator {
    start: String,
    stop: String,
}

impl ShellOrchestrator {
    /// The most lines of output a failure reason keeps.
    pub const TAIL_LINES: usize = 20;
    /// The most bytes of output a failure reason keeps (the rest of the
    /// reason's 4 KB is for the exit code sentence).
    pub const TAIL_BYTES: usize = 3584;

    /// Runs `start` to start a project and `stop` to stop one.
    pub fn new(start: impl Into<String>, stop: impl Into<String>) -> Self {
        Self {
            start: start.into(),
            stop: stop.into(),
        }
    }

    #[tracing::instrument(skip_all, fields(project_id = %project.id, action = %action))]
    async fn run(
        &self,
        action: &'static str,
        script: &str,
        project: &ProjectSpec,
    ) -> Result<(), OrchestrationFailure> {
        // Never in some other directory: a command such as `docker compose
        // down` or `rm -rf build` would act on whatever is there.
        if !tokio::fs::metadata(project.path.as_str())
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Err(OrchestrationFailure::new(format!(
                "the project directory {} does not exist (or is not a directory); \
                 create it, or rename the project's path, then {action} it again",
                project.path.as_str()
            )));
        }
        let mut command = Command::new("sh");
        for (name, _) in std::env::vars_os() {
            if is_hub_setting(&name.to_string_lossy()) {
                command.env_remove(&name);
            }
        }
        command
            .arg("-c")
            .arg(script)
            .current_dir(project.path.as_str())
            .env("HUB_ACTION", action)
            .env("HUB_PROJECT_ID", project.id.to_string())
            .env("HUB_PROJECT_NAME", project.name.as_str())
            .env("HUB_PROJECT_SLUG", project.slug.as_str())
            .env("HUB_PROJECT_PATH", project.path.as_str())
            .env("HUB_PORT_BACKEND", project.ports.backend.to_string())
            .env("HUB_PORT_FRONTEND", project.ports.frontend.to_string())
            .env("HUB_PORT_POSTGRES", project.ports.postgres.to_string())
            .env("HUB_PORT_REDIS", project.ports.redis.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so everything it spawns can be killed
            // together on a timeout.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|err| {
            OrchestrationFailure::new(format!("the {action} command could not be run: {err}"))
        })?;
        let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
        tracing::info!(pid = ?group.0, "{action} command started");

        let (mut out, mut err) = (Tail::default(), Tail::default());
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let status = {
            let reading = async {
                tokio::join!(drain(stdout, &mut out), drain(stderr, &mut err));
            };
            tokio::pin!(reading);
            let mut read_all = false;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    () = &mut reading, if !read_all => read_all = true,
                }
            };
            // The command is gone: its group must not be killed later (the
            // id may be reused), and what it left running stays running.
            group.disarm();
            if !read_all {
                let _ = tokio::time::timeout(OUTPUT_GRACE, &mut reading).await;
            }
            status
        };
        let status = status.map_err(|err| {
            OrchestrationFailure::new(format!("waiting for the {action} command failed: {err}"))
        })?;
        if status.success() {
            tracing::info!("{action} command succeeded");
            return Ok(());
        }
        let reason = failure_reason(action, status, &err.text(), &out.text());
        tracing::warn!(%reason, "{action} command failed");
        Err(OrchestrationFailure::new(reason))
    }
}

#[async_trait::async_trait]
impl Orchestrator for ShellOrchestrator {
    async fn start(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure> {
        self.run("start", &self.start, project).await
    }

    async fn stop(&self, project: &ProjectSpec) -> Result<(), OrchestrationFailure> {
        self.run("stop", &self.stop, project).await
    }
}

/// `the start command exited with code 2: <stderr tail>`.
fn failure_reason(action: &str, status: ExitStatus, stderr: &str, stdout: &str) -> String {
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".to_owned(),
    };
    if !stderr.is_empty() {
        format!("the {action} command {how}: {stderr}")
    } else if !stdout.is_empty() {
        format!("the {action} command {how} (stderr was empty; stdout ended with): {stdout}")
    } else {
        format!("the {action} command {how} without any output")
    }
}

/// Kills a process group when dropped, unless disarmed: the command's
/// whole tree goes when the process manager gives up on it.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            tracing::warn!(process_group = group, "killing the command's process group");
            // SAFETY: kill(2) takes plain integers and touches no memory of
            // ours. A negative pid addresses the process group the child
            // leads (set with `process_group(0)`); the guard is disarmed as
            // soon as the child was reaped, so the id cannot have been reused.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

/// The last bytes a stream produced, bounded by [`ShellOrchestrator::TAIL_BYTES`].
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        // Trim only now and then, so a chatty command costs linear time.
        if self.0.len() > 4 * ShellOrchestrator::TAIL_BYTES {
            let cut = self.0.len() - ShellOrchestrator::TAIL_BYTES;
            self.0.drain(..cut);
        }
    }

    /// The last [`ShellOrchestrator::TAIL_LINES`] lines within the byte
    /// bound, trimmed; invalid UTF-8 is replaced.
    fn text(&self) -> String {
        let start = self.0.len().saturating_sub(ShellOrchestrator::TAIL_BYTES);
        let text = String::from_utf8_lossy(&self.0[start..]);
        let lines: Vec<&str> = text.trim().lines().collect();
        let keep = lines.len().saturating_sub(ShellOrchestrator::TAIL_LINES);
        lines[keep..].join("\n").trim().to_owned()
    }
}

/// Reads `stream` to its end into `tail`.
async fn drain(stream: Option<impl AsyncRead + Unpin>, tail: &mut Tail) {
    let Some(mut stream) = stream else {
        return;
    };
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => tail.push(&buffer[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_last_twenty_lines() {
        let mut tail = Tail::default();
        for i in 1..=30 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let text = tail.text();
        assert!(text.starts_with("line 11\n"), "{text}");
        assert!(text.ends_with("line 30"), "{text}");
        assert_eq!(text.lines().count(), 20);
    }

    #[test]
    fn a_tail_keeps_only_the_last_bytes_of_a_long_line() {
        let mut tail = Tail::default();
        tail.push(&vec![b'a'; 100_000]);
        tail.push(b"END");
        let text = tail.text();
        assert!(text.len() <= ShellOrchestrator::TAIL_BYTES);
        assert!(text.ends_with("END"));
    }

    #[test]
    fn a_tail_of_invalid_utf8_is_replaced_not_dropped() {
        let mut tail = Tail::default();
        tail.push(b"bad \xff byte");
        assert_eq!(tail.text(), "bad \u{fffd} byte");
    }

    #[test]
    fn a_failure_reason_names_the_exit_code_and_prefers_stderr() {
        let status = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            failure_reason("start", status, "boom", "out"),
            "the start command exited with code 3: boom"
        );
        assert_eq!(
            failure_reason("stop", status, "", "out"),
            "the stop command exited with code 3 (stderr was empty; stdout ended with): out"
        );
        assert_eq!(
            failure_reason("stop", status, "", ""),
            "the stop command exited with code 3 without any output"
        );
    }

    #[test]
    fn a_failure_reason_names_a_killing_signal() {
        let status = ExitStatus::from_raw(9);
        assert_eq!(
            failure_reason("start", status, "", ""),
            "the start command was killed by signal 9 without any output"
        );
    }
}
