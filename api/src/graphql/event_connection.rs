//! A page of events as GraphQL shows it.

use async_graphql::connection::{Edge, EmptyFields, PageInfo};
use async_graphql::Object;
use infrastructure::nats::Envelope;

use super::types::Event;

/// A page of events as a connection whose `pageInfo.endCursor` can be
/// past its last edge (see the GraphQL description below).
pub struct EventConnection {
    page_info: PageInfo,
    edges: Vec<Edge<String, Event, EmptyFields>>,
}

impl EventConnection {
    /// `page` as a connection; `after_cursor` tells whether it follows a
    /// cursor (so has a previous page).
    pub fn new(page: projections::Page<Envelope>, after_cursor: bool) -> Self {
        Self {
            page_info: PageInfo {
                has_previous_page: after_cursor,
                has_next_page: page.has_next_page,
                start_cursor: page.items.first().map(|(cursor, _)| cursor.clone()),
                end_cursor: page
                    .resume_after
                    .clone()
                    .or_else(|| page.items.last().map(|(cursor, _)| cursor.clone())),
            },
            edges: page
                .items
                .into_iter()
                .map(|(cursor, row)| Edge::new(cursor, Event::from(row)))
                .collect(),
        }
    }
}

/// A page of events. `pageInfo.endCursor` is where the next page starts.
/// A page whose filter has no index of its own stops after reading
/// `HUB_EVENTS_PAGE_SCAN_ROWS` events of the log: it can hold fewer events
/// than asked for, even none, with `hasNextPage` true and `endCursor` past
/// its last edge.
#[Object(name = "EventConnection")]
impl EventConnection {
    /// Information to aid in pagination.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// A list of edges.
    async fn edges(&self) -> &[Edge<String, Event, EmptyFields>] {
        &self.edges
    }

    /// A list of nodes.
    async fn nodes(&self) -> Vec<&Event> {
        self.edges.iter().map(|edge| &edge.node).collect()
    }
}
