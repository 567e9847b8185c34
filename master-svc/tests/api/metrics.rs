//! `/metrics`: the Prometheus series an operator relies on, after some activity.
//!
//! The recorder is shared by every master in this test process, so each test works in a queue of
//! its own and looks for series labelled with it, or for counters that must have grown.

use common::{LeaseRequest, SubmitTask};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn scrape(app: &TestApp) -> String {
    let response = app.metrics().await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

/// The value of the sample whose line starts with `name{` and carries every label in `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .map(|value| value.parse().expect("a numeric sample"))
}

/// Submits, leases and finishes two tasks in `queue`, and has one stale result refused.
async fn some_activity(app: &TestApp, queue: &str) {
    for i in 0..3 {
        app.submit_task(SubmitTask {
            queue: Some(queue.into()),
            ..SubmitTask::new(json!(i))
        })
        .await;
    }
    let request = LeaseRequest {
        queues: Some(vec![queue.into()]),
        max_tasks: Some(2),
        ..LeaseRequest::new("w01")
    };
    let leased = app.lease_with(request).await.tasks;
    app.succeed(&leased[0], "w01", json!("ok")).await;
    app.fail(&leased[1], "w01", Some(false), None).await;
    let refused = app.succeed(&leased[0], "w02", json!("not mine")).await;
    assert_eq!(refused.status(), 409);
}

#[tokio::test]
async fn counters_count_submissions_leases_and_refusals() {
    let app = spawn_app().await;
    let refusals = |text: &str| {
        sample(
            text,
            "leasehold_requests_refused_total",
            &[r#"reason="wrong-worker""#],
        )
    };
    let before = refusals(&scrape(&app).await).unwrap_or(0.0);

    some_activity(&app, "metrics-counters").await;

    let text = scrape(&app).await;
    let queue = r#"queue="metrics-counters""#;
    assert_eq!(
        sample(&text, "leasehold_tasks_submitted_total", &[queue]),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "leasehold_leases_granted_total", &[queue]),
        Some(2.0)
    );
    assert!(refusals(&text).unwrap() >= before + 1.0, "{text}");
    let succeeded = [queue, r#"outcome="succeeded""#];
    assert_eq!(
        sample(&text, "leasehold_task_results_total", &succeeded),
        Some(1.0)
    );
}

#[tokio::test]
async fn queue_gauges_report_tasks_per_state() {
    let app = spawn_app().await;
    some_activity(&app, "metrics-gauges").await;

    let text = scrape(&app).await;

    let queue = r#"queue="metrics-gauges""#;
    for (state, n) in [
        ("queued", 1.0),
        ("leased", 0.0),
        ("succeeded", 1.0),
        ("failed", 1.0),
    ] {
        let labels = [queue, &format!(r#"state="{state}""#)];
        assert_eq!(
            sample(&text, "leasehold_queue_tasks", &labels),
            Some(n),
            "{state}"
        );
    }
}

#[tokio::test]
async fn lease_wait_and_task_duration_are_histograms() {
    let app = spawn_app().await;
    some_activity(&app, "metrics-histograms").await;

    let text = scrape(&app).await;

    let queue = r#"queue="metrics-histograms""#;
    assert_eq!(
        sample(&text, "leasehold_lease_wait_seconds_count", &[queue]),
        Some(2.0)
    );
    assert!(
        sample(
            &text,
            "leasehold_lease_wait_seconds_bucket",
            &[queue, r#"le="+Inf""#]
        )
        .is_some()
    );
    let durations = [queue, r#"outcome="succeeded""#];
    assert_eq!(
        sample(&text, "leasehold_task_duration_seconds_count", &durations),
        Some(1.0)
    );
    assert!(sample(&text, "leasehold_task_duration_seconds_bucket", &durations).is_some());
}

#[tokio::test]
async fn series_are_never_labelled_with_task_or_worker_ids() {
    let app = spawn_app().await;
    some_activity(&app, "metrics-labels").await;
    let text = scrape(&app).await;
    assert!(!text.contains("w01"), "a worker id leaked into the metrics");
    assert!(
        !text.contains("task_id"),
        "a task id leaked into the metrics"
    );
}

#[tokio::test]
async fn with_a_metrics_token_metrics_need_it() {
    let app = spawn_app_with(|config| {
        config.metrics_token = Some("scraper".into());
        config.api_token = Some("operator".into());
    })
    .await;
    let scrape_with = |token: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };

    assert_eq!(scrape_with(None).await, 401);
    assert_eq!(scrape_with(Some("operator")).await, 401);
    assert_eq!(scrape_with(Some("scraper")).await, 200);
    assert_eq!(app.get("/healthz").await.status(), 200, "probes stay open");
}

#[tokio::test]
async fn without_a_metrics_token_metrics_are_open() {
    let app = spawn_app_with(|config| config.api_token = Some("operator".into())).await;
    assert_eq!(app.get("/metrics").await.status(), 200);
}

/// The value of the sample named exactly `name` (no labels).
fn unlabelled(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map(|value| value.parse().expect("a numeric sample"))
}

#[tokio::test]
async fn requests_are_counted_and_timed_by_route_template_and_status() {
    let app = spawn_app().await;
    let labels = [
        r#"method="GET""#,
        r#"route="/tasks/{id}""#,
        r#"status="404""#,
    ];
    let count = |text: &str| sample(text, "leasehold_http_requests_total", &labels);
    let before = count(&scrape(&app).await).unwrap_or(0.0);

    for id in [987_651, 987_652] {
        assert_eq!(app.get_task(id).await.status(), 404);
    }
    assert_eq!(app.get("/no/such/987653").await.status(), 404);

    let text = scrape(&app).await;
    assert!(count(&text).unwrap() >= before + 2.0, "{text}");
    let timed = sample(
        &text,
        "leasehold_http_request_duration_seconds_count",
        &labels,
    );
    assert!(timed.unwrap() >= before + 2.0);
    let unmatched = [r#"route="unmatched""#, r#"status="404""#];
    assert!(sample(&text, "leasehold_http_requests_total", &unmatched).unwrap() >= 1.0);
    assert!(!text.contains("98765"), "a raw path became a label");
}

#[tokio::test]
async fn counters_are_present_at_zero_before_their_first_event() {
    let app = spawn_app().await;
    app.submit_task(SubmitTask {
        queue: Some("metrics-zeroes".into()),
        ..SubmitTask::new(json!(1))
    })
    .await;

    let text = scrape(&app).await;

    let queue = r#"queue="metrics-zeroes""#;
    for name in [
        "leasehold_leases_granted_total",
        "leasehold_leases_expired_total",
    ] {
        assert_eq!(sample(&text, name, &[queue]), Some(0.0), "{name}");
    }
    for outcome in ["succeeded", "retried", "failed", "cancelled"] {
        let labels = [queue, &format!(r#"outcome="{outcome}""#)];
        let results = sample(&text, "leasehold_task_results_total", &labels);
        assert_eq!(results, Some(0.0), "{outcome}");
    }
    // Known from the start, whatever other tests in this process did since.
    assert!(unlabelled(&text, "leasehold_store_errors_total").is_some());
    for reason in ["lease-expired", "wrong-worker", "idempotency-key-reused"] {
        let labels = [&format!(r#"reason="{reason}""#) as &str];
        assert!(sample(&text, "leasehold_requests_refused_total", &labels).is_some());
    }
    let busy = [r#"outcome="busy""#];
    assert!(sample(&text, "leasehold_push_dispatches_total", &busy).is_some());
}

#[tokio::test]
async fn the_oldest_ready_task_age_is_a_gauge_per_queue() {
    let app = spawn_app().await;
    let queue = "metrics-age";
    app.submit_task(SubmitTask {
        queue: Some(queue.into()),
        ..SubmitTask::new(json!(1))
    })
    .await;
    let age = |text: &str| {
        let labels = [r#"queue="metrics-age""#];
        sample(text, "leasehold_queue_oldest_ready_age_seconds", &labels)
    };
    app.advance(std::time::Duration::from_secs(90)).await;

    assert_eq!(age(&scrape(&app).await), Some(90.0));

    let request = LeaseRequest {
        queues: Some(vec![queue.into()]),
        ..LeaseRequest::new("w01")
    };
    assert_eq!(app.lease_with(request).await.tasks.len(), 1);
    assert_eq!(age(&scrape(&app).await), Some(0.0), "nothing ready: 0");
}

#[tokio::test]
async fn process_metrics_are_exported() {
    let app = spawn_app().await;
    let text = scrape(&app).await;
    assert!(unlabelled(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(unlabelled(&text, "process_open_fds").unwrap() > 0.0);
    assert!(unlabelled(&text, "process_cpu_seconds_total").is_some());
    assert!(unlabelled(&text, "process_start_time_seconds").unwrap() > 0.0);
}

#[tokio::test]
async fn flow_control_gauges_report_in_flight_pauses_held_back_tasks_and_tokens() {
    let app = spawn_app().await;
    let queue_name = "metrics-limits";
    app.configure(
        queue_name,
        json!({"max_in_flight": 1, "rate_limit": {"per_sec": 1, "burst": 4}}),
    )
    .await;
    let task = |n: i64| {
        json!(common::SubmitTask {
            queue: Some(queue_name.into()),
            ..common::SubmitTask::new(json!(n))
        })
    };
    app.submit_batch(&[task(1), task(2), task(3)]).await;
    let request = common::LeaseRequest {
        queues: Some(vec![queue_name.into()]),
        max_tasks: Some(3),
        ..common::LeaseRequest::new("w01")
    };
    assert_eq!(app.lease_with(request).await.tasks.len(), 1);

    let text = scrape(&app).await;

    let queue = r#"queue="metrics-limits""#;
    assert_eq!(
        sample(&text, "leasehold_queue_in_flight", &[queue]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "leasehold_queue_paused", &[queue]), Some(0.0));
    let held = |limit: &str| {
        let limit = format!(r#"limit="{limit}""#);
        sample(&text, "leasehold_queue_held_back", &[queue, &limit])
    };
    assert_eq!(held("max_in_flight"), Some(2.0));
    assert_eq!(held("rate_limit"), Some(0.0));
    assert_eq!(
        sample(&text, "leasehold_queue_rate_tokens", &[queue]),
        Some(3.0)
    );
}
