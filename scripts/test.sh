#!/usr/bin/env bash
# The test suite: every test of the workspace on the embedded store, then every test of the
# master again on PostgreSQL. Tests that need PostgreSQL start their own throwaway server from
# the distribution's binaries; this installs them (Debian's `postgresql` package) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_postgres() {
    [ -n "${LEASEHOLD_PG_BIN:-}" ] || compgen -G '/usr/lib/postgresql/*/bin/initdb' > /dev/null
}
if ! have_postgres; then
    if [ "$(id -u)" != 0 ]; then
        echo "PostgreSQL's server binaries are missing: sudo apt-get install postgresql" >&2
        exit 1
    fi
    echo "== installing PostgreSQL (for the tests' throwaway servers)"
    apt-get update -q && apt-get install -y -q --no-install-recommends postgresql > /dev/null
fi

# The end-to-end tests (leasehold-e2e) and the master's process tests run the binaries of this
# build, found beside the test executables; cargo builds a package's own binaries for its tests
# but not its dependencies' (artifact dependencies are unstable), so every binary is built first.
echo "== building the binaries the tests run"
cargo build --workspace --bins --release --locked
echo "== tests, embedded store"
cargo test --workspace --release --locked "$@"
# `cargo test -p master-svc` would resolve features for that package alone and rebuild it and
# three workspace crates (five minutes and more here), so the workspace build's own test
# executables of the master are run instead, from its directory as cargo runs them.
echo "== the master's tests again, on PostgreSQL"
mapfile -t tests < <(cargo test --workspace --release --locked --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["profile"]["test"] and "/master-svc#" in message["package_id"]:
        print(message["executable"])')
[ "${#tests[@]}" -gt 0 ] || { echo "no test executable of master-svc found" >&2; exit 1; }
# Arguments after `--` (a test name, `--nocapture`) go to each executable too.
while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
if [ $# -gt 0 ]; then shift; fi
for test in "${tests[@]}"; do
    (cd master-svc && LEASEHOLD_TEST_STORE=postgres "$test" "$@")
done
