//! Read-your-writes: an answer to a write waits (bounded) until the read
//! models show it, so that the client's next query sees what it just did.
//!
//! One mechanism for every write. The writer knows the feed position of
//! its last event (`infrastructure::Executed::position`,
//! `infrastructure::Recorded::position`). While the read model's runner is
//! active in this process, the wait is on its checkpoint
//! ([`RunnerProgress::passed`]); then the `projects` row comes from the rows the
//! runner keeps in memory ([`RecentRows`]) when they hold it at that
//! version, else from one read of the table. While another process runs
//! it, the read model is read every 20 ms ([`poll_until`]). Either way the
//! wait ends at the deadline (`HUB_READ_YOUR_WRITES_TIMEOUT_MS`), and the
//! caller answers anyway, saying so.

use std::time::Duration;

use infrastructure::feed::FeedPosition;
use tokio::time::Instant;
use uuid::Uuid;

use crate::progress::{poll_until, Passed, RunnerProgress};
use crate::projects::ProjectRow;
use crate::queries::{QueryError, ReadModels};
use crate::recent::RecentRows;

/// The waits of read-your-writes on the `projects` and `event_log` read
/// models. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadYourWrites {
    read: ReadModels,
    projects: RunnerProgress,
    recent: RecentRows,
    event_log: RunnerProgress,
    timeout: Duration,
}

/// The read models' runners [`ReadYourWrites`] waits on, and the rows the
/// `projects` runner keeps in memory.
#[derive(Clone, Debug)]
pub struct ReadModelRunners {
    /// The `projects` runner.
    pub projects: RunnerProgress,
    /// Its latest committed rows ([`crate::ProjectsProjection::recent`]).
    pub recent: RecentRows,
    /// The `event_log` runner.
    pub event_log: RunnerProgress,
}

impl ReadYourWrites {
    /// Waits on `runners`, reading through `read`, each wait at most
    /// `timeout`.
    pub fn new(read: ReadModels, runners: ReadModelRunners, timeout: Duration) -> Self {
        Self {
            read,
            projects: runners.projects,
            recent: runners.recent,
            event_log: runners.event_log,
            timeout,
        }
    }

    /// Waits until the `projects` row of `id` is at `version` or later, and
    /// returns it; `written_at` is where the write's last event is in the
    /// feed (`None` for a write that recorded nothing). `None` when the
    /// deadline passes first: the caller must then not present older data
    /// as the write's result.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn project(
        &self,
        id: Uuid,
        version: i64,
        written_at: Option<FeedPosition>,
    ) -> Result<Option<ProjectRow>, QueryError> {
        let deadline = Instant::now() + self.timeout;
        if let Some(row) = self.recent.at_least(id, version) {
            return Ok(Some(row));
        }
        if let Some(position) = written_at {
            match self.projects.passed(position, deadline).await {
                Passed::Yes => {
                    if let Some(row) = self.recent.at_least(id, version) {
                        return Ok(Some(row));
                    }
                }
                Passed::NotHere => {}
                Passed::Late => return Ok(None),
            }
        }
        // Read until the row shows the version. Past a local checkpoint the
        // first read finds it, unless the event was parked: its row then
        // waits for the retry, and the wait for the deadline.
        poll_until(deadline, || async {
            Ok(self
                .read
                .project(id)
                .await?
                .filter(|row| row.version >= version))
        })
        .await
    }

    /// The `projects` row of `id` as the read model holds it now, however
    /// far behind the write: what a write's answer starts from when
    /// [`Self::project`] timed out. Read on the writes' own connections,
    /// never waiting behind clients' reads.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn current(&self, id: Uuid) -> Result<Option<ProjectRow>, QueryError> {
        self.read.project(id).await
    }

    /// Waits until the event log holds event `id`, appended at `written_at`:
    /// true once it does (or parked it), false when the deadline passed
    /// first.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn event(&self, id: Uuid, written_at: FeedPosition) -> Result<bool, QueryError> {
        let deadline = Instant::now() + self.timeout;
        match self.event_log.passed(written_at, deadline).await {
            Passed::Yes => return Ok(true),
            Passed::Late => return Ok(false),
            Passed::NotHere => {}
        }
        let logged = poll_until(deadline, || async {
            Ok::<_, QueryError>(self.read.event(id).await?.map(drop))
        })
        .await?;
        Ok(logged.is_some())
    }
}
