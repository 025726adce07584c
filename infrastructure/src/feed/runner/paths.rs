//! Build-time switches, each turning one of the runner's cheaper paths
//! off, for A/B runs with `hub-bench` (see docs/PERFORMANCE.md, "A/B runs
//! of the feed's paths"). Every path is on unless the hub is built with
//! `HUB_FEED_WITHOUT=<path>[,<path>...]` in the environment (read by
//! `infrastructure/build.rs`, which rebuilds only this crate and its
//! dependents when it changes). Behaviour is the same either way, only the statements
//! differ; the tests run with every path on.

/// `one_statement`: [`super::plan::BatchPlan::OneStatement`]; without it
/// a consumer that writes always gets a transaction.
pub(super) const ONE_STATEMENT: bool = !cfg!(hub_feed_without = "one_statement");

/// `writes_nothing`: [`super::plan::BatchPlan::WritesNothing`]; without
/// it a consumer that writes nothing is planned as one that writes.
pub(super) const WRITES_NOTHING: bool = !cfg!(hub_feed_without = "writes_nothing");

/// `delayed_checkpoint`: the checkpoint row of a consumer that writes
/// nothing saved up to `checkpoint_delay` late; without it, after every
/// batch (as with a zero delay).
pub(super) const DELAYED_CHECKPOINT: bool = !cfg!(hub_feed_without = "delayed_checkpoint");

/// `shared_window`: the runners of a process read the log through one
/// window (`crate::feed::shared`); without it each reads on its own.
pub(super) const SHARED_WINDOW: bool = !cfg!(hub_feed_without = "shared_window");
