//! The OpenAPI document of both services: the committed `openapi.yaml`, which the master serves,
//! is what the code generates, its links lead somewhere, and it keeps clear of what the tools
//! that read it refuse (`scripts/check-openapi-tools.sh` runs those tools themselves).

use leasehold_tools::openapi;
use serde_json::Value;

#[test]
fn the_committed_openapi_yaml_is_what_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let committed = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    assert!(
        committed == openapi::yaml(),
        "openapi.yaml is stale: run `cargo run -p leasehold-tools --bin openapi > openapi.yaml`"
    );
}

/// Every operation of the document, as JSON.
fn operations(document: &Value) -> Vec<&Value> {
    document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|operation| operation.get("operationId").is_some())
        .collect()
}

/// Every link of every response of the document, as JSON.
fn links(document: &Value) -> Vec<&Value> {
    let responses = operations(document)
        .into_iter()
        .flat_map(|operation| operation["responses"].as_object().unwrap().values());
    responses
        .flat_map(|response| response["links"].as_object().into_iter().flatten())
        .map(|(_, link)| link)
        .collect()
}

#[test]
fn every_link_names_an_operation_and_its_parameters() {
    let document = serde_json::to_value(openapi::document()).unwrap();
    let operations = operations(&document);
    let links = links(&document);
    for link in &links {
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
    }
    assert!(
        links.len() >= 3,
        "the lease response links heartbeat, result and release"
    );
}

/// In its place, a link to an operation that takes a body names the fields to carry in its
/// description, as `field` (`$expression`): what scripts/contract/hooks.py reads back.
#[test]
fn no_link_carries_a_request_body_as_openapi_generator_refuses_an_object_there() {
    let document = serde_json::to_value(openapi::document()).unwrap();
    let operations = operations(&document);
    for link in links(&document) {
        assert!(link.get("requestBody").is_none(), "{link}");
        let target = operations
            .iter()
            .find(|o| o["operationId"] == link["operationId"])
            .unwrap();
        if target.get("requestBody").is_some() {
            let description = link["description"].as_str().unwrap_or_default();
            assert!(description.contains("` (`$"), "{link}");
        }
    }
}

#[test]
fn every_operation_declares_its_security_the_open_ones_as_empty() {
    let document = serde_json::to_value(openapi::document()).unwrap();
    for operation in operations(&document) {
        let security = operation["security"].as_array();
        let security = security.unwrap_or_else(|| panic!("{}", operation["operationId"]));
        let open = ["probes", "docs"].contains(&operation["tags"][0].as_str().unwrap());
        assert_eq!(security.is_empty(), open, "{}", operation["operationId"]);
    }
}
