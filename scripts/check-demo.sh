#!/usr/bin/env bash
# The demo as a newcomer runs it: right after the quickstart, whose master still holds port 8080.
# The demo must run beside it (it used to reach that master, send it the tasks and wait forever),
# finish within a bound, and leave the other master untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=$(mktemp -d)
./target/release/master-svc --listen 127.0.0.1:8080 --database-url "sqlite:$DATA/leasehold.db" \
  2> "$DATA/master.log" &
OTHER=$!
trap 'set +e; kill $OTHER 2>/dev/null; wait $OTHER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf --max-time 1 localhost:8080/readyz > /dev/null && break; sleep 0.1; done
curl -sf --max-time 1 localhost:8080/readyz > /dev/null || { echo "the master on 8080 did not start" >&2; exit 1; }

timeout 300 scripts/demo.sh || { echo "demo.sh failed or ran over 300 s beside a master on 8080" >&2; exit 1; }
queues=$(curl -s --max-time 5 localhost:8080/queues)
[ "$queues" = '{"queues":[]}' ] || { echo "the demo sent work to the master on 8080: $queues" >&2; exit 1; }
echo "demo ran beside a master on port 8080 and left it untouched"
