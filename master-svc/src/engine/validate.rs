//! Checks on client input that serde's types cannot express. Each returns the message a
//! client sees in the `400` problem's `detail`.

use std::sync::LazyLock;

use common::{
    DEFAULT_QUEUE, MAX_ATTEMPTS_LIMIT, MAX_DURATION_SECS, MAX_LEASE_BATCH, MAX_LEASE_QUEUES,
    MAX_NAME_LEN, MAX_WAIT_SECS,
};
use regex::Regex;

use super::EngineError;

/// A checked value, or the `400` that refuses it ([`EngineError::Invalid`]).
pub type Checked<T> = Result<T, EngineError>;

/// Refuses a request with `message`, the `400` problem's `detail`.
pub fn invalid<T>(message: String) -> Checked<T> {
    Err(EngineError::Invalid(message))
}

/// Longest piece of a client's input a message quotes back; the rest is elided, so that a bad
/// name of a megabyte is not answered with a megabyte.
const MAX_ECHO_CHARS: usize = 64;

/// Queue names appear in URLs, so they keep to [`common::QUEUE_NAME_PATTERN`].
pub fn queue_name(name: Option<&str>) -> Checked<String> {
    let name = name.unwrap_or(DEFAULT_QUEUE);
    if !common::is_queue_name(name) {
        return invalid(format!(
            "queue name `{}` must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, `-`, `_`, `.`, \
             starting with a letter or digit",
            echo(name)
        ));
    }
    Ok(name.to_owned())
}

/// A push worker's base URL: it must match [`common::WORKER_URL_PATTERN`], the pattern the
/// OpenAPI document shows, so that the master refuses exactly what the schema does not admit.
pub fn worker_url(url: &str) -> Checked<()> {
    static PATTERN: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(common::WORKER_URL_PATTERN).expect("the pattern compiles"));
    if !PATTERN.is_match(url) {
        return invalid(format!(
            "`url` must be http:// or https://, a host name, IPv4 address or [IPv6] address, \
             an optional port and an optional path (see the schema's pattern), not `{}`",
            echo(url)
        ));
    }
    Ok(())
}

/// `value` as a message may quote it: at most [`MAX_ECHO_CHARS`] characters.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// Counted in characters, as JSON Schema's `maxLength` counts them.
pub fn name(field: &str, value: &str) -> Checked<()> {
    if value.is_empty() || value.chars().count() > MAX_NAME_LEN {
        return invalid(format!(
            "`{field}` must be 1 to {MAX_NAME_LEN} characters long"
        ));
    }
    Ok(())
}

pub fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> Checked<T> {
    if value < min || value > max {
        return invalid(format!(
            "`{field}` must be between {min} and {max}, not {value}"
        ));
    }
    Ok(value)
}

pub fn duration_secs(field: &str, value: Option<u64>, min: u64) -> Checked<Option<u64>> {
    value
        .map(|secs| in_range(field, secs, min, MAX_DURATION_SECS))
        .transpose()
}

pub fn max_attempts(value: Option<u32>) -> Checked<u32> {
    in_range(
        "max_attempts",
        value.unwrap_or(common::DEFAULT_MAX_ATTEMPTS),
        1,
        MAX_ATTEMPTS_LIMIT,
    )
}

pub fn lease_queues(queues: Option<&[String]>) -> Checked<Vec<String>> {
    let Some(queues) = queues else {
        return Ok(vec![DEFAULT_QUEUE.to_owned()]);
    };
    in_range("queues (count)", queues.len(), 1, MAX_LEASE_QUEUES)?;
    let mut checked = Vec::with_capacity(queues.len());
    for queue in queues {
        let queue = queue_name(Some(queue))?;
        if !checked.contains(&queue) {
            checked.push(queue);
        }
    }
    Ok(checked)
}

pub fn max_tasks(value: Option<u32>) -> Checked<u32> {
    in_range("max_tasks", value.unwrap_or(1), 1, MAX_LEASE_BATCH)
}

pub fn wait_secs(value: Option<u64>) -> Checked<u64> {
    in_range("wait_secs", value.unwrap_or(0), 0, MAX_WAIT_SECS)
}

/// The parts of a result its types do not check.
pub fn report(report: &common::TaskResult) -> Checked<()> {
    name("worker_id", &report.worker_id)?;
    duration_secs("retry_after_secs", report.retry_after_secs, 0)?;
    duration_secs("pause_queue_secs", report.pause_queue_secs, 1)?;
    Ok(())
}

/// Largest `max_in_flight`, `key_limit`, rate and burst a queue may be given.
const MAX_SETTING: u32 = 1_000_000;

/// A queue's settings as the API sent them, checked, as the engine keeps them. (A timed pause
/// is not a setting of the API: the caller carries it over.)
pub fn settings(settings: &common::QueueSettings) -> Checked<crate::model::QueueSettings> {
    let limit = |field, value: Option<u32>| {
        value
            .map(|n| in_range(field, n, 1, MAX_SETTING))
            .transpose()
    };
    let rate_limit = match settings.rate_limit {
        Some(rate) => {
            let max = f64::from(MAX_SETTING);
            if !(rate.per_sec > 0.0 && rate.per_sec <= max) {
                return invalid(format!(
                    "`rate_limit.per_sec` must be more than 0 and at most {max}, not {}",
                    rate.per_sec
                ));
            }
            in_range("rate_limit.burst", rate.burst, 1, MAX_SETTING)?;
            Some(crate::model::RateLimit {
                per_sec: rate.per_sec,
                burst: rate.burst,
            })
        }
        None => None,
    };
    Ok(crate::model::QueueSettings {
        paused: settings.paused,
        paused_until: None,
        max_in_flight: limit("max_in_flight", settings.max_in_flight)?,
        rate_limit,
        key_limit: limit("key_limit", settings.key_limit)?,
    })
}

#[cfg(test)]
mod tests {
    use super::{MAX_ECHO_CHARS, echo, queue_name, worker_url};

    #[test]
    fn a_long_bad_name_is_quoted_only_in_part() {
        let name = format!("{}!", "é".repeat(1_000_000));
        let message = queue_name(Some(&name)).unwrap_err().to_string();
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.contains(&format!("{}…", "é".repeat(MAX_ECHO_CHARS))));
    }

    #[test]
    fn a_short_value_is_quoted_whole() {
        assert_eq!(echo("a b"), "a b");
        assert_eq!(
            echo(&"x".repeat(MAX_ECHO_CHARS)),
            "x".repeat(MAX_ECHO_CHARS)
        );
    }

    /// What the dispatcher does with a registered URL before it pushes to it.
    fn do_task_url(url: &str) -> Result<reqwest::Url, String> {
        reqwest::Url::parse(&format!("{}/do-task", url.trim_end_matches('/')))
            .map_err(|e| e.to_string())
    }

    proptest::proptest! {
        // No regressions file in the source tree: a failure prints its case.
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..Default::default()
        })]

        // Schemathesis generates URLs from the schema's pattern: every one must be accepted and
        // parse as the dispatcher parses it (before, `http://[` matched and was refused).
        #[test]
        fn every_url_the_schema_admits_is_accepted_and_parses(
            url in proptest::string::string_regex(
                common::WORKER_URL_PATTERN.trim_start_matches('^').trim_end_matches('$'),
            ).unwrap()
        ) {
            proptest::prop_assert!(worker_url(&url).is_ok(), "{url}");
            let parsed = do_task_url(&url);
            proptest::prop_assert!(parsed.is_ok(), "{url}: {parsed:?}");
            proptest::prop_assert!(matches!(parsed.unwrap().scheme(), "http" | "https"));
        }
    }

    #[test]
    fn worker_urls_of_every_host_form_are_accepted() {
        for url in [
            "http://10.0.0.7:8081",
            "https://worker-0.workers.default.svc.cluster.local:8081/",
            "http://localhost/leasehold/v1",
            "http://[::1]:8081",
            "http://[2001:db8::7]",
            "http://3com.example",
        ] {
            assert!(worker_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn worker_urls_the_master_cannot_push_to_are_refused() {
        for url in [
            "http://",
            "http://[",
            "http://127.0.0.1:port",
            "ftp://127.0.0.1:9",
            "http://1.2.3.4.5",
            "http://999",
            "http://a.0x1f",
            "http://a:99999",
            "http://xn--a",
            "http://[:::]",
            "http://user@host",
            "http://host/?q",
            "http://host/#f",
            "http://a b",
        ] {
            assert!(worker_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn a_queue_named_dot_dot_is_refused() {
        assert!(queue_name(Some("..")).is_err());
        assert_eq!(queue_name(None).unwrap(), "default");
    }
}
