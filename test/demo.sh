#!/usr/bin/env bash
# A quick look at supervisor-worker with jobs flowing, against a throwaway PostgreSQL.
#
# Usage: test/demo.sh [BUILD_DIR]      (BUILD_DIR defaults to ./build; build it first)
#
# Starts a private PostgreSQL cluster in a temporary directory (as the postgres user when
# run as root; it listens only on a unix socket inside that directory), migrates it,
# enqueues a few `log` and `noop` jobs and keeps adding one every few seconds, and runs the
# daemon with the bundled plugins in the foreground. Ctrl-C stops the daemon (gracefully:
# watch it drain), prints how many jobs ended in each state, and removes the cluster.
set -euo pipefail

repo=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
build=$(readlink -f "${1:-$repo/build}")
binary="$build/core/supervisor-worker"
plugins="$build/plugins"
if [ ! -x "$binary" ]; then
    echo "demo: no binary at $binary; build first: meson setup build && meson compile -C build" >&2
    exit 1
fi

bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
    # pg_config may come from a libpq-dev whose server version is not installed.
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
fi
if [ ! -x "$bindir/initdb" ]; then
    echo "demo: PostgreSQL server binaries not found; install the postgresql package" >&2
    exit 1
fi

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    as_pg=(runuser -u postgres --) # the server refuses to run as root
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/sv-demo.XXXXXX")
feeder=""
cleanup() {
    set +e
    [ -n "$feeder" ] && kill "$feeder" 2>/dev/null && wait "$feeder" 2>/dev/null
    if [ -f "$dir/data/postmaster.pid" ]; then
        (cd "$dir" && "${as_pg[@]}" "$bindir/pg_ctl" stop -D "$dir/data" -m fast -w >/dev/null)
    fi
    rm -rf "$dir"
    echo "demo: removed the cluster in $dir"
}
trap cleanup EXIT
# Ctrl-C reaches the daemon too (same foreground process group); the script itself only
# waits for it to drain and exit, then cleans up. (A handler, not '': an ignored signal
# would stay ignored in the daemon.)
trap ':' INT TERM

[ ${#as_pg[@]} -gt 0 ] && chown postgres: "$dir"
cd "$dir" # the postgres user may not be able to enter the caller's directory

echo "demo: creating a PostgreSQL cluster in $dir"
"${as_pg[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale \
    --encoding=UTF8 --no-sync >"$dir/initdb.log" || { cat "$dir/initdb.log"; exit 1; }
"${as_pg[@]}" "$bindir/pg_ctl" start -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off" >/dev/null ||
    { cat "$dir/postgres.log"; exit 1; }

dsn="host=$dir port=5432 user=postgres dbname=postgres"
sv() { "$binary" "$1" --dsn "$dsn" "${@:2}"; }

echo "demo: migrating"
sv migrate

echo "demo: enqueueing example jobs"
for i in 1 2 3; do
    sv enqueue log "{\"message\": \"hello $i\"}" >/dev/null
done
sv enqueue noop >/dev/null
sv enqueue noop --priority -10 >/dev/null
sv enqueue log '{"message": "urgent: enqueued last, runs first"}' --priority -100 >/dev/null
sv enqueue log '{"message": "scheduled 10s after start"}' --delay 10s >/dev/null

# Keep jobs coming while the daemon runs. (An application would call sv_enqueue() in its
# own transaction; the CLI takes the same path.)
(
    trap - INT TERM
    n=0
    while sleep 3; do
        n=$((n + 1))
        sv enqueue log "{\"message\": \"tick $n\"}" >/dev/null 2>&1 || true
    done
) &
feeder=$!

echo "demo: starting the daemon with the plugins in $plugins; Ctrl-C to stop"
echo
status=0
sv run --plugins-dir "$plugins" --max-workers 2 --poll-interval 1s || status=$?
echo
echo "demo: the daemon exited with status $status"
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
feeder=""
"$bindir/psql" -X -q -P pager=off "$dsn" -c 'SELECT type, state, count(*) FROM sv_jobs GROUP BY 1, 2 ORDER BY 1, 2' || true
