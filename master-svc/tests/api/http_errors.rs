//! Requests wrong at the HTTP level: bad path ids and query strings, missing content types,
//! unknown routes, wrong methods and oversized bodies. Each gets a problem body.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

/// A master with one queued task; returns it with the task's id.
async fn with_a_task() -> (TestApp, i64) {
    let app = spawn_app().await;
    let task = app.submit_payload(json!("task data 1")).await;
    (app, task.id.0)
}

#[tokio::test]
async fn a_task_id_that_is_not_an_integer_is_refused_with_400() {
    let (app, id) = with_a_task().await;
    let body = json!({ "lease_id": "x", "worker_id": "w", "outcome": "succeeded" });
    for bad in ["abc", "1.5", "-", "99999999999999999999999"] {
        let path = format!("/tasks/{bad}");
        for response in [
            app.get(&path).await,
            app.delete(&path).await,
            app.post(&format!("{path}/retry"), &json!({})).await,
            app.post(&format!("{path}/result"), &body).await,
            app.post(&format!("{path}/heartbeat"), &json!({ "lease_id": "x" }))
                .await,
            app.post(&format!("{path}/release"), &json!({ "lease_id": "x" }))
                .await,
        ] {
            assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
        }
    }
    assert_eq!(app.task(id).await.state, common::TaskState::Queued);
}

#[tokio::test]
async fn a_task_id_in_another_spelling_is_refused_with_400() {
    // Before, `+1` and `01` were read as task 1.
    let (app, id) = with_a_task().await;
    for bad in [format!("+{id}"), format!("0{id}"), format!("%20{id}")] {
        let response = app.get(&format!("/tasks/{bad}")).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
        let response = app.post(&format!("/tasks/{bad}/retry"), &json!({})).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(
        app.get(&format!("/tasks/{id}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_query_strings_on_the_listing_are_refused_with_400() {
    let (app, _) = with_a_task().await;
    for query in [
        "?foo=1",
        "?limit=10&qeueu=default",
        "?limit=0",
        "?limit=1001",
        "?limit=ten",
        "?state=running",
        "?cursor=abc",
        "?queue=has%20space",
        "?queue=..",
        "?queue=.hidden",
    ] {
        let response = app.list_tasks(query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
}

#[tokio::test]
async fn a_bad_queue_name_in_the_path_is_refused_with_400() {
    let (app, _) = with_a_task().await;
    for response in [
        app.queue("has%20space").await,
        app.seal("semi%3Bcolon").await,
        app.unseal("%C3%BC").await,
    ] {
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(app.queue_list().await.len(), 1);
}

#[tokio::test]
async fn a_queue_name_that_is_a_path_step_or_starts_with_punctuation_is_refused_with_400() {
    // Before, `POST /queues/%2e%2e/seal` created a queue named `..`.
    let (app, _) = with_a_task().await;
    for name in ["%2e%2e", "%2E", ".hidden", "-x", "_x"] {
        for (method, path) in [
            ("POST", format!("/queues/{name}/seal")),
            ("POST", format!("/queues/{name}/unseal")),
            ("GET", format!("/queues/{name}")),
        ] {
            let (status, problem) = app.raw_request(method, &path).await;
            assert_eq!(
                (status, problem.kind()),
                (400, "invalid-request"),
                "{method} {path}"
            );
        }
    }
    for name in ["..", ".", "-x"] {
        let response = app.submit(&json!({ "payload": 1, "queue": name })).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
        let response = app
            .lease(&json!({ "worker_id": "w", "queues": [name] }))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
    }
    assert_eq!(app.queue_list().await.len(), 1);
}

#[tokio::test]
async fn a_bad_input_of_a_megabyte_is_quoted_back_only_in_part() {
    // Before, the 400 quoted the whole input back: a megabyte for a megabyte.
    let (app, _) = with_a_task().await;
    let huge = "x".repeat(1 << 20);
    for body in [
        json!({ "payload": 1, "queue": format!("{huge} ") }),
        json!({ "payload": 1, "priority": huge }),
        json!({ "payload": 1, huge.clone(): 1 }),
    ] {
        let response = app.submit(&body).await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid-request").await;
        let detail = problem.detail.unwrap();
        assert!(detail.len() < 1_000, "{} bytes of detail", detail.len());
        assert!(detail.contains("xxxx"), "{detail}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_in_utf8_is_refused_with_415() {
    let (app, id) = with_a_task().await;
    let body = json!({ "payload": 1 }).to_string();
    for content_type in [
        "application/problem+json",
        "application/merge-patch+json",
        "application/json; charset=latin1",
        "application/json; charset=utf-16",
        "text/json",
        "application/json-seq",
        "application/jsonx",
    ] {
        for path in ["/tasks", "/tasks/batch", "/tasks/lease"] {
            let response = app.post_raw(path, Some(content_type), &body).await;
            assert_eq!(response.status(), 415, "{content_type} on {path}");
            assert_problem(
                response,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            )
            .await;
        }
    }
    assert_eq!(app.all_tasks().await.len(), 1);
    assert_eq!(app.task(id).await.state, common::TaskState::Queued);
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_refused_with_415() {
    let (app, id) = with_a_task().await;
    let body = json!({ "payload": 1 }).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        for path in ["/tasks", "/tasks/batch", "/tasks/lease"] {
            let response = app.post_raw(path, content_type, &body).await;
            assert_problem(
                response,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            )
            .await;
        }
    }
    assert_eq!(app.all_tasks().await.len(), 1);
    assert_eq!(app.task(id).await.state, common::TaskState::Queued);
}

#[tokio::test]
async fn a_json_content_type_with_parameters_is_accepted() {
    let (app, _) = with_a_task().await;
    let body = json!({ "payload": 2 }).to_string();
    for content_type in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json; charset=\"utf-8\"",
        "Application/JSON",
    ] {
        let response = app.post_raw("/tasks", Some(content_type), &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
}

#[tokio::test]
async fn a_request_hyper_refuses_before_the_router_still_gets_a_problem_body() {
    // Before, hyper's own 431 and 400 answers had an empty body.
    let app = spawn_app().await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: master\r\nX-Big: {}\r\n\r\n",
        "x".repeat(10_000)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: master\r\n{}\r\n",
        "X-Many: 1\r\n".repeat(200)
    );
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: master\r\n\r\n",
        "a".repeat(10_000)
    );
    for (request, status, kind) in [
        (big_header, 431, "request-header-fields-too-large"),
        (many_headers, 431, "request-header-fields-too-large"),
        (long_uri, 431, "request-header-fields-too-large"),
        ("NOT HTTP AT ALL\r\n\r\n".to_owned(), 400, "invalid-request"),
        (
            "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n".to_owned(),
            400,
            "invalid-request",
        ),
    ] {
        let (answered, head, body) = app.raw_exchange(request.as_bytes()).await;
        assert_eq!(answered, status, "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let problem: common::Problem = serde_json::from_str(&body).expect("a problem body");
        assert_eq!((problem.status, problem.kind()), (status, kind));
    }
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_task_is_404_on_every_task_endpoint() {
    let (app, id) = with_a_task().await;
    let missing = id + 1000;
    let lease = json!({ "lease_id": "x" });
    let result = json!({ "lease_id": "x", "worker_id": "w", "outcome": "succeeded" });
    for response in [
        app.get_task(missing).await,
        app.cancel(missing).await,
        app.retry(missing).await,
        app.heartbeat(missing, &lease).await,
        app.release(missing, &lease).await,
        app.result(missing, &result).await,
    ] {
        assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
    }
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    for path in ["/", "/nope", "/tasks/1/explode", "/queues/a/b/c", "/task"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
    }
    let response = app.post("/tasks/1/explode", &json!({})).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let (app, id) = with_a_task().await;
    for (method, path) in [
        (Method::PUT, "/tasks".to_owned()),
        (Method::DELETE, "/tasks".to_owned()),
        (Method::PATCH, format!("/tasks/{id}")),
        (Method::POST, format!("/tasks/{id}")),
        (Method::GET, "/tasks/lease".to_owned()),
        (Method::GET, "/tasks/batch".to_owned()),
        (Method::GET, format!("/tasks/{id}/result")),
        (Method::DELETE, "/queues/default".to_owned()),
        (Method::GET, "/queues/default/seal".to_owned()),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let response = app.request(method.clone(), &path).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_problem(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        )
        .await;
    }
    assert_eq!(app.task(id).await.state, common::TaskState::Queued);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_creates_nothing() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;
    let big = json!({ "payload": "x".repeat(2_000) });

    let response = app.submit(&big).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
    let response = app.submit_batch(std::slice::from_ref(&big)).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;

    assert!(app.all_tasks().await.is_empty());
    let small = json!({ "payload": "x".repeat(900) });
    assert_eq!(app.submit(&small).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_large_result_over_the_limit_is_refused_and_the_lease_still_holds() {
    let app = spawn_app_with(|config| config.max_body_bytes = 1024).await;
    let task = app.submit_payload(json!(1)).await;
    let leased = app.lease_one("w01").await;

    let response = app.succeed(&leased, "w01", json!("r".repeat(2_000))).await;

    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
    assert_eq!(app.task(task.id.0).await.state, common::TaskState::Leased);
    assert_eq!(app.succeed(&leased, "w01", json!("ok")).await.status(), 200);
}
