//! The facts about other projects that the command bus looks up before a
//! `Project` decides: who holds a slug, and which ports are free. Both read
//! the reservation tables that the store's trigger maintains (see
//! `migrations/0002_project_reservations.sql`); the aggregate says which it
//! needs ([`Project::question`](domain::Project::question)).

use domain::{Facts, PortRange, Ports, ProjectId, Question, Slug};
use rand::Rng;
use sqlx::PgPool;

use crate::error::InfraError;

/// Random blocks tried before scanning the whole range.
const RANDOM_PROBES: usize = 16;

/// Answers a `Project`'s [`Question`]s from PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgProjectLookup {
    pool: PgPool,
    ports: PortRange,
}

impl PgProjectLookup {
    /// Looks up in `pool`, allocating ports from `ports`.
    pub fn new(pool: PgPool, ports: PortRange) -> Self {
        Self { pool, ports }
    }

    /// The facts that answer `question`, in one query (and a scan of the
    /// whole range when a creation's random probes found no free block).
    ///
    /// # Errors
    /// [`InfraError`] when the answer could not be found out.
    pub async fn answer(&self, question: &Question) -> Result<Facts, InfraError> {
        match question {
            Question::Creation { slug } => self.for_creation(slug).await,
            Question::SlugHolder { slug } => Ok(Facts {
                slug_holder: self.slug_holder(slug).await?,
                free_ports: None,
            }),
        }
    }

    /// The live (not deleted) project that currently holds `slug`, if any.
    ///
    /// # Errors
    /// [`InfraError`] when the answer could not be found out.
    pub async fn slug_holder(&self, slug: &Slug) -> Result<Option<ProjectId>, InfraError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM project_slugs WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(&self.pool)
                .await?;
        holder.as_deref().map(holder_id).transpose()
    }

    /// Both answers in one query: the slug's holder and the first free of
    /// the random blocks (the scan of the whole range only when none is).
    /// The ports are only a proposal: the reservation itself is made
    /// atomically with the event by the store.
    async fn for_creation(&self, slug: &Slug) -> Result<Facts, InfraError> {
        if self.ports.blocks() == 0 {
            return Ok(Facts {
                slug_holder: self.slug_holder(slug).await?,
                free_ports: None,
            });
        }
        let (holder, block): (Option<String>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT project_id FROM project_slugs WHERE slug = $1), \
                    (SELECT c.k FROM unnest($2::bigint[]) WITH ORDINALITY AS c(k, ord) \
                     WHERE NOT EXISTS ( \
                         SELECT 1 FROM project_ports \
                         WHERE port BETWEEN $3 + 4 * c.k AND $3 + 4 * c.k + 3) \
                     ORDER BY c.ord LIMIT 1)",
        )
        .bind(slug.as_str())
        .bind(self.random_blocks())
        .bind(i64::from(self.ports.start()))
        .fetch_one(&self.pool)
        .await?;
        Ok(Facts {
            slug_holder: holder.as_deref().map(holder_id).transpose()?,
            free_ports: self
                .or_scan(block.and_then(|k| u32::try_from(k).ok()))
                .await?,
        })
    }

    /// Random blocks to try first: one cheap query finds a free one unless
    /// the range is nearly full, and concurrent creates rarely propose the
    /// same ports (a collision is caught by the store and retried).
    fn random_blocks(&self) -> Vec<i64> {
        let blocks = self.ports.blocks();
        let mut rng = rand::thread_rng();
        (0..RANDOM_PROBES)
            .map(|_| i64::from(rng.gen_range(0..blocks)))
            .collect()
    }

    /// The ports of `block`, or, when the random probes found none, of the
    /// first free block of a scan of the whole range.
    async fn or_scan(&self, block: Option<u32>) -> Result<Option<Ports>, InfraError> {
        let block = match block {
            Some(block) => Some(block),
            None => self.first_free_block(0, self.ports.blocks() - 1).await?,
        };
        Ok(block.and_then(|k| self.ports.block(k)))
    }

    /// The first free block in `from..=to`, if any: a scan for when random
    /// probes found nothing (the range is nearly full).
    async fn first_free_block(&self, from: u32, to: u32) -> Result<Option<u32>, sqlx::Error> {
        let block: Option<i64> = sqlx::query_scalar(
            "SELECT k FROM generate_series($1::bigint, $2::bigint) AS k \
             WHERE NOT EXISTS ( \
                 SELECT 1 FROM project_ports \
                 WHERE port BETWEEN $3 + 4 * k AND $3 + 4 * k + 3) \
             LIMIT 1",
        )
        .bind(i64::from(from))
        .bind(i64::from(to))
        .bind(i64::from(self.ports.start()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(block.and_then(|k| u32::try_from(k).ok()))
    }
}

/// The id of a slug's holder, as `project_slugs` stores it.
fn holder_id(stored: &str) -> Result<ProjectId, InfraError> {
    ProjectId::parse(stored)
        .map_err(|err| InfraError::Malformed(format!("project_slugs holds {stored:?}: {err}")))
}
