#!/bin/sh
# opcli_real.sh AGENT COLLECTOR EPWATCH CERTS_SCRIPT: the operator CLI against a REAL collector
# (issue 4: "CLI tests against a live collector, including the unreachable and bad-certificate
# cases"). On 127.0.0.1 with free ports: an epwatch-collector (SQLite in a temp dir, an API
# token configured), certificates made now (CA "good": collector, agent, operator; CA "other":
# an unrelated operator), and an epwatch-agent that streams 3 snapshots. Then every command
# and every documented failure of `epwatch`, asserting the exit status (cli_main.c: 0 ok,
# 1 runtime/API error, 2 usage, 3 unreachable or TLS refused) and the message.
# Exit 0 pass, 1 fail, 77 skipped (no openssl/ss/python3).
# Functions are called through poll and trap, which shellcheck cannot follow:
# shellcheck disable=SC2317
set -u
agent=$1
collector=$2
epwatch=$3
certs_script=$4

for t in openssl ss python3 od; do
    command -v "$t" >/dev/null 2>&1 || { echo "$t not installed: skipped"; exit 77; }
done

dir=$(mktemp -d /tmp/epw-opcli-real-XXXXXX) || exit 1
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
fail_extra="out err"
cpid=
cleanup() { epw_cleanup "$cpid"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

listening() { ss -Htln "sport = :$1" 2>/dev/null | grep -q LISTEN; }
port_in_use() { ss -Htan "sport = :$1" 2>/dev/null | grep -q .; }
random_port() {
    while :; do
        p=$((30000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
        port_in_use "$p" || { echo "$p"; return; }
    done
}

good=$dir/good
other=$dir/other
host=opcli-host
{
    "$certs_script" init "$good" &&
        "$certs_script" collector "$good" collector --ip 127.0.0.1 &&
        "$certs_script" agent "$good" "$host" &&
        "$certs_script" operator "$good" op1 &&
        "$certs_script" init --ca-name "other CA" "$other" &&
        "$certs_script" operator "$other" op1
} >"$dir/certs.log" 2>&1 || fail "cannot create certificates"

token=opcli-real-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

# Free ports: chosen now, and if the collector cannot bind (a race with another process) it
# exits or never listens: pick again.
tries=0
while :; do
    port=$(random_port)
    aport=$(random_port)
    if [ "$port" != "$aport" ]; then
        "$collector" --listen "127.0.0.1:$port" --api_listen "127.0.0.1:$aport" \
            --db "$dir/history.db" --ca "$good/ca.crt" --cert "$good/collector.crt" \
            --key "$good/collector.key" --api_tokens "$token" --log_level debug \
            >>"$dir/collector.log" 2>&1 &
        cpid=$!
        up() { kill -0 "$cpid" 2>/dev/null && listening "$port" && listening "$aport"; }
        poll 10 up && break
        kill -KILL "$cpid" 2>/dev/null
        wait "$cpid" 2>/dev/null
        cpid=
    fi
    tries=$((tries + 1))
    [ "$tries" -ge 5 ] && fail "collector does not start"
done

# Three snapshots, 200 ms apart; --count makes the agent deliver them and exit.
"$agent" --collector "127.0.0.1:$port" --server-name collector --hostname "$host" \
    --ca "$good/ca.crt" --cert "$good/$host.crt" --key "$good/$host.key" \
    --spool-dir "$dir/spool" --interval 200ms --count 3 --reconnect-min 100ms \
    --reconnect-max 500ms >"$dir/agent.log" 2>&1 &
apid=$!

api=https://127.0.0.1:$aport
# The connection options without credentials, then with the good operator certificate.
base() {
    "$epwatch" --api "$api" --server-name collector --ca "$good/ca.crt" --timeout 10s \
        --connect-timeout 5s "$@"
}
cli() { base --cert "$good/op1.crt" --key "$good/op1.key" "$@"; }

# run WANT_RC COMMAND...: runs it with stdout in $dir/out and stderr in $dir/err, checks the
# exit status.
run() {
    want=$1
    shift
    "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "exit $got, expected $want: $*"
    # In a sanitizer build a report may come with the exit status we expect anyway.
    sanitizer_clean "$dir/err" || fail "sanitizer report from: $*"
}
sanitizer_clean() { ! grep -qE "Sanitizer|runtime error:" "$@"; }
err_has() { grep -qF -- "$1" "$dir/err" || fail "stderr lacks '$1'"; }
out_has() { grep -qF -- "$1" "$dir/out" || fail "stdout lacks '$1'"; }

json() { # PYTHON-EXPRESSION over j (the parsed $dir/out); exit 0 when true
    python3 - "$dir/out" "$1" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    j = json.load(f)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}
# The collector has stored every snapshot: history counts 3 samples.
all_stored() {
    cli history "$host" --since 10m --json >"$dir/out" 2>"$dir/err" &&
        json 'sum(p["samples"] for p in j["points"]) >= 3' 2>/dev/null
}
agent_done() { ! kill -0 "$apid" 2>/dev/null; }
poll 20 agent_done || fail "the agent did not finish its 3 samples"
wait "$apid"
arc=$?
[ "$arc" -eq 0 ] || fail "agent exited with $arc"
poll 10 all_stored || fail "the agent's 3 snapshots never showed in 'epwatch history'"

# ---- the commands, with the operator certificate ----
run 0 cli hosts --json
json 'isinstance(j, list) and any(h.get("host") == "'"$host"'" for h in j)' ||
    fail "hosts --json lacks $host"
json 'all(all(k in h for k in ("host", "pressure_pct", "status", "last_seen", "active_alerts"))
          for h in j)' || fail "hosts --json: a contract key is missing"
json '[h for h in j if h["host"] == "'"$host"'"][0]["status"] in ("ok", "warning", "critical")' ||
    fail "hosts --json: $host has no live status"

run 0 cli hosts
out_has "$host"
[ -s "$dir/err" ] && fail "hosts wrote to stderr"

run 0 cli history "$host" --since 10m
out_has "$host"

# The classic table (its Computer column is the machine's own name, not the agent identity).
run 0 cli top "$host"
out_has "LocalAddress #OfEPortsInUse Max#OfEPorts %EPortUsage"
out_has "Top remote endpoints:"
out_has "Ranges:"

run 0 cli alerts --json
json 'isinstance(j, list)' || fail "alerts --json is not a JSON array"
run 0 cli alerts --all --json
json 'isinstance(j, list)' || fail "alerts --all --json is not a JSON array"

# ---- bearer tokens (api_tokens) ----
run 0 base --token "$token" hosts --json
json 'any(h.get("host") == "'"$host"'" for h in j)' || fail "hosts --json with --token"
run 1 base --token wrong-token hosts
err_has "HTTP 401"
err_has "an operator certificate or a valid bearer token is required"

# ---- unknown host ----
run 1 cli top no-such-host-here
err_has "no such host"
[ -s "$dir/out" ] && fail "top of an unknown host printed to stdout"

# ---- certificates the collector refuses ----
# Both are refused in the TLS handshake (the API never sees a request), which cli_main.c
# documents as exit 3 ("TLS refused by either side"). The collector's log must give the reason
# we mean to test, so the refusal is not an accident of something else.
clog() { grep -qF -- "$1" "$dir/collector.log"; }
# An operator certificate from an unrelated CA.
run 3 base --cert "$other/op1.crt" --key "$other/op1.key" hosts
err_has "refused our client certificate $other/op1.crt"
poll 5 clog "client certificate refused (untrusted), peer op1" ||
    fail "the collector did not log the untrusted operator certificate"

# An agent certificate: our CA, but OU=agents, so not an operator.
run 3 base --cert "$good/$host.crt" --key "$good/$host.key" hosts
err_has "refused our client certificate $good/$host.crt"
err_has "is it an operator certificate"
poll 5 clog "CN=$host is not an operator certificate (OU=agents)" ||
    fail "the collector did not log the agent certificate's wrong role"

# ---- a collector we do not trust: --ca of the other CA ----
run 3 "$epwatch" --api "$api" --server-name collector --ca "$other/ca.crt" \
    --cert "$good/op1.crt" --key "$good/op1.key" --timeout 10s hosts
err_has "certificate at $api is not trusted by --ca $other/ca.crt"

# ---- nothing listens ----
closed=$(random_port)
live=$api
api=https://127.0.0.1:$closed
run 3 cli hosts
err_has "cannot reach collector at $api"
api=$live

# The collector survived all of it, still answers, and stops cleanly (under ASan this is also
# where it reports leaks).
run 0 cli hosts --json
kill -0 "$cpid" 2>/dev/null || fail "collector died"
kill -TERM "$cpid"
collector_done() { ! kill -0 "$cpid" 2>/dev/null; }
poll 15 collector_done || fail "collector did not stop on SIGTERM"
wait "$cpid"
crc=$?
cpid=
[ "$crc" -eq 0 ] || fail "collector exited with $crc after SIGTERM"
sanitizer_clean "$dir/collector.log" "$dir/agent.log" || fail "sanitizer report from the collector or agent"

echo "opcli_real: ok"
exit 0
