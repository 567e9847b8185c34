//! Clients that hold connections: a body that never ends, headers that never end, and more
//! connections than the master takes. Each is cut off or refused with an answer, and a normal
//! client is served meanwhile. These talk raw TCP where a well-behaved client cannot misbehave.

use std::time::Duration;

use common::Problem;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::{TestApp, assert_problem, spawn_app_with};

/// Longer than any cut-off these tests configure, and far shorter than the defaults.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Opens a raw connection to `app` and sends `bytes` on it.
async fn connect_and_send(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connects");
    stream.write_all(bytes).await.expect("sends");
    stream
}

/// Everything the master sends until it closes the connection, and how long that took; `None`
/// if it is still open after [`GIVE_UP`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<(String, Duration)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(GIVE_UP, stream.read_to_end(&mut received)).await;
    let _ = read.ok()?;
    Some((
        String::from_utf8_lossy(&received).into_owned(),
        start.elapsed(),
    ))
}

/// The problem body at the end of a raw HTTP answer.
fn problem_of(answer: &str) -> Problem {
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body).expect("a problem body")
}

/// Submits a task and asserts it was accepted within a moment.
async fn assert_served(app: &TestApp) {
    let start = Instant::now();
    let response = app.submit(&json!({ "payload": "meanwhile" })).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_closed_while_others_are_served() {
    let app = spawn_app_with(|config| config.body_read_timeout_secs = 1).await;
    // Headers announcing 1,000 bytes, then 11 of them, then nothing.
    let head = "POST /tasks HTTP/1.1\r\nHost: master\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n";
    let mut stalled = connect_and_send(&app, format!("{head}{{\"payload\":").as_bytes()).await;
    let closed = tokio::spawn(async move { read_until_closed(&mut stalled).await });
    for _ in 0..5 {
        assert_served(&app).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (answer, after) = closed
        .await
        .unwrap()
        .expect("the stalled connection is closed");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert_eq!(problem_of(&answer).kind(), "request-timeout");
    assert!(after < Duration::from_secs(3), "closed after {after:?}");
    assert_eq!(app.all_tasks().await.len(), 5);
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_deadline() {
    let app = spawn_app_with(|config| config.body_read_timeout_secs = 1).await;
    let head = "POST /tasks HTTP/1.1\r\nHost: master\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n";
    let mut trickle = connect_and_send(&app, head.as_bytes()).await;
    let start = Instant::now();
    // One byte every 200 ms never leaves the body idle for long, yet it would take 200 s.
    while trickle.write_all(b" ").await.is_ok() && start.elapsed() < GIVE_UP {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_long_poll_waits_past_the_body_timeout() {
    let app = spawn_app_with(|config| config.body_read_timeout_secs = 1).await;
    let request = json!({ "worker_id": "w01", "wait_secs": 5 });
    let poll = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/tasks/lease"));
        async move { client.post(url).json(&request).send().await.unwrap() }
    });
    app.wait_for_long_polls(1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    app.submit_payload(json!("late")).await;

    let response = poll.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let reply: common::LeaseResponse = response.json().await.unwrap();
    assert_eq!(reply.tasks.len(), 1);
}

#[tokio::test]
async fn headers_that_never_end_are_cut_off_at_the_header_timeout() {
    let app = spawn_app_with(|config| config.header_read_timeout_secs = 1).await;
    let mut stalled = connect_and_send(&app, b"GET /healthz HTTP/1.1\r\nHost: mas").await;
    let (_, after) = read_until_closed(&mut stalled)
        .await
        .expect("the connection is closed");
    assert!(after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn a_connection_beyond_the_cap_is_answered_503_until_one_closes() {
    let app = spawn_app_with(|config| config.max_connections = 2).await;
    let held = [
        connect_and_send(&app, b"").await,
        connect_and_send(&app, b"").await,
    ];
    // The master takes connections in its own time: wait until it has taken both.
    let start = Instant::now();
    let refused = loop {
        assert!(
            start.elapsed() < GIVE_UP,
            "a third connection is still served"
        );
        let response = fresh_client()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-connections",
    )
    .await;
    drop(held);
    let start = Instant::now();
    while fresh_client()
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(
            start.elapsed() < GIVE_UP,
            "still refused after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client with no pooled connection, so that each request opens one.
fn fresh_client() -> reqwest::Client {
    leasehold_client::http_client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}
