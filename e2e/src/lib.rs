//! Leasehold's end-to-end tests live in `tests/e2e/`: each starts the real `master-svc` and
//! `worker-svc` binaries on 127.0.0.1 and talks HTTP to them. This library is empty; cargo
//! needs a target besides the tests.
