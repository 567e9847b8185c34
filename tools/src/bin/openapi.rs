//! Prints the OpenAPI document of both services as YAML: `openapi.yaml` at the repository root
//! is its output (`cargo run -p leasehold-tools --bin openapi > openapi.yaml`).

fn main() {
    print!("{}", leasehold_tools::openapi::yaml());
}
