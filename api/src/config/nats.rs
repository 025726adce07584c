//! NATS as users run it: a server list, credentials, and the stream the hub
//! creates (replicas, retention).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// The NATS connection and the hub's stream.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS servers with JetStream, comma-separated (the form every NATS
    /// client takes): `nats://a:4222,nats://b:4222`. Credentials may be in
    /// the URL (`nats://user:password@host`, or `nats://token@host`); or
    /// NATS_URL_FILE.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    pub nats_url: String,

    /// A `.creds` file (user JWT and nkey seed) to authenticate with.
    #[arg(long, env = "HUB_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// A file holding a user nkey seed (`SU...`) to authenticate with.
    #[arg(long, env = "HUB_NATS_NKEY")]
    pub nats_nkey: Option<PathBuf>,

    /// JetStream stream holding this hub's events (subjects `hub.<hub_id>.>`);
    /// default `HUB_<HUB_ID>`.
    #[arg(long, env = "HUB_NATS_STREAM")]
    pub nats_stream: Option<String>,

    /// Seconds JetStream remembers event ids to drop duplicate publishes.
    #[arg(long, env = "HUB_NATS_DUPLICATE_WINDOW_SECS", default_value_t = 120)]
    pub nats_duplicate_window_secs: u64,

    /// Copies of the stream in a JetStream cluster (1-5).
    #[arg(long, env = "HUB_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,

    /// Oldest message the stream keeps, e.g. `30d`, `12h`, `3600s` (`0`:
    /// forever). Older messages are removed; the store keeps every event.
    #[arg(long, env = "HUB_NATS_MAX_AGE", default_value = "0", value_parser = parse_duration)]
    pub nats_max_age: Duration,

    /// Most bytes the stream keeps, e.g. `10GB`, `512MiB` (`0`: no limit);
    /// the oldest messages are removed first.
    #[arg(long, env = "HUB_NATS_MAX_BYTES", default_value = "0", value_parser = parse_bytes)]
    pub nats_max_bytes: u64,
}

impl Default for NatsArgs {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_creds: None,
            nats_nkey: None,
            nats_stream: None,
            nats_duplicate_window_secs: 120,
            nats_replicas: 1,
            nats_max_age: Duration::ZERO,
            nats_max_bytes: 0,
        }
    }
}

impl NatsArgs {
    /// How to connect.
    pub fn connect_options(&self) -> infrastructure::nats::NatsOptions {
        infrastructure::nats::NatsOptions {
            servers: self.nats_url.clone(),
            creds_file: self.nats_creds.clone(),
            nkey_file: self.nats_nkey.clone(),
        }
    }

    /// The JetStream stream's settings for hub `hub_id`.
    pub fn stream_settings(&self, hub_id: &str) -> infrastructure::nats::StreamSettings {
        let name = self
            .nats_stream
            .clone()
            .unwrap_or_else(|| infrastructure::nats::StreamSettings::default_name(hub_id));
        infrastructure::nats::StreamSettings {
            replicas: usize::from(self.nats_replicas),
            max_age: self.nats_max_age,
            max_bytes: self.nats_max_bytes,
            ..infrastructure::nats::StreamSettings::for_hub(
                hub_id,
                name,
                Duration::from_secs(self.nats_duplicate_window_secs),
            )
        }
    }
}

/// `30d`, `12h`, `90m`, `30s` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30d, 12h, 90m or 3600s"))?;
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// `10GB`, `512MiB`, `100KB` or plain bytes.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10GB or 512MiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    Ok(number.saturating_mul(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_people_write_them() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("3600").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err());
        assert_eq!(parse_bytes("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert!(parse_bytes("ten").is_err() && parse_bytes("1PB").is_err());
    }
}
