//! The hub's integration tests, in one binary: each module is one area,
//! against real PostgreSQL and NATS servers (and real `hub` processes where
//! a test needs one), with the helpers of the `hub_tests` library.
//!
//! Run one area with `cargo test -p hub-tests --test it <module>::`, e.g.
//! `cargo test -p hub-tests --test it reliability::`.

mod browser_access;
mod cli_events;
mod compose_file;
mod console_browser;
mod contention;
mod database_outage;
mod event_consumer;
mod event_feed;
mod event_pages;
mod feed_runners;
mod graphql_admin;
mod graphql_concurrency;
mod graphql_errors;
mod graphql_events;
mod graphql_flow;
mod graphql_limits;
mod graphql_over_http;
mod group_commit;
mod health_and_metrics;
mod hostile_input;
mod hostile_requests;
mod http_limits;
mod hub_cluster;
mod hub_logs;
mod live_feed;
mod nats_as_users_run_it;
mod nats_cluster;
mod nats_relay;
mod openapi_contract;
mod orchestration_history;
mod orchestration_noop;
mod orchestration_recovery;
mod orchestration_secrets;
mod orchestration_shell;
mod original_plan;
mod page_scan;
mod poison_events;
mod project_reservations;
mod read_model_batches;
mod read_pool;
mod rebuild;
mod rebuild_statistics;
mod relay_checkpoint_loss;
mod relay_outage;
mod reliability;
mod rest_publish;
mod rest_query;
mod rest_stream;
mod schema_contract;
mod schemathesis;
mod shared_servers;
mod snapshots;
mod sse_stream;
mod subscription_sharing;
mod subscription_sockets;
mod subscriptions;
mod subscriptions_trusted;
mod token_deployments;
mod unreadable_events;
mod upcasting;
