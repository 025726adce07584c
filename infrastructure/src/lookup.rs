//! The facts the `Project` aggregate looks up before deciding: who holds a
//! slug, and which ports are free. Both read the reservation tables that the
//! store's trigger maintains (see `migrations/0002_project_reservations.sql`).

use domain::{LookupError, PortRange, Ports, ProjectId, ProjectLookup, Slug};
use rand::Rng;
use sqlx::PgPool;

/// Random blocks tried before scanning the whole range.
const RANDOM_PROBES: usize = 16;

/// [`ProjectLookup`] on PostgreSQL.
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

    /// The first of `candidates` (block numbers) that is free, if any.
    async fn first_free_of(&self, candidates: &[i64]) -> Result<Option<u32>, sqlx::Error> {
        let block: Option<i64> = sqlx::query_scalar(
            "SELECT c.k FROM unnest($1::bigint[]) WITH ORDINALITY AS c(k, ord) \
             WHERE NOT EXISTS ( \
                 SELECT 1 FROM project_ports \
                 WHERE port BETWEEN $2 + 4 * c.k AND $2 + 4 * c.k + 3) \
             ORDER BY c.ord LIMIT 1",
        )
        .bind(candidates)
        .bind(i64::from(self.ports.start()))
        .fetch_optional(&self.pool)
        .await?;
        Ok(block.and_then(|k| u32::try_from(k).ok()))
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

#[async_trait::async_trait]
impl ProjectLookup for PgProjectLookup {
    async fn slug_holder(&self, slug: &Slug) -> Result<Option<ProjectId>, LookupError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT project_id FROM project_slugs WHERE slug = $1")
                .bind(slug.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|err| LookupError::new("the holder of a slug", err))?;
        holder
            .map(|id| ProjectId::parse(&id))
            .transpose()
            .map_err(|err| LookupError::new("the holder of a slug", err))
    }

    async fn free_ports(&self, _project_id: ProjectId) -> Result<Option<Ports>, LookupError> {
        let blocks = self.ports.blocks();
        if blocks == 0 {
            return Ok(None);
        }
        let block = self
            .first_free_of(&self.random_blocks())
            .await
            .map_err(|err| LookupError::new("free ports", err))?;
        self.or_scan(block).await
    }

    /// Both answers in one query: the slug's holder and the first free of
    /// the random blocks (the scan of the whole range only when none is).
    async fn for_creation(
        &self,
        slug: &Slug,
        _project_id: ProjectId,
    ) -> Result<(Option<ProjectId>, Option<Ports>), LookupError> {
        if self.ports.blocks() == 0 {
            return Ok((self.slug_holder(slug).await?, None));
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
        .await
        .map_err(|err| LookupError::new("the holder of a slug and free ports", err))?;
        let holder = holder
            .map(|id| ProjectId::parse(&id))
            .transpose()
            .map_err(|err| LookupError::new("the holder of a slug", err))?;
        let ports = self
            .or_scan(block.and_then(|k| u32::try_from(k).ok()))
            .await?;
        Ok((holder, ports))
    }
}

impl PgProjectLookup {
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
    async fn or_scan(&self, block: Option<u32>) -> Result<Option<Ports>, LookupError> {
        let block = match block {
            Some(block) => Some(block),
            None => self
                .first_free_block(0, self.ports.blocks() - 1)
                .await
                .map_err(|err| LookupError::new("free ports", err))?,
        };
        Ok(block.and_then(|k| self.ports.block(k)))
    }
}
