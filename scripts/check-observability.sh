#!/usr/bin/env bash
# Checks deploy/: the Prometheus alert rules (promtool check rules, and their unit tests with
# promtool test rules), Prometheus's config for the compose setup, every metric the rules and
# the Grafana dashboard use against a live master's /metrics, and the docker-compose file
# against the Compose specification's JSON schema (check-jsonschema; `docker compose config`
# too when the Compose plugin is installed). Installs Debian's prometheus package (for promtool)
# and check-jsonschema into .venv-deploy/ if missing. `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool > /dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
}
[ -x .venv-deploy/bin/check-jsonschema ] || {
  python3 -m venv .venv-deploy && .venv-deploy/bin/pip install -q 'check-jsonschema==0.39.*'
}

echo "-- alert rules"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
promtool check config deploy/prometheus/prometheus.yml
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' deploy/grafana/dashboards/leasehold.json

echo "-- metric names used by the rules and the dashboard"
DATA=$(mktemp -d)
MASTER=
trap 'set +e; [ -z "$MASTER" ] || { kill $MASTER; wait $MASTER; } 2>/dev/null; rm -rf "$DATA"' EXIT
RUST_LOG=warn,master_svc::startup=info ./target/release/master-svc --listen 127.0.0.1:0 \
  --log-format json --database-url "sqlite:$DATA/leasehold.db" 2> "$DATA/master.log" &
MASTER=$!
for _ in $(seq 100); do [ -n "$(python3 scripts/master-address.py "$DATA/master.log")" ] && break; sleep 0.1; done
ADDR=$(python3 scripts/master-address.py "$DATA/master.log")
[ -n "$ADDR" ] || { cat "$DATA/master.log" >&2; echo "the master did not start" >&2; exit 1; }
# A task submitted and leased, so that the per-queue gauges and the lease histogram are written.
curl -sf --max-time 5 -X POST "http://$ADDR/tasks" -H 'content-type: application/json' -d '{"payload": 1}' > /dev/null
curl -sf --max-time 5 -X POST "http://$ADDR/tasks/lease" -H 'content-type: application/json' -d '{"worker_id": "w01"}' > /dev/null
curl -sf --max-time 5 "http://$ADDR/metrics" > "$DATA/metrics.txt"
python3 scripts/observability/names_exist.py "$DATA/metrics.txt" worker-svc/src/metrics.rs \
  deploy/prometheus/alerts.yml deploy/grafana/dashboards/leasehold.json

echo "-- docker compose file"
.venv-deploy/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose/docker-compose.yml
if docker compose version > /dev/null 2>&1; then
  docker compose -f deploy/compose/docker-compose.yml config --quiet && echo "docker compose config: ok"
else
  echo "(the Docker Compose plugin is not installed: checked against the Compose schema only)"
fi
