//! The `framework` baseline: the same project-create-shaped command
//! through plain cqrs-es and postgres-es, served as JSON over axum the way
//! cqrs-es's demo serves it, on a database of its own with postgres-es's
//! schema, driven like the hub's `createProject` in the `commands`
//! scenario (same client, keep-alive connections and concurrency), taking
//! turns with the hub's creates at each level (three rounds each), before
//! the raw loop's.
//!
//! Per command the framework loads the (new, empty) aggregate, decides,
//! commits the event in a transaction of postgres-es's, then updates the
//! view (`GenericQuery` over `PostgresViewRepository`: load the row, write
//! it) before answering. It reserves nothing (the hub's creates reserve a
//! slug and four ports), keeps no global order and feeds nothing else.
//!
//! Layout:
//! - `aggregate`: the command, event, aggregate and view.
//! - `server`: the schema and the axum server on a runtime of its own.

mod aggregate;
mod server;

use std::sync::Arc;

use anyhow::{bail, Context as _};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::database::BenchDatabase;
use crate::load::{sampled_loop, Sampled};
use server::{create_schema, BaselineServer};

/// The running baseline and its database.
pub struct Framework {
    server: BaselineServer,
    database: BenchDatabase,
}

impl Framework {
    /// Creates the baseline's database and serves it.
    ///
    /// # Errors
    /// When the database cannot be created or the server cannot start.
    pub async fn start(admin_url: &str) -> anyhow::Result<Self> {
        let database = BenchDatabase::create(admin_url, "hub_bench_framework").await?;
        let started = async {
            let pool = PgPool::connect(&database.url).await?;
            create_schema(&pool).await?;
            pool.close().await;
            BaselineServer::start(&database.url).await
        }
        .await;
        match started {
            Ok(server) => Ok(Self { server, database }),
            Err(err) => {
                database.drop_database().await;
                Err(err)
            }
        }
    }

    /// `clients` concurrent clients creating `per_client` projects each,
    /// through `client` (the `commands` scenario's, with its keep-alive
    /// pool).
    ///
    /// # Errors
    /// When a view update failed during the run (the framework answers the
    /// command regardless).
    pub async fn creates(
        &self,
        client: &reqwest::Client,
        clients: usize,
        per_client: usize,
    ) -> anyhow::Result<Sampled> {
        let url = Arc::new(format!("{}/projects", self.server.url));
        let client = client.clone();
        let run = Uuid::new_v4().simple().to_string();
        let view_errors = self.server.view_errors();
        let sampled = sampled_loop(clients, per_client, move |c, i| {
            let (client, url) = (client.clone(), url.clone());
            let body = json!({ "name": format!("bench {run} {c} {i}") });
            async move {
                let response = client.post(url.as_str()).json(&body).send().await?;
                response.error_for_status().map(drop)
            }
        })
        .await;
        let failed = self.server.view_errors() - view_errors;
        if failed > 0 {
            bail!("{failed} view updates of the framework baseline failed");
        }
        Ok(sampled)
    }

    /// Stops the server and drops the database.
    pub async fn stop(self) {
        let Self { server, database } = self;
        tokio::task::spawn_blocking(move || drop(server))
            .await
            .context("while stopping the framework baseline")
            .unwrap_or_else(|err| eprintln!("{err:#}"));
        database.drop_database().await;
    }
}
