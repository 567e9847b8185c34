//! Prints the OpenAPI document of both services as YAML: `openapi.yaml` at the repository root
//! is its output (`cargo run -p master-svc --bin openapi > openapi.yaml`).

fn main() {
    print!("{}", master_svc::http::openapi::yaml());
}
