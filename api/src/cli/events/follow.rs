//! `hub events follow`: the hub's event stream printed until Ctrl-C, then
//! the count on stderr.
//!
//! The stream gives each event its feed position as the SSE id. When the
//! connection drops (the hub restarts, the network breaks), the stream is
//! opened again with `Last-Event-ID` set to the last event printed, and the
//! hub resumes right after it: nothing is lost or printed twice. Before the
//! first event there is no id yet: the stream is reopened from `--since`,
//! or else from when following began.

use std::io::{self, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;

use super::client::{ClientError, Event, EventQuery, HubClient};
use super::output::{EventWriter, TableStyle};
use super::sse::{SseEvent, SseReader};
use crate::config::Format;

/// The longest line of the stream accepted: an event's envelope is bounded
/// by the hub's body limit, far below this.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// First and longest pause between reconnection attempts.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Why a connection ended.
enum Ended {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The hub closed the stream or the connection broke: reconnect.
    Dropped(String),
}

/// Follows the stream until interrupted; prints the count to stderr.
///
/// # Errors
/// The first connection fails, the hub refuses (401, 4xx), the stream is
/// not SSE, or stdout cannot be written.
pub async fn follow(
    client: &HubClient,
    query: &EventQuery,
    format: Format,
    style: TableStyle,
) -> anyhow::Result<()> {
    let mut writer =
        EventWriter::new(io::BufWriter::new(io::stdout()), format, style).with_full_widths();
    let started = Utc::now();
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let mut last_id: Option<String> = None;
    let mut connected_once = false;
    let mut retry = FIRST_RETRY;
    let mut outage: Option<String> = None;
    loop {
        let mut resume = query.clone();
        if last_id.is_none() && connected_once {
            // Nothing printed yet: whatever was recorded since we began.
            resume.since = Some(query.since.unwrap_or(started));
        }
        let opened = tokio::select! {
            opened = client.stream(&resume, last_id.as_deref()) => opened,
            () = &mut interrupted => break,
        };
        let response = match opened {
            Ok(response) => response,
            Err(err) if connected_once && err.is_transient() => {
                if outage.is_none() {
                    eprintln!("lost the hub's event stream ({err}); reconnecting");
                    outage = Some(err.to_string());
                }
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = &mut interrupted => break,
                }
                retry = (retry * 2).min(LONGEST_RETRY);
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        if outage.take().is_some() {
            eprintln!("reconnected to the hub's event stream");
        }
        connected_once = true;
        retry = FIRST_RETRY;
        match read(
            client,
            response,
            &mut writer,
            &mut last_id,
            &mut interrupted,
        )
        .await?
        {
            Ended::Interrupted => break,
            Ended::Dropped(why) => {
                eprintln!("lost the hub's event stream ({why}); reconnecting");
                outage = Some(why);
            }
        }
    }
    writer.finish().context("while printing events")?;
    eprintln!("{} events", writer.written());
    Ok(())
}

/// Prints the events of one connection until it ends or Ctrl-C.
async fn read(
    client: &HubClient,
    mut response: reqwest::Response,
    writer: &mut EventWriter<io::BufWriter<io::Stdout>>,
    last_id: &mut Option<String>,
    interrupted: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> anyhow::Result<Ended> {
    let mut reader = SseReader::new(MAX_LINE);
    let mut events: Vec<SseEvent> = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = client.chunk(&mut response) => chunk,
            () = interrupted.as_mut() => return Ok(Ended::Interrupted),
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(Ended::Dropped("the hub closed it".into())),
            Err(err) => return Ok(Ended::Dropped(err.to_string())),
        };
        if let Err(err) = reader.feed(&chunk, &mut events) {
            return Ok(Ended::Dropped(err.to_string()));
        }
        for sse in events.drain(..) {
            let event: Event = serde_json::from_str(&sse.data).map_err(|err| {
                ClientError::BadAnswer(format!("an event of the stream is not an event ({err})"))
            })?;
            writer
                .write_batch(std::slice::from_ref(&event))
                .context("while printing events")?;
            // Only once it is printed: a resume starts after it.
            if sse.id.is_some() {
                *last_id = sse.id;
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    // The line the terminal echoed (`^C`) ends here.
    let _ = io::stderr().flush();
}
