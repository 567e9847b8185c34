"""Schemathesis hooks for scripts/contract.sh (loaded through `hooks` in schemathesis.toml).

None changes what is checked. The request hooks each rewrite a request that is valid into another
valid one, and leave invalid requests (negative testing) exactly as generated; the schema hook
gives the lease's links the request bodies openapi.yaml describes in words.
"""

import os
import re

import schemathesis
import yaml


def registration_url_pattern():
    """`RegisterWorker.url`'s pattern, read from openapi.yaml itself: the master registers
    exactly the URLs it admits (common::WORKER_URL_PATTERN), so no copy here can drift."""
    spec = os.path.join(os.environ["CONTRACT_DIR"], "..", "..", "openapi.yaml")
    with open(spec, encoding="utf-8") as f:
        schemas = yaml.safe_load(f)["components"]["schemas"]
    return re.compile(schemas["RegisterWorker"]["properties"]["url"]["pattern"])


PUSHABLE_URL = registration_url_pattern()

# A field a link's description says to carry into its target's body: `name` (`$expression`).
CARRIED_FIELD = re.compile(r"`(\w+)` \(`(\$[^`]+)`\)")


@schemathesis.hook
def before_load_schema(ctx, raw_schema):
    """openapi.yaml's links carry no `requestBody` (openapi-generator refuses one that is an
    object); a link to an operation that takes a body names the fields to carry in its
    description instead, e.g. `lease_id` (`$response.body#/tasks/0/lease_id`). They are made the
    link's `requestBody` again here, so that the stateful phase heartbeats, reports and releases
    under the leases it was granted rather than under random lease ids."""
    operations = {
        operation["operationId"]: operation
        for item in raw_schema["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for operation in operations.values():
        for response in operation["responses"].values():
            for name, link in response.get("links", {}).items():
                if "requestBody" in operations[link["operationId"]]:
                    link["requestBody"] = carried_fields(name, link)


def carried_fields(name, link):
    fields = dict(CARRIED_FIELD.findall(link.get("description", "")))
    if not fields:
        raise ValueError(f"link {name} names no field to carry into its body")
    return fields


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.operation.label in ("GET /tasks/{id}", "POST /tasks") and isinstance(case.query, dict):
        shorten_long_poll(case.query)
    if not isinstance(case.body, dict):
        return
    if case.operation.label == "POST /tasks/lease":
        shorten_long_poll(case.body)
    elif case.operation.label == "POST /workers":
        keep_pushes_local(case.body)


def shorten_long_poll(body):
    """`POST /tasks/lease` may wait up to `wait_secs` (at most 60) for a task, and `GET
    /tasks/{id}` and `POST /tasks` for the task to finish (in the query); with random queue names
    nothing ever comes, so each such request would hold the run for up to a minute. A valid
    `wait_secs` is cut to at most 1 second; the waits themselves are covered by the master's
    integration tests (master-svc/tests/api/long_poll.rs, wait_for_result.rs)."""
    wait = body.get("wait_secs")
    if isinstance(wait, str) and wait.isdigit():
        wait = int(wait)  # a query parameter
    # An integral float (`13.0`) is an integer too.
    is_integer = isinstance(wait, int) or (isinstance(wait, float) and wait.is_integer())
    if is_integer and not isinstance(wait, bool) and 1 < wait <= 60:
        body["wait_secs"] = 1


def keep_pushes_local(body):
    """The master calls a registered push worker at its `url`: every valid `url` is replaced by
    the contract worker's address, so the master only ever connects to 127.0.0.1 (this machine
    may reach no other address). An invalid `url` is refused before the master connects."""
    url = body.get("url")
    if isinstance(url, str) and PUSHABLE_URL.fullmatch(url):
        body["url"] = os.environ["CONTRACT_WORKER_URL"]
