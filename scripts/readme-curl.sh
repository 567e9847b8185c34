#!/usr/bin/env bash
# Runs the README's curl examples, exactly as written, against a fresh master on port 8080.
# Every example must succeed (2xx): curl is wrapped to fail on an HTTP error.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=$(mktemp -d)
./target/release/master-svc --listen 127.0.0.1:8080 --database-url "sqlite:$DATA/leasehold.db" \
  2> "$DATA/master.log" &
MASTER=$!
trap 'set +e; kill $MASTER 2>/dev/null; wait $MASTER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do curl -sf localhost:8080/readyz > /dev/null && break; sleep 0.1; done

sed -n '/<!-- curl-examples:start -->/,/<!-- curl-examples:end -->/p' README.md \
  | sed '/^```/d; /^<!--/d' > "$DATA/examples.sh"
{
  echo 'set -euo pipefail'
  echo 'curl() { command curl --fail-with-body "$@"; }'
  cat "$DATA/examples.sh"
} > "$DATA/run.sh"
bash "$DATA/run.sh"
echo
echo "README curl examples: all $(grep -c '^curl\|^LEASE=\|curl -s' "$DATA/examples.sh") commands succeeded"
