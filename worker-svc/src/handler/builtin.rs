//! The original design's two example tasks.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Handler, TaskContext, TaskError};

/// The push example: the payload string, uppercased ("hello world" → "HELLO WORLD").
#[derive(Debug, Clone, Copy)]
pub struct Uppercase;

#[async_trait]
impl Handler for Uppercase {
    async fn handle(&self, task: &TaskContext) -> Result<Value, TaskError> {
        match &task.payload {
            Value::String(text) => Ok(json!(text.to_uppercase())),
            other => Err(TaskError::permanent(format!(
                "uppercase needs a string payload, got {other}"
            ))),
        }
    }
}

/// The pull example: "Processed data from task N", after sleeping `sleep_ms` from the payload
/// (an object's field) to simulate work.
#[derive(Debug, Clone, Copy)]
pub struct Process;

#[async_trait]
impl Handler for Process {
    async fn handle(&self, task: &TaskContext) -> Result<Value, TaskError> {
        let sleep_ms = task
            .payload
            .get("sleep_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(json!(format!("Processed data from task {}", task.task_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{LeaseId, TaskId};

    fn task(payload: Value) -> TaskContext {
        TaskContext {
            task_id: TaskId(3),
            lease_id: LeaseId("l".into()),
            queue: "default".into(),
            attempt: 1,
            worker_id: "w01".into(),
            payload,
        }
    }

    #[tokio::test]
    async fn uppercase_shouts_the_payload() {
        let result = Uppercase.handle(&task(json!("hello world"))).await;
        assert_eq!(result, Ok(json!("HELLO WORLD")));
    }

    #[tokio::test]
    async fn uppercase_refuses_a_payload_that_is_not_text_for_good() {
        let error = Uppercase.handle(&task(json!(42))).await.unwrap_err();
        assert!(!error.retry);
    }

    #[tokio::test]
    async fn process_reports_the_task_it_processed() {
        let result = Process.handle(&task(json!("task data 3"))).await;
        assert_eq!(result, Ok(json!("Processed data from task 3")));
    }
}
