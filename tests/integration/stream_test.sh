#!/bin/sh
# stream_test.sh SCENARIO AGENT COLLECTOR CERTS_SCRIPT: a real epwatch-collector and epwatch-agent
# on 127.0.0.1 with certificates made now; checks what reached the SQLite database.
#   basic     the agent streams N snapshots: exactly N rows, seqs 1..N
#   kill9     kill -9 of the collector while the agent streams, restart: every seq stored once
#   restart   the agent stops with unacknowledged snapshots in its spool (collector down), and
#             is also killed -9 mid-stream; after restarts nothing is lost or duplicated
#   outage    the collector is down for a while: the agent spools and delivers all of it
#   overflow  a tiny spool_max while the collector is down: the oldest are dropped and the
#             collector records the gap with its size
# Exit 0 pass, 1 fail, 77 skipped (no sqlite3 or openssl).
set -u
scenario=$1
agent=$2
collector=$3
certs_script=$4

command -v sqlite3 >/dev/null 2>&1 || { echo "sqlite3 not installed: skipped"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "openssl not installed: skipped"; exit 77; }

dir=$(mktemp -d /tmp/epw-stream-XXXXXX) || exit 1
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
fail_label=$scenario
poll_watch_agent=1
cpid=
apid=
cleanup() { epw_cleanup "$apid" "$cpid"; }
trap cleanup EXIT

epw_certs "$dir/pki" host-a || fail "cannot create certificates"

db=$dir/history.db
spool=$dir/spool
port=

listening() {
    ss -Htln "sport = :$port" 2>/dev/null | grep -q LISTEN
}

start_collector() {
    tries=0
    while :; do
        if [ -z "$port" ]; then
            port=$((30000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
            ss -Htan "sport = :$port" 2>/dev/null | grep -q . && { port=; continue; }
        fi
        "$collector" --listen "127.0.0.1:$port" --db "$db" --ca "$dir/pki/ca.crt" \
            --cert "$dir/pki/collector.crt" --key "$dir/pki/collector.key" \
            --log_level debug >>"$dir/collector.log" 2>&1 &
        cpid=$!
        if poll 10 listening; then
            return 0
        fi
        kill -KILL "$cpid" 2>/dev/null
        wait "$cpid" 2>/dev/null
        cpid=
        tries=$((tries + 1))
        [ "$tries" -ge 5 ] && fail "collector does not start"
        port= # probably taken: pick another (only before the first successful start)
    done
}

stop_collector() { # SIGNAL
    kill -"$1" "$cpid"
    wait "$cpid" 2>/dev/null
    cpid=
}

# A port for an agent run before the collector ever started: nothing listens there yet.
pick_port() {
    port=$((30000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
}

agent_args() {
    echo --collector "127.0.0.1:$port" --server-name collector --hostname host-a \
        --ca "$dir/pki/ca.crt" --cert "$dir/pki/host-a.crt" --key "$dir/pki/host-a.key" \
        --spool-dir "$spool" --interval 100ms --no-pids --reconnect-min 100ms \
        --reconnect-max 500ms --log-level debug
}

# Runs the agent in the foreground; expects exit 0.
run_agent() {
    # shellcheck disable=SC2046
    "$agent" $(agent_args) "$@" >>"$dir/agent.log" 2>&1 || fail "agent exited with $?"
}

start_agent() {
    # shellcheck disable=SC2046
    "$agent" $(agent_args) "$@" >>"$dir/agent.log" 2>&1 &
    apid=$!
}

stop_agent() { # SIGNAL
    kill -"$1" "$apid"
    wait "$apid"
    rc=$?
    apid=
    if [ "$1" != KILL ] && [ "$rc" -ne 0 ]; then
        fail "agent exited with $rc after SIG$1"
    fi
}

q() {
    sqlite3 -cmd ".timeout 5000" "$db" "$1"
}

rows() {
    [ -f "$db" ] || { echo 0; return; }
    q "SELECT count(*) FROM snapshots WHERE host = 'host-a'" 2>/dev/null || echo 0
}
rows_at_least() { [ "$(rows)" -ge "$1" ]; }
spooled() { ls "$spool" 2>/dev/null | grep -c '\.ent$'; }
spooled_at_least() { [ "$(spooled)" -ge "$1" ]; }

# The agent's own account of its last run: "last seq N, acknowledged up to M".
last_seq() {
    sed -n 's/.*uplink stopped: .* last seq \([0-9]*\), acknowledged up to \([0-9]*\).*/\1 \2/p' \
        "$dir/agent.log" | tail -n 1
}

# Every seq 1..N stored exactly once for host-a, nothing else.
check_consecutive() { # N
    got=$(q "SELECT count(*), count(DISTINCT seq), coalesce(min(seq),0), coalesce(max(seq),0)
             FROM snapshots WHERE host = 'host-a'")
    [ "$got" = "$1|$1|1|$1" ] || fail "expected seqs 1..$1 once each, got count|distinct|min|max = $got"
    echo "ok: seqs 1..$1 stored exactly once"
}

# After the agent stopped on its own terms: everything it spooled was acknowledged.
check_all_acked() {
    set -- $(last_seq)
    [ $# -eq 2 ] || fail "no uplink summary in the agent log"
    [ "$1" = "$2" ] || fail "agent stopped at seq $1 with only $2 acknowledged"
    [ "$(spooled)" -eq 0 ] || fail "spool still holds $(spooled) entries"
    check_consecutive "$1"
}

case $scenario in
basic)
    start_collector
    run_agent --count 20
    check_all_acked
    [ "$(last_seq)" = "20 20" ] || fail "expected 20 snapshots, agent says $(last_seq)"
    got=$(q "SELECT last_seq, agent_version IS NOT NULL, platform FROM hosts WHERE identity = 'host-a'")
    [ "$got" = "20|1|linux" ] || fail "hosts row: $got"
    got=$(q "SELECT count(*) FROM gaps")
    [ "$got" = 0 ] || fail "unexpected gaps: $got"
    ;;
kill9)
    start_collector
    start_agent
    poll 30 rows_at_least 5 || fail "nothing streamed"
    stop_collector KILL
    before=$(rows)
    # The agent keeps sampling into its spool while the collector is gone.
    poll 30 spooled_at_least 8 || fail "agent does not spool while the collector is down"
    start_collector
    poll 30 rows_at_least $((before + 15)) || fail "agent did not resume streaming"
    stop_agent TERM
    check_all_acked
    dups=$(grep -c 'duplicates=[1-9]' "$dir/collector.log")
    echo "ok: $before rows before the kill; resends ignored as duplicates in $dups summaries"
    ;;
restart)
    pick_port # nothing listens yet
    run_agent --count 5
    [ "$(spooled)" -eq 5 ] || fail "expected 5 spooled entries, found $(spooled)"
    [ "$(last_seq)" = "5 0" ] || fail "first run: $(last_seq)"
    start_collector
    run_agent --count 3
    check_all_acked
    [ "$(last_seq)" = "8 8" ] || fail "second run: $(last_seq)"
    # kill -9 of the agent mid-stream: what it spooled survives, seqs continue without reuse.
    start_agent
    poll 30 rows_at_least 14 || fail "no streaming after restart"
    stop_agent KILL
    run_agent --count 2
    check_all_acked
    ;;
outage)
    start_collector
    start_agent
    poll 30 rows_at_least 3 || fail "nothing streamed"
    stop_collector TERM
    poll 30 spooled_at_least 15 || fail "agent does not spool while the collector is down"
    start_collector
    n=$(spooled)
    poll 30 rows_at_least $((3 + n)) || fail "spooled snapshots not delivered"
    stop_agent TERM
    check_all_acked
    ;;
overflow)
    pick_port
    run_agent --count 16 --spool-max 4K
    kept=$(spooled)
    [ "$kept" -ge 1 ] && [ "$kept" -lt 16 ] || fail "4K spool kept $kept of 16 entries"
    start_collector
    # A roomy spool this time, so that this run drops nothing more.
    run_agent --count 1
    set -- $(last_seq)
    [ "$1" = 17 ] && [ "$2" = 17 ] || fail "agent: last seq $1 acked $2"
    lost=$((16 - kept))
    got=$(q "SELECT count(*), min(seq), max(seq) FROM snapshots WHERE host = 'host-a'")
    [ "$got" = "$((kept + 1))|$((lost + 1))|17" ] ||
        fail "expected $((kept + 1)) rows seq $((lost + 1))..17, got $got"
    got=$(q "SELECT after_seq, dropped FROM gaps WHERE host = 'host-a'")
    [ "$got" = "0|$lost" ] || fail "expected gap after seq 0 of $lost, got '$got'"
    got=$(q "SELECT gaps, dropped FROM hosts WHERE identity = 'host-a'")
    [ "$got" = "1|$lost" ] || fail "hosts gaps|dropped = $got, expected 1|$lost"
    echo "ok: $lost dropped, gap recorded"
    ;;
*)
    fail "unknown scenario"
    ;;
esac

if [ -n "$cpid" ]; then
    stop_collector TERM
fi
echo "PASS ($scenario)"
exit 0
