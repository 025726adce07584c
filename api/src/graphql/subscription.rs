//! The subscription root: live changes, fed by this process's single
//! JetStream consumer ([`infrastructure::nats::LiveFeed`]) and fanned out in
//! memory.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Result, Subscription, ID};
use futures::{Stream, StreamExt as _};
use infrastructure::feed::{position_of, FeedPosition};
use infrastructure::nats::Envelope;
use projections::cursor::decode_event_cursor;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use super::query::{event_filter, parse_uuid};
use super::types::{Event, EventFilter, Project};
use super::{ApiState, RequestContext};
use crate::live_events::{replay_then_live, LiveError, OnLag};

/// Live updates over WebSocket (`/graphql/ws`).
#[derive(Default)]
pub struct SubscriptionRoot;

fn lagged(skipped: u64, resume: Option<FeedPosition>) -> async_graphql::Error {
    let how = match resume {
        Some(at) => format!(
            "resubscribe with after: \"{}\" to continue without a gap",
            projections::cursor::encode_event_cursor(at)
        ),
        None => "resubscribe, and re-read what you need with a query".to_owned(),
    };
    ApiError::new(
        ErrorCode::Unavailable,
        format!("this subscription fell {skipped} events behind and was ended; {how}"),
    )
    .into()
}

/// Resolves `after`: an event cursor from a query, or a bare global position.
async fn resolve_after(state: &ApiState, after: &str) -> Result<FeedPosition, ApiError> {
    if let Ok(position) = after.parse::<i64>() {
        if position == 0 {
            return Ok(FeedPosition::START);
        }
        return position_of(state.read.pool(), position)
            .await
            .map_err(|err| ApiError::from(projections::QueryError::from(err)))?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("no event has position {position}; pass a position or cursor of an existing event"),
                )
            });
    }
    decode_event_cursor(after).map_err(ApiError::invalid_input)
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The project as the read model has it after each change: of project
    /// `id`, or of every project when `id` is absent.
    async fn project_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<Project>>> {
        ctx.data::<RequestContext>()?.require_read()?;
        let state = ctx.data::<ApiState>()?.clone();
        let only = id.map(|id| parse_uuid("project", &id)).transpose()?;
        let mut live = state.live.subscribe();
        Ok(async_stream::stream! {
            let mut shown: HashMap<Uuid, i64> = HashMap::new();
            loop {
                let event: Arc<Envelope> = match live.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(skipped)) => {
                        yield Err(lagged(skipped, None));
                        break;
                    }
                    Err(RecvError::Closed) => break,
                };
                if event.aggregate_type != "Project" {
                    continue;
                }
                let Ok(project_id) = Uuid::parse_str(&event.aggregate_id) else {
                    continue;
                };
                if only.is_some_and(|only| only != project_id) {
                    continue;
                }
                if shown.get(&project_id).is_some_and(|v| *v >= event.sequence) {
                    continue;
                }
                let row = state
                    .read
                    .wait_for_project_version(
                        project_id,
                        event.sequence,
                        state.read_your_writes_timeout,
                        state.projects_progress.clone(),
                    )
                    .await;
                match row {
                    Ok(Some(row)) => {
                        shown.insert(project_id, row.version);
                        yield Ok(Project::from(row));
                    }
                    Ok(None) => yield Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the read model did not catch up with a change in time; query the project again",
                    ).into()),
                    Err(err) => yield Err(ApiError::from(err).into()),
                }
            }
        })
    }

    /// Events as they are recorded. With `after` (a cursor from `events` or
    /// a global position), first replays what was recorded after it, then
    /// continues live, with no gap and no duplicate at the seam.
    async fn events(
        &self,
        ctx: &Context<'_>,
        filter: Option<EventFilter>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<Event>>> {
        ctx.data::<RequestContext>()?.require_read()?;
        let state = ctx.data::<ApiState>()?.clone();
        let filter = event_filter(filter.unwrap_or_default())?;
        let start = match after.as_deref() {
            Some(after) => Some(resolve_after(&state, after).await?),
            None => None,
        };
        // Subscribe before replaying, so nothing relayed during the replay is missed.
        let live = state.live.subscribe();
        let events = replay_then_live(
            state.read.pool().clone(),
            state.hub_id.clone(),
            live,
            filter,
            start,
            OnLag::End,
        );
        Ok(events.map(|event| match event {
            Ok(event) => Ok(Event::from(event.as_ref())),
            Err(LiveError::Lagged { skipped, resume }) => Err(lagged(skipped, resume)),
            Err(LiveError::Store(err)) => {
                Err(ApiError::from(projections::QueryError::from(err)).into())
            }
        }))
    }
}
