//! The query root.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result, ID};
use domain::SubjectFilter;
use projections::{Page, ProjectFilter};
use uuid::Uuid;

use super::admin::{self, Projection};
use super::error::{ApiError, ErrorCode};
use super::event_connection::EventConnection;
use super::types::{page_size, Event, EventFilter, Project, ProjectStats, ProjectStatus};
use crate::state::GraphqlState;

/// Reads, all answered from the read models.
#[derive(Default)]
pub struct QueryRoot;

/// Parses a client-given id.
pub(crate) fn parse_uuid(what: &str, id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        ApiError::invalid_input(format!(
            "'{}' is not a valid {what} id: expected a UUID such as 6f1c2f4e-8a0b-4b5e-9c3d-2a1b0c9d8e7f",
            id.chars().take(64).collect::<String>()
        ))
    })
}

#[Object(name = "Query")]
impl QueryRoot {
    /// One project, by id or by slug (exactly one of them). Deleted projects
    /// are found by id, not by slug (their slug is free for reuse).
    async fn project(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Option<Project>> {
        let state = ctx.data::<GraphqlState>()?;
        let row = match (id, slug) {
            (Some(id), None) => state.hub.read.project(parse_uuid("project", &id)?).await,
            (None, Some(slug)) => {
                text_argument("slug", &slug)?;
                state.hub.read.project_by_slug(&slug).await
            }
            _ => return Err(ApiError::invalid_input("give exactly one of id and slug").into()),
        }
        .map_err(ApiError::from)?;
        Ok(row.map(Project::from))
    }

    /// Projects in creation order, newest last. Without `status`, deleted
    /// projects are left out.
    #[graphql(complexity = "super::types::page_complexity(first, child_complexity)")]
    async fn projects(
        &self,
        ctx: &Context<'_>,
        status: Option<ProjectStatus>,
        #[graphql(desc = "Case-insensitive part of the name or slug.")] search: Option<String>,
        #[graphql(desc = "Page size, 0-1000 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item of the previous page.")] after: Option<String>,
    ) -> Result<Connection<String, Project, EmptyFields, EmptyFields>> {
        let state = ctx.data::<GraphqlState>()?;
        let first = page_size(first)?;
        if let Some(search) = &search {
            text_argument("search", search)?;
        }
        let filter = ProjectFilter {
            status: status.map(Into::into),
            search,
        };
        let page = state
            .hub
            .read
            .projects(&filter, first, after.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(connection(page, after.is_some()))
    }

    /// Counts of projects per status.
    async fn project_stats(&self, ctx: &Context<'_>) -> Result<ProjectStats> {
        let state = ctx.data::<GraphqlState>()?;
        Ok(state.hub.read.stats().await.map_err(ApiError::from)?.into())
    }

    /// Recorded events in commit order, oldest first. Follow
    /// `pageInfo.endCursor` while `hasNextPage`: a page whose filter has no
    /// index of its own (event types, `until`, `since`, a subject pattern
    /// beside other filters) reads at most `HUB_EVENTS_PAGE_SCAN_ROWS` events of
    /// the log, so it can hold fewer than `first`, even none, and still
    /// have a next page.
    #[graphql(complexity = "super::types::page_complexity(first, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        #[graphql(desc = "Page size, 0-1000 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last item of the previous page.")] after: Option<String>,
    ) -> Result<EventConnection> {
        let state = ctx.data::<GraphqlState>()?;
        let first = page_size(first)?;
        let filter = event_filter(filter.unwrap_or_default())?;
        let page = state
            .hub
            .read
            .events(&filter, first, after.as_deref())
            .await
            .map_err(ApiError::from)?;
        Ok(EventConnection::new(page, after.is_some()))
    }

    /// One event by id.
    async fn event(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Event>> {
        let state = ctx.data::<GraphqlState>()?;
        let row = state
            .hub
            .read
            .event(parse_uuid("event", &id)?)
            .await
            .map_err(ApiError::from)?;
        Ok(row.map(Event::from))
    }

    /// Admin: every read model's checkpoint lag and state, and the last
    /// rebuild this hub process started. Needs the API token when one is
    /// configured.
    async fn projections(&self, ctx: &Context<'_>) -> Result<Vec<Projection>> {
        admin::projections(ctx).await
    }
}

/// Longest free-text argument (ids, slugs, types) compared against stored values.
const MAX_TEXT_ARGUMENT: usize = 1024;

/// Checks a free-text argument that is only compared with stored values:
/// PostgreSQL text cannot hold NUL, and nothing stored is longer than the limit.
pub(crate) fn text_argument(name: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid_input(format!(
            "{name} must not contain NUL characters"
        )));
    }
    if value.len() > MAX_TEXT_ARGUMENT {
        return Err(ApiError::invalid_input(format!(
            "{name} is {} bytes long; at most {MAX_TEXT_ARGUMENT} are allowed",
            value.len()
        )));
    }
    Ok(())
}

pub(crate) fn event_filter(filter: EventFilter) -> Result<projections::EventFilter, ApiError> {
    let subject = filter
        .subject
        .as_deref()
        .map(SubjectFilter::parse)
        .transpose()
        .map_err(|err| ApiError::new(ErrorCode::InvalidInput, err.to_string()))?;
    if let Some(types) = &filter.event_types {
        if types.len() > 100 {
            return Err(ApiError::invalid_input(
                "eventTypes may list at most 100 types",
            ));
        }
        for event_type in types {
            text_argument("eventTypes", event_type)?;
        }
    }
    if let Some(id) = &filter.aggregate_id {
        text_argument("aggregateId", id)?;
    }
    if let Some(id) = &filter.correlation_id {
        text_argument("correlationId", id)?;
    }
    Ok(projections::EventFilter {
        subject,
        aggregate_id: filter.aggregate_id,
        correlation_id: filter.correlation_id,
        event_types: filter.event_types,
        since: filter.since,
        until: filter.until,
    })
}

/// A page of read-model rows as a GraphQL connection of `T`; `after_cursor`
/// tells whether the page follows a cursor (so has a previous page).
fn connection<R, T>(
    page: Page<R>,
    after_cursor: bool,
) -> Connection<String, T, EmptyFields, EmptyFields>
where
    T: From<R> + async_graphql::OutputType,
{
    let mut connection = Connection::new(after_cursor, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, row)| Edge::new(cursor, T::from(row))),
    );
    connection
}
