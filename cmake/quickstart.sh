#!/usr/bin/env bash
# Quick start: installs what is needed, builds epwatch, starts a collector and a local agent in
# the background with development certificates, waits for the first snapshot, shows the fleet.
# Idempotent: a rerun stops the collector and agent it started before and starts fresh ones
# (certificates and the database are kept). Run as root on Debian 12.
#   EPW_QS_DIR   state directory (default /var/lib/epwatch/quickstart): database, logs, PIDs
#   EPW_PKI_DIR  development certificates (default /var/lib/epwatch/dev-pki)
#   EPW_QS_BUILD build directory (default build/)
#   EPW_QS_AGENT_PORT, EPW_QS_API_PORT   the collector's ports (default 7443, 7444)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
qs=${EPW_QS_DIR:-/var/lib/epwatch/quickstart}
pki=${EPW_PKI_DIR:-/var/lib/epwatch/dev-pki}
bin=${EPW_QS_BUILD:-$src/build}
aport=${EPW_QS_AGENT_PORT:-7443}
pport=${EPW_QS_API_PORT:-7444}

say() { printf 'quickstart: %s\n' "$*"; }
die() {
    printf 'quickstart: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and samples every process's sockets)"

say "installing the Debian packages (cmake/install-deps.sh)"
bash cmake/install-deps.sh
say "building in $bin"
cmake -S . -B "$bin" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$bin" -j"$(nproc)" >/dev/null
collector=$bin/collector/epwatch-collector
agent=$bin/agent/epwatch-agent
epwatch=$bin/collector/epwatch

# Stops what a previous run started: only processes recorded in our PID files whose program is
# ours (a PID reused by something else is left alone).
stop_old() { # NAME
    local pidf=$qs/$1.pid pid exe i
    [ -f "$pidf" ] || return 0
    pid=$(cat "$pidf")
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "${exe##*/}" = "epwatch-$1" ]; then
        say "stopping the $1 started earlier (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidf"
}
mkdir -p "$qs"
stop_old agent
stop_old collector

# Development certificates (kept across runs; certs/epwatch-certs never overwrites).
host=$(hostname)
certs=$src/certs/epwatch-certs
mkdir -p "$(dirname "$pki")"
[ -f "$pki/ca.crt" ] || "$certs" init "$pki" >/dev/null
[ -f "$pki/collector.crt" ] || "$certs" collector "$pki" collector --ip 127.0.0.1 --dns localhost >/dev/null
[ -f "$pki/$host.crt" ] || "$certs" agent "$pki" "$host" >/dev/null
[ -f "$pki/operator.crt" ] || "$certs" operator "$pki" operator >/dev/null
say "development certificates in $pki"

# The CLI's settings, so `epwatch --config $qs/epwatch.ini hosts` works later too.
cat >"$qs/epwatch.ini" <<EOF
; written by cmake/quickstart.sh
api = https://127.0.0.1:$pport
server_name = collector
ca = $pki/ca.crt
cert = $pki/operator.crt
key = $pki/operator.key
EOF

count() {
    sqlite3 -cmd ".timeout 2000" "$qs/epwatch.db" \
        "SELECT count(*) FROM snapshots WHERE host = '$host'" 2>/dev/null || echo 0
}
before=$(count) # a rerun waits for a new snapshot, not the previous run's
"$collector" --listen "127.0.0.1:$aport" --api_listen "127.0.0.1:$pport" --db "$qs/epwatch.db" \
    --ca "$pki/ca.crt" --cert "$pki/collector.crt" --key "$pki/collector.key" \
    >>"$qs/collector.log" 2>&1 </dev/null &
echo $! >"$qs/collector.pid"
disown || true
for i in $(seq 1 100); do
    ss -Htln "sport = :$pport" | grep -q LISTEN && break
    kill -0 "$(cat "$qs/collector.pid")" 2>/dev/null || die "the collector exited: see $qs/collector.log"
    sleep 0.1
done
ss -Htln "sport = :$pport" | grep -q LISTEN || die "the collector does not listen: see $qs/collector.log"
say "collector started (pid $(cat "$qs/collector.pid"), log $qs/collector.log)"

"$agent" --collector "127.0.0.1:$aport" --server-name collector --ca "$pki/ca.crt" \
    --cert "$pki/$host.crt" --key "$pki/$host.key" --hostname "$host" \
    --spool-dir "$qs/spool" --interval 10s >>"$qs/agent.log" 2>&1 </dev/null &
echo $! >"$qs/agent.pid"
disown || true
say "agent for $host started (pid $(cat "$qs/agent.pid"), interval 10s, log $qs/agent.log)"

say "waiting for the first snapshot"
n=0
for i in $(seq 1 300); do
    n=$(count)
    [ "${n:-0}" -gt "${before:-0}" ] && break
    kill -0 "$(cat "$qs/agent.pid")" 2>/dev/null || die "the agent exited: see $qs/agent.log"
    sleep 0.1
done
[ "${n:-0}" -gt "${before:-0}" ] || die "no snapshot after 30 s: see $qs/agent.log and $qs/collector.log"

echo
"$epwatch" --config "$qs/epwatch.ini" hosts
echo
cat <<EOF
The collector and the agent keep running in the background:
  fleet:   $epwatch --config $qs/epwatch.ini hosts      (also: top $host, history $host, alerts)
  logs:    $qs/collector.log, $qs/agent.log
  stop:    kill \$(cat $qs/agent.pid) \$(cat $qs/collector.pid)
  restart: bash cmake/quickstart.sh
EOF
