//! Leasehold's tools: programs for the people building Leasehold, not parts of a deployment.
//!
//! The `openapi` binary prints [`openapi::yaml`], the document of both services that
//! `openapi.yaml` at the repository root holds; the `bench` binary (`src/bin/bench/`) drives real
//! `master-svc` and `worker-svc` processes and measures them. This crate is the one place that
//! builds both services' code together.

pub mod openapi;
