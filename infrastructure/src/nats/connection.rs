//! The connection to NATS: a server list, credentials from the URL, a
//! `.creds` file or an nkey seed, reconnecting forever, and a signal each
//! time it (re)connects.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerAddr};
use tokio::sync::watch;

use super::stream::NatsError;

/// Longest wait between two attempts to reconnect: once a server is back,
/// the hub is connected again within about this long.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// How to reach NATS.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    /// One URL, or several separated by commas; a user and password
    /// (`nats://user:pass@host`) or a token (`nats://token@host`) in one of
    /// them authenticates.
    pub servers: String,
    /// A `.creds` file (user JWT and nkey seed).
    pub creds_file: Option<PathBuf>,
    /// A file holding a user nkey seed.
    pub nkey_file: Option<PathBuf>,
}

/// A client, and a watch on its (re)connections.
#[derive(Clone, Debug)]
pub struct NatsConnection {
    /// The client.
    pub client: async_nats::Client,
    /// Announces every connection the client makes.
    pub connections: Reconnections,
}

/// A watch on a client's connections: each time it is connected again
/// after losing its server.
///
/// A JetStream request (or a publish's acknowledgement) sent while the
/// connection was being lost gets no answer and would wait out its
/// timeout; racing it against a reconnection lets the caller make it again
/// at once.
#[derive(Clone, Debug)]
pub struct Reconnections(watch::Receiver<u64>);

impl From<watch::Receiver<u64>> for Reconnections {
    /// A watch on a count that changes on each connection.
    fn from(count: watch::Receiver<u64>) -> Self {
        Self(count)
    }
}

impl Reconnections {
    /// Counts every connection so far as seen: from now on only a new one
    /// ends [`Reconnections::unless_reconnected`].
    pub fn mark_seen(&mut self) {
        self.0.borrow_and_update();
    }

    /// `work`'s output, or `None` as soon as the client connects again
    /// while it runs (a connection since the last one seen counts). Once
    /// the client is gone no connection is announced: then `work` runs to
    /// its end.
    pub async fn unless_reconnected<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        tokio::select! {
            done = &mut work => Some(done),
            changed = self.0.changed() => match changed {
                Ok(()) => None,
                Err(_) => Some(work.await),
            },
        }
    }
}

/// The servers of a comma-separated list, and the credentials written in
/// their URLs (the first found).
///
/// # Errors
/// A sentence naming the entry that is not a NATS URL.
pub fn parse_servers(list: &str) -> Result<(Vec<ServerAddr>, Option<UrlCredentials>), NatsError> {
    let mut servers = Vec::new();
    let mut credentials = None;
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let addr: ServerAddr = entry.parse().map_err(|err| {
            format!(
                "NATS_URL: {:?} is not a NATS server URL (nats://host:port): {err}",
                crate::redact::url(entry)
            )
        })?;
        if credentials.is_none() {
            credentials = UrlCredentials::of(&addr);
        }
        servers.push(addr);
    }
    if servers.is_empty() {
        return Err("NATS_URL names no server".into());
    }
    Ok((servers, credentials))
}

/// Credentials written in a server URL.
#[derive(Clone, PartialEq, Eq)]
pub enum UrlCredentials {
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://token@host`.
    Token(String),
}

impl std::fmt::Debug for UrlCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserPassword(user, _) => write!(f, "UserPassword({user}, ***)"),
            Self::Token(_) => write!(f, "Token(***)"),
        }
    }
}

impl UrlCredentials {
    fn of(addr: &ServerAddr) -> Option<Self> {
        if !addr.has_user_pass() {
            return None;
        }
        let user = percent_decode(addr.username()?);
        match addr.password() {
            Some(password) => Some(Self::UserPassword(user, percent_decode(password))),
            None => Some(Self::Token(user)),
        }
    }
}

/// `%xx` escapes of a URL's user information undone.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_file(what: &str, path: &Path) -> Result<String, NatsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{what}: cannot read {}: {err}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// A client authenticates one way: a `.creds` file, an nkey seed, or
/// credentials in a server URL. Given several, the server would see one of
/// them, chosen by the client library: refused with a sentence instead.
fn check_one_way_of_authenticating(
    options: &NatsOptions,
    credentials: Option<&UrlCredentials>,
) -> Result<(), NatsError> {
    let mut ways = Vec::new();
    if options.creds_file.is_some() {
        ways.push("HUB_NATS_CREDS");
    }
    if options.nkey_file.is_some() {
        ways.push("HUB_NATS_NKEY");
    }
    if credentials.is_some() {
        ways.push("credentials in NATS_URL");
    }
    if ways.len() > 1 {
        return Err(format!(
            "NATS authentication is given {} ways ({}); give one",
            ways.len(),
            ways.join(", ")
        )
        .into());
    }
    Ok(())
}

/// Connects to NATS in the background: returns at once, so the hub serves
/// commands while NATS is down, and reconnects forever, to any server of
/// the list (and those the cluster announces).
///
/// # Errors
/// A sentence, when the server list is malformed or a credentials file
/// cannot be read.
pub async fn connect(options: &NatsOptions) -> Result<NatsConnection, NatsError> {
    let (servers, credentials) = parse_servers(&options.servers)?;
    check_one_way_of_authenticating(options, credentials.as_ref())?;
    let mut connect = match &options.creds_file {
        Some(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|err| format!("HUB_NATS_CREDS: cannot use {}: {err}", path.display()))?,
        None => ConnectOptions::new(),
    };
    if let Some(path) = &options.nkey_file {
        connect = connect.nkey(read_file("HUB_NATS_NKEY", path)?);
    }
    connect = match credentials {
        Some(UrlCredentials::UserPassword(user, password)) => {
            connect.user_and_password(user, password)
        }
        Some(UrlCredentials::Token(token)) => connect.token(token),
        None => connect,
    };
    let (connected, connections) = watch::channel(0u64);
    let client = connect
        .name("hub")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            (Duration::from_millis(50) * u32::try_from(attempts).unwrap_or(u32::MAX))
                .min(MAX_RECONNECT_DELAY)
        })
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(Duration::from_secs(5)))
        .event_callback(move |event| {
            let connected = connected.clone();
            async move {
                match event {
                    Event::Connected => {
                        connected.send_modify(|n| *n = n.wrapping_add(1));
                        tracing::info!("connected to NATS");
                    }
                    Event::Disconnected => {
                        tracing::warn!("lost the connection to NATS; reconnecting")
                    }
                    other => tracing::debug!(event = %other, "NATS connection event"),
                }
            }
        })
        .connect(servers)
        .await?;
    Ok(NatsConnection {
        client,
        connections: connections.into(),
    })
}

/// Whether the client is connected right now.
pub fn is_connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_ways_of_authenticating_are_refused_before_connecting() {
        let options = |servers: &str, creds: bool, nkey: bool| NatsOptions {
            servers: servers.to_owned(),
            creds_file: creds.then(|| PathBuf::from("/nonexistent/hub.creds")),
            nkey_file: nkey.then(|| PathBuf::from("/nonexistent/hub.nk")),
        };
        for (servers, creds, nkey) in [
            ("nats://alice:pw@127.0.0.1:1", true, false),
            ("nats://127.0.0.1:1", true, true),
            ("nats://t0ken@127.0.0.1:1", false, true),
        ] {
            let err = connect(&options(servers, creds, nkey))
                .await
                .expect_err("refused");
            assert!(
                err.to_string().contains("; give one"),
                "{servers} {creds} {nkey}: {err}"
            );
        }
    }

    #[test]
    fn a_server_list_is_split_and_its_credentials_found() {
        let (servers, credentials) =
            parse_servers("nats://a:4222, nats://alice:s%40cret@b:4223,nats://c:4224").unwrap();
        assert_eq!(servers.len(), 3);
        assert_eq!(
            credentials,
            Some(UrlCredentials::UserPassword(
                "alice".into(),
                "s@cret".into()
            ))
        );
        let (_, token) = parse_servers("nats://t0ken@a:4222").unwrap();
        assert_eq!(token, Some(UrlCredentials::Token("t0ken".into())));
        let (_, none) = parse_servers("nats://127.0.0.1:4222").unwrap();
        assert_eq!(none, None);
        let refused = parse_servers("nats://a:4222,nats://b:port")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("is not a NATS server URL"), "{refused}");
        assert!(parse_servers(" , ").is_err());
        assert!(!format!("{:?}", UrlCredentials::Token("t0ken".into())).contains("t0ken"));
    }
}
