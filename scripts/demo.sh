#!/usr/bin/env bash
# Starts a master on the embedded SQLite store and replays the original design's pull example
# through it with curl: five tasks, two workers, a worker that stalls past its lease and whose
# late result is refused, and a sealed queue that tells the workers there is no more work.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-8080}
M=http://127.0.0.1:$PORT
DATA=$(mktemp -d)
cargo build --release --quiet -p master-svc
./target/release/master-svc --listen "127.0.0.1:$PORT" --database-url "sqlite:$DATA/leasehold.db" \
  2> "$DATA/master.log" &
MASTER=$!
trap 'kill $MASTER 2>/dev/null; wait $MASTER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf "$M/readyz" > /dev/null && break; sleep 0.1; done

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
post() { curl -s -X POST "$M$1" -H 'content-type: application/json' -d "$2" "${@:3}"; }
say() { printf '\n== %s\n' "$*"; }

say "master on $M, database $DATA/leasehold.db"
for i in 1 2 3 4 5; do
  post /tasks "{\"payload\": \"task data $i\", \"lease_secs\": 2}" | json '"submitted task", d["id"], repr(d["payload"])'
done

lease() { post /tasks/lease "{\"worker_id\": \"$1\"}"; }
finish() { # worker task_id lease_id
  post "/tasks/$2/result" "{\"worker_id\": \"$1\", \"lease_id\": \"$3\", \"outcome\": \"succeeded\", \"result\": \"Processed data from task $2\"}" \
    -w '%{http_code}' -o "$DATA/out" > "$DATA/code"
  echo "$1 result for task $2 -> HTTP $(cat "$DATA/code"): $(json 'd.get("state") or d.get("detail")' < "$DATA/out")"
}

say "w01 and w02 take turns; w01 stalls on task 3"
STALLED=""
for _ in 1 2 3 4 5; do
  for w in w01 w02; do
    read -r TASK LEASE < <(lease $w | json '" ".join([str(d["tasks"][0]["task_id"]), d["tasks"][0]["lease_id"]]) if d["tasks"] else ""') || true
    [ -n "${TASK:-}" ] || continue
    echo "$w leased task $TASK (lease $LEASE)"
    if [ "$w" = w01 ] && [ "$TASK" = 3 ] && [ -z "$STALLED" ]; then
      STALLED="$TASK $LEASE"; echo "w01 !!! stalls on task 3 past its 2 s lease"; continue
    fi
    finish $w "$TASK" "$LEASE"
  done
done

say "task 3's lease runs out; the master puts it back and w02 takes it"
sleep 3
read -r TASK LEASE < <(lease w02 | json '" ".join([str(d["tasks"][0]["task_id"]), d["tasks"][0]["lease_id"]])')
echo "w02 leased task $TASK (lease $LEASE, attempt 2)"
finish w02 "$TASK" "$LEASE"

say "w01 wakes up and sends its late result for task 3: refused"
read -r TASK LEASE <<< "$STALLED"
finish w01 "$TASK" "$LEASE"

say "the queue is sealed: workers hear there is no more work"
post /queues/default/seal '' | json '"sealed:", d["sealed"], "counts:", d["counts"]'
lease w01 | json '"lease ->", d'
curl -s "$M/tasks/3" | json '"task 3:", d["state"], "by", d["worker_id"], "after", d["attempts"], "attempts:", repr(d["result"])'
