//! The Leasehold client: everything that talks HTTP to a master, shared by the worker, the
//! master's push dispatcher, the tests and the benchmark.
//!
//! [`MasterClient`] has one method per endpoint of the master's API and maps each answer to a
//! body from `common` or a [`ClientError`]. [`http_client_builder`] is the start of every HTTP
//! client of the services (rustls, the system's CA certificates or `SSL_CERT_FILE`'s).
//! [`free_slots`] sizes a lease by the room a worker has. No server code lives here.
//!
//! ```no_run
//! use leasehold_client::MasterClient;
//! use common::{LeaseRequest, SubmitTask, TaskResult};
//!
//! # async fn run() -> Result<(), leasehold_client::ClientError> {
//! let master = MasterClient::new("http://127.0.0.1:8080", None);
//! master.submit(&SubmitTask::new("hello world".into())).await?;
//! let leased = master.lease(&LeaseRequest::new("w01")).await?;
//! for task in leased.tasks {
//!     let done = TaskResult::succeeded(task.lease_id, "w01", "HELLO WORLD".into());
//!     master.result(task.task_id, &done).await?;
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod error;
mod master;
mod slots;
mod tls;

pub use error::ClientError;
pub use master::MasterClient;
pub use slots::free_slots;
pub use tls::{http_client, http_client_builder};
