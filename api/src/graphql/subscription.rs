//! The subscription root: live changes, fed by this process's single
//! JetStream consumer ([`infrastructure::nats::LiveFeed`]) and fanned out in
//! memory, with the store read for what came before (and what a lagging
//! subscriber missed). Project changes are built in [`super::changes`].
//!
//! Run by the fan-out ([`super::fanout`]), each resolver records in the
//! request's [`Tap`] where each item stands in the feed and where a live
//! stream starts, and resumes after a [`Resume`] point instead of where
//! its arguments say when it is given one.

use async_graphql::{Context, Result, Subscription, ID};
use futures::{Stream, StreamExt as _};
use infrastructure::feed::{position_of, FeedPosition};
use projections::cursor::decode_event_cursor;

use super::changes::{self, ProjectChange};
use super::error::{ApiError, ErrorCode};
use super::fanout::{Floor, Mark, Marked, Resume, Tap};
use super::query::{event_filter, parse_uuid};
use super::types::{Event, EventFilter, Project};
use super::RequestContext;
use crate::live_events::{replay_then_live, LiveError, OnLag};
use crate::state::GraphqlState;

/// Live updates over WebSocket (`/graphql/ws`).
#[derive(Default)]
pub struct SubscriptionRoot;

/// The error ending a subscription that fell `skipped` events behind,
/// naming where to resume when that is known.
pub(crate) fn lagged(skipped: u64, resume: Option<FeedPosition>) -> async_graphql::Error {
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
async fn resolve_after(state: &GraphqlState, after: &str) -> Result<FeedPosition, ApiError> {
    if let Ok(position) = after.parse::<i64>() {
        if position == 0 {
            return Ok(FeedPosition::START);
        }
        return position_of(state.hub.read.pool(), position)
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

/// Resolves the `after` of `projectsChanged`: a cursor of an event in the
/// store (or a bare position), or the start of the feed.
async fn resolve_board_after(state: &GraphqlState, after: &str) -> Result<FeedPosition, ApiError> {
    let resync = |why: &str| {
        ApiError::new(
            ErrorCode::ResyncRequired,
            format!(
                "{why}: the board cannot resume from it; subscribe again without `after` for a fresh snapshot"
            ),
        )
    };
    let at = match resolve_after(state, after).await {
        Ok(at) => at,
        Err(err)
            if matches!(
                err.code,
                ErrorCode::Unavailable | ErrorCode::QueryTimeout | ErrorCode::Internal
            ) =>
        {
            return Err(err)
        }
        Err(_) => return Err(resync("this is not a cursor the hub gave out")),
    };
    if at == FeedPosition::START {
        return Ok(at);
    }
    let stored = position_of(state.hub.read.pool(), at.position)
        .await
        .map_err(|err| ApiError::from(projections::QueryError::from(err)))?;
    if stored != Some(at) {
        return Err(resync("no event of this hub's store has this cursor"));
    }
    Ok(at)
}

/// How a stream of changes ended early, as the client is told (and, for
/// a lag, as the tap records it).
fn live_error(tap: Option<&Tap>, err: LiveError) -> async_graphql::Error {
    if let (Some(tap), LiveError::Lagged { skipped, .. }) = (tap, &err) {
        tap.lagged(*skipped);
    }
    match err {
        LiveError::Lagged { skipped, resume } => lagged(skipped, resume),
        LiveError::Store(err) => ApiError::from(projections::QueryError::from(err)).into(),
    }
}

/// A project stream as a subscription sends it: counted among the live
/// feed's readers while open, each item's mark passed to the shared run's
/// tap (when it runs for one), and a lag told to the tap too.
fn counted_and_tapped<T>(
    state: &GraphqlState,
    tap: Option<Tap>,
    changes: impl Stream<Item = Result<Marked<T>, LiveError>>,
) -> impl Stream<Item = Result<T>> {
    let reader = state.live_readers.hold();
    changes.map(move |change| {
        let _counted = &reader;
        change
            .map(|marked| Tap::pass(tap.as_ref(), marked))
            .map_err(|err| live_error(tap.as_ref(), err))
    })
}

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Project `id` at each of its versions: first its current state (or,
    /// with `sinceVersion`, every version after that one, from the store:
    /// pass the last version shown to resume after a reconnect), then every
    /// later version, with no gap and no duplicate between the two.
    /// Versions strictly increase, each its own message, unless `coalesce`
    /// asks for only the latest state of what is pending. After the version
    /// that deletes the project (`deleted: true`), the subscription
    /// completes. An unknown project is NOT_FOUND; a `sinceVersion` below 0
    /// or past the current version is INVALID_INPUT.
    ///
    /// Without `id`, every later version of every project (no current
    /// state first; `sinceVersion` needs an `id`).
    async fn project_changed(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        since_version: Option<i64>,
        #[graphql(default = false)] coalesce: bool,
    ) -> Result<impl Stream<Item = Result<Project>>> {
        ctx.data::<RequestContext>()?.require_read()?;
        let state = ctx.data::<GraphqlState>()?;
        let tap = ctx.data_opt::<Tap>().cloned();
        let resume = ctx.data_opt::<Resume>().map(|Resume(mark)| *mark);
        let changes = match id {
            Some(id) => {
                let id = parse_uuid("project", &id)?;
                // Resumed after the version it passed on last.
                let since = resume.and_then(|mark| mark.version).or(since_version);
                changes::project(state, id, since, coalesce).await?.boxed()
            }
            None if since_version.is_some() => {
                return Err(ApiError::invalid_input(
                    "sinceVersion needs the id of the project it is a version of",
                )
                .into())
            }
            None => {
                let after = resume.map(|mark| mark.at);
                let (start, changes) = changes::every_project(state, coalesce, after).await?;
                if let Some(tap) = &tap {
                    tap.floor(Floor::After(start));
                }
                changes.boxed()
            }
        };
        Ok(counted_and_tapped(state, tap, changes))
    }

    /// Changes to every project, for a list of them: without `after`, first
    /// every project that is not deleted (`SNAPSHOT` messages, then one
    /// `SNAPSHOT_COMPLETE`); with `after` (the `cursor` of an earlier
    /// message), every change after it instead. Then every change as it
    /// happens (`CREATED`, `UPDATED`, `DELETED`), each exactly once, in the
    /// order they were recorded. A cursor the hub cannot resume from is
    /// refused with RESYNC_REQUIRED.
    async fn projects_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ProjectChange>>> {
        ctx.data::<RequestContext>()?.require_read()?;
        let state = ctx.data::<GraphqlState>()?;
        let tap = ctx.data_opt::<Tap>().cloned();
        let after = match (ctx.data_opt::<Resume>(), after.as_deref()) {
            // Resumed after the change it passed on last.
            (Some(Resume(mark)), _) => Some(mark.at),
            (None, Some(after)) => Some(resolve_board_after(state, after).await?),
            (None, None) => None,
        };
        let changes = changes::board(state, after).await?;
        if let (Some(tap), Some(after)) = (&tap, after) {
            tap.floor(Floor::After(after));
        }
        Ok(counted_and_tapped(state, tap, changes))
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
        let state = ctx.data::<GraphqlState>()?.clone();
        let tap = ctx.data_opt::<Tap>().cloned();
        let filter = event_filter(filter.unwrap_or_default())?;
        let start = match after.as_deref() {
            Some(after) => Some(resolve_after(&state, after).await?),
            None => None,
        };
        if let Some(tap) = &tap {
            tap.floor(start.map_or(Floor::Now, Floor::After));
        }
        // Subscribe before replaying, so nothing relayed during the replay is missed.
        let live = state.hub.live.subscribe();
        let events = replay_then_live(
            state.hub.read.pool().clone(),
            state.hub.id.clone(),
            live,
            filter,
            start,
            OnLag::End,
        );
        let reader = state.live_readers.hold();
        Ok(events.map(move |event| match (&reader, event) {
            (_, Ok(event)) => {
                if let Some(tap) = &tap {
                    tap.item(Mark::through(event.feed_position()));
                }
                Ok(Event::from(event))
            }
            (_, Err(err)) => Err(live_error(tap.as_ref(), err)),
        }))
    }
}
