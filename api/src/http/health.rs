//! `GET /health`: is the hub able to do its work?

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::app::AppState;

/// `{status, database, projections}`: `healthy` with status 200 when the
/// database answers and no projection is failing; `degraded` (200) when a
/// projection is failing; `unhealthy` (503) without a database.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database_up = infrastructure::db::ping(&state.pool).await;
    let mut projections = serde_json::Map::new();
    let mut failing = false;
    for feed in state.feeds.iter() {
        let status = feed.status();
        failing |= status.consecutive_failures > 0;
        projections.insert(
            feed.name().to_owned(),
            json!({
                "active_here": status.active,
                "handled": status.handled,
                "position": status.checkpoint.position,
                "last_error": status.last_error,
                "consecutive_failures": status.consecutive_failures,
            }),
        );
    }
    let (code, status) = match (database_up, failing) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "healthy"),
    };
    (
        code,
        Json(json!({
            "status": status,
            "database": { "connected": database_up },
            "projections": projections,
        })),
    )
}
