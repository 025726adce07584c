//! What a runner does with an event its consumer keeps failing on, and how
//! it tells such a "poison" event from an outage.

use uuid::Uuid;

use super::event::FeedPosition;

/// What a runner does once a batch has failed `max_attempts` times in a row
/// for a reason other than an outage.
///
/// Either way it first finds the failing event by handling the batch one
/// event at a time (one transaction each), committing the events before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoisonPolicy {
    /// Park the event (table `parked_events`, with its error and position)
    /// and go on. Later events of the same aggregate are parked behind it,
    /// so each aggregate's events still apply in order once retried. For
    /// read models: one bad event must not stop every other row.
    Park,
    /// Stay on the event, retrying with backoff, and report it in the
    /// status ([`super::ConsumerStatus::halted`]). For consumers whose order
    /// and effects matter (the NATS relay, process managers): they never
    /// skip an event they fail on. An event whose stored row cannot be read
    /// back is parked whatever the policy: no consumer can handle it, and
    /// halting on it would stop every other event.
    #[default]
    Halt,
}

/// The event a [`PoisonPolicy::Halt`] consumer is stopped on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaltedOn {
    /// The event's id.
    pub event_id: Uuid,
    /// Its place in the feed.
    pub position: FeedPosition,
    /// What the consumer said.
    pub error: String,
}

/// Whether a consumer's error means a service it needs is unavailable or
/// the transaction lost a race (retried until it works, never treated as a
/// poison event), rather than a failure of the consumer on its events.
///
/// Looks through the error's sources for a sqlx error meaning the database
/// is unreachable ([`crate::error::is_unavailable`]), a serialization failure
/// or deadlock (SQLSTATE class 40), a lock timeout (55P03), or an I/O error.
pub fn is_outage(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if let Some(sqlx_err) = err.downcast_ref::<sqlx::Error>() {
            if crate::error::is_unavailable(sqlx_err) || is_transient_database_error(sqlx_err) {
                return true;
            }
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        current = err.source();
    }
    false
}

fn is_transient_database_error(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("40") || code == "55P03"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_told_apart_from_consumer_failures() {
        let closed: Box<dyn std::error::Error + Send + Sync> = Box::new(sqlx::Error::PoolClosed);
        assert!(is_outage(closed.as_ref()));
        let io: Box<dyn std::error::Error + Send + Sync> = Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert!(is_outage(io.as_ref()));
        let bug: Box<dyn std::error::Error + Send + Sync> = "a bad event".into();
        assert!(!is_outage(bug.as_ref()));
        let decode: Box<dyn std::error::Error + Send + Sync> = Box::new(sqlx::Error::RowNotFound);
        assert!(!is_outage(decode.as_ref()));
    }
}
