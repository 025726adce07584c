//! A minimal consumer of the hub's events: subscribes to a NATS subject
//! with a core (non-JetStream) subscription and prints every message, one
//! line each: the subject, then the envelope JSON.
//!
//! ```sh
//! cargo run -p api --example event_consumer -- --nats-url nats://localhost:4222 --subject 'hub.>'
//! ```
//!
//! Stops cleanly on Ctrl-C (SIGINT) or SIGTERM, printing how many events it
//! received. A core subscription sees only what is published while it runs;
//! to read history or resume after a gap, consume the hub's JetStream stream
//! (`HUB_<HUB_ID>`) instead.

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt as _;

/// Prints the hub's events as they are published.
#[derive(Debug, Parser)]
#[command(name = "event_consumer")]
struct Args {
    /// NATS server to connect to.
    #[arg(long, default_value = "nats://localhost:4222")]
    nats_url: String,

    /// Subject to subscribe to; NATS wildcards allowed (`*` one token, `>` the rest).
    #[arg(long, default_value = "hub.>")]
    subject: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("while connecting to NATS at {}", args.nats_url))?;
    let mut subscription = client
        .subscribe(args.subject.clone())
        .await
        .with_context(|| format!("while subscribing to {}", args.subject))?;
    // Once the server has seen the subscription, nothing published from now
    // on is missed: say so, for whoever waits on this consumer.
    client
        .flush()
        .await
        .context("while confirming the subscription")?;
    eprintln!(
        "subscribed to {} at {}; press Ctrl-C to stop",
        args.subject, args.nats_url
    );

    let mut count: u64 = 0;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            message = subscription.next() => {
                let Some(message) = message else {
                    eprintln!("the subscription ended");
                    break;
                };
                count += 1;
                let body = match serde_json::from_slice::<serde_json::Value>(&message.payload) {
                    Ok(json) => json.to_string(),
                    Err(_) => String::from_utf8_lossy(&message.payload).into_owned(),
                };
                println!("{} {body}", message.subject);
            }
        }
    }
    // Best effort: the process ends either way.
    let _ = subscription.unsubscribe().await;
    let _ = client.flush().await;
    println!("received {count} events");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
}
