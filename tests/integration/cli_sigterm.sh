#!/bin/sh
# cli_sigterm.sh AGENT DIR: epwatch-agent in continuous mode stops cleanly (exit 0) on SIGTERM
# after its first sample has reached the log, and on SIGINT likewise.
set -u
agent=$1
dir=$2
rm -rf "$dir"
mkdir -p "$dir"

for sig in TERM INT; do
    log="$dir/agent-$sig.log"
    "$agent" --log "$log" --interval 1h --quiet --no-pids &
    pid=$!
    # Wait (bounded) for the first block: the loop is then running and idle until the next hour.
    i=0
    until grep -q '^Computer ' "$log" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 300 ]; then
            echo "no sample logged within 30 s" >&2
            kill -KILL "$pid"
            exit 1
        fi
        sleep 0.1
    done
    kill -"$sig" "$pid"
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "agent exited with $rc after SIG$sig" >&2
        exit 1
    fi
    echo "SIG$sig: clean exit"
done
