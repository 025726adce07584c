//! Turns `HUB_FEED_WITHOUT` (a comma-separated list of the feed runner's
//! optional paths, e.g. `one_statement,shared_window`) into
//! `--cfg hub_feed_without="..."` for this crate alone, for A/B builds (see
//! `feed::runner::paths`). Unlike `RUSTFLAGS`, changing it rebuilds only
//! this crate and those that depend on it, not every dependency.

const PATHS: [&str; 4] = [
    "one_statement",
    "writes_nothing",
    "delayed_checkpoint",
    "shared_window",
];

fn main() {
    println!("cargo::rerun-if-env-changed=HUB_FEED_WITHOUT");
    let Ok(list) = std::env::var("HUB_FEED_WITHOUT") else {
        return;
    };
    for path in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        assert!(
            PATHS.contains(&path),
            "HUB_FEED_WITHOUT: unknown path {path:?}; known: {}",
            PATHS.join(", ")
        );
        println!("cargo::rustc-cfg=hub_feed_without=\"{path}\"");
    }
}
