//! The hub's JetStream stream: created or brought up to date at start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// What the hub's stream must look like.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Stream name.
    pub name: String,
    /// `hub.<hub_id>.>`.
    pub subjects: Vec<String>,
    /// How long JetStream remembers message ids for de-duplication.
    pub duplicate_window: Duration,
}

impl StreamSettings {
    /// The settings for hub `hub_id`.
    pub fn for_hub(hub_id: &str, name: impl Into<String>, duplicate_window: Duration) -> Self {
        Self {
            name: name.into(),
            subjects: vec![format!("hub.{hub_id}.>")],
            duplicate_window,
        }
    }

    /// The default stream name for a hub: `HUB_<ID>` in upper case, with
    /// characters JetStream does not allow in names replaced by `_`.
    pub fn default_name(hub_id: &str) -> String {
        let id: String = hub_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("HUB_{id}")
    }

    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            storage: stream::StorageType::File,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        }
    }
}

/// A failure talking to JetStream.
pub type NatsError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Creates the stream, or updates its subjects and duplicate window when it
/// exists with other values (other settings made by an operator are kept).
///
/// # Errors
/// When JetStream is unreachable or refuses the configuration.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, NatsError> {
    match js.get_stream(&settings.name).await {
        Ok(mut existing) => {
            let current = existing.info().await?.config.clone();
            if current.subjects != settings.subjects
                || current.duplicate_window != settings.duplicate_window
            {
                let updated = stream::Config {
                    subjects: settings.subjects.clone(),
                    duplicate_window: settings.duplicate_window,
                    ..current
                };
                js.update_stream(updated).await?;
                tracing::info!(stream = %settings.name, "updated the JetStream stream's subjects and duplicate window");
            }
            Ok(existing)
        }
        Err(err) if is_not_found(&err) => {
            let created = js.create_stream(settings.config()).await?;
            tracing::info!(stream = %settings.name, "created the JetStream stream");
            Ok(created)
        }
        Err(err) => Err(err.into()),
    }
}

fn is_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}
