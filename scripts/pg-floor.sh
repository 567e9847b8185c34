#!/usr/bin/env bash
# What PostgreSQL alone allows on this machine, with no Leasehold process in the way: the floor
# under issue 16's PostgreSQL targets, measured with pgbench against the benchmark server.
#
#   scripts/pg-bench-server.sh start DIR PORT
#   scripts/pg-floor.sh DIR PORT
#
# 1. Idle latency. At 100 transactions/s, so that the machine idles between them as it does
#    between one producer's submissions: p50 / p99 of one round trip (`SELECT 1`), a one-row
#    durable insert (the least a submission can be), a transaction shaped as Leasehold's
#    submission (BEGIN, share-lock the queue, insert, COMMIT), a lease in one statement (the next
#    ready task updated, autocommit: the least a lease can be) and one shaped as Leasehold's lease
#    (BEGIN, lock the next ready task, update it, COMMIT: the engine decides between the read and
#    the write). Submit → lease is at least a submission and then a lease, one after the other.
# 2. Drain. The least a durable task table can do: a primary key, an index of ready tasks and one
#    of leased tasks, nothing else (no trigger, no listing or idempotency index). Each transaction
#    completes the tasks its client leased in the one before and leases a batch more: two row
#    versions per task and one commit per batch, as a lease request carrying its results costs
#    Leasehold (whose group commit takes several requests' batches in one transaction). Tasks/s
#    and the server's CPU per task, at batches of 32 and 512, 1, 2 and 4 clients.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
dir=$(realpath "$1")
port=$2
BIN=${LEASEHOLD_PG_BIN:-/usr/lib/postgresql/15/bin}
SECS=${PG_FLOOR_SECS:-10}
db=leasehold_floor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
pgbench() { (cd "$work" && "$BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n "$@"); }

# CPU seconds of the server: its live processes, and the children it has already reaped.
postmaster=$(head -1 "$dir/data/postmaster.pid")
server_cpu() {
    {
        for pid in $(pgrep -u postgres); do
            awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true
        done
        awk '{ print $16 + $17 }' "/proc/$postmaster/stat"
    } | awk -v hz="$(getconf CLK_TCK)" '{ s += $1 } END { printf "%.2f", s / hz }'
}

fresh_table() {
    sql -d "$db" <<'EOF'
CREATE TABLE floor_queues (name text PRIMARY KEY, sealed boolean NOT NULL DEFAULT false);
INSERT INTO floor_queues VALUES ('q');
CREATE TABLE floor_tasks (id bigserial PRIMARY KEY, queue text NOT NULL, state text NOT NULL,
    payload text NOT NULL, run_at bigint NOT NULL, worker int, lease_id text,
    lease_expires_at bigint, result text);
CREATE INDEX floor_ready ON floor_tasks (queue, run_at, id) WHERE state = 'queued';
CREATE INDEX floor_leased ON floor_tasks (worker) WHERE state = 'leased';
INSERT INTO floor_tasks (queue, state, payload, run_at)
    SELECT 'q', 'queued', '{"n":1}', g FROM generate_series(1, 4000000) AS g;
VACUUM ANALYZE floor_tasks;
CHECKPOINT;
EOF
}

# The ready index's order is not the primary key's, so that the plan walks it whatever the
# statistics (Leasehold's lease read does the same: store/postgres/look.rs).
cat > "$work/drain.sql" <<'EOF'
BEGIN;
UPDATE floor_tasks SET state = 'succeeded', result = 'OK' WHERE state = 'leased' AND worker = :client_id;
UPDATE floor_tasks SET state = 'leased', worker = :client_id, lease_id = md5(random()::text), lease_expires_at = 1 WHERE id IN (SELECT id FROM floor_tasks WHERE queue = 'q' AND state = 'queued' ORDER BY run_at, id LIMIT :batch FOR UPDATE SKIP LOCKED);
COMMIT;
EOF
echo 'SELECT 1;' > "$work/round_trip.sql"
echo "INSERT INTO floor_tasks (queue, state, payload, run_at) VALUES ('q', 'done', '{}', 0);" \
    > "$work/insert.sql"
cat > "$work/submission.sql" <<'EOF'
BEGIN;
SELECT name, sealed FROM floor_queues WHERE name = 'q' FOR SHARE;
INSERT INTO floor_tasks (queue, state, payload, run_at) VALUES ('q', 'queued', '{"n":1}', 0);
COMMIT;
EOF
cat > "$work/lease_one_statement.sql" <<'EOF'
UPDATE floor_tasks SET state = 'leased', worker = 0, lease_id = md5(random()::text) WHERE id = (SELECT id FROM floor_tasks WHERE queue = 'q' AND state = 'queued' ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id;
EOF
cat > "$work/lease.sql" <<'EOF'
BEGIN;
SELECT id FROM floor_tasks WHERE queue = 'q' AND state = 'queued' ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED \gset
UPDATE floor_tasks SET state = 'leased', worker = 0, lease_id = md5(random()::text) WHERE id = :id;
COMMIT;
EOF

sql -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2> /dev/null
fresh_table

echo "| PostgreSQL alone at 100 transactions/s (\`scripts/pg-floor.sh\`) | p50 | p99 |"
echo "|---|---|---|"
for script in round_trip insert submission lease_one_statement lease; do
    rm -f "$work"/pgbench_log.*
    pgbench -f "$script.sql" -T "$SECS" -c 1 -R 100 -l "$db" > /dev/null
    sort -n -k3 <(cat "$work"/pgbench_log.*) | awk -v name="$script" '
        { ms[NR] = $3 / 1000 }
        END { printf "| %s | %.2f ms | %.2f ms |\n", name, ms[int(NR * 0.5)], ms[int(NR * 0.99)] }'
done

echo
echo "| PostgreSQL alone: drain | tasks/s | server CPU per task |"
echo "|---|---|---|"
for batch in 32 512; do
    for clients in 1 2 4; do
        before=$(server_cpu)
        tps=$(pgbench -f drain.sql -D batch="$batch" -T "$SECS" -c "$clients" \
            -j "$(( clients < 2 ? 1 : 2 ))" "$db" | awk '/^tps/ { print $3 }')
        after=$(server_cpu)
        awk -v b="$batch" -v c="$clients" -v tps="$tps" -v s="$SECS" \
            -v cpu="$(echo "$after - $before" | bc)" 'BEGIN {
                tasks = tps * b
                printf "| batch %d, %d client(s) | %.0f | %.0f µs |\n", b, c, tasks, cpu / (tasks * s) * 1e6
            }'
    done
done

sql -d postgres -c "DROP DATABASE $db"
