//! The Leasehold master.
//!
//! A request enters in [`http`] (the only module that knows HTTP), is decided in [`engine`], and
//! is kept in [`store`]; each layer uses only the ones below it. [`push`] dispatches tasks to
//! workers that are pushed to instead of pulling. [`startup`] wires them together.
//!
//! - **Where a lease is decided:** [`engine::rules`]. Every transition of a task (a lease
//!   granted, a result accepted or refused, an expiry, a retry, a release, a cancel) is a pure
//!   function there, from the stored record and the time to the next record. A store chooses
//!   and locks the candidates (`store/*/ops.rs`, `store/postgres/lease.rs`), runs the rule inside
//!   its transaction, and writes what it returned; it never decides.
//! - **Where a new per-queue policy goes:** a rule in [`engine::rules`] given what it needs to
//!   know (as [`rules::drained`](engine::rules::drained) is given each queue's
//!   [`QueueBacklog`](model::QueueBacklog)), its setting stored by both stores alike, and its
//!   API in [`http`].
//! - **Who may do what:** [`access`] (tokens, roles as sets of actions, queue scopes); each
//!   guarded route names the action it needs in `http::access::ROUTES`.
//! - [`model`] holds the records the engine and the store share; [`clock`] the time both read.

pub mod access;
pub mod chain;
pub mod clock;
pub mod config;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod model;
pub mod push;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
