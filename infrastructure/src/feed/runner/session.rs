//! One session of a runner: from connecting to losing the connection.
//!
//! In order: connect, wait for the consumer's lock, load its
//! [`RunnerState`], tell the consumer it is active, then step batch after
//! batch ([`Runner::step`]) and react to each outcome ([`Runner::react`]):
//! wait for news when idle, back off and retry on a failure, and look for
//! the failing event ([`Runner::isolate`]) once a batch has failed
//! `max_attempts` times.

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};

use super::batch::Stepped;
use super::state::RunnerState;
use super::{Runner, StepError};
use crate::feed::consumer::{ConsumerError, FeedConsumer, RunnerConfig};

/// How long a session waits: between polls while idle, between retries
/// after a failure; and the current batch's failures in a row.
#[derive(Debug)]
pub(super) struct Pacing {
    /// The next wait while idle: `min_poll`, doubling up to `max_poll`.
    idle: Duration,
    /// The next wait after a failure: `min_backoff`, doubling up to
    /// `max_backoff`.
    backoff: Duration,
    /// Failures of the current batch in a row, outages aside.
    attempts: u32,
    min_poll: Duration,
    max_poll: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl Pacing {
    fn new(config: &RunnerConfig) -> Self {
        Self {
            idle: config.min_poll,
            backoff: config.min_backoff,
            attempts: 0,
            min_poll: config.min_poll,
            max_poll: config.max_poll,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
        }
    }

    /// The batch went through: the next poll and the next backoff start
    /// short again.
    fn progressed(&mut self) {
        self.attempts = 0;
        self.idle = self.min_poll;
        self.backoff = self.min_backoff;
    }

    /// Waits the current backoff, then doubles it.
    async fn back_off(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
    }

    /// Waits the current idle delay, then doubles it.
    async fn poll_later(&mut self) {
        tokio::time::sleep(self.idle).await;
        self.slower_polls();
    }

    fn slower_polls(&mut self) {
        self.idle = (self.idle * 2).min(self.max_poll);
    }
}

impl<C: FeedConsumer> Runner<C> {
    /// Runs one session until the connection fails; returns why.
    pub(super) async fn hold_lock_and_consume(&mut self) -> StepError {
        let (mut conn, mut state) = match self.activate().await {
            Ok(active) => active,
            Err(err) => return err.into(),
        };
        let mut pacing = Pacing::new(&self.config);
        loop {
            let stepped = self.step(&mut conn, &mut state).await;
            if let Err(err) = self
                .react(stepped, &mut conn, &mut state, &mut pacing)
                .await
            {
                return err;
            }
        }
    }

    /// Connects, waits for the consumer's lock, and loads its state.
    async fn activate(&self) -> Result<(PgConnection, RunnerState), sqlx::Error> {
        let mut conn = PgConnection::connect_with(&self.connect).await?;
        self.wait_for_lock(&mut conn).await?;
        // A consumer's batch and checkpoint commit together, and what most
        // consumers write can be redone from the store: losing the last
        // commits in a database crash only means handling those events again.
        // So the runner does not wait for the WAL flush, except on the
        // batches of a durable consumer that write (see `begin_batch`).
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut conn)
            .await?;
        let name = self.consumer.name();
        tracing::info!(consumer = %name, "feed runner is active");
        let state = RunnerState::load(&mut conn, name).await?;
        self.consumer.on_activate().await;
        self.status.activated(state.checkpoint(), state.handled());
        Ok((conn, state))
    }

    /// Takes the consumer's lock (a session-level advisory lock, held as
    /// long as `conn`), retrying every `lock_retry` while another runner
    /// holds it.
    async fn wait_for_lock(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
                .bind(format!("hub.feed.{}", self.consumer.name()))
                .fetch_one(&mut *conn)
                .await?;
            if locked {
                return Ok(());
            }
            tokio::time::sleep(self.config.lock_retry).await;
        }
    }

    /// What the session does after a step: an error returned here ends it.
    async fn react(
        &mut self,
        stepped: Result<Stepped, StepError>,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        pacing: &mut Pacing,
    ) -> Result<(), StepError> {
        match stepped {
            Ok(Stepped::Idle) => self.wait_for_news(pacing).await,
            Ok(Stepped::Advanced) => pacing.progressed(),
            Err(StepError::Consumer(err)) if self.consumer.is_outage(&err) => {
                self.outage(conn, err, pacing).await?;
            }
            Err(StepError::Consumer(err)) => self.failed(conn, state, err, pacing).await?,
            Err(err) => return Err(err),
        }
        Ok(())
    }

    /// Waits until this process appends events or the idle delay passes.
    /// After a wake-up the new event may still be held back by the fence
    /// (an older transaction still running) for a moment: the next read
    /// comes after `min_poll`, then later and later.
    async fn wait_for_news(&mut self, pacing: &mut Pacing) {
        tokio::select! {
            woken = self.appended.changed() => {
                if woken.is_err() {
                    // Every writer is gone: only polling is left.
                    pacing.poll_later().await;
                } else {
                    pacing.idle = pacing.min_poll;
                }
            }
            _ = tokio::time::sleep(pacing.idle) => pacing.slower_polls(),
        }
    }

    /// The consumer could not reach a service: not its fault, so retried
    /// until it works and not counted towards `max_attempts`.
    async fn outage(
        &self,
        conn: &mut PgConnection,
        err: ConsumerError,
        pacing: &mut Pacing,
    ) -> Result<(), StepError> {
        let name = self.consumer.name();
        // The consumer's statements run on this runner's connection, which
        // may be the one that broke (its reads may have come from the
        // shared window, so the consumer was the first to use it): then
        // only a new one helps.
        if let Err(broken) = conn.ping().await {
            tracing::warn!(consumer = %name, error = %err, "feed consumer failed on a broken connection; reconnecting");
            return Err(broken.into());
        }
        let failures = self.status.failed(err.to_string());
        tracing::warn!(consumer = %name, error = %err, failures, retry_in = ?pacing.backoff, "feed consumer could not reach a service; retrying");
        pacing.back_off().await;
        Ok(())
    }

    /// The consumer failed on the batch: retried with backoff, and after
    /// `max_attempts` failures the failing event is looked for.
    async fn failed(
        &self,
        conn: &mut PgConnection,
        state: &mut RunnerState,
        err: ConsumerError,
        pacing: &mut Pacing,
    ) -> Result<(), StepError> {
        let name = self.consumer.name();
        pacing.attempts += 1;
        let failures = self.status.failed(err.to_string());
        if pacing.attempts < self.config.max_attempts.max(1) {
            tracing::error!(consumer = %name, error = %err, failures, retry_in = ?pacing.backoff, "feed consumer failed on a batch; retrying");
            pacing.back_off().await;
            return Ok(());
        }
        let attempts = pacing.attempts;
        tracing::error!(consumer = %name, error = %err, attempts, "feed consumer keeps failing on a batch; looking for the failing event");
        // The search moves the checkpoint row event by event, from where
        // it is: save what is pending first.
        state.save(&mut *conn).await?;
        match self.isolate(conn, state, attempts).await {
            // Everything was handled or parked.
            Ok(None) => pacing.progressed(),
            Ok(Some(on)) => {
                // Halted: stay on the event; try it again later.
                pacing.attempts = 0;
                self.status.halted(on);
                pacing.back_off().await;
            }
            Err(StepError::Consumer(err)) => {
                self.status.failed(err.to_string());
                pacing.back_off().await;
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }
}
