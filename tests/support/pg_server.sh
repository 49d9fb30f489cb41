#!/usr/bin/env bash
# pg_server.sh: a throwaway PostgreSQL server for the store tests (CTest fixture setup/cleanup).
#   pg_server.sh start STATE   initdb + start on 127.0.0.1, a free port, trust auth; writes
#                              STATE/conninfo (libpq key=value, no dbname) and STATE/psql
#   pg_server.sh stop STATE    stops the server and removes its data directory
# The cluster lives in a fresh /tmp/epw-pg.XXXXXX (short: it also holds the unix socket). As root,
# initdb and postgres run as the `postgres` system user (the server refuses to run as root).
# When PostgreSQL cannot be started: exit 1 under CI=true; otherwise say why and exit 0 without
# writing STATE/conninfo, and the tests skip.
set -uo pipefail

cmd=${1:-}
state=${2:-}
if [ -z "$cmd" ] || [ -z "$state" ]; then
    echo "usage: $0 start|stop STATE_DIR" >&2
    exit 2
fi

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    as_pg=(runuser -u postgres --)
fi

unavailable() {
    echo "pg_server: PostgreSQL unavailable: $*" >&2
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "pg_server: the PostgreSQL store tests will be skipped (cmake/install-deps.sh --test" \
        "installs postgresql)" >&2
    exit 0
}

stop() {
    local root bin
    [ -f "$state/root" ] || return 0
    root=$(cat "$state/root")
    bin=$(cat "$state/bin" 2>/dev/null || true)
    if [ -n "$bin" ] && [ -f "$root/data/postmaster.pid" ]; then
        timeout 60 "${as_pg[@]}" "$bin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop \
            >/dev/null 2>&1 ||
            timeout 30 "${as_pg[@]}" "$bin/pg_ctl" -D "$root/data" -m immediate -w -t 20 stop \
                >/dev/null 2>&1 || true
    fi
    case "$root" in
    /tmp/epw-pg.*) rm -rf "$root" ;;
    esac
    rm -f "$state/root" "$state/bin" "$state/conninfo" "$state/psql"
}

case "$cmd" in
stop)
    stop
    exit 0
    ;;
start) ;;
*)
    echo "pg_server: unknown command $cmd" >&2
    exit 2
    ;;
esac

mkdir -p "$state" || exit 1
stop # a server left over from an interrupted run

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
    unavailable "no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    unavailable "running as root and there is no postgres system user"
fi

root=$(mktemp -d /tmp/epw-pg.XXXXXX) || unavailable "mktemp failed"
echo "$root" >"$state/root"
echo "$bin" >"$state/bin"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$root"
fi
chmod 700 "$root"

# --no-sync and fsync=off: a throwaway cluster. The client's durability setting
# (synchronous_commit) is unchanged, and that is what the backend controls.
if ! timeout 120 "${as_pg[@]}" "$bin/initdb" -D "$root/data" -A trust -U postgres -E UTF8 \
        --locale=C --no-sync >"$root/initdb.log" 2>&1; then
    cat "$root/initdb.log" >&2
    stop
    unavailable "initdb failed"
fi

started=0
for attempt in 1 2 3 4 5 6; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 30000))
    opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root"
    opts="$opts -c fsync=off -c max_connections=30 -c shared_buffers=16MB"
    if timeout 60 "${as_pg[@]}" "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -o "$opts" \
            -w -t 30 start >/dev/null 2>&1; then
        started=1
        break
    fi
    echo "pg_server: start on port $port failed (attempt $attempt):" >&2
    tail -n 5 "$root/server.log" >&2 2>/dev/null
done
if [ "$started" -ne 1 ]; then
    stop
    unavailable "pg_ctl start failed"
fi

echo "host=127.0.0.1 port=$port user=postgres connect_timeout=10" >"$state/conninfo"
echo "$bin/psql" >"$state/psql"
echo "pg_server: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port," \
    "data in $root"
