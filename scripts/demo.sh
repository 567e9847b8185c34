#!/usr/bin/env bash
# Starts a master and two workers on the embedded SQLite store and runs the original design's
# two examples through them, printing what happens.
# Pull: five tasks, workers w01 and w02, w01 freezing on task 3 (as a hung or partitioned worker
# would: its heartbeats stop too) so that its lease runs out, task 3 going to w02, w01's late
# result being refused, and both workers exiting once the queue is sealed and drained.
# Push: two workers register with the master, which pushes the five sample strings to their
# POST /do-task, round the two of them, and records the uppercased results.
#
# Every process listens on a port the system picks (port 0), so the demo runs beside a master
# already on 8080; the master's address is read from its own log, so the demo talks to the master
# it started and no other. Every wait is bounded: a step that does not happen in time fails the
# demo, saying which, rather than hang it.
set -euo pipefail
cd "$(dirname "$0")/.."

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

fail() { echo "demo failed: $*" >&2; exit 1; }
# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds, or fails the demo.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 0.2
  done
}
# Every request is bounded too: the demo's master answers in milliseconds.
curl() { command curl --max-time 10 "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
say() { printf '\n== %s\n' "$*"; }
states() { curl -s "$M/tasks?limit=100&view=full" | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tasks"]:
    who = t["worker_id"] or (t["lease"] or {}).get("worker_id", "-")
    print("   task %s: %-9s attempts %s  by %s  %s" % (t["id"], t["state"], t["attempts"], who, t["result"] or ""))
'; }

master_address() { python3 scripts/master-address.py "$DATA/master.log"; }
master_listening() {
  kill -0 "$MASTER" 2>/dev/null || { cat "$DATA/master.log" >&2; fail "the master exited at start"; }
  [ -n "$(master_address)" ]
}

RUST_LOG=warn,master_svc::startup=info $BIN/master-svc --listen 127.0.0.1:0 --log-format json \
  --database-url "sqlite:$DATA/leasehold.db" --tick-ms 100 2> "$DATA/master.log" &
MASTER=$!
PIDS+=("$MASTER")
wait_for 30 "the master to listen" master_listening
M=http://$(master_address)
wait_for 10 "the master to be ready" curl -sf -o /dev/null "$M/readyz"
say "master on $M (database $DATA/leasehold.db)"

# w01 works like the original example (1 s per task) but freezes itself on task 3.
STALL='if [ "$TASK_ID" = 3 ]; then kill -STOP $PPID; fi; sleep 1; echo "\"Processed data from task $TASK_ID\""'
worker() { # id handler
  $BIN/worker-svc --master "$M" --id "$1" --listen 127.0.0.1:0 --concurrency 1 --wait-secs 5 \
    --handler "$2" --exit-when-drained 2> "$DATA/$1.log" &
  PIDS+=($!)
}
task_state() { [ "$(curl -s "$M/tasks/$1" | json 'd["state"]' 2> /dev/null)" = "$2" ]; }
succeeded() { [ "$(curl -s "$M/queues/$1" | json 'd["counts"]["succeeded"]' 2> /dev/null)" = "$2" ]; }
exited() { ! kill -0 "$1" 2> /dev/null; }
worker w01 "exec:$STALL"
W01=$!
say "worker w01 started; submitting tasks 1-3 (2 s leases)"
submit() { curl -s -X POST "$M/tasks" -H 'content-type: application/json' \
  -d "{\"payload\": {\"data\": \"task data $1\", \"sleep_ms\": 1000}, \"lease_secs\": 2}" | json '"   submitted task", d["id"], d["payload"]["data"]'; }
for i in 1 2 3; do submit $i; done
wait_for 30 "w01 to lease task 3" task_state 3 leased
say "w01 took task 3 and froze (SIGSTOP): no result, no heartbeat"
states

worker w02 process
say "worker w02 started; submitting tasks 4-5"
for i in 4 5; do submit $i; done
wait_for 60 "task 3 to succeed" task_state 3 succeeded
say "task 3's lease ran out; the master put it back and w02 finished it"
states

say "w01 wakes up (SIGCONT) and sends its late result for task 3"
kill -CONT $W01
wait_for 30 "w01's late result to be refused" grep -q "result refused" "$DATA/w01.log"
grep "result refused" "$DATA/w01.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/   w01 log: /'

wait_for 60 "all five tasks to succeed" succeeded default 5
say "all five tasks succeeded, each exactly once:"
states
curl -s "$M/metrics" | grep -E '^leasehold_(task_results_total|requests_refused_total|leases_expired_total)' \
  | grep -v ' 0$' | sed 's/^/   /'

say "sealing the queue: the master answers no_more_tasks and the workers exit"
curl -s -X POST "$M/queues/default/seal" > /dev/null
for pid in "${PIDS[@]:1}"; do
  wait_for 30 "worker $pid to exit" exited "$pid"
  wait "$pid" || fail "worker $pid exited with status $?"
  echo "   worker exited with status 0"
done

say "push: workers p01 and p02 register with the master; it calls their POST /do-task"
for n in 1 2; do
  $BIN/worker-svc --master "$M" --register "$M" --id "p0$n" --listen 127.0.0.1:0 \
    --no-pull --queues push-demo --handler uppercase 2> "$DATA/p0$n.log" &
  PIDS+=($!)
done
registered() { [ "$(curl -s "$M/workers" | json 'len(d["workers"])' 2> /dev/null)" = "$1" ]; }
wait_for 30 "both push workers to register" registered 2
curl -s "$M/workers" | json '"\n".join("   registered %s at %s, capacity %s" % (w["id"], w["url"], w["capacity"]) for w in d["workers"])'
for text in "hello world" "go rpc is simple" "learn by example" "concurrency is fun" "master worker pattern"; do
  curl -s -X POST "$M/tasks" -H 'content-type: application/json' \
    -d "{\"payload\": \"$text\", \"queue\": \"push-demo\"}" > /dev/null
  sleep 0.1
done
wait_for 60 "the five pushed tasks to succeed" succeeded push-demo 5
curl -s "$M/tasks?queue=push-demo&view=full" | json '"\n".join("   task %s: %r -> %r by %s" % (t["id"], t["payload"], t["result"], t["worker_id"]) for t in d["tasks"])'
