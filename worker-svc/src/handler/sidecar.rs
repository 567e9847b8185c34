//! `http:URL`: POSTs the payload to a local endpoint (a sidecar) and uses its answer.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;

use super::{Handler, TaskContext, TaskError};

/// Bytes of an error response kept in a failure's message.
const BODY_TAIL: usize = 2_000;

#[derive(Debug, Clone)]
pub struct Sidecar {
    url: String,
    http: reqwest::Client,
}

impl Sidecar {
    pub fn new(url: &str) -> Result<Sidecar, String> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "http handler needs an http:// or https:// URL, got `{url}`"
            ));
        }
        let http = leasehold_client::http_client_builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sidecar {
            url: url.to_owned(),
            http,
        })
    }
}

#[async_trait]
impl Handler for Sidecar {
    async fn handle(&self, task: &TaskContext) -> Result<Value, TaskError> {
        let response = self
            .http
            .post(&self.url)
            .header("x-task-id", task.task_id.to_string())
            .header("x-task-attempt", task.attempt.to_string())
            .header("x-task-queue", &task.queue)
            .json(&task.payload)
            .send()
            .await
            .map_err(|e| TaskError::retryable(format!("{}: {e}", self.url)))?;
        let status = response.status();
        let pause_queue_secs = back_off_secs(&response);
        let body = response
            .text()
            .await
            .map_err(|e| TaskError::retryable(format!("{}: {e}", self.url)))?;
        if !status.is_success() {
            let cut = body.len().min(BODY_TAIL);
            let message = format!(
                "{} answered {status}: {}",
                self.url,
                &body[..body.floor_char_boundary(cut)]
            );
            // A 4xx says the payload is wrong: another attempt would fail the same way; but a
            // 429 says "not now".
            return Err(TaskError {
                message,
                retry: !status.is_client_error() || status == StatusCode::TOO_MANY_REQUESTS,
                pause_queue_secs,
            });
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

/// How long a sidecar that answered `429 Too Many Requests` or `503 Service Unavailable` asked
/// to be left alone, from its `Retry-After` in seconds (an HTTP date is not read).
fn back_off_secs(response: &reqwest::Response) -> Option<u64> {
    let status = response.status();
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let secs: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs > 0).then_some(secs)
}
