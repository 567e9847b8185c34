//! The OpenAPI document: the master serves the committed `openapi.yaml` (that it is what the code
//! generates is `leasehold-tools`' test).

use reqwest::StatusCode;

use crate::helpers::spawn_app;

fn committed() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    std::fs::read_to_string(path).expect("openapi.yaml at the repository root")
}

#[tokio::test]
async fn the_master_serves_the_document_as_json_and_yaml_and_a_page() {
    let app = spawn_app().await;
    let json = app.get("/openapi.json").await.text().await.unwrap();
    let parsed: serde_json::Value = serde_norway::from_str(&committed()).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        parsed
    );
    // In the YAML's order, not sorted (`components` would come first).
    assert!(json.starts_with("{\n  \"openapi\": "), "{}", &json[..40]);
    let yaml = app.get("/openapi.yaml").await;
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    assert_eq!(yaml.text().await.unwrap(), committed());
    let page = app.get("/docs").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Leasehold"));
}

#[tokio::test]
async fn the_docs_page_loads_its_viewer_from_the_master_not_from_the_internet() {
    let app = spawn_app().await;
    let page = app.get("/docs").await.text().await.unwrap();
    let src = page
        .split("<script src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads a script");
    assert!(src.starts_with("docs/scalar.js"), "{src}");
    assert!(
        !page.contains("<script src=\"http"),
        "a script from elsewhere: {page}"
    );

    // Relative to /docs, so from /docs/scalar.js; gzip unless the client refuses it.
    let compressed = app.get(&format!("/{src}")).await;
    assert_eq!(compressed.status(), StatusCode::OK);
    assert_eq!(compressed.headers()["content-type"], "text/javascript");
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    assert_eq!(compressed.bytes().await.unwrap()[..2], [0x1f, 0x8b]);
    let plain = app
        .client
        .get(app.url("/docs/scalar.js"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let script = plain.bytes().await.unwrap();
    assert!(
        script.len() > 1_000_000,
        "the whole bundle: {}",
        script.len()
    );
    assert!(script.starts_with(b"(function(){"));
}

#[tokio::test]
async fn the_document_needs_no_token() {
    let app = crate::helpers::spawn_app_with(|c| c.api_token = Some("secret".into())).await;
    assert_eq!(app.get("/openapi.json").await.status(), StatusCode::OK);
    assert_eq!(app.get("/docs/scalar.js").await.status(), StatusCode::OK);
    assert_eq!(app.get("/tasks").await.status(), StatusCode::UNAUTHORIZED);
}
