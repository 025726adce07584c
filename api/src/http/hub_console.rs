//! `GET /` and `GET /console/...`: the hub console, a live web page for
//! projects, events, read models and health. Its HTML, CSS and ES modules
//! are the hub's own, embedded in the binary; the page talks to the hub
//! only through the public GraphQL API (`/graphql`, `/graphql/ws`) and
//! `/health`, as any client does, under the same Content Security Policy
//! as the GraphQL console (see [`super::console`]).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::console::{asset, html_page};

const INDEX: &str = include_str!("hub_console/index.html");

/// The console's pages: each is the same document, which shows the page its
/// path names.
const PAGES: [&str; 4] = ["projects", "events", "read-models", "health"];

/// The console's assets, by file name.
const ASSETS: [(&str, &str, &str); 10] = [
    ("icon.svg", SVG, include_str!("hub_console/icon.svg")),
    ("console.css", CSS, include_str!("hub_console/console.css")),
    ("app.js", JS, include_str!("hub_console/app.js")),
    ("client.js", JS, include_str!("hub_console/client.js")),
    ("token.js", JS, include_str!("hub_console/token.js")),
    ("view.js", JS, include_str!("hub_console/view.js")),
    ("projects.js", JS, include_str!("hub_console/projects.js")),
    ("events.js", JS, include_str!("hub_console/events.js")),
    (
        "read-models.js",
        JS,
        include_str!("hub_console/read-models.js"),
    ),
    ("health.js", JS, include_str!("hub_console/health.js")),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The console's routes: `GET /`, `/console`, `/console/{page}` and
/// `/console/assets/{file}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(home))
        .route("/console", get(home))
        .route("/console/{page}", get(page))
        .route("/console/assets/{file}", get(file))
}

/// `GET /` and `GET /console`: the console, on its first page.
pub async fn home() -> Response {
    html_page(INDEX)
}

/// `GET /console/{page}`: the console, on that page; 404 for a page it
/// does not have.
pub async fn page(Path(page): Path<String>) -> Response {
    if PAGES.contains(&page.as_str()) {
        html_page(INDEX)
    } else {
        not_found()
    }
}

/// `GET /console/assets/{file}`: one of the console's scripts or its style
/// sheet; 404 for any other name.
pub async fn file(Path(file): Path<String>) -> Response {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map_or_else(not_found, |(_, content_type, body)| {
            asset(content_type, body)
        })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such page in the hub console\n").into_response()
}
