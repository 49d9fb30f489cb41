#!/usr/bin/env bash
# win_msi_service.sh BUILD_DIR [COLLECTOR] CERTS_SCRIPT: the Windows agent's MSI under Wine, end
# to end. In a fresh Wine prefix: `msiexec /i` installs and starts the epwatch-agent service,
# which reads C:\ProgramData\epwatch\agent.ini and streams over mutual TLS to a Linux
# epwatch-collector on 127.0.0.1 (certificates made now); the collector's SQLite DB receives the
# host's snapshots; a MajorUpgrade to a higher version keeps the service running and the data
# directory intact; `sc stop` stops it gracefully (the agent logs its uplink summary); `msiexec
# /x` removes the service and the program but not the data directory.
# COLLECTOR empty or missing: the Linux collector is built into BUILD_DIR/linux-collector.
# Exit 0 pass, 1 fail, 77 skipped (sqlite3 or openssl missing).
set -u
build=$(realpath "$1")
collector=${2:-}
certs_script=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
msi=$build/epwatch-agent.msi

command -v sqlite3 >/dev/null 2>&1 || { echo "sqlite3 not installed: skipped"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "openssl not installed: skipped"; exit 77; }

dir=$(mktemp -d /tmp/epw-winmsi-XXXXXX) || exit 1
cpid=
export WINEPREFIX=$dir/prefix WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
cleanup() {
    wineserver -k >/dev/null 2>&1
    [ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

data=$WINEPREFIX/drive_c/ProgramData/epwatch
fail() {
    echo "FAIL: $*" >&2
    for f in "$dir"/*.log "$data"/epwatch-agent.log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}
step() { echo "[win_msi_service ${SECONDS}s] $*"; }

# Deadline polling: poll SECONDS COMMAND... every 0.25 s. Deadlines for snapshots are generous:
# on a busy host one sample under Wine (thousands of Linux sockets) can take over 10 s.
poll() {
    local limit=$(($1 * 4)) n=0
    shift
    until "$@"; do
        n=$((n + 1))
        [ "$n" -ge "$limit" ] && return 1
        sleep 0.25
    done
}

[ -f "$msi" ] || fail "$msi not found (agent/windows/msi.sh builds it)"
if [ -z "$collector" ] || [ ! -x "$collector" ]; then
    step "building the Linux collector into $build/linux-collector"
    { cmake -S "$root" -B "$build/linux-collector" -DBUILD_TESTING=OFF \
        -DCMAKE_TOOLCHAIN_FILE= -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
        cmake --build "$build/linux-collector" --target epwatch-collector -j2; } \
        >"$dir/linux-build.log" 2>&1 || fail "cannot build the Linux collector"
    collector=$build/linux-collector/collector/epwatch-collector
fi

step "certificates"
"$certs_script" init "$dir/pki" >/dev/null &&
    "$certs_script" collector "$dir/pki" collector --ip 127.0.0.1 >/dev/null &&
    "$certs_script" agent "$dir/pki" wine-host >/dev/null || fail "cannot create certificates"

step "collector"
db=$dir/history.db
for _ in 1 2 3 4 5; do
    port=$((30000 + $(od -An -N2 -tu2 /dev/urandom) % 30000))
    ss -Htan "sport = :$port" 2>/dev/null | grep -q . && continue
    "$collector" --listen "127.0.0.1:$port" --db "$db" --ca "$dir/pki/ca.crt" \
        --cert "$dir/pki/collector.crt" --key "$dir/pki/collector.key" \
        >>"$dir/collector.log" 2>&1 &
    cpid=$!
    poll 10 sh -c "ss -Htln 'sport = :$port' | grep -q LISTEN" && break
    kill -KILL "$cpid" 2>/dev/null
    wait "$cpid" 2>/dev/null
    cpid=
done
[ -n "$cpid" ] || fail "collector does not start"

# A new prefix: wineboot -i, then wait for it to settle before the persistent server, or the
# MSI's service start cannot find the new service (msiexec error 1627). Nothing of Wine may keep
# the test's stdout open (services inherit it).
step "Wine prefix"
wineboot -i </dev/null >"$dir/wineboot.log" 2>&1 || fail "wineboot -i failed"
wineserver -w
wineserver -p </dev/null >/dev/null 2>&1

step "agent.ini and certificates in C:\\ProgramData\\epwatch"
mkdir -p "$data/certs" || fail "no ProgramData in the prefix"
cp "$dir/pki/ca.crt" "$dir/pki/wine-host.crt" "$dir/pki/wine-host.key" "$data/certs/"
cat >"$data/agent.ini" <<INI
; written by tests/integration/win_msi_service.sh
collector = 127.0.0.1:$port
server_name = collector
hostname = wine-host
ca = C:\\ProgramData\\epwatch\\certs\\ca.crt
cert = C:\\ProgramData\\epwatch\\certs\\wine-host.crt
key = C:\\ProgramData\\epwatch\\certs\\wine-host.key
interval = 1s
reconnect_min = 200ms
reconnect_max = 1s
log_level = debug
INI

svc_state() { # prints RUNNING, STOPPED, ... or NONE when the service does not exist
    local out
    out=$(wine sc query epwatch-agent </dev/null 2>&1 | tr -d '\r')
    if printf '%s\n' "$out" | grep -q 'STATE'; then
        printf '%s\n' "$out" | sed -n 's/.*STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p'
    else
        echo NONE
    fi
}
state_is() { [ "$(svc_state)" = "$1" ]; }
rows() {
    [ -f "$db" ] || { echo 0; return; }
    sqlite3 -cmd ".timeout 5000" "$db" "SELECT count(*) FROM snapshots WHERE host = 'wine-host'" \
        2>/dev/null || echo 0
}
rows_at_least() { [ "$(rows)" -ge "$1" ]; }
msiexec() { # ARGS...: exit code of msiexec, output kept in the log
    wine msiexec "$@" </dev/null >>"$dir/msiexec.log" 2>&1
}

step "msiexec /i $(basename "$msi")"
msiexec /i "$(winepath -w "$msi")" /qn || fail "msiexec /i exited with $?"
[ -f "$WINEPREFIX/drive_c/Program Files/epwatch/epwatch-agent.exe" ] ||
    fail "epwatch-agent.exe not installed in Program Files\\epwatch"
poll 30 state_is RUNNING || fail "service not RUNNING after install (state $(svc_state))"
echo "ok: service RUNNING after install"

step "waiting for snapshots from wine-host"
poll 150 rows_at_least 2 || fail "no snapshots from wine-host reached the collector"
got=$(sqlite3 "$db" "SELECT platform FROM hosts WHERE identity = 'wine-host'")
[ "$got" = windows ] || fail "hosts.platform for wine-host: '$got'"
echo "ok: $(rows) snapshots from wine-host (platform windows)"

step "MajorUpgrade to a higher version"
cur=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt")
up=${cur%.*}.$((${cur##*.} + 1))
EPW_MSI_VERSION=$up EPW_MSI_OUT=$dir/upgrade.msi bash "$root/agent/windows/msi.sh" "$build" \
    >"$dir/msi-upgrade.log" 2>&1 || fail "cannot build the upgrade MSI"
before=$(rows)
# Wine's msiexec does not wait for a service that takes seconds to stop (a sample under way):
# the upgrade then fails with 1627 (exit status 91). Windows waits (ServiceControl Wait="yes").
# So the running service is stopped first here; the new MSI must start it again.
wine sc stop epwatch-agent </dev/null >>"$dir/sc.log" 2>&1
poll 60 state_is STOPPED || fail "service not STOPPED before the upgrade (state $(svc_state))"
msiexec /i "$(winepath -w "$dir/upgrade.msi")" /qn || fail "upgrade msiexec /i exited with $?"
poll 30 state_is RUNNING || fail "service not RUNNING after the upgrade (state $(svc_state))"
[ -f "$data/agent.ini" ] && [ -f "$data/certs/wine-host.key" ] ||
    fail "the upgrade lost agent.ini or the certificates"
poll 150 rows_at_least $((before + 2)) || fail "no snapshots after the upgrade"
echo "ok: upgraded $cur -> $up in place, still RUNNING and streaming"

step "sc stop"
: >"$data/epwatch-agent.log" # this stop's messages only
wine sc stop epwatch-agent </dev/null >>"$dir/sc.log" 2>&1
poll 30 state_is STOPPED || fail "service not STOPPED after sc stop (state $(svc_state))"
grep -q 'service stop requested' "$data/epwatch-agent.log" ||
    fail "the agent's log does not show the stop request"
poll 10 grep -q 'uplink stopped' "$data/epwatch-agent.log" ||
    fail "the agent did not stop its uplink cleanly"
echo "ok: STOPPED, $(grep -o 'uplink stopped: .*' "$data/epwatch-agent.log" | tail -n 1)"

step "msiexec /x"
msiexec /x "$(winepath -w "$dir/upgrade.msi")" /qn || fail "msiexec /x exited with $?"
poll 30 state_is NONE || fail "service still registered after uninstall (state $(svc_state))"
[ ! -f "$WINEPREFIX/drive_c/Program Files/epwatch/epwatch-agent.exe" ] ||
    fail "epwatch-agent.exe left behind"
[ -f "$data/agent.ini" ] && [ -f "$data/certs/wine-host.key" ] ||
    fail "uninstall removed the data directory"
echo "ok: uninstalled, no service left, data directory kept"

# The same life cycle through the agent's own commands (what an admin does without the MSI).
step "epwatch-agent install --config / start / stop / uninstall"
mkdir -p "$WINEPREFIX/drive_c/epwatch-cli"
cp "$build/epwatch-agent.exe" "$WINEPREFIX/drive_c/epwatch-cli/"
agent() { wine 'C:\epwatch-cli\epwatch-agent.exe' "$@" </dev/null >>"$dir/agent-cli.log" 2>&1; }
agent install --config 'C:\ProgramData\epwatch\agent.ini' || fail "install exited with $?"
agent install && fail "a second install must fail"
state_is STOPPED || fail "after install: state $(svc_state)"
before=$(rows)
agent start || fail "start exited with $?"
state_is RUNNING || fail "after start: state $(svc_state)"
poll 150 rows_at_least $((before + 1)) || fail "no snapshots from the service installed by the agent"
agent stop || fail "stop exited with $?"
state_is STOPPED || fail "after stop: state $(svc_state)"
agent uninstall || fail "uninstall exited with $?"
state_is NONE || fail "after uninstall: state $(svc_state)"
agent stop && fail "stop of an uninstalled service must fail"
echo "ok: install, start (streaming), stop, uninstall through epwatch-agent itself"
