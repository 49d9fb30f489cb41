#!/bin/sh
# e2e_exhaustion.sh AGENT COLLECTOR EPWATCH CERTS_SCRIPT HELPER: issue 4's end-to-end acceptance.
# In a network namespace made here (unshare -n; lo up) with ip_local_port_range 40000-40049:
# a real epwatch-collector (SQLite in a temp dir, certificates made now, a webhook sink), a real
# epwatch-agent sampling every second, and a webhook receiver on loopback. A helper opens
# connections to one local listener until connect() fails with EADDRNOTAVAIL and holds them:
# within two sample intervals (+ a margin for commit and delivery) the receiver must get a
# critical "pressure" alert naming the host, the destination and the top process (the helper's
# PID), and `epwatch alerts --json` / `epwatch hosts --json` against the live collector must show
# it. Then the helper closes every socket with SO_LINGER 0: an RST instead of a FIN, so no
# TIME_WAIT remains (Linux keeps TIME_WAIT a fixed 60 s; the test does not wait for it) and the
# next samples find the range free: the receiver must get the resolution, and the CLI show it.
# Finally SIGTERM: the collector must stop cleanly (exit 0).
# Exit 0 pass, 1 fail, 77 skipped (not root, or no unshare/ip/openssl/python3).
set -u
agent=$1
collector=$2
epwatch=$3
certs_script=$4
helper=$5

if [ -z "${EPW_E2E_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "needs root for a network namespace: skipped"; exit 77; }
    for t in unshare ip openssl python3 sysctl; do
        command -v "$t" >/dev/null 2>&1 || { echo "$t not installed: skipped"; exit 77; }
    done
    EPW_E2E_NETNS=1 exec unshare -n -- sh "$0" "$@"
fi

ip link set lo up || exit 1
# Per-namespace: 50 ephemeral ports. Every listener below is outside the range.
sysctl -q -w net.ipv4.ip_local_port_range="40000 40049" || exit 1

dir=$(mktemp -d /tmp/epw-e2e-XXXXXX) || exit 1
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
fail_lines=25
pids=
cpid=
cleanup() {
    [ -f "$dir/state/exhausted" ] && : >"$dir/state/release"
    for p in $pids $cpid; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

listening() { ss -Htln "sport = :$1" 2>/dev/null | grep -q LISTEN; }

host=e2e-host
pki=$dir/pki
epw_certs "$pki" "$host" op1 || fail "cannot create certificates"
mkdir -p "$dir/hooks" "$dir/state"

python3 "$helper" receiver 18080 "$dir/hooks" >"$dir/receiver.log" 2>&1 &
pids="$pids $!"
poll 10 listening 18080 || fail "webhook receiver does not start"

"$collector" --listen 127.0.0.1:7443 --api_listen 127.0.0.1:7444 --db "$dir/history.db" \
    --ca "$pki/ca.crt" --cert "$pki/collector.crt" --key "$pki/collector.key" \
    --sink.webhook.url http://127.0.0.1:18080/hook --sink.webhook.timeout 5s \
    --alerts.hits 2 >"$dir/collector.log" 2>&1 &
cpid=$!
poll 10 listening 7444 || fail "collector does not start"

"$agent" --collector 127.0.0.1:7443 --server-name collector --ca "$pki/ca.crt" \
    --hostname "$host" --cert "$pki/$host.crt" --key "$pki/$host.key" --spool-dir "$dir/spool" \
    --interval 1s \
    --reconnect-min 100ms --reconnect-max 500ms >"$dir/agent.log" 2>&1 &
pids="$pids $!"

cli() {
    "$epwatch" --api https://127.0.0.1:7444 --server-name collector --ca "$pki/ca.crt" \
        --cert "$pki/op1.crt" --key "$pki/op1.key" --timeout 10s "$@"
}
has_host() { cli hosts --json >"$dir/hosts.json" 2>>"$dir/cli.log" && grep -q "\"$host\"" "$dir/hosts.json"; }
poll 15 has_host || fail "the agent's first snapshot never showed in 'epwatch hosts'"
python3 "$helper" check-hosts "$dir/hosts.json" "$host" ok || fail "hosts --json before"

# Exhaust the range towards 127.0.0.1:19000.
python3 "$helper" exhaust 19000 "$dir/state" >"$dir/exhaust.log" 2>&1 &
pids="$pids $!"
poll 20 test -f "$dir/state/exhausted" || fail "the helper did not exhaust the range"
read -r conns hpid <"$dir/state/exhausted"
echo "exhausted after $conns connections (helper pid $hpid)"

# Two sample intervals (hits = 2, interval 1 s) plus 3 s for the sample, commit and delivery.
python3 "$helper" wait-hook "$dir/hooks" raised "$host" 19000 "$hpid" 5 || fail "no critical alert"
cli alerts --json >"$dir/alerts.json" 2>>"$dir/cli.log" || fail "epwatch alerts --json"
python3 "$helper" check-alerts "$dir/alerts.json" "$host" true || fail "alerts --json (active)"
cli hosts --json >"$dir/hosts.json" 2>>"$dir/cli.log" || fail "epwatch hosts --json"
python3 "$helper" check-hosts "$dir/hosts.json" "$host" critical || fail "hosts --json (critical)"
cli hosts >"$dir/hosts.txt" 2>>"$dir/cli.log" || fail "epwatch hosts"
grep -q "$host" "$dir/hosts.txt" || fail "epwatch hosts does not list $host"

# Release with RSTs: nothing lingers in TIME_WAIT.
: >"$dir/state/release"
poll 10 test -f "$dir/state/released" || fail "the helper did not release"
tw=$(ss -Htan state time-wait "dport = :19000" | wc -l)
[ "$tw" -eq 0 ] || fail "$tw sockets in TIME_WAIT after the RST release"
python3 "$helper" wait-hook "$dir/hooks" resolved "$host" 19000 "$hpid" 6 || fail "no resolution"
cli alerts --all --json >"$dir/alerts.json" 2>>"$dir/cli.log" || fail "epwatch alerts --all"
python3 "$helper" check-alerts "$dir/alerts.json" "$host" false || fail "alerts --json (resolved)"
cli hosts --json >"$dir/hosts.json" 2>>"$dir/cli.log" || fail "epwatch hosts --json"
python3 "$helper" check-hosts "$dir/hosts.json" "$host" ok || fail "hosts --json (after)"

# Exactly one episode: one raise, one resolution.
raised=$(grep -l '"transition":"raised"' "$dir/hooks"/*.json | xargs grep -l '"kind":"pressure"' | wc -l)
[ "$raised" -eq 1 ] || fail "$raised pressure raises, expected 1"

kill -TERM "$cpid"
wait "$cpid"
rc=$?
cpid=
[ "$rc" -eq 0 ] || fail "collector exited with $rc after SIGTERM"
grep -q "loop still has handles" "$dir/collector.log" && fail "collector left handles open"
echo "e2e_exhaustion: ok"
exit 0
