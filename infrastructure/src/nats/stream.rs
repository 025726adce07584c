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
    /// Copies of the stream in a JetStream cluster.
    pub replicas: usize,
    /// Oldest message kept (zero: forever).
    pub max_age: Duration,
    /// Most bytes kept, oldest removed first (zero: no limit).
    pub max_bytes: u64,
}

impl StreamSettings {
    /// The settings for hub `hub_id`.
    pub fn for_hub(hub_id: &str, name: impl Into<String>, duplicate_window: Duration) -> Self {
        Self {
            name: name.into(),
            subjects: vec![format!("hub.{hub_id}.>")],
            duplicate_window,
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: 0,
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
        self.apply(stream::Config {
            name: self.name.clone(),
            storage: stream::StorageType::File,
            ..Default::default()
        })
    }

    /// `config` with the settings the hub manages (subjects, duplicate
    /// window, replicas, retention) set to these; everything else kept.
    fn apply(&self, config: stream::Config) -> stream::Config {
        stream::Config {
            subjects: self.subjects.clone(),
            duplicate_window: self.effective_duplicate_window(),
            num_replicas: self.replicas.max(1),
            max_age: self.max_age,
            max_bytes: self.max_bytes_limit(),
            ..config
        }
    }

    /// The duplicate window JetStream accepts: never longer than the
    /// maximum age of messages (JetStream refuses a stream whose window is).
    pub fn effective_duplicate_window(&self) -> Duration {
        if self.max_age.is_zero() {
            self.duplicate_window
        } else {
            self.duplicate_window.min(self.max_age)
        }
    }

    /// JetStream's form of `max_bytes`: -1 for no limit.
    fn max_bytes_limit(&self) -> i64 {
        match self.max_bytes {
            0 => -1,
            bytes => i64::try_from(bytes).unwrap_or(i64::MAX),
        }
    }
}

/// A failure talking to JetStream.
pub type NatsError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Creates the stream, or brings an existing one to the settings the hub
/// manages (subjects, duplicate window, replicas, maximum age and bytes);
/// other settings made by an operator are kept. A change JetStream refuses
/// (more replicas than the cluster has servers, replicas on a server
/// without clustering) is logged with JetStream's reason and the stream is
/// used as it is.
///
/// # Errors
/// When JetStream is unreachable, or refuses to create the stream.
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, NatsError> {
    match js.get_stream(&settings.name).await {
        Ok(mut existing) => {
            let current = existing.info().await?.config.clone();
            let wanted = settings.apply(current.clone());
            if managed(&wanted) != managed(&current) {
                match js.update_stream(wanted).await {
                    Ok(_) => tracing::info!(
                        stream = %settings.name,
                        replicas = settings.replicas,
                        max_age = ?settings.max_age,
                        max_bytes = settings.max_bytes,
                        "brought the JetStream stream to the hub's settings"
                    ),
                    Err(err) => tracing::warn!(
                        stream = %settings.name,
                        error = %err,
                        "JetStream refused to change the stream to the hub's settings; using it as it is"
                    ),
                }
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

/// The settings the hub manages, to compare.
fn managed(config: &stream::Config) -> (Vec<String>, Duration, usize, Duration, i64) {
    (
        config.subjects.clone(),
        config.duplicate_window,
        config.num_replicas.max(1),
        config.max_age,
        config.max_bytes,
    )
}

fn is_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}
