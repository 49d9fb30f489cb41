# shellcheck shell=sh
# tests/integration/lib.sh: helpers shared by the integration scripts. POSIX sh; sourced with
#   . "$(dirname "$0")/lib.sh"
# after the script has set dir=$(mktemp -d ...). The helpers read these variables of the caller:
#   dir               the test's temporary directory (every log the test writes lives there)
#   keep              1: epw_cleanup leaves $dir in place (prints its path) instead of removing it
#   fail_label        shown as "FAIL (label): ..."; unset or empty: "FAIL: ..."
#   fail_lines        how many trailing lines of each log fail shows (default 30)
#   fail_extra        further files in $dir, by name, that fail shows after the *.log files
#   poll_watch_agent  1: poll gives up as soon as the process $apid (the agent) has exited
# Functions are called through poll and trap, which shellcheck cannot follow:
# shellcheck disable=SC2317
# The variables named above are the caller's:
# shellcheck disable=SC2154

# epw_cleanup [PID...]: for the EXIT trap. Kills the given PIDs (empty ones skipped) and every
# process whose command line names $dir/, whichever PID a variable last held, so none outlives
# the test; then waits for the children and removes $dir (unless keep=1).
epw_cleanup() {
    for p in "$@"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
    done
    pkill -KILL -f -- "$dir/" 2>/dev/null
    wait 2>/dev/null
    if [ "${keep:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}

# fail MESSAGE...: reports the failure with the tail of every log, and exits 1.
fail() {
    echo "FAIL${fail_label:+ ($fail_label)}: $*" >&2
    for f in "$dir"/*.log; do
        epw_show_tail "$f"
    done
    for f in ${fail_extra:-}; do
        epw_show_tail "$dir/$f"
    done
    exit 1
}

epw_show_tail() {
    [ -f "$1" ] || return 0
    echo "--- $1" >&2
    tail -n "${fail_lines:-30}" "$1" >&2
}

# Deadline polling: poll SECONDS COMMAND... retries every 0.1 s; 0 once COMMAND succeeds, 1 when
# SECONDS have passed (or, with poll_watch_agent=1, when the agent has died).
poll() {
    limit=$(($1 * 10))
    shift
    n=0
    until "$@"; do
        if [ "${poll_watch_agent:-0}" = 1 ] && [ -n "${apid:-}" ] && ! kill -0 "$apid" 2>/dev/null; then
            echo "agent died" >&2
            return 1
        fi
        n=$((n + 1))
        [ "$n" -ge "$limit" ] && return 1
        sleep 0.1
    done
    return 0
}

# epw_certs PKI HOST [OPERATOR]: a fresh CA in PKI with a collector certificate (DNS collector,
# IP 127.0.0.1), an agent certificate for HOST and, if named, an operator certificate. Needs
# $certs_script (certs/epwatch-certs). Output discarded; non-zero on any failure.
epw_certs() {
    "$certs_script" init "$1" >/dev/null &&
        "$certs_script" collector "$1" collector --ip 127.0.0.1 >/dev/null &&
        "$certs_script" agent "$1" "$2" >/dev/null &&
        if [ -n "${3:-}" ]; then "$certs_script" operator "$1" "$3" >/dev/null; fi
}
