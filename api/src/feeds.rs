//! The feed consumers a serving hub runs: the `projects` and `event_log`
//! read models, the NATS relay and the project orchestrator, each driven by
//! its own runner (`infrastructure::feed`). [`Feeds::start`] spawns them;
//! `/health` and `/metrics` read their status, read-your-writes waits on
//! the read models' ([`Feeds::read_models`]).

use std::sync::Arc;
use std::time::Duration;

use infrastructure::feed::{spawn_runner, AppendSignal, FeedHandle, PoisonPolicy, RunnerConfig};
use infrastructure::nats::{NatsConnection, NatsRelay};
use infrastructure::orchestration::{OrchestrationConfig, Orchestrator, ProcessManager};
use infrastructure::CommandBus;
use projections::{EventLogProjection, ProjectsProjection, ReadModelRunners, RunnerProgress};
use sqlx::PgPool;

use crate::config::ServeConfig;

/// The runners of this process, in the order `/health` lists them.
pub struct Feeds {
    handles: Vec<FeedHandle>,
    read_models: ReadModelRunners,
}

impl Feeds {
    /// Spawns the four runners, each on a connection of its own to `pool`'s
    /// database, woken by `appended`: the relay publishes through `nats`'s
    /// JetStream (and starts a batch over when the client connects again
    /// while it waits for JetStream), the
    /// orchestrator runs `orchestrator` and records its outcomes through
    /// `bus`. Must be called within a Tokio runtime.
    pub fn start(
        config: &ServeConfig,
        pool: &PgPool,
        appended: &AppendSignal,
        nats: &NatsConnection,
        bus: Arc<CommandBus>,
        orchestrator: Arc<dyn Orchestrator>,
    ) -> Self {
        let connect = (*pool.connect_options()).clone();
        let runner_config = RunnerConfig {
            max_poll: Duration::from_millis(config.feed_poll_ms.max(1)),
            ..RunnerConfig::default()
        };
        // The read models park an event they keep failing on and go on
        // (`hub projections retry` replays it); the relay and the process
        // manager keep the default, `Halt`: they must not skip an event.
        let read_model_config = RunnerConfig {
            poison: PoisonPolicy::Park,
            ..runner_config.clone()
        };
        let projects_projection = Arc::new(ProjectsProjection::new());
        let recent = projects_projection.recent();
        let projects = spawn_runner(
            projects_projection,
            connect.clone(),
            read_model_config.clone(),
            appended,
        );
        let event_log = spawn_runner(
            Arc::new(EventLogProjection::new(config.hub_id.clone())),
            connect.clone(),
            read_model_config,
            appended,
        );
        let relay = spawn_runner(
            Arc::new(
                NatsRelay::new(
                    async_nats::jetstream::new(nats.client.clone()),
                    config.stream_settings(),
                    config.hub_id.clone(),
                )
                .with_reconnections(nats.connections.clone()),
            ),
            connect.clone(),
            RunnerConfig {
                max_backoff: Duration::from_secs(5),
                ..runner_config.clone()
            },
            appended,
        );
        let orchestration = spawn_runner(
            Arc::new(ProcessManager::new(
                pool.clone(),
                bus,
                orchestrator,
                OrchestrationConfig {
                    hub_id: config.hub_id.clone(),
                    timeout: config.orchestration.timeout(),
                },
            )),
            connect,
            // The orchestrator's batches record requests it then acts on
            // (runs commands): they must survive a database crash.
            RunnerConfig {
                durable_commits: true,
                ..runner_config
            },
            appended,
        );
        let read_models = ReadModelRunners {
            projects: RunnerProgress::new(projects.watch()),
            recent,
            event_log: RunnerProgress::new(event_log.watch()),
        };
        Self {
            handles: vec![projects, event_log, relay, orchestration],
            read_models,
        }
    }

    /// The read models' runners, for read-your-writes.
    pub fn read_models(&self) -> ReadModelRunners {
        self.read_models.clone()
    }

    /// Every runner.
    pub fn iter(&self) -> impl Iterator<Item = &FeedHandle> {
        self.handles.iter()
    }

    /// Stops every runner (their locks are released for other processes).
    pub fn stop(&self) {
        for feed in &self.handles {
            feed.stop();
        }
    }
}
