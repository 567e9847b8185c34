//! The OpenAPI document of both services: the committed `openapi.yaml`, which the master serves,
//! is what the code generates, and its links lead somewhere.

use leasehold_tools::openapi;

#[test]
fn the_committed_openapi_yaml_is_what_the_code_generates() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    let committed = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    assert!(
        committed == openapi::yaml(),
        "openapi.yaml is stale: run `cargo run -p leasehold-tools --bin openapi > openapi.yaml`"
    );
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
