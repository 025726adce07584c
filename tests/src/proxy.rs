//! A TCP forwarder between the hub and PostgreSQL, to cut the database off
//! and bring it back without touching the shared server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forwards them.
    Forward,
    /// Accepts and closes them at once (what a load balancer or Docker's
    /// userland proxy does when the server behind it is gone).
    Drop,
    /// Does not listen: connecting is refused (the server's host is up but
    /// PostgreSQL is not).
    Refuse,
}

/// Forwards connections from a local port to `target` while enabled.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding from an ephemeral port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = watch::channel(Mode::Forward).0;
        let task = tokio::spawn(serve(listener, target, mode.subscribe()));
        Self { addr, mode, task }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and closes new ones as soon as they are
    /// accepted.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Drop);
    }

    /// Closes every connection and stops listening, so that connecting is
    /// refused.
    pub fn refuse(&self) {
        self.mode.send_replace(Mode::Refuse);
    }

    /// Forwards connections again (on the same port).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

async fn serve(mut listener: TcpListener, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let addr = listener.local_addr().expect("proxy addr");
    loop {
        let mut refusing = mode.clone();
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if *mode.borrow() == Mode::Forward {
                    tokio::spawn(forward(client, target, mode.clone()));
                }
            }
            _ = changed_to(&mut refusing, |m| m == Mode::Refuse) => {
                drop(listener);
                if !changed_to(&mut mode, |m| m != Mode::Refuse).await {
                    return;
                }
                // The port was ours a moment ago; the OS gives it back
                // (tokio binds with SO_REUSEADDR).
                listener = TcpListener::bind(addr).await.expect("bind the proxy port again");
            }
        }
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = changed_to(&mut mode, |m| m != Mode::Forward) => {}
    }
}

/// Waits until the mode satisfies `condition`; false when the proxy is gone.
async fn changed_to(mode: &mut watch::Receiver<Mode>, condition: impl Fn(Mode) -> bool) -> bool {
    mode.wait_for(|m| condition(*m)).await.is_ok()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
