//! Rebuilds run by a serving hub, in the background: asked for by the admin
//! GraphQL mutations, or at start for read models whose code version changed
//! (`HUB_REBUILD_OUTDATED`).
//!
//! A rebuild is the same zero-downtime replay `hub projections rebuild` runs
//! (see `projections::rebuild`): its advisory lock keeps it to one per read
//! model across every process on the database, and whatever it did survives
//! a crash, so a rebuild asked for again continues where it stopped. This
//! module only remembers, per read model, what the rebuilds started by this
//! process are doing, for the admin queries and the logs.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use projections::{rebuild, Progress, RebuildError, RebuildOptions, RebuildOutcome, Rebuildable};
use sqlx::PgPool;

/// What the last rebuild of a read model started by this process did.
#[derive(Clone, Debug, PartialEq)]
pub enum RebuildJob {
    /// Replaying; the progress after the last batch (none before the first).
    Running {
        /// When it started.
        started_at: DateTime<Utc>,
        /// After the last committed batch.
        progress: Option<Progress>,
    },
    /// Switched over to the rebuilt table.
    Switched {
        /// When it finished.
        finished_at: DateTime<Utc>,
        /// Events the rebuilt table holds.
        events: i64,
        /// Events per second of this run.
        rate: f64,
    },
    /// Failed; what it did so far is kept, and starting it again continues.
    Failed {
        /// When it failed.
        failed_at: DateTime<Utc>,
        /// What went wrong, in words fit for an operator (not a client).
        error: String,
    },
}

/// Why a rebuild could not be started.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    /// No read model has that name.
    #[error("no read model is named {0:?}")]
    Unknown(String),
    /// This process is already rebuilding it.
    #[error("a rebuild of {0} is already running in this hub")]
    AlreadyRunning(&'static str),
}

/// The background rebuilds of one hub process.
#[derive(Clone)]
pub struct Rebuilds {
    pool: PgPool,
    hub_id: String,
    options: RebuildOptions,
    jobs: Arc<Mutex<HashMap<&'static str, RebuildJob>>>,
}

impl Rebuilds {
    /// Rebuilds on `pool` for the hub `hub_id` (the event log's subjects).
    pub fn new(pool: PgPool, hub_id: impl Into<String>) -> Self {
        Self {
            pool,
            hub_id: hub_id.into(),
            options: RebuildOptions::default(),
            jobs: Arc::default(),
        }
    }

    /// Every rebuildable read model of this hub.
    pub fn targets(&self) -> Vec<Rebuildable> {
        Rebuildable::all(&self.hub_id)
    }

    /// The read model called `name`.
    ///
    /// # Errors
    /// [`StartError::Unknown`] when there is none.
    pub fn target(&self, name: &str) -> Result<Rebuildable, StartError> {
        Rebuildable::by_name(name, &self.hub_id).ok_or_else(|| StartError::Unknown(name.to_owned()))
    }

    /// What the last rebuild of each read model started here did.
    pub fn jobs(&self) -> HashMap<&'static str, RebuildJob> {
        self.lock().clone()
    }

    /// Starts rebuilding `targets` one after the other in the background,
    /// and returns at once. A target this process is already rebuilding
    /// refuses the whole request, which then starts nothing.
    ///
    /// # Errors
    /// [`StartError::AlreadyRunning`] as said.
    pub fn start(
        &self,
        targets: Vec<Rebuildable>,
    ) -> Result<tokio::task::JoinHandle<()>, StartError> {
        {
            let mut jobs = self.lock();
            if let Some(busy) = targets
                .iter()
                .find(|t| matches!(jobs.get(t.name()), Some(RebuildJob::Running { .. })))
            {
                return Err(StartError::AlreadyRunning(busy.name()));
            }
            for target in &targets {
                jobs.insert(
                    target.name(),
                    RebuildJob::Running {
                        started_at: Utc::now(),
                        progress: None,
                    },
                );
            }
        }
        let this = self.clone();
        Ok(tokio::spawn(async move {
            for target in targets {
                let job = match this.run(&target).await {
                    Ok(job) => job,
                    Err(err) => {
                        tracing::error!(projection = target.name(), error = %err, "background rebuild failed; start it again to continue");
                        RebuildJob::Failed {
                            failed_at: Utc::now(),
                            error: err.to_string(),
                        }
                    }
                };
                this.lock().insert(target.name(), job);
            }
        }))
    }

    async fn run(&self, target: &Rebuildable) -> Result<RebuildJob, RebuildError> {
        let name = target.name();
        tracing::info!(projection = name, "background rebuild started");
        let outcome = rebuild(&self.pool, target, &self.options, |progress| {
            if let Some(RebuildJob::Running { progress: last, .. }) = self.lock().get_mut(name) {
                *last = Some(progress.clone());
            }
            ControlFlow::Continue(())
        })
        .await?;
        let progress = match outcome {
            RebuildOutcome::Switched(progress) => progress,
            // Only `on_batch` stops a rebuild, and it never does here.
            RebuildOutcome::Stopped(progress) => {
                return Ok(RebuildJob::Failed {
                    failed_at: Utc::now(),
                    error: format!("stopped after {} events", progress.done),
                })
            }
        };
        tracing::info!(
            projection = name,
            events = progress.done,
            events_per_second = progress.rate().round(),
            "background rebuild switched over"
        );
        Ok(RebuildJob::Switched {
            finished_at: Utc::now(),
            events: progress.done,
            rate: progress.rate(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, RebuildJob>> {
        // A panic while holding this lock leaves a plain map behind: still usable.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
