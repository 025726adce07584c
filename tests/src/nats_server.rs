//! A private `nats-server` with JetStream, for tests that stop NATS and
//! start it again without touching the shared server.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use uuid::Uuid;

use crate::process::{signal_pid, Signal};

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
    /// Further arguments (a configuration file, cluster settings).
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port with an empty store directory and
    /// waits until it accepts clients.
    ///
    /// # Panics
    /// When the server cannot be started.
    pub async fn start() -> Self {
        Self::start_with_args(Vec::new()).await
    }

    /// Starts a server as [`NatsServer::start`] does, with further
    /// command-line arguments (e.g. `-c <config file>`).
    ///
    /// # Panics
    /// When the server cannot be started.
    pub async fn start_with_args(args: Vec<String>) -> Self {
        let mut server = Self::unstarted(args);
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

    fn unstarted(args: Vec<String>) -> Self {
        let store = std::env::temp_dir().join(format!("hub-test-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("create the NATS store directory");
        Self {
            port: 0,
            store,
            args,
            child: None,
        }
    }

    /// Starts a server on `port` with `args`, once; false when it did not
    /// come up (the port was taken).
    async fn start_on(port: u16, args: Vec<String>) -> Option<Self> {
        let mut server = Self::unstarted(args);
        server.port = port;
        server.spawn_and_wait().await.then_some(server)
    }

    /// Its store directory (for configuration files next to it).
    pub fn dir(&self) -> &std::path::Path {
        &self.store
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

    /// Freezes the server with `SIGSTOP`: its clients stay connected but
    /// hear nothing until the returned guard is dropped, which resumes it
    /// with `SIGCONT` (also when the test panics).
    ///
    /// # Panics
    /// When the server is not running.
    pub fn freeze(&self) -> Frozen<'_> {
        let pid = self.child.as_ref().expect("the server is running").id();
        signal_pid(pid, Signal::Stop);
        Frozen { _server: self, pid }
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
            .args(&self.args)
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

/// A [`NatsServer`] frozen by [`NatsServer::freeze`]; resumed when dropped.
pub struct Frozen<'a> {
    _server: &'a NatsServer,
    pid: u32,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        signal_pid(self.pid, Signal::Cont);
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

/// Three (or more) `nats-server` processes on loopback forming one
/// JetStream cluster, each on its own client and route ports and store.
pub struct NatsCluster {
    /// The nodes, named `n0`, `n1`, ... in JetStream.
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` nodes routed to each other and waits until every one
    /// accepts clients (JetStream elects its leaders shortly after).
    ///
    /// # Panics
    /// When a node does not start.
    pub async fn start(size: usize) -> Self {
        for _ in 0..3 {
            let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
            let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
            let routes = route_ports
                .iter()
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect::<Vec<_>>()
                .join(",");
            let cluster = format!("hub-test-{}", &Uuid::new_v4().simple().to_string()[..8]);
            let mut nodes = Vec::new();
            for (i, (client, route)) in client_ports.iter().zip(&route_ports).enumerate() {
                let args = vec![
                    "--server_name".to_owned(),
                    format!("n{i}"),
                    "--cluster_name".to_owned(),
                    cluster.clone(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".to_owned(),
                    routes.clone(),
                ];
                match NatsServer::start_on(*client, args).await {
                    Some(node) => nodes.push(node),
                    None => break,
                }
            }
            if nodes.len() == size {
                return Self { nodes };
            }
        }
        panic!("a NATS cluster of {size} did not start");
    }

    /// Every node's URL, comma-separated: what a client is given.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node JetStream calls `name` (`n0`, ...).
    pub fn index_of(name: &str) -> Option<usize> {
        name.strip_prefix('n')?.parse().ok()
    }
}
