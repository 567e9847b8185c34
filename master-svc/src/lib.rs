//! The Leasehold master.
//!
//! A request enters in [`http`], is decided in [`engine`] (what a lease, an expiry, a stale
//! result, a retry is), and is kept in [`store`]. [`push`] dispatches tasks to workers that are
//! pushed to instead of pulling. [`startup`] wires them together.

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
