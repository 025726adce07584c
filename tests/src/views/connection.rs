//! A page of `projects` or `events`: edges with cursors, and where it ends.

use serde::Deserialize;

/// A page as selected by `pageInfo { hasNextPage endCursor } edges {
/// cursor node { ... } }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection<N> {
    /// Where the page ends.
    pub page_info: PageInfo,
    /// The page's items with their cursors.
    pub edges: Vec<Edge<N>>,
}

impl<N> Connection<N> {
    /// The page's items, in order.
    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.edges.iter().map(|edge| &edge.node)
    }
}

/// `pageInfo { hasNextPage endCursor }`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageInfo {
    /// Whether a next page follows.
    pub has_next_page: bool,
    /// The cursor to pass as `after` for the next page.
    #[serde(deserialize_with = "super::nullable")]
    pub end_cursor: Option<String>,
}

/// One item of a page and its cursor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge<N> {
    /// The cursor after this item.
    pub cursor: String,
    /// The item.
    pub node: N,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::graphql::view;

    #[test]
    fn a_nullable_field_is_null_or_a_value() {
        let page: PageInfo = view(&json!({ "hasNextPage": false, "endCursor": null }));
        assert_eq!(page.end_cursor, None);
        let page: PageInfo = view(&json!({ "hasNextPage": true, "endCursor": "c" }));
        assert_eq!(page.end_cursor.as_deref(), Some("c"));
    }

    #[test]
    #[should_panic(expected = "missing field `endCursor`")]
    fn a_nullable_field_that_was_not_selected_is_an_error() {
        view::<PageInfo>(&json!({ "hasNextPage": false }));
    }

    #[test]
    #[should_panic(expected = "unknown field `startCursor`")]
    fn a_field_the_view_does_not_know_is_an_error() {
        view::<PageInfo>(&json!({ "hasNextPage": false, "endCursor": null, "startCursor": null }));
    }
}
