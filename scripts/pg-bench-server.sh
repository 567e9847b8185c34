#!/usr/bin/env bash
# A PostgreSQL 15 server for `bench --postgres`, with the server's DEFAULT durability (fsync and
# synchronous_commit on: a commit returns once its WAL is flushed), unlike the tests' throwaway
# server (testkit/src/postgres.rs), which runs with fsync off.
#
#   scripts/pg-bench-server.sh start DIR PORT [-c NAME=VALUE ...]   # initdb DIR/data if absent
#   scripts/pg-bench-server.sh stop DIR
#
# Listens on 127.0.0.1:PORT (and a socket in DIR), trust authentication, user `postgres`:
#   bench --postgres postgres://postgres@127.0.0.1:PORT drain ...
# Extra `-c` settings are passed to the server, e.g. for profiling only:
#   -c shared_preload_libraries=pg_stat_statements
# Run as root, the server runs as the `postgres` OS user (PostgreSQL refuses to run as root).
set -euo pipefail

BIN=${LEASEHOLD_PG_BIN:-/usr/lib/postgresql/15/bin}

usage() {
    echo "usage: $0 start DIR PORT [-c NAME=VALUE ...] | stop DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage
command=$1
dir=$(realpath -m "$2")
shift 2

run=()
if [ "$(id -u)" = 0 ]; then
    run=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi

case $command in
start)
    [ $# -ge 1 ] || usage
    port=$1
    shift
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        # --no-sync only makes initdb itself skip flushing its files; the server it creates keeps
        # fsync and synchronous_commit on.
        "${run[@]}" "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 \
            > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    "${run[@]}" "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=500 $*" start
    "$BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -At \
        -c "SELECT 'fsync=' || current_setting('fsync') || ' synchronous_commit=' \
            || current_setting('synchronous_commit')"
    ;;
stop)
    "${run[@]}" "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop
    ;;
*)
    usage
    ;;
esac
