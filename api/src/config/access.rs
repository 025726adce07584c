//! Who may reach the hub: allowed browser origins and host names, and
//! whether reads are open without the token.

use clap::Args;
use secrecy::{ExposeSecret as _, SecretString};

use crate::http::access::Access;

/// Browser origins, host names and public reads.
#[derive(Debug, Clone, Default, Args)]
pub struct AccessArgs {
    /// Browser origins (`scheme://host[:port]`, comma-separated) whose pages
    /// may call the API, open its sockets and get CORS, besides the hub's
    /// own, e.g. a Vite dev server `http://localhost:5173`. `*` allows every
    /// origin, only with HUB_API_TOKEN.
    #[arg(long, env = "HUB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Host names (comma-separated) a hub without HUB_API_TOKEN serves
    /// besides loopback ones (`localhost`, `127.0.0.1`, `[::1]`); others get
    /// 421, which keeps DNS-rebinding pages out.
    #[arg(long, env = "HUB_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// With HUB_API_TOKEN: serve reads (GraphQL queries and subscriptions,
    /// GET /api/events, the event socket) without the token. They show
    /// every project's name and path and every event's payload.
    #[arg(long, env = "HUB_PUBLIC_READS", default_value_t = false, action = clap::ArgAction::Set)]
    pub public_reads: bool,
}

/// The token as the hub uses it: an empty or blank one is none.
pub fn effective_token(token: Option<&SecretString>) -> Option<SecretString> {
    token
        .filter(|token| !token.expose_secret().trim().is_empty())
        .cloned()
}

impl AccessArgs {
    /// The access rules, with the (effective) token.
    ///
    /// # Errors
    /// A sentence: an origin that is not `scheme://host[:port]`, or `*`
    /// without a token.
    pub fn access(&self, token: Option<SecretString>) -> Result<Access, String> {
        let listed = |values: &[String]| -> Vec<String> {
            values
                .iter()
                .map(|v| v.trim().trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let origins = listed(&self.allowed_origins);
        let any_origin = origins.iter().any(|o| o == "*");
        if any_origin && token.is_none() {
            return Err(
                "HUB_ALLOWED_ORIGINS=* lets every web page drive the hub; it needs HUB_API_TOKEN"
                    .to_owned(),
            );
        }
        for origin in origins.iter().filter(|o| *o != "*") {
            let well_formed = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
            });
            if !well_formed {
                return Err(format!(
                    "HUB_ALLOWED_ORIGINS: {origin:?} is not an origin; write scheme://host[:port], e.g. http://localhost:5173"
                ));
            }
        }
        Ok(Access {
            token,
            allowed_origins: origins.into_iter().filter(|o| o != "*").collect(),
            any_origin,
            allowed_hosts: listed(&self.allowed_hosts),
            public_reads: self.public_reads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_token_is_no_token() {
        assert!(effective_token(Some(&SecretString::from(""))).is_none());
        assert!(effective_token(Some(&SecretString::from("  \t"))).is_none());
        assert!(effective_token(Some(&SecretString::from("t"))).is_some());
        assert!(effective_token(None).is_none());
    }

    #[test]
    fn origins_are_checked_and_a_wildcard_needs_a_token() {
        let args = |origins: &[&str]| AccessArgs {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..AccessArgs::default()
        };
        assert!(args(&["http://localhost:5173/"]).access(None).is_ok());
        assert!(args(&["localhost:5173"]).access(None).is_err());
        assert!(args(&["http://x/path"]).access(None).is_err());
        assert!(args(&["*"]).access(None).is_err());
        let any = args(&["*"]).access(Some(SecretString::from("t"))).unwrap();
        assert!(any.any_origin);
    }
}
