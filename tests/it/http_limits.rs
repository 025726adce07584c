//! The HTTP server's bounds, against a real `hub` process: clients that
//! trickle headers or bodies, sit idle or leave their answers unread are
//! cut off; a flood of half-open connections, or every slot held by a
//! request stuck on its client, cannot keep `/health` out.

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

/// A query with a large answer (the schema's every type and field).
const BIG_ANSWER: &str = "/graphql?query=%7B__schema%7Btypes%7Bname%20description%20fields%7Bname%20description%20args%7Bname%20description%7D%7D%7D%7D%7D";

/// A client that asks for answers and never reads them: it opens a
/// connection with a tiny receive buffer and pipelines requests for far
/// more bytes than the kernel buffers hold. Returns the connection and how
/// many answers it asked for.
async fn non_reader(hub: &SpawnedHub) -> (tokio::net::tcp::OwnedReadHalf, usize) {
    let answer = hub
        .http()
        .get(format!("{}{BIG_ANSWER}", hub.url()))
        .header("accept", "application/json")
        .send()
        .await
        .expect("the query answers");
    assert_eq!(answer.status(), 200);
    let size = answer.bytes().await.expect("its body").len();
    let asked = (32 << 20) / size + 1;
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let stream = socket
        .connect(hub.addr().parse().expect("an address"))
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    let request = format!(
        "GET {BIG_ANSWER} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
        hub.addr()
    );
    tokio::spawn(async move {
        for _ in 0..asked {
            if write.write_all(request.as_bytes()).await.is_err() {
                return;
            }
        }
        // Keep the write half open: closing it would end the connection.
        std::future::pending::<()>().await;
    });
    (read, asked)
}

/// Reads everything `read` still gives until the server closes it; returns
/// how many answers came.
async fn answers_until_closed(mut read: tokio::net::tcp::OwnedReadHalf) -> usize {
    let mut received = Vec::new();
    let mut buffer = vec![0; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(30), read.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("the connection is still open and silent after 30 s"),
        }
    }
    received
        .windows(b"HTTP/1.1 200".len())
        .filter(|w| w == b"HTTP/1.1 200")
        .count()
}

/// `hub_http_connections_open` as `/metrics` gives it.
async fn open_connections(hub: &SpawnedHub) -> Option<u64> {
    let text = hub
        .http()
        .get(format!("{}/metrics", hub.url()))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("hub_http_connections_open "))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answers_is_closed_after_the_body_timeout() {
    let mut hub = SpawnedHub::start("unread", &[("HUB_HTTP_BODY_TIMEOUT_SECS", "1")]).await;
    let (read, asked) = non_reader(&hub).await;
    wait_until(
        "the hub to hold the connection that reads nothing",
        Duration::from_secs(10),
        || async { (open_connections(&hub).await? >= 2).then_some(()) },
    )
    .await;
    wait_until(
        "the connection that reads nothing to be closed",
        Duration::from_secs(30),
        || async {
            // Counting the scrape's own connection.
            (open_connections(&hub).await? <= 1).then_some(())
        },
    )
    .await;
    let answered = answers_until_closed(read).await;
    assert!(
        answered < asked,
        "closed early: {answered} of {asked} answers sent"
    );
    hub.assert_alive().await;
}

/// Opens a connection and sends a request's headers and, once the hub
/// asks for the body (`100 Continue`: the request is in progress), the
/// start of a body that never comes whole.
async fn body_trickler(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the head");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(Duration::from_secs(10), stream.read_u8())
            .await
            .expect("100 Continue within 10 s")
            .expect("read 100 Continue");
        interim.push(byte);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    stream
        .write_all(b"{\"query\"")
        .await
        .expect("send the start");
    stream
}

#[tokio::test]
async fn clients_whose_bodies_do_not_come_cannot_keep_health_out() {
    let mut hub = SpawnedHub::start(
        "stuck",
        &[
            ("HUB_MAX_CONNECTIONS", "4"),
            ("HUB_HTTP_BODY_TIMEOUT_SECS", "10"),
        ],
    )
    .await;
    let mut tricklers = Vec::new();
    for _ in 0..4 {
        tricklers.push(body_trickler(&hub.addr()).await);
    }
    // Every slot holds a request in progress, waiting for its body; a probe
    // gets in once the oldest has waited long enough to lose its
    // connection (rather than when the bodies' time is up).
    let probe = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    wait_until(
        "/health to answer past the clients whose bodies do not come",
        Duration::from_secs(15),
        || async {
            let answer = probe
                .get(format!("{}/health", hub.url()))
                .send()
                .await
                .ok()?;
            (answer.status() == 200).then_some(())
        },
    )
    .await;
    let mut answers = Vec::new();
    for mut stream in tricklers {
        answers.push(read_until_closed(&mut stream, Duration::from_secs(30)).await);
    }
    assert_eq!(answers[0], "", "the oldest stuck request made room");
    for answer in &answers[1..] {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_request_answered_before_its_body_is_read_says_the_connection_closes() {
    let mut hub = SpawnedHub::start("unread-body", &[]).await;
    let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
    // Far over the body limit: refused from its Content-Length.
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 10000000\r\n\r\n{{\"query\": \"",
        hub.addr()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("send the start");
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{answer}"
    );
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_refused_request_is_answered_without_waiting_for_its_body() {
    let mut hub = SpawnedHub::start("refused-early", &[("HUB_API_TOKEN", "s3cret")]).await;
    let cases = [
        ("/graphql", "text/plain", "", 415),
        ("/api/events", "text/plain", "", 415),
        ("/graphql", "application/json", "", 401),
        ("/api/events", "application/json", "", 401),
        (
            "/api/events",
            "application/json",
            "Authorization: Bearer wrong\r\n",
            401,
        ),
    ];
    for (path, content_type, auth, status) in cases {
        let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
        // A body that never comes (the body timeout is 30 s).
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n{auth}\
             Content-Length: 100\r\n\r\n{{",
            hub.addr()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the start");
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path} {content_type} {auth}: {answer}"
        );
    }
    hub.assert_alive().await;
}

#[tokio::test]
async fn a_client_still_sending_an_oversized_body_gets_the_413() {
    let mut hub = SpawnedHub::start("oversized", &[]).await;
    // As httpx and requests do: the whole body is written before the answer
    // is read, declared with its length or chunked.
    let body = vec![b'x'; 4 * 1024 * 1024];
    for (path, chunked) in [
        ("/api/events", false),
        ("/graphql", false),
        ("/api/events", true),
        ("/graphql", true),
    ] {
        let mut stream = TcpStream::connect(hub.addr()).await.expect("connect");
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n",
            hub.addr()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("send the head");
        for piece in body.chunks(64 * 1024) {
            let sent = if chunked {
                let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                chunk.extend_from_slice(piece);
                chunk.extend_from_slice(b"\r\n");
                stream.write_all(&chunk).await
            } else {
                stream.write_all(piece).await
            };
            sent.unwrap_or_else(|err| {
                panic!("{path} (chunked {chunked}): the body is taken: {err}")
            });
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").await.expect("end the body");
        }
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received))
            .await
            .expect("closed within 10 s");
        let answer = String::from_utf8_lossy(&received);
        assert!(
            read.is_ok() && answer.starts_with("HTTP/1.1 413"),
            "{path} (chunked {chunked}): {read:?} {answer}"
        );
    }
    hub.assert_alive().await;
}
