//! Support for orchestration tests: hubs running the `shell` orchestrator,
//! and a scratch directory for the files their commands write and wait on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api::config::OrchestratorKind;
use api::ServeConfig;
use uuid::Uuid;

use crate::TestHub;

/// A directory of its own for one test, removed when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates an empty directory under the system's temporary directory.
    ///
    /// # Panics
    /// When it cannot be created.
    pub fn create() -> Self {
        let path = std::env::temp_dir().join(format!("hub-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory as text (it is valid UTF-8: built from ASCII).
    pub fn as_str(&self) -> &str {
        self.path.to_str().expect("a UTF-8 path")
    }

    /// `<dir>/<name>` as text, for shell command lines.
    pub fn file(&self, name: &str) -> String {
        self.path
            .join(name)
            .to_str()
            .expect("a UTF-8 path")
            .to_owned()
    }

    /// Creates the empty file `name` (what a blocked test command waits for).
    ///
    /// # Panics
    /// When it cannot be written.
    pub fn touch(&self, name: &str) {
        std::fs::write(self.path.join(name), b"").expect("touch a file");
    }

    /// The lines of file `name` (none when it does not exist).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path.join(name))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Waits until file `name` has `count` lines; returns them.
    ///
    /// # Panics
    /// When it does not within 15 s.
    pub async fn wait_for_lines(&self, name: &str, count: usize) -> Vec<String> {
        let what = format!("{name} to have {count} lines");
        crate::wait_until(&what, Duration::from_secs(15), || async {
            let lines = self.lines(name);
            (lines.len() == count).then_some(lines)
        })
        .await
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A test hub config for `database_url` that runs `start` and `stop` with
/// the shell orchestrator, giving each call `timeout_secs`.
pub fn shell_config(database_url: &str, start: &str, stop: &str, timeout_secs: u64) -> ServeConfig {
    let mut config = TestHub::config(database_url);
    config.orchestration.orchestrator = OrchestratorKind::Shell;
    config.orchestration.shell_start = Some(start.to_owned());
    config.orchestration.shell_stop = Some(stop.to_owned());
    config.orchestration.orchestration_timeout_secs = timeout_secs;
    config
}

/// A shell snippet that appends a line to `log` and then waits until the
/// file `gate` exists: a command the test counts and releases.
pub fn counted_and_gated(log: &str, gate: &str) -> String {
    format!("echo \"$HUB_PROJECT_SLUG\" >> '{log}'; while [ ! -f '{gate}' ]; do sleep 0.05; done")
}

/// Whether process `pid` has ended (gone, or a zombie waiting to be reaped).
pub fn process_ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}
