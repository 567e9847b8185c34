//! The example each schema of the contract shows. They are attached to the document once it is
//! assembled ([`SchemaExamples`]) rather than named in the types' `#[schema]` attributes: the
//! examples are built from the contract's types ([`crate::examples`]), and the types do not
//! depend on their examples.

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, ToSchema};

use crate::examples as ex;

/// Sets the `example` of each schema that has one, by the schema's name; a schema the document
/// does not hold is left out.
#[derive(Debug)]
pub struct SchemaExamples;

impl Modify for SchemaExamples {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (name, example) in examples() {
            if let Some(RefOr::T(Schema::Object(schema))) = components.schemas.get_mut(&name) {
                schema.example = Some(example);
            }
        }
    }
}

/// A schema's name, and its example as JSON.
fn example<T: ToSchema + Serialize>(value: T) -> (String, Value) {
    let json = serde_json::to_value(value).expect("an example serializes");
    (T::name().into_owned(), json)
}

/// Every schema's example, each named by the type it is built as.
fn examples() -> [(String, Value); 25] {
    [
        example(ex::submit_task()),
        example(ex::submit_batch()),
        example(ex::batch_submitted()),
        example(ex::task_succeeded()),
        example(ex::task_page()),
        example(ex::lease_request()),
        example(ex::leased_task()),
        example(ex::lease_response()),
        example(ex::heartbeat()),
        example(ex::heartbeat_ack()),
        example(ex::task_result()),
        example(ex::report_batch()),
        example(ex::report_batch_reply()),
        example(ex::release()),
        example(ex::problem_lease_expired()),
        example(ex::queue_info()),
        example(ex::queue_list()),
        example(ex::do_task_reply()),
        example(ex::register_worker()),
        example(ex::worker_info()),
        example(ex::worker_list()),
        example(ex::queue_history()),
        example(ex::queue_history().points.remove(0)),
        example(ex::pull_worker()),
        example(ex::master_list()),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use utoipa::OpenApi;

    use super::{SchemaExamples, examples};
    use crate::{Problem, SubmitTask};

    #[test]
    fn each_schema_has_one_example() {
        let names: HashSet<String> = examples().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names.len(), examples().len());
    }

    #[test]
    fn the_examples_are_attached_to_the_schemas_of_their_types() {
        #[derive(OpenApi)]
        #[openapi(components(schemas(Problem, SubmitTask)), modifiers(&SchemaExamples))]
        struct Document;

        let document = serde_json::to_value(Document::openapi()).unwrap();

        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["Problem"]["example"]["type"],
            "https://leasehold.dev/problems/lease-expired"
        );
        assert_eq!(schemas["SubmitTask"]["example"]["idempotency_key"], "job-1");
    }
}
