//! The parts of the OpenAPI document both services share: the names of the bearer security
//! schemes, and the `application/problem+json` responses every error is written as, each with
//! examples of the problem bodies the services send. Operations refer to them by name
//! (`#/components/responses/NotFound`), so each is written once. And the examples of the
//! schemas ([`SchemaExamples`]), attached to the assembled document.

use serde_json::{Value, json};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{ToResponse, ToSchema};

use crate::Problem;
use crate::examples::problem;
use crate::problem::PROBLEM_CONTENT_TYPE;

mod schema_examples;
pub use schema_examples::SchemaExamples;

/// Security scheme of the operator token (`--api-token`): opens every endpoint.
pub const API_TOKEN: &str = "apiToken";
/// Security scheme of the worker token (`--worker-token`): opens the worker endpoints only.
pub const WORKER_TOKEN: &str = "workerToken";

/// A problem response: `description`, then the problem bodies it may carry, by example name.
fn problem_response(description: &str, examples: Vec<(&str, Problem)>) -> ResponseBuilder {
    let examples = examples.into_iter().map(|(name, body)| {
        let example = ExampleBuilder::new()
            .summary(body.title.clone())
            .value(Some(
                serde_json::to_value(body).expect("a problem serializes"),
            ));
        (name, example.build())
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .examples_from_iter(examples)
        .build();
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_CONTENT_TYPE, content)
}

/// A response header the services always send with this response.
fn header(description: &str, schema_type: Type, example: Value) -> Header {
    let schema = ObjectBuilder::new()
        .schema_type(schema_type)
        .examples([example]);
    HeaderBuilder::new()
        .schema(schema)
        .description(Some(format!("{description} Always sent.")))
        .build()
}

/// The `Location` of a task: `/tasks/{id}`.
#[derive(Debug, ToSchema)]
#[schema(example = "/tasks/1")]
pub struct TaskLocation(pub String);

/// The `Location` of a bulk operation: `/operations/{id}`.
#[derive(Debug, ToSchema)]
#[schema(example = "/operations/7")]
pub struct OperationLocation(pub String);

/// Declares a unit struct whose [`ToResponse`] is the given problem response.
macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident => $build:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let build: fn() -> ResponseBuilder = $build;
                (stringify!($name), build().build().into())
            }
        }
    )*};
}

problem_responses! {
    /// `400`: malformed JSON, a wrong type, an unknown field, or a value out of range.
    InvalidRequest => || problem_response(
        "The request is malformed or a value is out of range; `detail` says which.",
        vec![
            ("out_of_range", problem(400, "invalid-request", "Bad Request",
                "`max_tasks` must be between 1 and 256, not 0")),
            ("unknown_field", problem(400, "invalid-request", "Bad Request",
                "Failed to deserialize the JSON body into the target type: unknown field `colour`, expected one of `payload`, `queue`, `priority`, `delay_secs`, `max_attempts`, `lease_secs`, `idempotency_key` at line 1 column 35")),
            ("not_an_object", problem(400, "invalid-request", "Bad Request",
                "Failed to deserialize the JSON body into the target type: invalid type: sequence, expected a JSON object at line 1 column 0")),
        ],
    );
    /// `401`: no bearer token, or a wrong one.
    Unauthorized => || problem_response(
        "A valid bearer token is required.",
        vec![("unauthorized", problem(401, "unauthorized", "Unauthorized",
            "a valid bearer token is required"))],
    ).header("WWW-Authenticate", header(
        "The scheme to authenticate with.",
        Type::String,
        json!("Bearer realm=\"leasehold\""),
    ));
    /// `403`: the token's role or its queue scope does not allow the request.
    Forbidden => || problem_response(
        "The token is valid but may not do this: its role does not include the operation \
         (`forbidden-by-role`), or the request concerns a queue outside the token's queue \
         prefixes (`forbidden-by-queue-scope`).",
        vec![
            ("role", problem(403, "forbidden-by-role", "Forbidden by the token's role",
                "token `ci` has role `producer`, which may not cancel")),
            ("queue_scope", problem(403, "forbidden-by-queue-scope",
                "Outside the token's queue scope",
                "token `ci` may use only queues starting with `billing-`, not `reports`")),
        ],
    );
    /// `404`: no such task, queue or worker.
    NotFound => || problem_response(
        "No such task, queue or worker.",
        vec![
            ("task", problem(404, "not-found", "Not Found", "task 42 not found")),
            ("queue", problem(404, "not-found", "Not Found", "queue `reports` not found")),
            ("worker", problem(404, "not-found", "Not Found", "worker `w03` not found")),
        ],
    );
    /// `409`: the request conflicts with the task's state; the problem type says how.
    Conflict => || problem_response(
        "The request conflicts with the task's state; the problem `type` says how.",
        vec![
            ("lease_expired", problem(409, "lease-expired", "Lease expired",
                "the lease expired before this request arrived")),
            ("lease_superseded", problem(409, "lease-superseded", "Lease superseded",
                "the task is leased to another worker under a newer lease")),
            ("task_finished", problem(409, "task-finished", "Task already finished",
                "the task is already succeeded")),
            ("lease_ended", problem(409, "lease-ended", "Lease already ended",
                "this lease already ended with a result")),
            ("lease_released", problem(409, "lease-released", "Lease released",
                "the lease was released")),
            ("result_mismatch", problem(409, "result-mismatch", "Result mismatch",
                "a different result was already recorded for this lease")),
            ("wrong_worker", problem(409, "wrong-worker", "Lease held by another worker",
                "the lease belongs to another worker")),
            ("wrong_state", problem(409, "wrong-state", "Task in the wrong state",
                "the task is queued; this needs it failed or cancelled")),
            ("queue_sealed", problem(409, "queue-sealed", "Queue sealed",
                "queue `default` is sealed")),
            ("idempotency_key_reused", problem(409, "idempotency-key-reused",
                "Idempotency key reused",
                "idempotency key `order-7` was used for task 42 with a different payload")),
        ],
    );
    /// `409` from `POST /workers`: the id is a worker the operator configured or DNS found.
    WorkerIdReserved => || problem_response(
        "The id is that of a static (`--push-worker`) or DNS-discovered worker, which only the \
         operator may change or remove (`DELETE /workers/{id}`).",
        vec![("worker_id_reserved", problem(409, "worker-id-reserved", "Worker id reserved",
            "worker `http://10.0.0.7:8081` is configured by the operator (--push-worker); a registration may not replace or withdraw it"))],
    );
    /// `429` from `POST /workers`: `--max-registered-workers` are registered already.
    TooManyWorkers => || problem_response(
        "As many workers are registered as `--max-registered-workers` allows; try again once \
         one lapses or is withdrawn.",
        vec![("too_many_workers", problem(429, "too-many-workers", "Too many registered workers",
            "1000 workers are registered, as many as --max-registered-workers allows; try again once one lapses or is withdrawn"))],
    );
    /// `403` from `POST /workers`: the URL's host has an address outside `--push-allow-cidr`.
    PushAddressNotAllowed => || problem_response(
        "The URL's host is, or resolves to, an address outside the master's \
         `--push-allow-cidr` networks.",
        vec![("push_address_not_allowed", problem(403, "push-address-not-allowed",
            "Push address not allowed",
            "`169.254.169.254` resolves to 169.254.169.254, outside --push-allow-cidr (10.0.0.0/8)"))],
    );
    /// `413`: the body is larger than `--max-body-bytes`.
    PayloadTooLarge => || problem_response(
        "The body is larger than the master's `--max-body-bytes` (16 MiB by default).",
        vec![("too_large", problem(413, "payload-too-large", "Payload Too Large",
            "Failed to buffer the request body: length limit exceeded"))],
    );
    /// `415`: the body is not `application/json`.
    UnsupportedMediaType => || problem_response(
        "The body must be sent as `Content-Type: application/json`.",
        vec![("not_json", problem(415, "unsupported-media-type", "Unsupported Media Type",
            "Expected request with `Content-Type: application/json`"))],
    );
    /// `503` from the master: its store did not answer; nothing was changed.
    Unavailable => || problem_response(
        "The store did not answer; nothing was changed. Safe to retry.",
        vec![("unavailable", problem(503, "unavailable", "Service Unavailable",
            "the service is unavailable"))],
    );
    /// `429` from a worker: every slot is busy.
    WorkerBusy => || problem_response(
        "Every slot of the worker is busy: try again after `Retry-After` seconds.",
        vec![("busy", problem(429, "worker-busy", "Too Many Requests",
            "every slot is busy; try again shortly"))],
    ).header("Retry-After", header("Seconds to wait before pushing again.", Type::Integer, json!(1)));
    /// `503` from a worker: it is draining and takes no new work.
    WorkerDraining => || problem_response(
        "The worker is draining (shutting down) and takes no new work.",
        vec![("draining", problem(503, "worker-draining", "Service Unavailable",
            "the worker is draining and takes no new work"))],
    ).header("Retry-After", header("Seconds to wait before trying again.", Type::Integer, json!(1)));
}

#[cfg(test)]
mod tests {
    //! The bounds written in the `#[schema]` attributes are literals (utoipa takes no constants):
    //! these tests hold them to the limits the services enforce.

    use serde_json::Value;
    use utoipa::PartialSchema;

    use utoipa::IntoParams;

    use crate::{
        HISTORY_STEP_SECS, HistoryWindow, LeaseRequest, ListTasks, MAX_ATTEMPTS_LIMIT,
        MAX_BATCH_TASKS, MAX_DURATION_SECS, MAX_HISTORY_WINDOW_SECS, MAX_LEASE_BATCH,
        MAX_LEASE_QUEUES, MAX_NAME_LEN, MAX_WAIT_SECS, MIN_HISTORY_WINDOW_SECS, QUEUE_NAME_PATTERN,
        QueueHistory, QueueName, RegisterWorker, SubmitBatch, SubmitTask, TaskResult,
    };

    fn property<T: PartialSchema>(name: &str) -> Value {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["properties"][name].clone()
    }

    #[test]
    fn durations_are_bounded_by_a_week() {
        for field in ["delay_secs", "lease_secs"] {
            assert_eq!(property::<SubmitTask>(field)["maximum"], MAX_DURATION_SECS);
        }
        assert_eq!(
            property::<LeaseRequest>("lease_secs")["maximum"],
            MAX_DURATION_SECS
        );
        assert_eq!(
            property::<TaskResult>("retry_after_secs")["maximum"],
            MAX_DURATION_SECS
        );
    }

    #[test]
    fn counts_are_bounded_as_the_master_checks_them() {
        assert_eq!(
            property::<SubmitTask>("max_attempts")["maximum"],
            MAX_ATTEMPTS_LIMIT
        );
        assert_eq!(
            property::<SubmitBatch>("tasks")["maxItems"],
            MAX_BATCH_TASKS
        );
        assert_eq!(
            property::<LeaseRequest>("max_tasks")["maximum"],
            MAX_LEASE_BATCH
        );
        assert_eq!(
            property::<LeaseRequest>("wait_secs")["maximum"],
            MAX_WAIT_SECS
        );
        assert_eq!(
            property::<LeaseRequest>("queues")["maxItems"],
            MAX_LEASE_QUEUES
        );
        assert_eq!(
            property::<RegisterWorker>("queues")["maxItems"],
            MAX_LEASE_QUEUES
        );
    }

    #[test]
    fn a_history_window_is_bounded_as_the_master_checks_it() {
        let params = HistoryWindow::into_params(|| None);
        let window = params.iter().find(|p| p.name == "window").unwrap();
        let window = serde_json::to_value(window.schema.as_ref().unwrap()).unwrap();
        assert_eq!(window["minimum"], MIN_HISTORY_WINDOW_SECS);
        assert_eq!(window["maximum"], MAX_HISTORY_WINDOW_SECS);
        let answered = property::<QueueHistory>("window_secs");
        assert_eq!(answered["minimum"], MIN_HISTORY_WINDOW_SECS);
        assert_eq!(answered["maximum"], MAX_HISTORY_WINDOW_SECS);
        let points = property::<QueueHistory>("points");
        assert_eq!(
            points["maxItems"],
            MAX_HISTORY_WINDOW_SECS / HISTORY_STEP_SECS
        );
        assert_eq!(
            property::<QueueHistory>("step_secs")["maximum"],
            HISTORY_STEP_SECS
        );
    }

    #[test]
    fn names_are_bounded_by_the_name_length() {
        assert_eq!(
            property::<LeaseRequest>("worker_id")["maxLength"],
            MAX_NAME_LEN
        );
        assert_eq!(
            property::<TaskResult>("worker_id")["maxLength"],
            MAX_NAME_LEN
        );
        assert_eq!(
            property::<SubmitTask>("idempotency_key")["maxLength"],
            MAX_NAME_LEN
        );
        assert_eq!(property::<RegisterWorker>("id")["maxLength"], MAX_NAME_LEN);
    }

    #[test]
    fn a_worker_url_has_the_worker_url_pattern() {
        assert_eq!(
            property::<RegisterWorker>("url")["pattern"],
            crate::WORKER_URL_PATTERN
        );
    }

    #[test]
    fn every_queue_name_has_the_queue_name_pattern() {
        assert_eq!(
            property::<SubmitTask>("queue")["pattern"],
            QUEUE_NAME_PATTERN
        );
        let queue_name = serde_json::to_value(QueueName::schema()).unwrap();
        assert_eq!(queue_name["pattern"], QUEUE_NAME_PATTERN);
        assert_eq!(
            property::<QueueHistory>("queue")["pattern"],
            QUEUE_NAME_PATTERN
        );
        let listing = ListTasks::into_params(|| None);
        let queue = listing.iter().find(|p| p.name == "queue").unwrap();
        let queue = serde_json::to_value(queue.schema.as_ref().unwrap()).unwrap();
        assert_eq!(queue["pattern"], QUEUE_NAME_PATTERN);
        let length = format!("{{0,{}}}", MAX_NAME_LEN - 1);
        assert!(QUEUE_NAME_PATTERN.contains(&length));
    }
}
