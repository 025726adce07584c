//! A private `nats-server` with JetStream, for tests that stop NATS and
//! start it again without touching the shared server.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use uuid::Uuid;

/// How long the server may take to accept clients after it was started.
const STARTS_WITHIN: Duration = Duration::from_secs(15);

/// The `nats-server` binary: `NATS_SERVER_BIN`, else Debian's
/// `/usr/sbin/nats-server`, else `nats-server` on the `PATH`.
fn binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".to_owned()
        } else {
            "nats-server".to_owned()
        }
    })
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// A `nats-server -js` child process on its own port and store directory.
/// Killed when dropped, and its store directory removed.
pub struct NatsServer {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port with an empty store directory and
    /// waits until it accepts clients.
    ///
    /// # Panics
    /// When the server cannot be started.
    pub async fn start() -> Self {
        let store = std::env::temp_dir().join(format!("hub-test-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("create the NATS store directory");
        let mut server = Self {
            port: 0,
            store,
            child: None,
        };
        // Another process may take the free port before the server binds it:
        // then try another one.
        for _ in 0..3 {
            server.port = free_port();
            if server.spawn_and_wait().await {
                return server;
            }
        }
        panic!(
            "nats-server did not start; see {}",
            server.log_path().display()
        );
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would), keeping its store directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store directory (so it
    /// recovers its streams) and waits until it accepts clients.
    ///
    /// # Panics
    /// When the server cannot be started again.
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn_and_wait().await,
            "nats-server did not start again on port {}; see {}",
            self.port,
            self.log_path().display()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.store.join("nats-server.log")
    }

    /// Spawns the server and waits for its greeting; false when it exited.
    async fn spawn_and_wait(&mut self) -> bool {
        let child = Command::new(binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .arg("-l")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary()));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = tokio::time::Instant::now() + STARTS_WITHIN;
        while tokio::time::Instant::now() < deadline {
            if greets(addr).await {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() {
                self.child = None;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.stop();
        false
    }
}

/// Whether a NATS server at `addr` sends its `INFO` greeting.
async fn greets(addr: SocketAddr) -> bool {
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let mut greeting = [0u8; 4];
    let read = tokio::time::timeout(Duration::from_secs(1), conn.read_exact(&mut greeting)).await;
    matches!(read, Ok(Ok(_))) && &greeting == b"INFO"
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
