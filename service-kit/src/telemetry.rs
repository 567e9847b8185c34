//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), as text or JSON.
//!
//! Every log line of both services goes to stderr, and nothing else does: stdout stays free
//! (neither service prints anything there), so `2> FILE` captures a service's whole log. Colour
//! (ANSI escape codes) only when stderr is a terminal and `NO_COLOR` is not set: a log file, a
//! pipe or a container runtime's collector gets plain text.

use std::ffi::OsString;
use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Installs the global subscriber; call once, at the start of `main`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Whether log lines are coloured: only on a terminal, and not when `NO_COLOR` holds anything
/// but the empty string (<https://no-color.org>). tracing-subscriber's own default colours
/// whatever the output is, a file included.
fn use_colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;

    #[test]
    fn logs_are_coloured_only_on_a_terminal() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn no_color_turns_colour_off_unless_it_is_empty() {
        assert!(!use_colour(true, Some("1".into())));
        assert!(use_colour(true, Some("".into())));
        assert!(!use_colour(false, Some("".into())));
    }
}
