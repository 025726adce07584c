//! The latest committed `projects` row per project, kept in memory by this
//! process's `projects` projection, so that read-your-writes rarely needs
//! to read the table.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use crate::projects::ProjectRow;

/// Entries kept before the cache starts over (it is only a shortcut: a miss
/// falls back to the table).
const CAPACITY: usize = 50_000;

/// Latest committed rows by project id.
#[derive(Clone, Debug, Default)]
pub struct RecentRows {
    rows: Arc<RwLock<HashMap<Uuid, ProjectRow>>>,
}

impl RecentRows {
    /// Records rows that just committed; never moves a project backwards.
    pub fn record(&self, committed: &[ProjectRow]) {
        let Ok(mut rows) = self.rows.write() else {
            return;
        };
        if rows.len() + committed.len() > CAPACITY {
            rows.clear();
        }
        for row in committed {
            match rows.get(&row.id) {
                Some(known) if known.version >= row.version => {}
                _ => {
                    rows.insert(row.id, row.clone());
                }
            }
        }
    }

    /// The latest known row of `id`, if it is at `version` or later.
    pub fn at_least(&self, id: Uuid, version: i64) -> Option<ProjectRow> {
        let rows = self.rows.read().ok()?;
        rows.get(&id).filter(|row| row.version >= version).cloned()
    }

    /// Forgets everything (e.g. when another process may have written).
    pub fn clear(&self) {
        if let Ok(mut rows) = self.rows.write() {
            rows.clear();
        }
    }
}
