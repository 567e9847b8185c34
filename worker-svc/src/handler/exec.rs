//! `exec:COMMAND`: any program as a handler. The payload JSON goes to its stdin; stdout is the
//! result (JSON if it parses, else text); a non-zero exit is a failure with stderr's tail.

use std::process::Stdio;

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Handler, TaskContext, TaskError};

/// Bytes of stderr kept in a failure's message.
const STDERR_TAIL: usize = 2_000;

/// Runs `sh -c COMMAND` once per task.
#[derive(Debug, Clone)]
pub struct Exec {
    command: String,
}

impl Exec {
    pub fn new(command: &str) -> Exec {
        Exec {
            command: command.to_owned(),
        }
    }
}

#[async_trait]
impl Handler for Exec {
    async fn handle(&self, task: &TaskContext) -> Result<Value, TaskError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("TASK_ID", task.task_id.to_string())
            .env("TASK_ATTEMPT", task.attempt.to_string())
            .env("TASK_QUEUE", &task.queue)
            .env("WORKER_ID", &task.worker_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that everything the command starts can be killed with it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TaskError::retryable(format!("cannot start `{}`: {e}", self.command)))?;
        // The runner drops this future when the lease is lost or the task cancelled: the whole
        // process group must go with it, not only `sh`.
        let _group = child.id().map(KillGroupOnDrop);
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let payload = task.payload.to_string();
        // A command that ignores its stdin may exit before reading it: that is not an error.
        let _ = stdin.write_all(payload.as_bytes()).await;
        drop(stdin);
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| TaskError::retryable(format!("`{}` failed: {e}", self.command)))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail = tail(stderr.trim_end(), STDERR_TAIL);
            return Err(TaskError::retryable(format!("{}: {tail}", output.status)));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stdout = stdout.trim_end();
        Ok(serde_json::from_str(stdout).unwrap_or_else(|_| Value::String(stdout.to_owned())))
    }
}

/// Kills a process group when dropped (a no-op if it has already exited).
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::{LeaseId, TaskId};
    use serde_json::json;

    fn task(payload: Value) -> TaskContext {
        TaskContext {
            task_id: TaskId(7),
            lease_id: LeaseId("l".into()),
            queue: "q".into(),
            attempt: 2,
            worker_id: "w01".into(),
            payload,
        }
    }

    #[tokio::test]
    async fn stdout_that_parses_as_json_is_the_result() {
        let exec =
            Exec::new(r#"read p; echo "{\"got\": $p, \"id\": $TASK_ID, \"try\": $TASK_ATTEMPT}""#);
        let result = exec.handle(&task(json!(5))).await;
        assert_eq!(result, Ok(json!({"got": 5, "id": 7, "try": 2})));
    }

    #[tokio::test]
    async fn other_stdout_is_the_result_as_text() {
        let exec = Exec::new("tr a-z A-Z");
        assert_eq!(exec.handle(&task(json!("abc"))).await, Ok(json!("ABC")));
        let exec = Exec::new("echo $TASK_QUEUE $WORKER_ID");
        assert_eq!(exec.handle(&task(json!(null))).await, Ok(json!("q w01")));
    }

    #[tokio::test]
    async fn dropping_a_run_kills_everything_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-running");
        let exec = Exec::new(&format!("(sleep 1; touch {}) & wait", marker.display()));
        let context = task(json!(null));
        let run = exec.handle(&context);
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), run).await;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "a grandchild outlived the dropped run");
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_tail_of_stderr() {
        let exec = Exec::new("echo starting >&2; echo 'disk full' >&2; exit 3");
        let error = exec.handle(&task(json!(null))).await.unwrap_err();
        assert!(
            error.message.contains("exit status: 3"),
            "{}",
            error.message
        );
        assert!(
            error.message.ends_with("starting\ndisk full"),
            "{}",
            error.message
        );
    }
}
