#!/usr/bin/env bash
# /docs works without internet: headless Chromium loads the page from a master it started, with
# every address but 127.0.0.1 unreachable (a dead proxy for everything else, and no name
# resolution), and the rendered page must show the API's operations. A page whose viewer comes
# from a CDN renders nothing there, so this fails for it. Installs Debian's chromium if missing;
# `cargo build --release` first.
#   scripts/check-docs-offline.sh [URL]   check URL instead of a master of its own
set -euo pipefail
cd "$(dirname "$0")/.."

command -v chromium > /dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
}

DATA=$(mktemp -d)
MASTER=
trap 'set +e; [ -z "$MASTER" ] || { kill $MASTER; wait $MASTER; } 2>/dev/null; rm -rf "$DATA"' EXIT
if [ $# -gt 0 ]; then
  URL=$1
else
  RUST_LOG=warn,master_svc::startup=info ./target/release/master-svc --listen 127.0.0.1:0 \
    --log-format json --database-url "sqlite:$DATA/leasehold.db" 2> "$DATA/master.log" &
  MASTER=$!
  for _ in $(seq 100); do [ -n "$(python3 scripts/master-address.py "$DATA/master.log")" ] && break; sleep 0.1; done
  ADDR=$(python3 scripts/master-address.py "$DATA/master.log")
  [ -n "$ADDR" ] || { cat "$DATA/master.log" >&2; echo "the master did not start" >&2; exit 1; }
  URL=http://$ADDR/docs
fi

# --virtual-time-budget lets the page's scripts run (and their fetches fail) before the DOM is
# dumped.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --user-data-dir="$DATA/profile" \
  --proxy-server=http://127.0.0.1:9 --proxy-bypass-list=127.0.0.1 \
  --host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 127.0.0.1' \
  --virtual-time-budget=20000 --dump-dom "$URL" > "$DATA/dom.html" 2> "$DATA/chromium.log" \
  || { tail -20 "$DATA/chromium.log" >&2; echo "chromium failed" >&2; exit 1; }
python3 scripts/docs-offline/check_rendered.py "$DATA/dom.html"
