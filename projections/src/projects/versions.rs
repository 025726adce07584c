//! One project's row at each of its versions, folded from its events with
//! the `projects` read model's own fold ([`super::apply`]): the row the read
//! model has, or had, at that version, not its latest row. Subscriptions
//! show every version this way.

use std::collections::HashMap;

use infrastructure::feed::{read_aggregate, FeedPosition, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use super::apply::apply;
use super::{ProjectRow, ProjectionError};

/// Events read from the store per query while catching up.
const READ_BATCH: i64 = 1000;

/// The project's row after one of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The row at the event's version (`row.version` is its sequence).
    pub row: ProjectRow,
    /// Where the event sits in the feed.
    pub at: FeedPosition,
}

/// An event that cannot be folded into the project's row (the read model
/// parks it).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct FoldError(#[from] ProjectionError);

/// One project's row as its events are folded in, in sequence order.
#[derive(Clone, Debug)]
pub struct ProjectVersions {
    id: Uuid,
    /// The row, once the creation is folded in (the shape `apply` folds into).
    rows: HashMap<Uuid, ProjectRow>,
    /// The sequence of the last event folded in (or skipped as unfoldable).
    folded: i64,
    /// Where that event sits in the feed, when it was folded in here.
    folded_at: Option<FeedPosition>,
}

impl ProjectVersions {
    /// Project `id` before its first event.
    pub fn new(id: Uuid) -> Self {
        Self {
            id,
            rows: HashMap::new(),
            folded: 0,
            folded_at: None,
        }
    }

    /// Project `row.id` at `row.version`, e.g. a row of the read model.
    pub fn from_row(row: ProjectRow) -> Self {
        let (id, folded) = (row.id, row.version);
        Self {
            id,
            rows: HashMap::from([(id, row)]),
            folded,
            folded_at: None,
        }
    }

    /// The project's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The row at the last version folded in; `None` before the creation.
    pub fn row(&self) -> Option<&ProjectRow> {
        self.rows.get(&self.id)
    }

    /// The sequence of the last event folded in, 0 before any.
    pub fn folded(&self) -> i64 {
        self.folded
    }

    /// Where the last event folded in sits in the feed; `None` before any,
    /// or when the row came from the read model ([`ProjectVersions::from_row`]).
    pub fn folded_at(&self) -> Option<FeedPosition> {
        self.folded_at
    }

    /// Folds in `event`, the project's next one; returns the row at its
    /// version, or `None` when the event leaves the row as it is (one
    /// already folded in).
    ///
    /// # Errors
    /// When the event is not a readable project event, or comes before the
    /// project's creation. The event then counts as folded in, the row
    /// unchanged, as the read model parks it.
    pub fn apply(&mut self, event: &StoredEvent) -> Result<Option<&ProjectRow>, FoldError> {
        if event.sequence > self.folded {
            self.folded = event.sequence;
            self.folded_at = Some(event.feed_position());
        }
        if apply(&mut self.rows, self.id, event)? {
            Ok(self.rows.get(&self.id))
        } else {
            Ok(None)
        }
    }

    /// Folds in `event`, the project's next one, as
    /// [`ProjectVersions::catch_up`] does: the version it makes, or `None`
    /// for an event already folded in, or one that cannot be (logged and
    /// skipped, as the read model parks it).
    pub fn fold(&mut self, event: &StoredEvent) -> Option<Version> {
        match self.apply(event) {
            Ok(row) => row.map(|row| Version {
                row: row.clone(),
                at: event.feed_position(),
            }),
            Err(err) => {
                tracing::warn!(
                    project_id = %self.id,
                    sequence = event.sequence,
                    error = %err,
                    "skipped a project event that cannot be folded into its row"
                );
                None
            }
        }
    }

    /// Reads the project's events after the last one folded in, up to
    /// sequence `up_to` (every one there is without it), and folds them in;
    /// returns the row at each version, oldest first.
    ///
    /// An event that cannot be folded in is logged and skipped, as the read
    /// model parks it.
    ///
    /// # Errors
    /// When reading the store fails.
    pub async fn catch_up(
        &mut self,
        conn: &mut PgConnection,
        up_to: Option<i64>,
    ) -> Result<Vec<Version>, sqlx::Error> {
        let mut versions = Vec::new();
        self.fold_from_store(conn, up_to, Some(&mut versions))
            .await?;
        Ok(versions)
    }

    /// Like [`ProjectVersions::catch_up`], without keeping the rows on the
    /// way: for the versions a reader has already seen.
    ///
    /// # Errors
    /// When reading the store fails.
    pub async fn skip_to(
        &mut self,
        conn: &mut PgConnection,
        up_to: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        self.fold_from_store(conn, up_to, None).await
    }

    async fn fold_from_store(
        &mut self,
        conn: &mut PgConnection,
        up_to: Option<i64>,
        mut keep: Option<&mut Vec<Version>>,
    ) -> Result<(), sqlx::Error> {
        let id = self.id.to_string();
        let aggregate_type = <domain::Project as cqrs_es::Aggregate>::TYPE;
        loop {
            if up_to.is_some_and(|up_to| self.folded >= up_to) {
                return Ok(());
            }
            let events =
                read_aggregate(conn, aggregate_type, &id, self.folded, up_to, READ_BATCH).await?;
            for event in &events {
                let version = self.fold(event);
                if let (Some(keep), Some(version)) = (keep.as_deref_mut(), version) {
                    keep.push(version);
                }
            }
            if events.len() < READ_BATCH as usize {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use cqrs_es::Aggregate as _;
    use domain::project::upcast::CURRENT_VERSION;
    use domain::Project;
    use infrastructure::CommandMetadata;
    use serde_json::{json, Value};

    use super::*;

    fn event(id: Uuid, sequence: i64, event_type: &str, fields: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::new_v4(),
            position: sequence,
            transaction_id: sequence,
            aggregate_type: Project::TYPE.to_owned(),
            aggregate_id: id.to_string(),
            sequence,
            event_type: event_type.to_owned(),
            event_version: CURRENT_VERSION.to_owned(),
            payload: json!({ event_type: fields }),
            metadata: CommandMetadata::from_json(&json!({})),
            recorded_at: Utc::now(),
            unreadable: None,
        }
    }

    fn created(id: Uuid) -> StoredEvent {
        event(
            id,
            1,
            "ProjectCreated",
            json!({
                "project_id": id, "name": "Board", "slug": "board", "path": "/srv/board",
                "ports": {"backend": 20000, "frontend": 20001, "postgres": 20002, "redis": 20003},
            }),
        )
    }

    #[test]
    fn every_version_has_its_own_row() {
        let id = Uuid::new_v4();
        let mut versions = ProjectVersions::new(id);
        let mut seen = Vec::new();
        for e in [
            created(id),
            event(id, 2, "ProjectStartRequested", json!({})),
            event(id, 3, "ProjectStarted", json!({})),
            event(id, 4, "ProjectStopRequested", json!({})),
            event(id, 5, "ProjectStopped", json!({})),
            event(id, 6, "ProjectDeleted", json!({})),
        ] {
            let row = versions
                .apply(&e)
                .expect("a project event")
                .expect("a change");
            seen.push((row.status, row.version));
        }
        let seen: Vec<(&str, i64)> = seen.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        assert_eq!(
            seen,
            [
                ("STOPPED", 1),
                ("STARTING", 2),
                ("RUNNING", 3),
                ("STOPPING", 4),
                ("STOPPED", 5),
                ("DELETED", 6)
            ]
        );
        assert_eq!(versions.folded(), 6);
    }

    #[test]
    fn an_event_folded_in_again_changes_nothing() {
        let id = Uuid::new_v4();
        let mut versions = ProjectVersions::new(id);
        versions.apply(&created(id)).expect("created");
        let renamed = event(
            id,
            2,
            "ProjectRenamed",
            json!({"name": "New", "slug": "new"}),
        );
        assert_eq!(
            versions
                .apply(&renamed)
                .expect("renamed")
                .map(|r| r.name.clone()),
            Some("New".to_owned())
        );
        assert_eq!(versions.apply(&renamed).expect("again"), None);
        let row = versions.row().expect("a row").clone();
        let mut from_row = ProjectVersions::from_row(row.clone());
        assert_eq!(from_row.folded(), 2);
        assert_eq!(from_row.apply(&renamed).expect("again"), None);
        assert_eq!(from_row.row(), Some(&row));
    }

    #[test]
    fn an_unreadable_event_is_refused_and_counts_as_folded() {
        let id = Uuid::new_v4();
        let mut versions = ProjectVersions::new(id);
        versions.apply(&created(id)).expect("created");
        let mut broken = event(id, 2, "ProjectRenamed", json!({}));
        broken.payload = Value::Null;
        assert!(versions.apply(&broken).is_err());
        assert_eq!(versions.folded(), 2);
        assert_eq!(versions.row().map(|r| r.version), Some(1));
        let later = event(id, 3, "ProjectStartRequested", json!({}));
        assert_eq!(
            versions.apply(&later).expect("later").map(|r| r.version),
            Some(3)
        );
    }

    #[test]
    fn an_event_before_the_creation_is_refused() {
        let id = Uuid::new_v4();
        let mut versions = ProjectVersions::new(id);
        assert!(versions
            .apply(&event(id, 2, "ProjectStarted", json!({})))
            .is_err());
        assert_eq!(versions.row(), None);
    }
}
