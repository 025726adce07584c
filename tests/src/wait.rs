//! Waiting on conditions, with a deadline instead of a guessed sleep.

use std::future::Future;
use std::time::Duration;

/// Polls `condition` every 10 ms until it returns `Some`, or panics with
/// `what` after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks `condition` every 10 ms for `period` and panics with `what` the
/// first time it is false: for claims that something does *not* happen
/// (a runner does not skip ahead, a standby does not take over).
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + period;
    loop {
        assert!(
            condition().await,
            "{what} stopped holding before {period:?}"
        );
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
