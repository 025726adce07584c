//! Running the workspace's own programs (the `hub` binary, the examples) as
//! processes: building them, reading their output, signalling them.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// Cargo settings a developer or CI may have set, kept for the build.
const KEPT_CARGO_VARIABLES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_",
    "CARGO_PROFILE_",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
    "CARGO_INCREMENTAL",
];

/// Builds with `cargo build <args>` and returns the path of the executable
/// it produced (examples have no `CARGO_BIN_EXE_*` variable, and the `hub`
/// binary's is only given to the `api` package's own tests).
///
/// # Panics
/// When the build fails or produces no executable.
pub async fn cargo_executable(args: &[&str]) -> PathBuf {
    let mut command = tokio::process::Command::new(env!("CARGO"));
    // Cargo gives this test process variables meant for it (the package's
    // name, version, manifest, library path); passed on, they would make
    // this build differ from the workspace's and rebuild much of it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let for_this_crate = name.starts_with("CARGO_")
            && !KEPT_CARGO_VARIABLES
                .iter()
                .any(|kept| name.starts_with(kept));
        if for_this_crate || name == "OUT_DIR" || name == "LD_LIBRARY_PATH" {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run cargo build");
    assert!(output.status.success(), "cargo build {args:?} failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build {args:?} produced no executable"))
}

/// Every line a child printed so far, on stdout and stderr, collected in
/// the background.
#[derive(Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Output {
    /// Starts collecting the piped stdout and stderr of `child`.
    pub fn collect(child: &mut Child) -> Self {
        let output = Self::default();
        if let Some(stdout) = child.stdout.take() {
            output.follow(stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            output.follow(stderr);
        }
        output
    }

    fn follow(&self, pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
        let lines = self.lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().expect("output lock").push(line);
            }
        });
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("output lock").clone()
    }

    /// Everything so far, one line each.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a line for which `found` holds, and returns it.
    ///
    /// # Panics
    /// When none appears within `timeout`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&str) -> bool,
    ) -> String {
        crate::wait_until(what, timeout, || {
            let line = self.lines().into_iter().find(|line| found(line));
            async move { line }
        })
        .await
    }
}

/// A signal a test sends to a child process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// `SIGTERM`: what a service manager sends to stop a process.
    Term,
    /// `SIGINT`: Ctrl-C.
    Int,
    /// `SIGKILL`: a crash, as the process sees it (it cannot react).
    Kill,
    /// `SIGSTOP`: the process freezes (its sockets stay open, it answers
    /// nothing) until it is sent [`Signal::Cont`].
    Stop,
    /// `SIGCONT`: a frozen process carries on.
    Cont,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Self::Term => libc::SIGTERM,
            Self::Int => libc::SIGINT,
            Self::Kill => libc::SIGKILL,
            Self::Stop => libc::SIGSTOP,
            Self::Cont => libc::SIGCONT,
        }
    }
}

/// Sends `signal` to `child` with `kill(2)` (no `kill` program needed).
///
/// # Panics
/// When the child has exited or the signal cannot be sent.
pub fn signal(child: &Child, signal: Signal) {
    signal_pid(child.id().expect("the child is still running"), signal);
}

/// Sends `signal` to the child process `pid` with `kill(2)`: for children
/// spawned with `std::process` rather than tokio.
///
/// # Panics
/// When the signal cannot be sent.
pub fn signal_pid(pid: u32, signal: Signal) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is a child this process spawned and has not reaped.
    let sent = unsafe { libc::kill(pid, signal.number()) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal:?}) failed: {}",
        std::io::Error::last_os_error()
    );
}
