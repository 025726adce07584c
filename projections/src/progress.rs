//! How far one read model's runner has got, as this process sees it: the
//! waits of read-your-writes ([`crate::ReadYourWrites`]) are built on it.
//!
//! A runner moves its checkpoint in the same commit as the rows it writes,
//! and reports the commit in its [`ConsumerStatus`] only after that, so a
//! read model whose runner is active here shows every event up to the
//! status's checkpoint. Waiting for a write is then waiting for that
//! `watch` to pass the write's feed position: no query, no timer. Only a
//! runner in another process needs reading the read model again and again
//! ([`poll_until`]).

use std::future::Future;
use std::time::Duration;

use infrastructure::feed::{ConsumerStatus, FeedPosition};
use tokio::sync::watch;
use tokio::time::Instant;

/// How often a read model another process runs is read while waiting.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(20);

/// One read model's runner in this process, through its status.
#[derive(Clone, Debug)]
pub struct RunnerProgress {
    status: watch::Receiver<ConsumerStatus>,
}

/// How a wait for a feed position ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passed {
    /// The runner is active here and its checkpoint is at or past the
    /// position: the read model shows everything up to it.
    Yes,
    /// The runner is not active in this process (another runs it, or it
    /// stopped): only reading the read model can tell.
    NotHere,
    /// The deadline came first.
    Late,
}

impl RunnerProgress {
    /// Follows the runner whose status `status` receives
    /// ([`infrastructure::feed::FeedHandle::watch`]).
    pub fn new(status: watch::Receiver<ConsumerStatus>) -> Self {
        Self { status }
    }

    /// Waits until the runner's checkpoint reaches `position`, while the
    /// runner is active here, at most until `deadline`.
    pub async fn passed(&self, position: FeedPosition, deadline: Instant) -> Passed {
        let mut status = self.status.clone();
        loop {
            {
                let now = status.borrow_and_update();
                if !now.active {
                    return Passed::NotHere;
                }
                if now.checkpoint >= position {
                    return Passed::Yes;
                }
            }
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        // The runner is gone (the hub is stopping).
                        return Passed::NotHere;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return Passed::Late,
            }
        }
    }
}

/// Calls `read` at once and then every [`POLL_EVERY`] until it gives a
/// value, or `None` once `deadline` has passed.
///
/// # Errors
/// The first error `read` returns.
pub(crate) async fn poll_until<T, E, F, Fut>(deadline: Instant, mut read: F) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    loop {
        if let Some(found) = read().await? {
            return Ok(Some(found));
        }
        let next = Instant::now() + POLL_EVERY;
        if next > deadline {
            return Ok(None);
        }
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn at(position: i64) -> FeedPosition {
        FeedPosition {
            transaction_id: 10,
            position,
        }
    }

    fn running_at(position: i64) -> ConsumerStatus {
        ConsumerStatus {
            active: true,
            checkpoint: at(position),
            ..ConsumerStatus::default()
        }
    }

    fn in_an_hour() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_already_past_the_write_answers_at_once() {
        let (_runner, status) = watch::channel(running_at(7));
        let progress = RunnerProgress::new(status);
        let started = Instant::now();
        assert_eq!(progress.passed(at(7), in_an_hour()).await, Passed::Yes);
        assert_eq!(progress.passed(at(3), in_an_hour()).await, Passed::Yes);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_that_moves_later_wakes_the_wait() {
        let (runner, status) = watch::channel(running_at(1));
        let progress = RunnerProgress::new(status);
        let wait = tokio::spawn(async move { progress.passed(at(5), in_an_hour()).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        // A commit short of the write: still waiting.
        runner.send_modify(|s| s.checkpoint = at(4));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!wait.is_finished());
        let moved_at = Instant::now();
        runner.send_modify(|s| s.checkpoint = at(9));
        assert_eq!(wait.await.unwrap(), Passed::Yes);
        assert_eq!(moved_at.elapsed(), Duration::ZERO, "woken, not polled");
    }

    #[tokio::test(start_paused = true)]
    async fn a_runner_not_active_here_leaves_it_to_reading() {
        let (runner, status) = watch::channel(ConsumerStatus::default());
        let progress = RunnerProgress::new(status);
        assert_eq!(progress.passed(at(1), in_an_hour()).await, Passed::NotHere);

        // One that loses its lock while a write is awaited.
        runner.send_replace(running_at(1));
        let waiting = progress.clone();
        let wait = tokio::spawn(async move { waiting.passed(at(5), in_an_hour()).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        runner.send_modify(|s| s.active = false);
        assert_eq!(wait.await.unwrap(), Passed::NotHere);

        // One that is gone.
        drop(runner);
        assert_eq!(progress.passed(at(5), in_an_hour()).await, Passed::NotHere);
    }

    #[tokio::test(start_paused = true)]
    async fn a_checkpoint_that_does_not_arrive_in_time_is_late() {
        let (_runner, status) = watch::channel(running_at(1));
        let progress = RunnerProgress::new(status);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(500);
        assert_eq!(progress.passed(at(5), deadline).await, Passed::Late);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn polling_reads_until_the_value_shows() {
        let reads = AtomicU32::new(0);
        let found = poll_until(in_an_hour(), || async {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            Ok::<_, ()>((n == 3).then_some(n))
        })
        .await;
        assert_eq!(found, Ok(Some(3)));
    }

    #[tokio::test(start_paused = true)]
    async fn polling_gives_up_at_the_deadline_and_stops_on_an_error() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        let reads = AtomicU32::new(0);
        let found = poll_until(deadline, || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<()>, ()>(None)
        })
        .await;
        assert_eq!(found, Ok(None));
        assert!(Instant::now() <= deadline);
        // At once, then every 20 ms up to the deadline.
        assert_eq!(reads.load(Ordering::SeqCst), 6);

        let failed = poll_until(deadline, || async { Err::<Option<()>, _>("down") }).await;
        assert_eq!(failed, Err("down"));
    }
}
