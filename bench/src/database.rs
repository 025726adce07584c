//! Databases the bench creates for itself and drops afterwards.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context as _};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::hub_process::with_database;

/// A database of the bench's own on the server of an admin URL.
pub struct BenchDatabase {
    admin_url: String,
    /// Its name.
    pub name: String,
    /// A URL that connects to it.
    pub url: String,
}

impl BenchDatabase {
    /// Creates an empty database named `<prefix>_<random>`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(admin_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("while connecting to {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("while creating the database {name}"))?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// A new database with the hub's schema, applied by `hub migrate`.
    ///
    /// # Errors
    /// When the database cannot be made or the migration fails.
    pub async fn migrated(admin_url: &str, prefix: &str, hub: &Path) -> anyhow::Result<Self> {
        let database = Self::create(admin_url, prefix).await?;
        let status = tokio::process::Command::new(hub)
            .arg("migrate")
            .env("DATABASE_URL", &database.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .await
            .context("while running hub migrate")?;
        if !status.success() {
            let name = database.name.clone();
            database.drop_database().await;
            bail!("hub migrate failed on {name}");
        }
        Ok(database)
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_database(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}
