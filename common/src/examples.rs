//! Sample bodies for the OpenAPI document, built from the real types so they cannot drift from
//! them. They replay the original design's pull example: five tasks "task data 1".."task data 5",
//! workers `w01` and `w02`, task 3 processed by `w01`; and its push example, where a worker
//! uppercases "hello world".

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::lease::{
    Heartbeat, HeartbeatAck, LeaseId, LeaseRequest, LeaseResponse, LeasedTask, Release, ReportAck,
    ReportBatch, ReportBatchReply, ReportFor, TaskResult,
};
use crate::listing::{ListedTask, TaskView};
use crate::problem::{PROBLEM_TYPE_BASE, Problem};
use crate::push::{DoTaskReply, RegisterWorker, WorkerInfo, WorkerList, WorkerSource};
use crate::queue::{HeldBack, QueueInfo, QueueList, QueueSettings, RateLimit, StateCounts};
use crate::task::{
    BatchSubmitted, LeaseInfo, SubmitBatch, SubmitTask, Task, TaskId, TaskPage, TaskState,
};
use crate::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, Outcome};

mod cluster;
pub use cluster::{master_list, pull_worker};

/// 2025-06-01T12:00:00Z, plus `secs`.
fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_748_779_200 + secs).expect("a valid timestamp")
}

/// The lease id every example lease carries.
pub fn lease_id() -> LeaseId {
    LeaseId("5f0c2a9e4b7d1c36".into())
}

fn payload(n: i64) -> Value {
    json!(format!("task data {n}"))
}

/// The five tasks' first: "task data 1" submitted to the default queue.
pub fn submit_task() -> SubmitTask {
    SubmitTask {
        idempotency_key: Some("job-1".into()),
        ..SubmitTask::new(payload(1))
    }
}

/// Tasks 1 to 5 submitted in one batch.
pub fn submit_batch() -> SubmitBatch {
    SubmitBatch {
        tasks: vec![
            SubmitTask {
                max_attempts: Some(5),
                ..SubmitTask::new(payload(2))
            },
            SubmitTask {
                priority: 5,
                ..SubmitTask::new(payload(3))
            },
        ],
    }
}

/// Task `n` as it is right after submission.
pub fn task_queued(n: i64) -> Task {
    Task {
        id: TaskId(n),
        queue: DEFAULT_QUEUE.into(),
        state: TaskState::Queued,
        payload: payload(n),
        priority: 0,
        attempts: 0,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        created_at: at(0),
        run_at: at(0),
        lease: None,
        cancel_requested: false,
        result: None,
        error: None,
        worker_id: None,
        idempotency_key: None,
        concurrency_key: None,
        tags: Vec::new(),
    }
}

/// Task 1, as `POST /tasks` with [`submit_task`] answers.
pub fn task_submitted() -> Task {
    Task {
        idempotency_key: Some("job-1".into()),
        ..task_queued(1)
    }
}

/// What `POST /tasks/batch` with [`submit_batch`] answers: five new tasks.
pub fn batch_submitted() -> BatchSubmitted {
    BatchSubmitted {
        tasks: vec![
            Task {
                max_attempts: 5,
                ..task_queued(2)
            },
            Task {
                priority: 5,
                ..task_queued(3)
            },
        ],
        created: 2,
    }
}

/// Task 3 while `w01` holds it.
pub fn task_leased() -> Task {
    Task {
        state: TaskState::Leased,
        priority: 5,
        attempts: 1,
        lease: Some(LeaseInfo {
            worker_id: "w01".into(),
            expires_at: at(31),
        }),
        ..task_queued(3)
    }
}

/// Task 3 once `w01`'s result is in.
pub fn task_succeeded() -> Task {
    Task {
        state: TaskState::Succeeded,
        lease: None,
        result: Some(json!("Processed data from task 3")),
        worker_id: Some("w01".into()),
        ..task_leased()
    }
}

/// Task 2, given up on after its attempts ran out.
pub fn task_failed() -> Task {
    Task {
        state: TaskState::Failed,
        attempts: 5,
        max_attempts: 5,
        error: Some("handler timed out".into()),
        worker_id: Some("w02".into()),
        ..task_queued(2)
    }
}

/// Task 2 after an operator cancelled it.
pub fn task_cancelled() -> Task {
    Task {
        state: TaskState::Cancelled,
        max_attempts: 5,
        ..task_queued(2)
    }
}

/// A page of `GET /tasks`: the first tasks in summary, and the cursor to the next page.
pub fn task_page() -> TaskPage {
    TaskPage {
        tasks: vec![task_submitted(), task_queued(2)]
            .into_iter()
            .map(|task| ListedTask::new(task, TaskView::Summary))
            .collect(),
        next_cursor: Some("2".into()),
    }
}

/// `w01` asks for one task, waiting up to 5 s.
pub fn lease_request() -> LeaseRequest {
    LeaseRequest {
        max_tasks: Some(1),
        wait_secs: Some(5),
        ..LeaseRequest::new("w01")
    }
}

/// Task 3 as leased to `w01`.
pub fn leased_task() -> LeasedTask {
    LeasedTask {
        task_id: TaskId(3),
        lease_id: lease_id(),
        queue: DEFAULT_QUEUE.into(),
        payload: payload(3),
        attempt: 1,
        expires_at: at(31),
    }
}

/// What `w01`'s [`lease_request`] gets: task 3.
pub fn lease_response() -> LeaseResponse {
    LeaseResponse {
        tasks: vec![leased_task()],
        no_more_tasks: false,
        results: Vec::new(),
    }
}

/// "Report and lease next": task 3's result rides on the request for the next task.
pub fn lease_request_with_result() -> LeaseRequest {
    LeaseRequest {
        results: vec![ReportFor {
            task_id: TaskId(3),
            report: task_result(),
        }],
        ..lease_request()
    }
}

/// What [`lease_request_with_result`] gets: task 3's result recorded, task 4 leased.
pub fn lease_response_with_result() -> LeaseResponse {
    LeaseResponse {
        tasks: vec![LeasedTask {
            task_id: TaskId(4),
            lease_id: LeaseId("5be1c0a2d94e7f13".into()),
            payload: payload(4),
            ..leased_task()
        }],
        no_more_tasks: false,
        results: vec![ReportAck {
            task_id: TaskId(3),
            status: 200,
            state: Some(TaskState::Succeeded),
            problem: None,
        }],
    }
}

/// What a lease request gets from a sealed, drained queue.
pub fn lease_response_drained() -> LeaseResponse {
    LeaseResponse {
        tasks: vec![],
        no_more_tasks: true,
        results: Vec::new(),
    }
}

/// `w01` renews its lease on task 3.
pub fn heartbeat() -> Heartbeat {
    Heartbeat {
        lease_id: lease_id(),
        lease_secs: Some(60),
    }
}

/// What a [`heartbeat`] gets: the lease's new deadline, and no cancel.
pub fn heartbeat_ack() -> HeartbeatAck {
    HeartbeatAck {
        expires_at: at(75),
        cancel_requested: false,
    }
}

/// `w01`'s result for task 3.
pub fn task_result() -> TaskResult {
    TaskResult::succeeded(lease_id(), "w01", json!("Processed data from task 3"))
}

/// A failure, to be retried after 10 s.
pub fn task_result_failed() -> TaskResult {
    TaskResult {
        retry_after_secs: Some(10),
        ..TaskResult::failed(lease_id(), "w01", "handler timed out")
    }
}

/// Results for tasks 3 and 4 in one request.
pub fn report_batch() -> ReportBatch {
    ReportBatch {
        results: vec![
            ReportFor {
                task_id: TaskId(3),
                report: task_result(),
            },
            ReportFor {
                task_id: TaskId(4),
                report: TaskResult::succeeded(
                    LeaseId("5be1c0a2d94e7f13".into()),
                    "w01",
                    json!("Processed data from task 4"),
                ),
            },
        ],
    }
}

/// What [`report_batch`] gets: each result's own outcome, in order.
pub fn report_batch_reply() -> ReportBatchReply {
    ReportBatchReply {
        results: vec![
            ReportAck {
                task_id: TaskId(3),
                status: 200,
                state: Some(TaskState::Succeeded),
                problem: None,
            },
            ReportAck {
                task_id: TaskId(4),
                status: 409,
                state: None,
                problem: Some(problem_lease_expired()),
            },
        ],
    }
}

/// `w01` hands task 3 back, to be run again at once.
pub fn release() -> Release {
    Release {
        lease_id: lease_id(),
        delay_secs: Some(0),
    }
}

/// The default queue partway through the pull example.
pub fn queue_info() -> QueueInfo {
    QueueInfo {
        name: DEFAULT_QUEUE.into(),
        counts: StateCounts {
            queued: 2,
            leased: 1,
            succeeded: 1,
            failed: 0,
            cancelled: 1,
        },
        oldest_queued_age_secs: Some(4.2),
        sealed: false,
        settings: QueueSettings::default(),
        paused_until: None,
        in_flight: 1,
        tokens: None,
        held_back: HeldBack::default(),
    }
}

/// The `emails` queue with flow control: at most 10 leased, 50 leases a second, one per
/// recipient at a time; 3 of its queued tasks wait for a recipient whose task is running.
pub fn limited_queue_info() -> QueueInfo {
    QueueInfo {
        name: "emails".into(),
        counts: StateCounts {
            queued: 40,
            leased: 10,
            succeeded: 950,
            failed: 0,
            cancelled: 0,
        },
        oldest_queued_age_secs: Some(0.8),
        sealed: false,
        settings: QueueSettings {
            paused: false,
            max_in_flight: Some(10),
            rate_limit: Some(RateLimit {
                per_sec: 50.0,
                burst: 5,
            }),
            key_limit: Some(1),
        },
        paused_until: None,
        in_flight: 10,
        tokens: Some(2.5),
        held_back: HeldBack {
            max_in_flight: 40,
            ..HeldBack::default()
        },
    }
}

/// `GET /queues`: every queue known.
pub fn queue_list() -> QueueList {
    QueueList {
        queues: vec![queue_info()],
    }
}

/// A push worker registers itself.
pub fn register_worker() -> RegisterWorker {
    RegisterWorker {
        id: "w02".into(),
        url: "http://127.0.0.1:8081".into(),
        capacity: Some(4),
        queues: Some(vec![DEFAULT_QUEUE.into()]),
    }
}

/// A push worker as `GET /workers` lists it.
pub fn worker_info() -> WorkerInfo {
    WorkerInfo {
        id: "w02".into(),
        url: "http://127.0.0.1:8081".into(),
        capacity: 4,
        queues: vec![DEFAULT_QUEUE.into()],
        source: WorkerSource::Registered,
        healthy: true,
        in_flight: 0,
        ttl_secs: Some(30),
    }
}

/// `GET /workers`: every push worker, and the pulling workers seen.
pub fn worker_list() -> WorkerList {
    WorkerList {
        workers: vec![worker_info()],
        pull_workers: vec![pull_worker()],
    }
}

/// The task the master pushes to a worker's `/do-task` in the push example.
pub fn pushed_task() -> LeasedTask {
    LeasedTask {
        task_id: TaskId(6),
        payload: json!("hello world"),
        ..leased_task()
    }
}

/// A push worker's answer: "hello world" uppercased.
pub fn do_task_reply() -> DoTaskReply {
    DoTaskReply {
        worker_id: "w02".into(),
        outcome: Outcome::Succeeded,
        result: Some(json!("HELLO WORLD")),
        error: None,
        retry: false,
        pause_queue_secs: None,
    }
}

/// A push worker's answer for a task that failed, not to be retried.
pub fn do_task_reply_failed() -> DoTaskReply {
    DoTaskReply {
        worker_id: "w02".into(),
        outcome: Outcome::Failed,
        result: None,
        error: Some("the uppercase handler takes a string payload".into()),
        retry: false,
        pause_queue_secs: None,
    }
}

/// A problem body of kind `kind` (the end of its `type` URI).
pub fn problem(status: u16, kind: &str, title: &str, detail: &str) -> Problem {
    Problem {
        type_uri: format!("{PROBLEM_TYPE_BASE}{kind}"),
        title: title.into(),
        status,
        detail: Some(detail.into()),
    }
}

/// The `409` a result under an expired lease gets.
pub fn problem_lease_expired() -> Problem {
    problem(
        409,
        "lease-expired",
        "Lease expired",
        "the lease expired before this request arrived",
    )
}

/// Task 2's history: its first lease expired while its worker stalled, and that worker's late
/// result was refused; its second worker's failure is the error it failed with.
pub fn task_attempts() -> crate::attempts::TaskAttempts {
    use crate::attempts::{AttemptEnd, AttemptInfo, RefusedKind, RefusedRequest, TaskAttempts};
    let first = AttemptInfo {
        attempt: 1,
        lease_id: LeaseId("9f2c4e1a7b3d5c60".into()),
        worker_id: "w01".into(),
        leased_at: at(1),
        heartbeats: 2,
        last_heartbeat_at: Some(at(21)),
        expires_at: None,
        ended_at: Some(at(51)),
        end: Some(AttemptEnd::Expired),
        error: None,
        refused: vec![RefusedRequest {
            lease_id: LeaseId("9f2c4e1a7b3d5c60".into()),
            at: at(58),
            worker_id: Some("w01".into()),
            request: RefusedKind::Result,
            reason: "lease-expired".into(),
        }],
    };
    let second = AttemptInfo {
        attempt: 2,
        lease_id: LeaseId("0b7e33d9a1c84f25".into()),
        worker_id: "w02".into(),
        leased_at: at(52),
        heartbeats: 0,
        last_heartbeat_at: None,
        expires_at: None,
        ended_at: Some(at(60)),
        end: Some(AttemptEnd::Failed),
        error: Some("handler timed out".into()),
        refused: Vec::new(),
    };
    TaskAttempts {
        task_id: TaskId(2),
        earlier: None,
        attempts: vec![first, second],
        refused: Vec::new(),
    }
}

/// Retry every failed task of the `emails` queue tagged `deploy-42`.
pub fn bulk_request() -> crate::bulk::BulkRequest {
    crate::bulk::BulkRequest {
        filter: crate::bulk::BulkFilter {
            queue: Some("emails".into()),
            state: Some(TaskState::Failed),
            tag: Some("deploy-42".into()),
            ..Default::default()
        },
        action: crate::bulk::BulkAction::Retry,
        limit: None,
        dry_run: false,
    }
}

/// [`bulk_request`]'s operation once it is done.
pub fn operation() -> crate::bulk::Operation {
    let request = bulk_request();
    crate::bulk::Operation {
        id: 7,
        action: request.action,
        filter: request.filter,
        limit: request.limit,
        dry_run: request.dry_run,
        state: crate::bulk::OperationState::Done,
        matched: 1_250,
        done: 1_250,
        skipped: 0,
        errors: 0,
        error: None,
        started_at: at(100),
        finished_at: Some(at(101)),
    }
}

/// [`bulk_request`]'s operation as its `POST /tasks/bulk` accepts it.
pub fn operation_accepted() -> crate::bulk::OperationAccepted {
    crate::bulk::OperationAccepted {
        operation: crate::bulk::Operation {
            state: crate::bulk::OperationState::Running,
            matched: 0,
            done: 0,
            finished_at: None,
            ..operation()
        },
    }
}

/// The most recent operations: [`operation`].
pub fn operation_list() -> crate::bulk::OperationList {
    crate::bulk::OperationList {
        operations: vec![operation()],
    }
}

/// Every queue's last 30 seconds: the default queue's, as [`queue_history`].
pub fn activity_list() -> crate::activity::ActivityList {
    crate::activity::ActivityList {
        queues: vec![queue_history()],
    }
}

/// The default queue's last 30 seconds: two tasks submitted and leased, one succeeded, one
/// retried and leased again, whose lease then expired; the last point is the current step.
pub fn queue_history() -> crate::activity::QueueHistory {
    use crate::activity::{ActivityPoint, HISTORY_STEP_SECS, QueueHistory};
    let point = |step: i64| ActivityPoint {
        at: at(step * i64::from(HISTORY_STEP_SECS)),
        submitted: 0,
        leased: 0,
        succeeded: 0,
        failed: 0,
        retried: 0,
        expired: 0,
        queued: 0,
        in_flight: 0,
    };
    QueueHistory {
        queue: DEFAULT_QUEUE.into(),
        step_secs: HISTORY_STEP_SECS,
        window_secs: 30,
        points: vec![
            ActivityPoint {
                submitted: 2,
                leased: 2,
                in_flight: 2,
                ..point(0)
            },
            ActivityPoint {
                leased: 1,
                succeeded: 1,
                retried: 1,
                in_flight: 1,
                ..point(1)
            },
            ActivityPoint {
                expired: 1,
                queued: 1,
                ..point(2)
            },
        ],
    }
}
