//! A private PostgreSQL cluster, for tests that stop the database and start
//! it again without touching the shared server.
//!
//! The cluster is made with Debian's binaries (`/usr/lib/postgresql/<ver>/bin`,
//! the newest installed; `PG_BIN` overrides), lives in a temporary directory,
//! listens on `127.0.0.1:<free port>` only, trusts every local connection,
//! and is removed when dropped. `initdb` and the server refuse to run as
//! root: when the tests run as root, every PostgreSQL binary runs as the
//! `postgres` user (`runuser -u postgres --`, as `scripts/dev.sh` does) and
//! the directory is given to that user.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use uuid::Uuid;

/// Seconds `pg_ctl` waits for the server to start or stop.
const WAIT_SECS: &str = "60";

/// Settings appended to the new cluster's `postgresql.conf`: loopback TCP
/// only (no socket file to collide with the system cluster's), and no
/// `fsync` (a test cluster; an immediate stop still keeps every written
/// commit, since the operating system does not crash).
const SETTINGS: &str = "
# --- hub-tests private cluster (tests/src/pg_server.rs) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
full_page_writes = off
shared_buffers = 16MB
";

/// A private PostgreSQL cluster. Stopped immediately and its directory
/// removed when dropped.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    running: bool,
}

/// The directory holding `initdb` and `pg_ctl`: `PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
///
/// # Panics
/// When no PostgreSQL binaries are installed.
pub fn binaries() -> PathBuf {
    if let Ok(bin) = std::env::var("PG_BIN") {
        return PathBuf::from(bin);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    newest
        .map(|(_, bin)| bin)
        .expect("PostgreSQL binaries under /usr/lib/postgresql/<version>/bin (or set PG_BIN)")
}

/// Whether this process runs as root (PostgreSQL's binaries then have to run
/// as `postgres`).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// A command running `program` as the cluster's owner.
fn as_owner(program: &Path) -> std::process::Command {
    if running_as_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        // runuser keeps the working directory, which `postgres` may not be
        // allowed to enter.
        command.current_dir("/");
        command
    } else {
        std::process::Command::new(program)
    }
}

/// Runs `command` to completion off the async threads.
async fn run(command: std::process::Command, what: &str) -> Output {
    let mut command = tokio::process::Command::from(command);
    command.stdin(Stdio::null());
    command
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {what}: {err}"))
}

impl PgServer {
    /// Creates a cluster in a new temporary directory and starts it on a
    /// free port.
    ///
    /// # Panics
    /// When the cluster cannot be created or started.
    pub async fn start() -> Self {
        let bin = binaries();
        let dir = std::env::temp_dir().join(format!("hub-test-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let mut server = Self {
            bin,
            dir,
            port: 0,
            running: false,
        };
        if running_as_root() {
            let owned = std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&server.dir)
                .status()
                .expect("run chown");
            assert!(owned.success(), "chown postgres {}", server.dir.display());
        }
        let mut initdb = as_owner(&server.bin.join("initdb"));
        initdb.arg("-D").arg(server.data_dir()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]);
        let made = run(initdb, "initdb").await;
        assert!(
            made.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&made.stdout),
            String::from_utf8_lossy(&made.stderr)
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(server.data_dir().join("postgresql.conf"))
            .and_then(|mut conf| conf.write_all(SETTINGS.as_bytes()))
            .expect("configure the cluster");
        // Another process may take the free port before the server binds it:
        // then try another one.
        for _ in 0..3 {
            server.port = free_port();
            if server.pg_ctl_start().await {
                return server;
            }
        }
        panic!(
            "PostgreSQL did not start; see {}",
            server.log_path().display()
        );
    }

    /// The admin URL: `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        crate::db::with_database(&self.admin_url(), name)
    }

    /// Creates database `name` and returns its URL.
    ///
    /// # Panics
    /// When the server does not answer or refuses.
    pub async fn create_database(&self, name: &str) -> String {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.admin_url()));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the database");
        let _ = conn.close().await;
        self.url(name)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: every
    /// connection is cut, nothing is checkpointed), keeping its data.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub async fn stop(&mut self) {
        if !self.running {
            return;
        }
        let stopped = run(self.pg_ctl(&["stop", "-m", "immediate"]), "pg_ctl stop").await;
        assert!(
            stopped.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
        self.running = false;
    }

    /// Starts the server again on the same port and directory (it recovers
    /// from its log) and waits until it accepts connections.
    ///
    /// # Panics
    /// When it does not start.
    pub async fn start_again(&mut self) {
        assert!(
            self.pg_ctl_start().await,
            "PostgreSQL did not start again on port {}; see {}",
            self.port,
            self.log_path().display()
        );
    }

    /// [`PgServer::stop`], then [`PgServer::start_again`].
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Command {
        let mut command = as_owner(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-t", WAIT_SECS])
            .args(args);
        command
    }

    /// `pg_ctl start` on `self.port`; false when the server did not come up.
    async fn pg_ctl_start(&mut self) -> bool {
        let mut start = self.pg_ctl(&["start"]);
        start
            .arg("-l")
            .arg(self.log_path())
            .args(["-o", &format!("-p {}", self.port)]);
        let started = run(start, "pg_ctl start").await;
        self.running = started.status.success();
        self.running
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg_ctl(&["stop", "-m", "immediate"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
