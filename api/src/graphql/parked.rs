//! Events a feed consumer parked, as the admin operations show them: on
//! each read model (`Projection.parkedEvents`) and in what
//! `retryParkedEvents` and `skipParkedEvent` answer.

use async_graphql::{ComplexObject, Context, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::admin::Projection;
use super::error::ApiError;
use super::RequestContext;
use crate::state::GraphqlState;

/// Most parked events one `parkedEvents` answer lists.
pub const MAX_LISTED: i32 = 1000;

/// An event a read model parked.
#[derive(SimpleObject, Clone, Debug)]
pub struct ParkedEvent {
    /// The event's id.
    pub event_id: ID,
    /// e.g. `Project`.
    pub aggregate_type: String,
    /// The aggregate instance (a project id).
    pub aggregate_id: String,
    /// Its sequence within the aggregate.
    pub sequence: i64,
    /// e.g. `ProjectCreated`.
    pub event_type: String,
    /// Whether the projection failed on it (otherwise it waits behind an
    /// earlier parked event of its aggregate, `heldBehind`). What the
    /// projection said is in the hub's log and `hub projections retry`.
    pub failed: bool,
    /// What the consumer said on the last attempt (for an event whose
    /// stored row cannot be read back, why), when it failed.
    pub error: Option<String>,
    /// The earlier parked event of the same aggregate it waits behind.
    pub held_behind: Option<ID>,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

impl From<infrastructure::feed::ParkedEvent> for ParkedEvent {
    fn from(event: infrastructure::feed::ParkedEvent) -> Self {
        Self {
            event_id: ID(event.event_id.to_string()),
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            sequence: event.sequence,
            event_type: event.event_type,
            failed: event.error.is_some(),
            error: event.error,
            held_behind: event.held_behind.map(|id| ID(id.to_string())),
            attempts: event.attempts,
            parked_at: event.parked_at,
        }
    }
}

#[ComplexObject]
impl Projection {
    /// The events this read model parked, oldest first (those
    /// `retryParkedEvents` would replay, in that order).
    async fn parked_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (0-1000).", default = 100)] first: i32,
    ) -> Result<Vec<ParkedEvent>> {
        ctx.data::<RequestContext>()?.require_auth()?;
        if !(0..=MAX_LISTED).contains(&first) {
            return Err(ApiError::invalid_input(format!(
                "`first` must be between 0 and {MAX_LISTED}, not {first}"
            ))
            .into());
        }
        let state = ctx.data::<GraphqlState>()?;
        let parked =
            infrastructure::feed::first_parked_events(state.hub.pool(), &self.name, first.into())
                .await
                .map_err(|err| ApiError::database(&err))?;
        Ok(parked.into_iter().map(ParkedEvent::from).collect())
    }
}
