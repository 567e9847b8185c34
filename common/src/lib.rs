//! The Leasehold API contract.
//!
//! Plain serde types for every request and response body of the master and worker services, the
//! newtype ids, the limits a request is checked against, and the RFC 9457 problem-details error
//! body. No I/O lives here: both services, their tests and the benchmark share these types, so a
//! body can only change in one place. Each type also derives its OpenAPI schema ([`utoipa`]), so
//! the spec is generated from the same types the services use. [`examples`] holds the sample
//! bodies the OpenAPI document shows, built from those types; the document's assembly attaches
//! them ([`openapi::SchemaExamples`]), and the types do not refer to them.

#![warn(missing_docs)]

pub mod access;
pub mod activity;
pub mod attempts;
pub mod auth;
pub mod bulk;
pub mod cluster;
pub mod examples;
pub mod integer;
pub mod lease;
pub mod listing;
pub mod object;
pub mod openapi;
pub mod probe;
pub mod problem;
pub mod push;
pub mod queue;
pub mod task;

pub use access::*;
pub use activity::*;
pub use attempts::*;
pub use bulk::*;
pub use cluster::*;
pub use lease::*;
pub use listing::*;
pub use probe::Probe;
pub use problem::Problem;
pub use push::*;
pub use queue::*;
pub use task::*;
