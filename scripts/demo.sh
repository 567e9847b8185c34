#!/usr/bin/env bash
# Starts a master and two workers on the embedded SQLite store and runs the original design's
# two examples through them, printing what happens.
# Pull: five tasks, workers w01 and w02, w01 freezing on task 3 (as a hung or partitioned worker
# would: its heartbeats stop too) so that its lease runs out, task 3 going to w02, w01's late
# result being refused, and both workers exiting once the queue is sealed and drained.
# Push: two workers register with the master, which pushes the five sample strings to their
# POST /do-task, round the two of them, and records the uppercased results.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8080}
M=http://127.0.0.1:$PORT
DATA=$(mktemp -d)
cargo build --release --quiet -p master-svc -p worker-svc
BIN=./target/release
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$DATA"
}
trap cleanup EXIT

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
say() { printf '\n== %s\n' "$*"; }
states() { curl -s "$M/tasks?limit=100&view=full" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    who = t["worker_id"] or (t["lease"] or {}).get("worker_id", "-")
    print("   task %s: %-9s attempts %s  by %s  %s" % (t["id"], t["state"], t["attempts"], who, t["result"] or ""))
'; }

RUST_LOG=warn $BIN/master-svc --listen "127.0.0.1:$PORT" --database-url "sqlite:$DATA/leasehold.db" --tick-ms 100 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf "$M/readyz" > /dev/null && break; sleep 0.1; done
say "master on $M (database $DATA/leasehold.db)"

# w01 works like the original example (1 s per task) but freezes itself on task 3.
STALL='if [ "$TASK_ID" = 3 ]; then kill -STOP $PPID; fi; sleep 1; echo "\"Processed data from task $TASK_ID\""'
worker() { # id port handler
  $BIN/worker-svc --master "$M" --id "$1" --listen "127.0.0.1:$2" --concurrency 1 --wait-secs 5 \
    --handler "$3" --exit-when-drained 2> "$DATA/$1.log" &
  PIDS+=($!)
}
worker w01 $((PORT + 1)) "exec:$STALL"
W01=$!
say "worker w01 started; submitting tasks 1-3 (2 s leases)"
submit() { curl -s -X POST "$M/tasks" -H 'content-type: application/json' \
  -d "{\"payload\": {\"data\": \"task data $1\", \"sleep_ms\": 1000}, \"lease_secs\": 2}" | json '"   submitted task", d["id"], d["payload"]["data"]'; }
for i in 1 2 3; do submit $i; done
until curl -s "$M/tasks/3" | json 'd["state"]' | grep -q leased; do sleep 0.2; done
say "w01 took task 3 and froze (SIGSTOP): no result, no heartbeat"
states

worker w02 $((PORT + 2)) process
say "worker w02 started; submitting tasks 4-5"
for i in 4 5; do submit $i; done
until curl -s "$M/tasks/3" | json 'd["state"]' | grep -q succeeded; do sleep 0.2; done
say "task 3's lease ran out; the master put it back and w02 finished it"
states

say "w01 wakes up (SIGCONT) and sends its late result for task 3"
kill -CONT $W01
for _ in $(seq 50); do grep -q "result refused" "$DATA/w01.log" && break; sleep 0.1; done
grep "result refused" "$DATA/w01.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/   w01 log: /'

until [ "$(curl -s "$M/queues/default" | json 'd["counts"]["succeeded"]')" = 5 ]; do sleep 0.2; done
say "all five tasks succeeded, each exactly once:"
states
curl -s "$M/metrics" | grep -E '^leasehold_(task_results_total|requests_refused_total|leases_expired_total)' | sed 's/^/   /'

say "sealing the queue: the master answers no_more_tasks and the workers exit"
curl -s -X POST "$M/queues/default/seal" > /dev/null
for pid in "${PIDS[@]:1}"; do wait "$pid" && echo "   worker exited with status 0"; done

say "push: workers p01 and p02 register with the master; it calls their POST /do-task"
for n in 1 2; do
  $BIN/worker-svc --master "$M" --register "$M" --id "p0$n" --listen "127.0.0.1:$((PORT + 2 + n))" \
    --no-pull --queues push-demo --handler uppercase 2> "$DATA/p0$n.log" &
  PIDS+=($!)
done
until [ "$(curl -s "$M/workers" | json 'len(d["workers"])')" = 2 ]; do sleep 0.2; done
curl -s "$M/workers" | json '"\n".join("   registered %s at %s, capacity %s" % (w["id"], w["url"], w["capacity"]) for w in d["workers"])'
for text in "hello world" "go rpc is simple" "learn by example" "concurrency is fun" "master worker pattern"; do
  curl -s -X POST "$M/tasks" -H 'content-type: application/json' \
    -d "{\"payload\": \"$text\", \"queue\": \"push-demo\"}" > /dev/null
  sleep 0.1
done
until [ "$(curl -s "$M/queues/push-demo" | json 'd["counts"]["succeeded"]')" = 5 ]; do sleep 0.2; done
curl -s "$M/tasks?queue=push-demo&view=full" | json '"\n".join("   task %s: %r -> %r by %s" % (t["id"], t["payload"], t["result"], t["worker_id"]) for t in d["tasks"])'
