//! Integration tests: each starts a real master on port 0 with a temporary database and talks
//! HTTP to it.

mod attempts;
mod audit;
mod auth;
mod bad_input;
mod batch_results;
mod bulk;
mod client;
mod connections;
mod contract;
mod expiry;
mod failures;
mod finding;
mod flow_control;
mod helpers;
mod http_errors;
mod idle_queues;
mod leasing;
mod listing;
mod long_poll;
mod masters;
mod metrics;
mod openapi;
mod pull_workers;
mod push_clock;
mod queues;
mod release_cancel;
mod report_and_lease;
mod results;
mod roles;
mod scopes;
mod smoke;
mod submit;
mod wait_for_result;
mod workers;
