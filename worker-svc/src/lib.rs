//! The Leasehold worker.
//!
//! [`pull`] leases tasks from the master and [`execute`] runs each one — handler, heartbeat,
//! result — through a [`handler::Handler`]. [`http`] is the worker's own server (the push entry
//! point `POST /do-task`, probes, metrics). [`client::MasterClient`] is the typed client of the
//! master's API. [`startup`] wires them together and drains on shutdown.

pub mod client;
pub mod config;
pub mod execute;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod pull;
pub mod startup;
pub mod telemetry;

pub use client::MasterClient;
pub use config::Config;
pub use handler::{Handler, TaskContext, TaskError};
pub use startup::{Application, shutdown_signal};
