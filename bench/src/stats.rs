//! Latency samples and their summary.

use std::time::Duration;

use serde::Serialize;

/// What one measured run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Operations completed.
    pub ops: usize,
    /// Failed operations (not counted in latencies).
    pub errors: usize,
    /// Operations per second over the run's wall time.
    pub throughput: f64,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile latency in milliseconds.
    pub p95_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Slowest operation in milliseconds.
    pub max_ms: f64,
}

/// Summarizes `samples` taken over `elapsed`.
pub fn summarize(mut samples: Vec<Duration>, errors: usize, elapsed: Duration) -> Summary {
    samples.sort_unstable();
    let pct = |p: f64| -> f64 {
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    Summary {
        ops: samples.len(),
        errors,
        throughput: samples.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_samples() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let s = summarize(samples, 2, Duration::from_secs(2));
        assert_eq!(s.ops, 100);
        assert_eq!(s.errors, 2);
        assert!((s.throughput - 50.0).abs() < 1e-6);
        assert!((s.p50_ms - 51.0).abs() < 1.01);
        assert!((s.p99_ms - 99.0).abs() < 1.01);
        assert!((s.max_ms - 100.0).abs() < 1e-9);
    }
}
