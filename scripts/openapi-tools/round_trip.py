"""A worker's round trip through the Python client that openapi-python-client generated from
openapi.yaml: submit -> lease -> heartbeat -> result -> read back, asserting every answer, against
the live master at BASE_URL. Run by scripts/check-openapi-tools.sh, once against a master without
tokens and once against one started with --api-token and --worker-token (given here as
--api-token and --worker-token): then the producer calls go with the operator's token, the
worker's with the worker's, and a call without a token must be refused with 401.

Usage: round_trip.py BASE_URL [--api-token TOKEN --worker-token TOKEN]
"""

import argparse
import sys

from leasehold_client import AuthenticatedClient, Client
from leasehold_client.api.leases import heartbeat, lease_tasks, report_result
from leasehold_client.api.tasks import get_task, submit_task
from leasehold_client.models import (
    Heartbeat,
    HeartbeatAck,
    LeaseRequest,
    LeaseResponse,
    Outcome,
    SubmitTask,
    Task,
    TaskResult,
    TaskState,
)

QUEUE = "python-client"
WORKER = "py-w01"
PAYLOAD = {"text": "hello from the generated client"}
RESULT = "HELLO FROM THE GENERATED CLIENT"
TIMEOUT_SECS = 15.0


def expect(response, status, model, step):
    """The response of `step` has `status` and parses as `model`; returns the parsed body."""
    if response.status_code != status or not isinstance(response.parsed, model):
        body = response.content.decode(errors="replace")
        sys.exit(f"FAIL {step}: {response.status_code} {body}")
    print(f"ok   {step}: {response.status_code}")
    return response.parsed


def check(condition, step, what):
    if not condition:
        sys.exit(f"FAIL {step}: {what}")


def clients(base_url, api_token, worker_token):
    """The producer's and the worker's client: authenticated when the master has tokens."""
    if api_token is None:
        plain = Client(base_url=base_url, timeout=TIMEOUT_SECS)
        return plain, plain
    producer = AuthenticatedClient(base_url=base_url, token=api_token, timeout=TIMEOUT_SECS)
    worker = AuthenticatedClient(base_url=base_url, token=worker_token, timeout=TIMEOUT_SECS)
    return producer, worker


def tokens_are_enforced(base_url):
    """Without a token, a master that has tokens refuses a submission with 401."""
    anonymous = Client(base_url=base_url, timeout=TIMEOUT_SECS)
    response = submit_task.sync_detailed(client=anonymous, body=SubmitTask(payload=PAYLOAD))
    check(response.status_code == 401, "submit without a token", f"{response.status_code}")
    print("ok   submit without a token: 401")


def round_trip(producer, worker):
    submitted = expect(
        submit_task.sync_detailed(client=producer, body=SubmitTask(payload=PAYLOAD, queue=QUEUE)),
        201, Task, "submit",
    )
    check(submitted.state == TaskState.QUEUED, "submit", f"state {submitted.state}")

    request = LeaseRequest(worker_id=WORKER, queues=[QUEUE], max_tasks=1, wait_secs=5)
    leased = expect(lease_tasks.sync_detailed(client=worker, body=request), 200, LeaseResponse, "lease")
    check(len(leased.tasks) == 1, "lease", f"{len(leased.tasks)} tasks")
    task = leased.tasks[0]
    check(task.task_id == submitted.id, "lease", f"task {task.task_id}, not {submitted.id}")
    check(task.payload == PAYLOAD, "lease", f"payload {task.payload!r}")

    beat = Heartbeat(lease_id=task.lease_id, lease_secs=60)
    ack = expect(heartbeat.sync_detailed(task.task_id, client=worker, body=beat), 200, HeartbeatAck, "heartbeat")
    check(ack.cancel_requested is False, "heartbeat", "cancel requested")

    report = TaskResult(lease_id=task.lease_id, worker_id=WORKER, outcome=Outcome.SUCCEEDED, result=RESULT)
    done = expect(report_result.sync_detailed(task.task_id, client=worker, body=report), 200, Task, "result")
    check(done.state == TaskState.SUCCEEDED, "result", f"state {done.state}")

    read = expect(get_task.sync_detailed(submitted.id, client=producer), 200, Task, "get task")
    check(read.state == TaskState.SUCCEEDED, "get task", f"state {read.state}")
    check(read.result == RESULT, "get task", f"result {read.result!r}")
    check(read.worker_id == WORKER, "get task", f"worker {read.worker_id!r}")
    check(read.attempts == 1, "get task", f"attempts {read.attempts}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--api-token")
    parser.add_argument("--worker-token")
    args = parser.parse_args()
    if (args.api_token is None) != (args.worker_token is None):
        parser.error("give both tokens or neither")
    if args.api_token is not None:
        tokens_are_enforced(args.base_url)
    round_trip(*clients(args.base_url, args.api_token, args.worker_token))
    print("round trip passed")


if __name__ == "__main__":
    main()
