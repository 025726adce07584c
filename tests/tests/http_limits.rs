//! The HTTP server's bounds, against a real `hub` process: clients that
//! trickle headers or bodies, or sit idle, are cut off, and a flood of
//! half-open connections cannot keep `/health` from answering within a
//! second.

use std::time::Duration;

use hub_tests::reliability::HubSpec;
use hub_tests::spawned::{hub_id, SpawnedHub};
use hub_tests::{wait_until, TestDb};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns what it sent.
///
/// # Panics
/// When it is still open after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?}"
    );
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn headers_that_trickle_are_cut_off_and_the_process_keeps_serving() {
    let mut hub = SpawnedHub::start("headers", &[("HUB_HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("send part of the headers");
    read_until_closed(&mut stream, Duration::from_secs(10)).await;
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_body_that_trickles_is_answered_408() {
    let mut hub = SpawnedHub::start("body", &[("HUB_HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    for path in ["/graphql", "/api/events"] {
        let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"query\""
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the start");
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("REQUEST_TIMEOUT"), "{path}: {answer}");
    }
    hub.assert_alive().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let mut hub = SpawnedHub::start("idle", &[("HUB_HTTP_IDLE_TIMEOUT_SECS", "1")]).await;
    let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("send a request");
    // The answer, then nothing more: the server closes the idle connection.
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    hub.assert_alive().await;
}

/// Connections the flood opens and holds.
const FLOOD: usize = 1_500;

/// Raises this process's open-file limit to its hard limit: the flood
/// needs a descriptor per connection.
fn raise_own_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    assert!(
        limit.rlim_cur as usize > FLOOD + 256,
        "the flood needs more than {} open files; the hard limit is {}",
        FLOOD + 256,
        limit.rlim_max
    );
}

/// Opens a connection and sends the start of a request that never ends.
async fn half_open(addr: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .ok()?;
    Some(stream)
}

#[tokio::test]
async fn a_flood_of_half_open_connections_leaves_health_answering_within_a_second() {
    raise_own_file_limit();
    let db = TestDb::create().await;
    let mut spec = HubSpec::new(db.url(), &hub_tests::hub::nats_url(), &hub_id("flood"));
    // A small open-file limit, as on a default desktop, made smaller: the
    // flood holds far more connections than the hub has descriptors for.
    spec.open_file_limit = Some(256);
    let mut hub = SpawnedHub::start_spec(db, spec).await;
    let addr = hub.addr();

    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flood = {
        let (addr, opened) = (addr.clone(), opened.clone());
        tokio::spawn(async move {
            // Every connection is held open for as long as the test runs.
            let mut held = Vec::new();
            while held.len() < FLOOD {
                if let Some(stream) = half_open(&addr).await {
                    held.push(stream);
                    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            std::future::pending::<()>().await;
        })
    };
    // Far more connections than the hub can hold (at most 128 under this
    // limit), all held open, before the first probe (as in the issue's
    // flood: 1,133 half-open connections).
    wait_until(
        "the flood to open its connections",
        Duration::from_secs(60),
        || {
            let count = opened.load(std::sync::atomic::Ordering::Relaxed);
            async move { (count >= FLOOD).then_some(()) }
        },
    )
    .await;
    for _ in 0..20 {
        hub.assert_alive().await;
    }
    flood.abort();
    hub.assert_alive().await;
}
