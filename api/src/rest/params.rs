//! Query-string values the REST routes share (`GET /api/events` and the
//! event stream), each parsed with a message that says what to send.

use chrono::{DateTime, Utc};

use super::error::RestError;

/// Most event types one request may name.
pub(super) const MAX_TYPES: usize = 100;

/// Reads an RFC 3339 timestamp given as `name`.
pub(super) fn timestamp(name: &str, value: &str) -> Result<DateTime<Utc>, RestError> {
    // An unencoded '+' in a query string arrives as a space.
    let repaired = value.replace(' ', "+");
    DateTime::parse_from_rfc3339(&repaired)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| {
            RestError::invalid(format!(
                "{name} must be an RFC 3339 timestamp such as 2024-05-01T12:00:00Z, got '{}'",
                value.chars().take(64).collect::<String>()
            ))
        })
}

/// Refuses a `correlation_id` no event can have.
pub(super) fn correlation_id(id: &str) -> Result<(), RestError> {
    if id.len() > 256 || id.chars().any(char::is_control) {
        return Err(RestError::invalid(
            "correlation_id must be at most 256 characters without control characters",
        ));
    }
    Ok(())
}

/// `type=ProjectCreated,ProjectStarted&type=ProjectStopped`: every name, or
/// `None` when none is given.
pub(super) fn event_types(values: &[String]) -> Result<Option<Vec<String>>, RestError> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut types = Vec::new();
    for name in values.iter().flat_map(|value| value.split(',')) {
        let name = name.trim();
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(RestError::invalid(
                "type must name event types such as ProjectCreated (repeated or comma-separated), \
                 each 1-256 characters without control characters",
            ));
        }
        if types.len() == MAX_TYPES {
            return Err(RestError::invalid(format!(
                "type may name at most {MAX_TYPES} event types"
            )));
        }
        types.push(name.to_owned());
    }
    Ok(Some(types))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_a_repaired_plus() {
        assert!(timestamp("since", "2024-05-01T12:00:00Z").is_ok());
        assert!(timestamp("since", "2024-05-01T12:00:00 02:00").is_ok());
        for bad in ["yesterday", "2024-05-01", "2024-13-01T00:00:00Z", ""] {
            assert!(timestamp("since", bad).is_err(), "{bad}");
        }
    }
}
