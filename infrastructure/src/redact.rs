//! Credentials are never shown: URLs in health reports, logs and errors
//! have their user information redacted.

/// `url` (or a comma-separated list of URLs) with the password of each
/// replaced by `***`, and a user name alone (as NATS uses for a token)
/// replaced by `***` too: `nats://alice:s3cret@h:4222` gives
/// `nats://alice:***@h:4222`, `nats://t0ken@h` gives `nats://***@h`.
pub fn url(url: &str) -> String {
    url.split(',').map(one).collect::<Vec<_>>().join(",")
}

fn one(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // The authority ends at the first '/', '?' or '#'; user information
    // ends at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let tail = redact_query(tail);
    let redacted = match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = match user_info.split_once(':') {
                Some((user, _password)) => format!("{user}:***"),
                None => "***".to_owned(),
            };
            format!("{user}@{host}{tail}")
        }
        None => format!("{authority}{tail}"),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{redacted}"),
        None => redacted,
    }
}

/// The `password`, `pass` and `token` parameters of a query string hidden.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _))
                if matches!(
                    name.to_ascii_lowercase().as_str(),
                    "password" | "pass" | "token"
                ) =>
            {
                format!("{name}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::url;

    #[test]
    fn passwords_and_tokens_are_hidden_and_the_rest_kept() {
        assert_eq!(
            url("nats://alice:s3cretpw@nats:4222"),
            "nats://alice:***@nats:4222"
        );
        assert_eq!(url("nats://t0ken@nats:4222"), "nats://***@nats:4222");
        assert_eq!(url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            url("postgres://hub:p@ss:w0rd@db:5432/hub?sslmode=disable"),
            "postgres://hub:***@db:5432/hub?sslmode=disable"
        );
        assert_eq!(
            url("nats://a:b@n1:4222,nats://n2:4222,c:d@n3"),
            "nats://a:***@n1:4222,nats://n2:4222,c:***@n3"
        );
        assert_eq!(
            url("postgres://db/x?sslmode=disable&password=s3cret"),
            "postgres://db/x?sslmode=disable&password=***"
        );
    }
}
