//! Opaque pagination cursors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use infrastructure::feed::FeedPosition;
use uuid::Uuid;

/// A cursor that is not one this service handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid cursor; pass a cursor from a previous page unchanged")]
pub struct CursorError(pub String);

fn decode(kind: &str, cursor: &str) -> Result<Vec<String>, CursorError> {
    let bad = || CursorError(cursor.chars().take(64).collect());
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split(':');
    if parts.next() != Some(kind) {
        return Err(bad());
    }
    Ok(parts.map(str::to_owned).collect())
}

/// Position of an event in feed order, as a cursor.
pub fn encode_event_cursor(at: FeedPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("e:{}:{}", at.transaction_id, at.position))
}

/// Reads an event cursor. A bare number is accepted too and means "after
/// the event at this global position" (resolved by the caller).
///
/// # Errors
/// When the cursor was not made by [`encode_event_cursor`].
pub fn decode_event_cursor(cursor: &str) -> Result<FeedPosition, CursorError> {
    let bad = || CursorError(cursor.chars().take(64).collect());
    let parts = decode("e", cursor)?;
    match parts.as_slice() {
        [tx, pos] => Ok(FeedPosition {
            transaction_id: tx.parse().map_err(|_| bad())?,
            position: pos.parse().map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// Position of a project in the list order (creation time, then id).
pub fn encode_project_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("p:{}:{}", created_at.timestamp_micros(), id))
}

/// Reads a project cursor.
///
/// # Errors
/// When the cursor was not made by [`encode_project_cursor`].
pub fn decode_project_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), CursorError> {
    let bad = || CursorError(cursor.chars().take(64).collect());
    let parts = decode("p", cursor)?;
    match parts.as_slice() {
        [micros, id] => {
            let micros: i64 = micros.parse().map_err(|_| bad())?;
            let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
            Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_input() {
        let at = FeedPosition {
            transaction_id: 42,
            position: 7,
        };
        assert_eq!(decode_event_cursor(&encode_event_cursor(at)), Ok(at));
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(
            decode_project_cursor(&encode_project_cursor(now, id)),
            Ok((now, id))
        );
        assert!(decode_event_cursor("nonsense!").is_err());
        assert!(decode_event_cursor(&encode_project_cursor(now, id)).is_err());
        assert!(decode_project_cursor("").is_err());
    }
}
