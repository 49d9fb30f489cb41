#!/bin/sh
# starve_test.sh AGENT COLLECTOR CERTS_SCRIPT PORT_HOG [bind]: port starvation end to end, in a network
# namespace of its own whose ephemeral range is 4 ports. The agent streams; the collector dies;
# every ephemeral port gets taken, so the agent's reconnects fail with EADDRNOTAVAIL; the
# collector comes back but stays unreachable until the ports are freed. Then every snapshot
# taken while starved must arrive with port_starved = 1, none before or after it, and none lost.
# With "bind" the agent connects from a configured local address (--bind 127.0.0.1): the lack of
# ports then surfaces from bind(), not connect().
# Exit 0 pass, 1 fail, 77 skipped (not root, no network namespaces, no sqlite3/openssl).
set -u
agent=$1
collector=$2
certs_script=$3
port_hog=$4
bind_args=
[ "${5:-}" = bind ] && bind_args="--bind 127.0.0.1"

command -v sqlite3 >/dev/null 2>&1 || { echo "sqlite3 not installed: skipped"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "openssl not installed: skipped"; exit 77; }

if [ "${EPW_STARVE_NETNS:-}" != 1 ]; then
    # Re-run inside a new network namespace: its sysctls and ports are ours alone.
    unshare -n true 2>/dev/null || { echo "cannot create a network namespace: skipped"; exit 77; }
    EPW_STARVE_NETNS=1 exec unshare -n sh "$0" "$@"
fi

ip link set lo up || { echo "cannot bring lo up: skipped"; exit 77; }
lo_port=40000
hi_port=40003
echo "$lo_port $hi_port" >/proc/sys/net/ipv4/ip_local_port_range ||
    { echo "cannot set ip_local_port_range: skipped"; exit 77; }
port=45000 # outside the range; nothing else lives in this namespace

dir=$(mktemp -d /tmp/epw-starve-XXXXXX) || exit 1
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
fail_label=starve
fail_lines=40
poll_watch_agent=1
cpid=
apid=
hpid=
cleanup() { epw_cleanup "$hpid" "$apid" "$cpid"; }
trap cleanup EXIT

epw_certs "$dir/pki" host-a || fail "cannot create certificates"

db=$dir/history.db
spool=$dir/spool

listening() { ss -Htln "sport = :$port" 2>/dev/null | grep -q LISTEN; }

start_collector() {
    "$collector" --listen "127.0.0.1:$port" --db "$db" --ca "$dir/pki/ca.crt" \
        --cert "$dir/pki/collector.crt" --key "$dir/pki/collector.key" \
        --log_level debug >>"$dir/collector.log" 2>&1 &
    cpid=$!
    poll 10 listening || fail "collector does not start"
}

q() { sqlite3 -cmd ".timeout 5000" "$db" "$1"; }
rows() {
    [ -f "$db" ] || { echo 0; return; }
    q "SELECT count(*) FROM snapshots WHERE host = 'host-a'" 2>/dev/null || echo 0
}
rows_at_least() { [ "$(rows)" -ge "$1" ]; }
max_stored() { q "SELECT coalesce(max(seq), 0) FROM snapshots WHERE host = 'host-a'"; }
stored_beyond() { [ "$(max_stored)" -gt "$1" ]; }
# The newest seq in the spool (entries are named by their zero-padded seq).
spool_top() {
    top=$(ls "$spool" 2>/dev/null | sed -n 's/^0*\([0-9][0-9]*\)\.ent$/\1/p' | sort -n | tail -n 1)
    echo "${top:-0}"
}
spool_beyond() { [ "$(spool_top)" -gt "$1" ]; }
starved_logged() { grep -q 'no local port available' "$dir/agent.log"; }
hog_ready() { [ -s "$dir/hog.ready" ]; }

# 1. Streaming normally.
start_collector
"$agent" --collector "127.0.0.1:$port" --server-name collector --hostname host-a \
    --ca "$dir/pki/ca.crt" --cert "$dir/pki/host-a.crt" --key "$dir/pki/host-a.key" \
    --spool-dir "$spool" --interval 200ms --no-pids --reconnect-min 100ms \
    --reconnect-max 300ms --log-level debug $bind_args >>"$dir/agent.log" 2>&1 &
apid=$!
poll 10 rows_at_least 3 || fail "nothing streamed"

# 2. The collector dies; every ephemeral port is taken.
kill -KILL "$cpid"
wait "$cpid" 2>/dev/null
cpid=
before=$(max_stored) # taken while connected: never port-starved
"$port_hog" "$dir/hog.ready" 2>>"$dir/hog.log" &
hpid=$!
poll 20 hog_ready || fail "could not take every port of $lo_port-$hi_port"
poll 10 starved_logged || fail "the agent did not notice the lack of ports"
# The newest seq so far (the spool is empty when all was acknowledged). One sample may have
# been taken just before the agent noticed: start one further.
newest=$(spool_top)
[ "$newest" -ge "$before" ] || newest=$before
starved_from=$((newest + 2))
poll 10 spool_beyond $((starved_from + 2)) || fail "the agent stopped sampling"

# 3. The collector is back, but without a free port the agent still cannot reach it.
start_collector
mark=$(spool_top)
poll 10 spool_beyond $((mark + 2)) || fail "the agent stopped sampling"
[ "$(max_stored)" = "$before" ] || fail "stored up to seq $(max_stored) while no port was free"
starved_to=$(spool_top) # everything up to here was taken while no port was free

# 4. Ports free again: everything arrives.
kill -TERM "$hpid"
wait "$hpid" || fail "port_hog exited with $?"
hpid=
# Samples taken after the ports were freed but before the connection was up are still marked:
# wait for one taken once connected.
connected_sample() {
    [ "$(q "SELECT count(*) FROM snapshots WHERE host = 'host-a' AND seq > $starved_to
            AND NOT port_starved")" -ge 1 ]
}
poll 20 connected_sample || fail "the agent did not deliver after the ports were freed"
kill -TERM "$apid"
wait "$apid" || fail "agent exited with $? after SIGTERM"
apid=

set -- $(sed -n 's/.*uplink stopped: .* last seq \([0-9]*\), acknowledged up to \([0-9]*\).*/\1 \2/p' \
    "$dir/agent.log" | tail -n 1)
[ $# -eq 2 ] || fail "no uplink summary in the agent log"
[ "$1" = "$2" ] || fail "agent stopped at seq $1 with only $2 acknowledged"
last=$1
got=$(q "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM snapshots
         WHERE host = 'host-a'")
[ "$got" = "$last|$last|1|$last" ] ||
    fail "expected seqs 1..$last once each, got count|distinct|min|max = $got"

# port_starved: 0 up to the kill, 1 for every sample while no port was free, one contiguous
# block, and 0 again once connected.
got=$(q "SELECT count(*) FROM snapshots WHERE host = 'host-a' AND seq <= $before AND port_starved")
[ "$got" = 0 ] || fail "$got snapshots taken while connected are marked port-starved"
got=$(q "SELECT count(*) FROM snapshots WHERE host = 'host-a'
         AND seq BETWEEN $starved_from AND $starved_to AND NOT port_starved")
[ "$got" = 0 ] || fail "$got snapshots in seqs $starved_from..$starved_to are not port-starved"
got=$(q "SELECT count(*), max(seq) - min(seq) + 1 FROM snapshots
         WHERE host = 'host-a' AND port_starved")
set -- $(echo "$got" | tr '|' ' ')
[ "$1" = "$2" ] || fail "port-starved snapshots are not one contiguous block: count|span = $got"
got=$(q "SELECT port_starved FROM snapshots WHERE host = 'host-a' AND seq = $last")
[ "$got" = 0 ] || fail "still port-starved after reconnecting"
grep -q 'connected again after running out of local ports' "$dir/agent.log" ||
    fail "the agent did not report the end of the starvation"

kill -TERM "$cpid"
wait "$cpid" 2>/dev/null
cpid=
echo "ok: seqs 1..$last stored once; $starved_from..$starved_to port-starved (block of $1)"
echo "PASS (starve)"
exit 0
