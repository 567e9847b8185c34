#!/usr/bin/env bash
# Contract checks of openapi.yaml against the real services (the release build; run
# `cargo build --release` first):
#   1. openapi.yaml and the Postman collection are current (regenerated, compared);
#   2. newman runs the Postman collection against a fresh master and worker: every request's
#      status, content type, JSON schema and content tests must pass;
#   3. schemathesis runs every phase (examples, coverage, fuzzing, stateful via the links) with
#      every check against a fresh master, and against the worker for its operations: no 5xx,
#      every status, header and body as documented, bad input refused, auth enforced.
# Installs what it needs on first use: the pinned npm tools under postman/node_modules and
# schemathesis (pinned below) in .venv-contract/. Everything listens on 127.0.0.1 only.
# schemathesis runs with a fixed seed so that CI is repeatable; CONTRACT_SEED=N explores others.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
MASTER_PORT=18180
WORKER_PORT=18181
export LEASEHOLD_API_TOKEN=contract-operator-token
export LEASEHOLD_WORKER_TOKEN=contract-worker-token
export CONTRACT_DIR=$ROOT/scripts/contract
export CONTRACT_WORKER_URL=http://127.0.0.1:$WORKER_PORT
export CONTRACT_CACHE=$ROOT/.venv-contract/schemathesis-cache

for bin in master-svc worker-svc openapi; do
  [ -x "target/release/$bin" ] || { echo "target/release/$bin missing: cargo build --release" >&2; exit 1; }
done

echo "== openapi.yaml is what the code generates"
cmp -s openapi.yaml <(./target/release/openapi) \
  || { echo "openapi.yaml is stale: cargo run -p leasehold-tools --bin openapi > openapi.yaml" >&2; exit 1; }
echo "== the Postman collection is what openapi.yaml generates"
scripts/postman.sh --check

if [ ! -x .venv-contract/bin/st ] \
  || [ "$(.venv-contract/bin/st --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
  python3 -m venv .venv-contract
  .venv-contract/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

DATA=$(mktemp -d)
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
  PIDS=()
}
trap 'set +e; stop_all; rm -rf "$DATA"' EXIT

wait_ready() {
  for _ in $(seq 100); do curl -sf "$1/readyz" > /dev/null && return 0; sleep 0.1; done
  echo "$1 did not become ready" >&2
  exit 1
}

# A master on a fresh database. It pushes tasks to the workers registered with it, and only
# ever to the contract worker: the Postman collection registers that one, and the schemathesis
# hooks (scripts/contract/hooks.py) point every registration there.
start_master() {
  ./target/release/master-svc --listen "127.0.0.1:$MASTER_PORT" \
    --database-url "sqlite:$DATA/$1.db" --sqlite-synchronous normal \
    --api-token "$LEASEHOLD_API_TOKEN" --worker-token "$LEASEHOLD_WORKER_TOKEN" \
    2> "$DATA/$1-master.log" &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$MASTER_PORT"
}

# A push-only worker (`/do-task`), uppercasing its payloads.
start_worker() {
  ./target/release/worker-svc --master "http://127.0.0.1:$MASTER_PORT" \
    --listen "127.0.0.1:$WORKER_PORT" --id w02 --no-pull --handler uppercase \
    --worker-token "$LEASEHOLD_WORKER_TOKEN" \
    2> "$DATA/$1-worker.log" &
  PIDS+=($!)
  wait_ready "http://127.0.0.1:$WORKER_PORT"
}

show_logs() {
  echo "-- last lines of the service logs:" >&2
  tail -n 20 "$DATA"/*.log >&2 || true
}

echo "== newman: the Postman collection"
start_master newman
start_worker newman
(cd postman && node_modules/.bin/newman run leasehold.postman_collection.json \
  --env-var "baseUrl=http://127.0.0.1:$MASTER_PORT" \
  --env-var "workerUrl=http://127.0.0.1:$WORKER_PORT" \
  --env-var "apiToken=$LEASEHOLD_API_TOKEN" \
  --env-var "workerToken=$LEASEHOLD_WORKER_TOKEN" \
  --reporters cli --reporter-cli-no-assertions --reporter-cli-no-console) || { show_logs; exit 1; }
stop_all

echo "== schemathesis: the master"
start_master schemathesis
start_worker schemathesis
# Run from the scratch directory: hypothesis keeps a `.hypothesis/` wherever it runs.
st() {
  (cd "$DATA" && timeout 600 "$ROOT/.venv-contract/bin/st" --no-color \
    --config-file "$ROOT/scripts/contract/schemathesis.toml" \
    run "$ROOT/openapi.yaml" --seed "${CONTRACT_SEED:-1}" "$@")
}
st --url "http://127.0.0.1:$MASTER_PORT" --exclude-tag worker || { show_logs; exit 1; }

echo "== schemathesis: the worker"
# No stateful phase here: the worker's operations have no links between them (its one operation
# with a body, /do-task, takes what the master leased), so schemathesis has nothing to chain.
st --url "http://127.0.0.1:$WORKER_PORT" --include-tag worker --include-tag probes \
  --phases examples,coverage,fuzzing || { show_logs; exit 1; }
echo "contract checks passed"
