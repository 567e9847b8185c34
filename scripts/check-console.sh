#!/usr/bin/env bash
# The console end to end (e2e/console/console.test.mjs): headless Chromium, driven by
# Playwright, against a real master and worker of the release build, every host but 127.0.0.1
# blocked. Installs Debian's chromium and the test's npm package (playwright-core, pinned in
# e2e/console/package-lock.json) if missing; `cargo build --release` first. Screenshots of each
# page: target/console/.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v chromium > /dev/null || {
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
}
(cd e2e/console && npm ci --no-audit --no-fund --silent)
node e2e/console/console.test.mjs
