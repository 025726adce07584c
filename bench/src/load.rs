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

/// What a closed loop measured, before it is summarized: runs can be
/// merged, so that interleaved rounds of one side add up to one figure.
#[derive(Debug, Default)]
pub(crate) struct Sampled {
    samples: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Sampled {
    /// Adds `other`'s samples, errors and wall time to these.
    pub(crate) fn merge(&mut self, other: Sampled) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
        self.elapsed += other.elapsed;
    }

    /// Throughput over the summed wall time, and the percentiles.
    pub(crate) fn summary(self) -> Summary {
        summarize(self.samples, self.errors, self.elapsed)
    }
}

/// Runs `op(client, i)` for `i` in `0..per_client` on each of `clients`
/// concurrent clients; a failed operation counts as an error, not a sample.
pub(crate) async fn closed_loop<F, Fut, T, E>(clients: usize, per_client: usize, op: F) -> Summary
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    T: Send,
{
    sampled_loop(clients, per_client, op).await.summary()
}

/// [`closed_loop`], unsummarized.
pub(crate) async fn sampled_loop<F, Fut, T, E>(clients: usize, per_client: usize, op: F) -> Sampled
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
    Sampled {
        samples,
        errors,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_rounds_add_their_samples_and_wall_times() {
        let round = |ms: u64, n: usize| Sampled {
            samples: vec![Duration::from_millis(ms); n],
            errors: 1,
            elapsed: Duration::from_secs(1),
        };
        let mut all = round(10, 30);
        all.merge(round(30, 10));
        let summary = all.summary();
        assert_eq!(summary.ops, 40);
        assert_eq!(summary.errors, 2);
        assert!((summary.throughput - 20.0).abs() < 1e-9);
        assert!((summary.p50_ms - 10.0).abs() < 1e-9);
        assert!((summary.p99_ms - 30.0).abs() < 1e-9);
    }
}
