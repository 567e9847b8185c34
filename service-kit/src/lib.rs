//! The runtime plumbing both Leasehold services share, so that each is written once: logging
//! ([`telemetry`], and [`redact`] for what a log line may say of a configured URL), the signal
//! that starts a shutdown ([`shutdown_signal`]), and the writer of `application/problem+json`
//! error responses ([`ProblemJson`]).
//!
//! `common` is the contract (no I/O, no axum); this crate is where the services' shared I/O
//! lives.

mod problem;
pub mod redact;
mod signal;
pub mod telemetry;

pub use problem::ProblemJson;
pub use signal::shutdown_signal;
pub use telemetry::LogFormat;
