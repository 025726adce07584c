//! The `reliability` suite's machinery: real `hub` processes that can be
//! killed and restarted, a command load that records what was acknowledged,
//! and a check that the store, the JetStream stream and the read models
//! agree afterwards.
//!
//! Layout:
//! - `process`: [`HubProcess`], a `hub serve` child process on port 0, and
//!   the [`Endpoint`] clients follow across its restarts.
//! - `load`: [`Load`], concurrent GraphQL clients creating, starting and
//!   stopping projects, and the [`Ledger`] of every attempt they made.
//! - `agreement`: [`Agreement`], what the store, the stream, `projects` and
//!   `event_log` hold, compared event by event.
//! - `rng`: [`Rng`], a small seeded generator, so a failing run can be
//!   repeated with `HUB_RELIABILITY_SEED`.

mod agreement;
mod load;
mod process;
mod rng;

pub use agreement::{wait_for_agreement, Agreement, Discrepancy};
pub use load::{Attempt, Kind, Ledger, Load, Outcome};
pub use process::{Endpoint, HubProcess, HubSpec};
pub use rng::Rng;

/// Crash cycles to run: `HUB_RELIABILITY_CYCLES`, default 3 (quick mode,
/// part of the normal test command). Full mode is 50.
///
/// # Panics
/// When the variable is set but not a positive number.
pub fn cycles() -> u32 {
    match std::env::var("HUB_RELIABILITY_CYCLES") {
        Ok(value) => value
            .trim()
            .parse()
            .ok()
            .filter(|cycles| *cycles > 0)
            .unwrap_or_else(|| panic!("HUB_RELIABILITY_CYCLES={value:?} is not a positive number")),
        Err(_) => 3,
    }
}

/// The random seed: `HUB_RELIABILITY_SEED`, else one drawn now. Printed by
/// the tests, so a failure can be replayed.
///
/// # Panics
/// When the variable is set but not a number.
pub fn seed() -> u64 {
    match std::env::var("HUB_RELIABILITY_SEED") {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HUB_RELIABILITY_SEED={value:?} is not a number")),
        Err(_) => uuid::Uuid::new_v4().as_u64_pair().0,
    }
}

/// A hub id of its own for one scenario (`rel-<scenario>-<random>`).
pub fn hub_id(scenario: &str) -> String {
    format!(
        "rel-{scenario}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}
