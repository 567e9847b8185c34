//! End-to-end tests: the real `master-svc` and `worker-svc` binaries, talking HTTP on 127.0.0.1.
//! They are the binaries of this build, beside the test executable: build them first
//! (`cargo build --release --workspace --bins`; `scripts/test.sh` does).

mod cluster;
mod drain;
mod failover;
mod handlers;
mod logs;
mod prefetch;
mod pull;
mod push;
mod push_entry;
mod push_shutdown;
mod reporter;
mod tls;
