//! The Leasehold worker.
//!
//! [`pull`] leases tasks from the master into a small buffer and [`execute`] runs each one in
//! one of the worker's [`slots`] — handler, heartbeat,
//! result — through a [`handler::Handler`]; [`report`] groups the results of tasks that finish
//! together into one request. [`http`] is the worker's own server (the push entry
//! point `POST /do-task`, probes, metrics). It talks to the master through
//! [`leasehold_client::MasterClient`], the typed client of the master's API. [`activity`] logs
//! each task's end and a periodic summary. [`startup`] wires them together and drains on
//! shutdown.
//!
//! Plugging in your own code:
//!
//! ```no_run
//! use std::sync::Arc;
//! use clap::Parser;
//! use worker_svc::{Application, Config, Handler, TaskContext, TaskError, shutdown_signal};
//!
//! struct MyHandler;
//!
//! #[worker_svc::async_trait]
//! impl Handler for MyHandler {
//!     async fn handle(&self, task: &TaskContext) -> Result<serde_json::Value, TaskError> {
//!         Ok(serde_json::json!({ "len": task.payload.to_string().len() }))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::parse(); // --master, --concurrency, ... as for worker-svc
//! let app = Application::build_with_handler(config, Arc::new(MyHandler)).await?;
//! app.run_until_stopped(shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```

pub mod activity;
pub mod config;
pub mod execute;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod pull;
pub mod register;
pub mod report;
pub mod slots;
pub mod startup;

pub use async_trait::async_trait;
pub use config::Config;
pub use handler::{Handler, TaskContext, TaskError};
pub use leasehold_service_kit::shutdown_signal;
pub use startup::Application;
