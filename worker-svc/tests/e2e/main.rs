//! End-to-end tests: the real `master-svc` and `worker-svc` binaries, talking HTTP on 127.0.0.1.

mod cluster;
mod drain;
mod failover;
mod handlers;
mod pull;
mod push;
mod push_entry;
mod push_shutdown;
#[path = "../../../master-svc/tests/support/throwaway_postgres.rs"]
mod throwaway_postgres;
mod tls;
