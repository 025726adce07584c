//! The mutation root: one command each, answered with the project as the
//! read model has it after the command (read-your-writes), or as the
//! command left it when the read model is late (`stale`).

use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use domain::{ProjectCommand, ProjectId, ProjectName, ProjectPath};
use infrastructure::{CommandMetadata, Executed};

use super::admin::{self, Projection, RetryResult, SkipResult};
use super::error::ApiError;
use super::query::parse_uuid;
use super::types::Project;
use super::RequestContext;
use crate::state::GraphqlState;

/// Changes, each recorded as events.
#[derive(Default)]
pub struct MutationRoot;

/// What a new project needs.
#[derive(InputObject, Debug)]
pub struct CreateProjectInput {
    /// Display name, 1-255 characters; its slug must be free.
    pub name: String,
    /// Absolute path of the project's directory.
    pub path: String,
}

/// The result of a mutation: the change is recorded.
#[derive(SimpleObject, Debug)]
pub struct ProjectPayload {
    /// The project after the mutation: as the read model shows it, or, when
    /// `stale`, as the command recorded it.
    pub project: Project,
    /// Correlation id of the request (also in the `X-Correlation-ID` header).
    pub correlation_id: String,
    /// True when the read model had not caught up with the change within
    /// the read-your-writes bound (`HUB_READ_YOUR_WRITES_TIMEOUT_MS`). The
    /// change is recorded all the same; `project` is as the command left it
    /// (its name, slug, path, ports, status and version are exact; its
    /// timestamps and `lastError` are the read model's older values), and
    /// queries show it once the read model catches up.
    pub stale: bool,
}

fn expected(version: Option<i64>) -> Result<Option<u64>, ApiError> {
    version
        .map(|v| {
            u64::try_from(v).map_err(|_| {
                ApiError::invalid_input(format!("expectedVersion must be 0 or more, got {v}"))
            })
        })
        .transpose()
}

/// Fails unless the request may change things; every mutation calls it
/// first, so a stranger learns nothing from input validation.
fn authorize(ctx: &Context<'_>) -> Result<()> {
    Ok(ctx.data::<RequestContext>()?.require_auth()?)
}

/// A command that only names its project: authorize, parse, run.
async fn run_on(
    ctx: &Context<'_>,
    id: &ID,
    expected_version: Option<i64>,
    command: ProjectCommand,
) -> Result<ProjectPayload> {
    authorize(ctx)?;
    run(ctx, project_id(id)?, command, expected(expected_version)?).await
}

/// Executes an authorized command and answers with the project as the read
/// model has it afterwards.
async fn run(
    ctx: &Context<'_>,
    id: ProjectId,
    command: ProjectCommand,
    expected_version: Option<u64>,
) -> Result<ProjectPayload> {
    let state = ctx.data::<GraphqlState>()?;
    let request = ctx.data::<RequestContext>()?;
    let metadata = CommandMetadata::for_request(
        request.correlation_id.clone(),
        state.hub.origin(&request.user),
    );
    let started = std::time::Instant::now();
    let Executed {
        version,
        project: commanded,
        position,
        ..
    } = state
        .hub
        .metrics
        .time_command(
            command.name(),
            state.bus.execute(id, command, expected_version, &metadata),
        )
        .await
        .map_err(ApiError::from)?;
    let executed_in = started.elapsed();
    // From here on the change is recorded: whatever the read model does,
    // the answer says so.
    let row = state
        .hub.read_your_writes
        .project(id.as_uuid(), version as i64, position)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(project_id = %id, error = %err, "could not read the project back after a command");
            None
        });
    tracing::debug!(
        project_id = %id,
        version,
        execute_ms = executed_in.as_secs_f64() * 1000.0,
        read_model_wait_ms = (started.elapsed() - executed_in).as_secs_f64() * 1000.0,
        "command executed"
    );
    if let Some(row) = row {
        return Ok(ProjectPayload {
            project: row.into(),
            correlation_id: request.correlation_id.clone(),
            stale: false,
        });
    }
    tracing::warn!(project_id = %id, version, "read model did not catch up in time; answering with the project as the command left it");
    let previous = state
        .hub
        .read_your_writes
        .current(id.as_uuid())
        .await
        .unwrap_or_default();
    let project =
        Project::as_commanded(&commanded, previous, chrono::Utc::now()).ok_or_else(|| {
            // A command that succeeded leaves a created project.
            ApiError::internal(&format!("command on {id} left no project"))
        })?;
    Ok(ProjectPayload {
        project,
        correlation_id: request.correlation_id.clone(),
        stale: true,
    })
}

fn project_id(id: &ID) -> Result<ProjectId, ApiError> {
    parse_uuid("project", id).map(ProjectId::from_uuid)
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a stopped project with a free slug and four free ports.
    async fn create_project(
        &self,
        ctx: &Context<'_>,
        input: CreateProjectInput,
    ) -> Result<ProjectPayload> {
        authorize(ctx)?;
        let name = ProjectName::parse(&input.name).map_err(ApiError::invalid_input)?;
        let path = ProjectPath::parse(&input.path).map_err(ApiError::invalid_input)?;
        let id = ProjectId::new();
        run(
            ctx,
            id,
            ProjectCommand::CreateProject {
                project_id: id,
                name,
                path,
            },
            None,
        )
        .await
    }

    /// Asks for a stopped (or failed) project to be started. Answers at
    /// once with the project STARTING; it becomes RUNNING (or ERROR, with
    /// `lastError`) when the orchestrator is done; watch `projectChanged`.
    async fn start_project(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> Result<ProjectPayload> {
        run_on(ctx, &id, expected_version, ProjectCommand::StartProject).await
    }

    /// Asks for a running (or failed) project to be stopped. Answers at
    /// once with the project STOPPING; it becomes STOPPED (or ERROR) when
    /// the orchestrator is done.
    async fn stop_project(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> Result<ProjectPayload> {
        run_on(ctx, &id, expected_version, ProjectCommand::StopProject).await
    }

    /// Asks for a running (or failed) project to be stopped and started
    /// again. Answers at once with the project STOPPING; it goes on to
    /// STARTING once stopped, then RUNNING (or ERROR if either half fails).
    async fn restart_project(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> Result<ProjectPayload> {
        run_on(ctx, &id, expected_version, ProjectCommand::RestartProject).await
    }

    /// Renames a project (its slug follows the name and must be free).
    async fn rename_project(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: String,
        expected_version: Option<i64>,
    ) -> Result<ProjectPayload> {
        authorize(ctx)?;
        let id = project_id(&id)?;
        let name = ProjectName::parse(&name).map_err(ApiError::invalid_input)?;
        run(
            ctx,
            id,
            ProjectCommand::RenameProject { name },
            expected(expected_version)?,
        )
        .await
    }

    /// Deletes a stopped (or failed) project; its slug and ports become free.
    async fn delete_project(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: Option<i64>,
    ) -> Result<ProjectPayload> {
        run_on(ctx, &id, expected_version, ProjectCommand::DeleteProject).await
    }

    /// Admin: rebuilds read models from the event store in the background,
    /// beside the live ones, which keep answering queries until the rebuilt
    /// tables take over; an interrupted rebuild continues where it stopped.
    /// Answers at once with every read model's state (follow it with the
    /// `projections` query).
    async fn rebuild_projections(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The read models to rebuild (`projects`, `event_log`); all when left out."
        )]
        names: Option<Vec<String>>,
    ) -> Result<Vec<Projection>> {
        admin::rebuild(ctx, names).await
    }

    /// Admin: replays a read model's parked events in order (e.g. after the
    /// cause of their failure was fixed); those that fail again stay parked.
    async fn retry_parked_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The read model (`projects`, `event_log`).")] name: String,
    ) -> Result<RetryResult> {
        admin::retry(ctx, name).await
    }

    /// Admin: gives up on one parked event of a feed consumer (a read
    /// model, `nats_relay` or `project_orchestrator`), e.g. one whose stored
    /// row cannot be read back. It stays in the event store; that consumer
    /// never handles it. Events of its aggregate parked behind it stay
    /// parked until `retryParkedEvents`.
    async fn skip_parked_event(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The feed consumer.")] name: String,
        #[graphql(desc = "The parked event's id.")] event_id: ID,
    ) -> Result<SkipResult> {
        admin::skip(ctx, name, event_id).await
    }
}
