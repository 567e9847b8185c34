#!/usr/bin/env bash
# openapi.yaml is accepted by the tools people build on it, at the versions pinned in
# scripts/openapi-tools/ (release build needed: `cargo build --release`):
#   1. openapi-generator validates it (`openapi-generator-cli validate`, the generator's own
#      engine from PyPI, on the machine's Java), so a client in Java, Go or TypeScript generates
#      without `--skip-validate-spec`;
#   2. Redocly CLI and Spectral lint it with no error (their warnings are shown, not fatal);
#   3. openapi-python-client generates a Python client from it, which is installed and runs a
#      worker's round trip (scripts/openapi-tools/round_trip.py: submit, lease, heartbeat,
#      result, read back) against a live master, once without tokens and once with
#      --api-token and --worker-token through the generated AuthenticatedClient.
# Installs what it needs on first use: a venv in scripts/openapi-tools/.venv and the npm tools
# in scripts/openapi-tools/node_modules. Each master listens on a port the system picks, on a
# throw-away SQLite file; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/scripts/openapi-tools
VENV=$TOOLS/.venv

[ -x target/release/master-svc ] || { echo "target/release/master-svc missing: cargo build --release" >&2; exit 1; }
command -v java > /dev/null || { apt-get update -q && apt-get install -y -q default-jre-headless; }

# The venv is rebuilt whenever requirements.txt changes (a copy of it marks what is installed).
if ! cmp -s "$TOOLS/requirements.txt" "$VENV/requirements.txt" 2> /dev/null; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$TOOLS/requirements.txt"
  cp "$TOOLS/requirements.txt" "$VENV/requirements.txt"
fi
[ -x "$TOOLS/node_modules/.bin/redocly" ] \
  || (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
# openapi-python-client runs ruff, from the venv, on what it generates.
export PATH=$VENV/bin:$PATH
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

echo "== openapi-generator: validate"
openapi-generator-cli validate -i openapi.yaml

echo "== Redocly CLI: lint, no error"
"$TOOLS/node_modules/.bin/redocly" lint openapi.yaml --config "$TOOLS/redocly.yaml" --format stylish

echo "== Spectral: lint, no error"
"$TOOLS/node_modules/.bin/spectral" lint openapi.yaml --ruleset "$TOOLS/spectral.yaml" \
  --fail-severity error

WORK=$(mktemp -d)
MASTER=
stop_master() {
  [ -z "$MASTER" ] && return
  kill "$MASTER" 2> /dev/null || true
  wait "$MASTER" 2> /dev/null || true
  MASTER=
}
trap 'stop_master; rm -rf "$WORK"' EXIT

echo "== openapi-python-client: generate and install the client"
(cd "$WORK" && openapi-python-client generate --path "$ROOT/openapi.yaml" --output-path client) \
  > "$WORK/generate.log" 2>&1 || { cat "$WORK/generate.log"; exit 1; }
grep -A3 '^WARNING' "$WORK/generate.log" || true
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation "$WORK/client"

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds, or fails.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "timed out waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}
master_listening() {
  kill -0 "$MASTER" 2> /dev/null || { cat "$WORK/master.log" >&2; echo "the master exited" >&2; exit 1; }
  [ -n "$(python3 scripts/master-address.py "$WORK/master.log")" ]
}

# start_master NAME [FLAGS...]: a master on a fresh database and a free port; sets URL.
start_master() {
  local name=$1
  shift
  RUST_LOG=warn,master_svc::startup=info ./target/release/master-svc --listen 127.0.0.1:0 \
    --log-format json --database-url "sqlite:$WORK/$name.db" --sqlite-synchronous normal \
    "$@" 2> "$WORK/master.log" &
  MASTER=$!
  wait_for 30 "the master to listen" master_listening
  URL=http://$(python3 scripts/master-address.py "$WORK/master.log")
  wait_for 10 "the master to be ready" curl -sf --max-time 2 -o /dev/null "$URL/readyz"
}

round_trip() {
  "$VENV/bin/python" "$TOOLS/round_trip.py" "$URL" "$@" \
    || { tail -n 20 "$WORK/master.log" >&2; exit 1; }
}

echo "== the generated Python client: a round trip, no tokens"
start_master open
round_trip
stop_master

echo "== the generated Python client: a round trip with --api-token and --worker-token"
start_master tokens --api-token check-operator-token --worker-token check-worker-token
round_trip --api-token check-operator-token --worker-token check-worker-token
stop_master
echo "openapi tool checks passed"
