//! The console's files: served by the master from its binary, under `/ui/`.

use reqwest::header;

use crate::helpers::spawn_app;

fn not_following_redirects() -> reqwest::Client {
    leasehold_client::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn ui_without_its_slash_is_sent_to_it_relatively() {
    let app = spawn_app().await;
    let response = not_following_redirects()
        .get(format!("{}/ui", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()[header::LOCATION], "ui/");
}

#[tokio::test]
async fn the_page_allows_the_master_only_and_needs_no_token() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/ui/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("default-src 'self'") && policy.contains("connect-src 'self'"));
    let page = response.text().await.unwrap();
    assert!(
        page.contains(r#"<script type="module" src="app.js">"#),
        "{page}"
    );
}

#[tokio::test]
async fn a_module_is_javascript_gzipped_for_a_browser_and_unchanged_is_a_304() {
    let app = spawn_app().await;
    let url = format!("{}/ui/pages/task.js", app.address);
    let response = app
        .client
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/javascript");
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    let etag = response.headers()[header::ETAG].clone();
    let again = app
        .client
        .get(&url)
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn a_file_the_console_does_not_have_is_a_404_problem() {
    let app = spawn_app().await;
    for path in ["nope.js", "../Cargo.toml", "%2e%2e/src/main.rs"] {
        let response = app
            .client
            .get(format!("{}/ui/{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{path}"
        );
    }
}
