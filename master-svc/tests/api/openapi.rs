//! The OpenAPI document: the committed `openapi.yaml` is what the code generates, and the master
//! serves it.

use master_svc::http::openapi;
use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[test]
fn the_committed_openapi_yaml_is_what_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let committed = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    assert!(
        committed == openapi::yaml(),
        "openapi.yaml is stale: run `cargo run -p master-svc --bin openapi > openapi.yaml`"
    );
}

#[tokio::test]
async fn the_master_serves_the_document_as_json_and_yaml_and_a_page() {
    let app = spawn_app().await;
    let json: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(json, serde_json::to_value(openapi::document()).unwrap());
    let yaml = app.get("/openapi.yaml").await;
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    assert_eq!(yaml.text().await.unwrap(), openapi::yaml());
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

#[test]
fn every_link_names_an_operation_and_its_parameters() {
    let document = serde_json::to_value(openapi::document()).unwrap();
    let operations: Vec<&serde_json::Value> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|operation| operation.get("operationId").is_some())
        .collect();
    let mut links = 0;
    for operation in &operations {
        for response in operation["responses"].as_object().unwrap().values() {
            for link in response["links"]
                .as_object()
                .into_iter()
                .flat_map(|l| l.values())
            {
                let target = operations
                    .iter()
                    .find(|o| o["operationId"] == link["operationId"])
                    .unwrap_or_else(|| panic!("no operation {}", link["operationId"]));
                for name in link["parameters"].as_object().unwrap().keys() {
                    let declared = target["parameters"].as_array().unwrap();
                    assert!(
                        declared.iter().any(|p| p["name"] == name.as_str()),
                        "{name}"
                    );
                }
                links += 1;
            }
        }
    }
    assert!(
        links >= 3,
        "the lease response links heartbeat, result and release"
    );
}
