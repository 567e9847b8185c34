#!/usr/bin/env bash
# Runs every `cargo run` command of README.md's code blocks as written, so that the README
# cannot drift from the crates (issue 14). The commands are read from the README itself:
#   - a server (`-p master-svc`, `-p worker-svc`) is started in the background, waited for
#     (bounded) until it answers `GET /healthz`, and stopped once its block is checked; the
#     lines of one block run together (as the README's `&` says), and a block of workers alone
#     runs against the master of the block before it (the quickstart's);
#   - once a block is up, a task is submitted to the running master: with a worker up it must
#     be done (succeeded) within a bounded time, so the worker and push lines really work;
#   - the generator line (`... --bin openapi > FILE`) runs into a temporary file, which must
#     equal FILE;
#   - a line that needs what this machine lacks (PostgreSQL at host `db`) is checked by a dry
#     run: the same command with `--help` appended, so its flags must still parse.
# The README's ports are fixed (8080, 8081, 9001), so the script runs in a network namespace
# of its own when it can (root): nothing else on the machine can hold them, and nothing it
# starts is reachable from outside. A master's SQLite file goes to a temporary directory
# (`LEASEHOLD_DATABASE_URL`) instead of `leasehold.db` in the checkout. Every process started
# is killed on exit. Run after a release build (`.ci/run` runs it after the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${README_RUN_NETNS:-}" ] && command -v ip > /dev/null && unshare --net true 2> /dev/null; then
  exec env README_RUN_NETNS=1 unshare --net -- "$0" "$@"
fi
if [ -n "${README_RUN_NETNS:-}" ]; then
  ip link set lo up
  # Cargo cannot reach a registry from here; the build it may need is all local.
  export CARGO_NET_OFFLINE=true
fi

# How long a server may take to answer (a `cargo run` may have to build first), a task to be
# done, and a server to exit once signalled.
START_LIMIT=${README_RUN_START_LIMIT:-600}
TASK_LIMIT=30
STOP_LIMIT=30

WORK=$(mktemp -d)
GROUPS_UP=()   # process groups of the servers now running
MASTER_URL=""  # the running master, if any
WORKERS_UP=0
cleanup() {
  set +e
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "readme-run: $*" >&2
  for log in "$WORK"/*.log; do
    [ -e "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

# The README's code blocks' `cargo run` lines, one file per block that has any.
extract() {
  awk -v dir="$WORK" '
    /^```/ { if (open) { open = 0; n++ } else { open = 1 } next }
    open && /^cargo run/ { print > (dir "/block-" sprintf("%02d", n) ".sh") }
  ' README.md
}

# The port a server line listens on: its `--listen`, else the service's default.
port_of() {
  local line=$1
  if [[ $line =~ --listen[=\ ]+[^[:space:]]*:([0-9]+) ]]; then
    echo "${BASH_REMATCH[1]}"
  elif [[ $line == *"-p master-svc"* ]]; then
    echo 8080
  else
    echo 8081
  fi
}

wait_healthy() { # name pgid url
  local deadline=$((SECONDS + START_LIMIT))
  until curl -sf "$3/healthz" > /dev/null; do
    kill -0 -- "-$2" 2> /dev/null || fail "$1 exited before it answered $3/healthz"
    [ $SECONDS -lt $deadline ] || fail "$1 did not answer $3/healthz within ${START_LIMIT}s"
    sleep 0.2
  done
}

# Starts a server line in a process group of its own and waits until it answers.
start_server() { # n line
  local n=$1 line=${2% &} port
  port=$(port_of "$line")
  echo "   start: $line"
  # `exec`: the group's leader is cargo, which execs the service in its place.
  LEASEHOLD_DATABASE_URL="sqlite:$WORK/master-$n.db" RUST_LOG=warn \
    setsid bash -c "exec $line" > "$WORK/line-$n.log" 2>&1 &
  local pgid=$!
  GROUPS_UP+=("$pgid")
  wait_healthy "line $n" "$pgid" "http://127.0.0.1:$port"
  if [[ $line == *"-p master-svc"* ]]; then
    MASTER_URL="http://127.0.0.1:$port"
  else
    WORKERS_UP=$((WORKERS_UP + 1))
  fi
}

stop_all() {
  local pgid deadline
  for pgid in "${GROUPS_UP[@]}"; do kill -TERM -- "-$pgid" 2> /dev/null || true; done
  for pgid in "${GROUPS_UP[@]}"; do
    deadline=$((SECONDS + STOP_LIMIT))
    while kill -0 -- "-$pgid" 2> /dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL -- "-$pgid" 2> /dev/null || true
    wait "$pgid" 2> /dev/null || true
  done
  GROUPS_UP=()
  MASTER_URL=""
  WORKERS_UP=0
}

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The running master takes a task; with a worker up, the task is done within TASK_LIMIT.
check_block() {
  [ -n "$MASTER_URL" ] || fail "no master is running for this block"
  curl -sf "$MASTER_URL/readyz" > /dev/null || fail "$MASTER_URL is not ready"
  local id state deadline=$((SECONDS + TASK_LIMIT))
  id=$(curl -sf -X POST "$MASTER_URL/tasks" -H 'content-type: application/json' \
    -d '{"payload": "hello world"}' | json 'd["id"]') || fail "$MASTER_URL refused a task"
  if [ "$WORKERS_UP" = 0 ]; then
    echo "   ok: $MASTER_URL is ready and took task $id"
    return
  fi
  until state=$(curl -sf "$MASTER_URL/tasks/$id" | json 'd["state"]') && [ "$state" = succeeded ]; do
    [ $SECONDS -lt $deadline ] || fail "task $id is ${state:-unknown} after ${TASK_LIMIT}s, not succeeded"
    sleep 0.2
  done
  echo "   ok: task $id done by $WORKERS_UP worker(s): $(curl -sf "$MASTER_URL/tasks/$id" | json 'd["result"]')"
}

# `cargo run ... > FILE`: the output, written elsewhere, must equal FILE.
run_generator() { # n line
  local command=${2%>*} file=${2##*>}
  file=${file// /}
  echo "   run: $command> (compared with $file)"
  bash -c "$command" > "$WORK/generated" 2> "$WORK/line-$1.log" || fail "$2 failed"
  cmp -s "$WORK/generated" "$file" || fail "$command does not print $file as committed"
  echo "   ok: prints $file as committed"
}

# A line this machine cannot really run: its flags must parse.
dry_run() { # n line reason
  local command="${2% &} --help"
  echo "   dry run ($3): $command"
  bash -c "$command" > "$WORK/line-$1.log" 2>&1 || fail "$command failed"
  grep -q '^Usage:' "$WORK/line-$1.log" || fail "$command printed no usage"
}

run_block() { # file
  local line n=0 block started=0
  block=$(basename "$1" .sh)
  echo "== README block ${block#block-}"
  if grep -q '@db:' "$1"; then
    while IFS= read -r line; do
      n=$((n + 1)); dry_run "$block-$n" "$line" "needs PostgreSQL at host db"
    done < "$1"
    return
  fi
  # A block of workers alone joins the master already running; any other starts afresh.
  if grep -q -- '-p master-svc' "$1"; then stop_all; fi
  while IFS= read -r line; do
    n=$((n + 1))
    case $line in
      *"--bin openapi"*">"*) run_generator "$block-$n" "$line" ;;
      *"-p master-svc"* | *"-p worker-svc"*) start_server "$block-$n" "$line"; started=1 ;;
      *) fail "no way to check this README line: $line" ;;
    esac
  done < "$1"
  [ "$started" = 0 ] || check_block
}

extract
blocks=("$WORK"/block-*.sh)
[ -e "${blocks[0]}" ] || fail "README.md has no \`cargo run\` line in a code block"
for file in "${blocks[@]}"; do run_block "$file"; done
stop_all
echo
echo "README cargo run lines: all $(cat "${blocks[@]}" | wc -l) checked"
