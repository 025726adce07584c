//! Running `hub events` as a process against a hub: the command with a
//! clean environment (UTC, no colour, no token), its output read back
//! (JSON Lines, RFC 4180 CSV), a `follow` to interrupt, and a child's peak
//! resident memory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

use crate::process::{cargo_executable, signal, Output, Signal};
use crate::wait_until;

/// The `hub` binary, built once per test process.
pub async fn hub_bin() -> PathBuf {
    static HUB: OnceCell<PathBuf> = OnceCell::const_new();
    HUB.get_or_init(|| cargo_executable(&["-p", "api", "--bin", "hub"]))
        .await
        .clone()
}

/// `hub events <args>` against `url`, in UTC, without colour, a token or
/// an injected clock unless `env` gives them.
pub async fn command(url: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(hub_bin().await);
    command
        .arg("events")
        .args(args)
        .env("HUB_URL", url)
        .env("TZ", "UTC")
        .env("NO_COLOR", "1")
        .env_remove("HUB_API_TOKEN")
        .env_remove("HUB_API_TOKEN_FILE")
        .env_remove("HUB_CLI_NOW")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// What a finished `hub events` printed.
pub struct Ran {
    /// The exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `hub events <args>` to its end (at most 60 s).
pub async fn run(url: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        command(url, args, env).await.output(),
    )
    .await
    .unwrap_or_else(|_| panic!("hub events {args:?} did not finish within 60 s"))
    .expect("run hub events");
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `hub events <args>` and expects success.
pub async fn ok(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let ran = run(url, args, env).await;
    assert_eq!(
        ran.code,
        Some(0),
        "hub events {args:?} failed:\n{}",
        ran.stderr
    );
    ran.stdout
}

/// Runs `hub events <args>` and expects a one-line error and exit code 1.
pub async fn fails(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let ran = run(url, args, env).await;
    assert_eq!(ran.code, Some(1), "hub events {args:?}: {}", ran.stderr);
    assert_eq!(ran.stdout, "", "nothing on stdout");
    let stderr = ran.stderr.trim_end();
    assert!(
        stderr.starts_with("error: ") && !stderr.contains('\n'),
        "one line: {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.to_owned()
}

/// The JSON objects of JSON Lines.
pub fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// The `id` of each event.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Parses RFC 4180 CSV: quoted fields may hold commas, doubled quotes and
/// line breaks; records end with CRLF.
pub fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "records end with CRLF");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => {
                assert_ne!(c, '\n', "a bare LF outside quotes");
                field.push(c);
            }
        }
    }
    assert!(
        record.is_empty() && field.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

/// A follower's output and its process.
pub struct Follower {
    /// The process.
    pub child: Child,
    /// What it printed, stdout and stderr.
    pub output: Output,
}

impl Follower {
    pub async fn start(url: &str, args: &[&str]) -> Self {
        let mut all = vec!["follow", "--format", "jsonl"];
        all.extend_from_slice(args);
        let mut child = command(url, &all, &[])
            .await
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hub events follow");
        let output = Output::collect(&mut child);
        Self { child, output }
    }

    /// The events printed so far (stderr lines are not JSON).
    pub fn events(&self) -> Vec<Value> {
        self.output
            .lines()
            .iter()
            .filter(|line| line.starts_with('{'))
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    }

    /// Waits until an event for which `found` holds has been printed.
    pub async fn wait_for(&self, what: &str, found: impl Fn(&Value) -> bool) {
        wait_until(what, Duration::from_secs(20), || {
            let seen = self.events().iter().any(&found);
            async move { seen.then_some(()) }
        })
        .await;
    }

    /// Ctrl-C; returns the count line from stderr.
    pub async fn interrupt(mut self) -> (Vec<Value>, String) {
        signal(&self.child, Signal::Int);
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("follow exits on Ctrl-C")
            .expect("wait for follow");
        assert!(
            status.success(),
            "follow exits 0 on Ctrl-C:\n{}",
            self.output.text()
        );
        let count = self
            .output
            .wait_for("the count", Duration::from_secs(5), |line| {
                line.ends_with(" events")
            })
            .await;
        (self.events(), count)
    }
}

/// Waits for `child` while reading its peak resident memory (`VmHWM` in
/// `/proc/<pid>/status`, in KiB) every few milliseconds; returns its exit
/// code, that peak and its stderr.
pub async fn peak_rss(mut child: Child, timeout: Duration) -> (Option<i32>, i64, String) {
    let pid = child.id().expect("the child runs");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .map(|_| text)
    });
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    let status = loop {
        // Gone once the process has exited (a zombie has no memory).
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child did not finish within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stderr = reading.await.expect("stderr task").expect("read stderr");
    (status.code(), peak, stderr)
}
