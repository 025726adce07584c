//! Closed-loop load: a number of clients, each doing its operations one
//! after the other, every operation timed.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{summarize, Summary};

/// One client's latency samples and error count.
pub(crate) type Outcome = (Vec<Duration>, usize);

/// Every client's samples and errors together.
pub(crate) async fn gather(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Outcome {
    let mut samples = Vec::new();
    let mut errors = 0;
    for task in tasks {
        if let Ok((s, e)) = task.await {
            samples.extend(s);
            errors += e;
        }
    }
    (samples, errors)
}

/// Runs `op(client, i)` for `i` in `0..per_client` on each of `clients`
/// concurrent clients; a failed operation counts as an error, not a sample.
pub(crate) async fn closed_loop<F, Fut, T, E>(clients: usize, per_client: usize, op: F) -> Summary
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks = (0..clients)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut samples, mut errors) = (Vec::with_capacity(per_client), 0);
                for i in 0..per_client {
                    let t = Instant::now();
                    match op(client, i).await {
                        Ok(_) => samples.push(t.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let (samples, errors) = gather(tasks).await;
    summarize(samples, errors, started.elapsed())
}
