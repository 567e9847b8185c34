//! The tokens file with the real `master-svc` binary: an invalid file at start refuses to start
//! with a message that names the file and never a token; SIGHUP reloads a valid file at once,
//! and an invalid one is logged and counted while the old tokens keep working.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use leasehold_testkit::free_port;
use leasehold_testkit::master::command;
use serde_json::json;

const OLD_TOKEN: &str = "old-secret-4f1c";
const NEW_TOKEN: &str = "new-secret-9a2e";

fn write_tokens(path: &Path, token: &str) {
    let file = json!({ "tokens": [{ "name": "ci", "token": token, "role": "producer" }] });
    std::fs::write(path, file.to_string()).unwrap();
}

/// The status `GET /whoami` answers with `token`, or `None` while the master does not answer.
async fn whoami(url: &str, token: &str) -> Option<u16> {
    let client = leasehold_client::http_client();
    let response = client
        .get(format!("{url}/whoami"))
        .bearer_auth(token)
        .send()
        .await;
    response.ok().map(|r| r.status().as_u16())
}

/// Polls until `token` gets `status` from `GET /whoami` (10 s at most).
async fn wait_for(url: &str, token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if whoami(url, token).await == Some(status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{token} never got {status}");
}

fn sighup(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn reload_failures(url: &str) -> String {
    let client = leasehold_client::http_client();
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|line| line.starts_with("leasehold_tokens_reloads_total{outcome=\"failed\"}"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sighup_reloads_a_valid_tokens_file_and_keeps_the_old_tokens_when_it_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    write_tokens(&tokens, OLD_TOKEN);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let database = format!("sqlite:{}", dir.path().join("leasehold.db").display());
    let mut master = command(port, &database)
        .arg("--tokens-file")
        .arg(&tokens)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&url, OLD_TOKEN, 200).await;

    write_tokens(&tokens, NEW_TOKEN);
    sighup(&master);
    wait_for(&url, NEW_TOKEN, 200).await;
    assert_eq!(whoami(&url, OLD_TOKEN).await, Some(401));

    std::fs::write(
        &tokens,
        format!(
            r#"{{"tokens": [{{"name": "x", "token": "{OLD_TOKEN}", "role": "{OLD_TOKEN}"}}]}}"#
        ),
    )
    .unwrap();
    sighup(&master);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reload_failures(&url).await.ends_with(" 1") {
        assert!(
            Instant::now() < deadline,
            "the failed reload was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        whoami(&url, NEW_TOKEN).await,
        Some(200),
        "the old tokens stay"
    );
    assert_eq!(whoami(&url, OLD_TOKEN).await, Some(401));

    master.kill().unwrap();
    let output = master.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("tokens file not reloaded"), "{log}");
    assert!(
        !log.contains(OLD_TOKEN) && !log.contains(NEW_TOKEN),
        "{log}"
    );
}

#[test]
fn an_invalid_tokens_file_at_start_is_refused_with_a_message_that_quotes_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.json");
    let text = format!(
        r#"{{"tokens": [{{"name": "ci", "token": "{OLD_TOKEN}", "sha256": "{OLD_TOKEN}", "role": "admin"}}]}}"#
    );
    std::fs::write(&tokens, text).unwrap();
    let database = format!("sqlite:{}", dir.path().join("leasehold.db").display());
    let output = command(free_port(), &database)
        .arg("--tokens-file")
        .arg(&tokens)
        .output()
        .unwrap();

    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the master started: {said}");
    assert!(
        said.contains("tokens.json") && said.contains("tokens[0] (`ci`)"),
        "{said}"
    );
    assert!(!said.contains(OLD_TOKEN), "{said}");
}
