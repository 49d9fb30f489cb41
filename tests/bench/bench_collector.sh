#!/usr/bin/env bash
# bench_collector.sh: the fleet-scale benchmarks (issue 6), each printed beside its baseline.
#
# Usage:  tests/bench/bench_collector.sh [--build DIR] [--only LIST] [--out FILE]
#   --build DIR   build directory (default: build-bench next to tests/; configured Release and
#                 built here if the programs are missing)
#   --only LIST   comma-separated subset of a,b,c,d,e (default: all)
#   --out FILE    also append the markdown result table to FILE
# Environment: FLEET_CACHE (default BUILD/fleet-cache): certificates and the query database are
# generated there once and reused. BENCH_COLLECTOR_ARGS: extra collector options (experiments,
# e.g. "--batch_max 512" to compare with the old default).
#
#   a  durable ingest: 1,000 agents as fast as acks allow (window 32 each) against
#      bench_sqlite_baseline (same schema, statements, batch 4096 = the collector's batch_max,
#      WAL, synchronous=FULL)
#   b  connections: as many agents as the descriptor limit allows (20,000 wanted) at one snapshot
#      per minute each; collector RSS, and per connection above the idle collector
#   c  ack latency at 10,000 snapshots/s from 1,000 agents; baseline: the bare loop's time per
#      4096-row transaction
#   d  operator queries on 100,000 hosts, 1,000 with 7 days at 1/min (10 M rows, cached), through
#      store_reader_* (what the API calls); baseline: the same SQL through the sqlite3 CLI, rows
#      printed to /dev/null
#   e  the agent: tests/bench/bench_agent.sh (sample cost and RSS against ss at 1k/10k/50k
#      connections; idle CPU at the default 60 s interval against ss -tanp once a minute)
# Everything runs on loopback; every wait is bounded; the collector runs with a temp database.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$src/build-bench
only=a,b,c,d,e
out=
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench_collector: unknown argument $1" >&2; exit 2 ;;
    esac
done
want() { [[ ,$only, == *,$1,* ]]; }
batch=4096 # the collector's default batch_max: the baseline commits the same batches

coll=$build/collector/epwatch-collector
sim=$build/tests/epwatch-fleetsim
base=$build/tests/bench_sqlite_baseline
queries=$build/tests/bench_queries
if [[ ! -x $coll || ! -x $sim || ! -x $base || ! -x $queries ]]; then
    echo "bench_collector: building in $build" >&2
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$build" -j2 --target epwatch-collector epwatch-fleetsim bench_sqlite_baseline \
        bench_queries >/dev/null
fi
cache=${FLEET_CACHE:-$build/fleet-cache}
pki=$cache/pki
mkdir -p "$cache"
work=$(mktemp -d /tmp/epw-bench.XXXXXX)
cpid=
cleanup() {
    [[ -n $cpid ]] && kill -9 "$cpid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rows=()
row() { rows+=("$1"); echo "$1"; }

machine() {
    local model cores kernel mem
    model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
    cores=$(nproc)
    kernel=$(uname -r)
    mem=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')
    echo "Machine: $model, $cores cores, $mem RAM, kernel $kernel, SQLite $(sqlite3 --version | cut -d' ' -f1), $(date -u +%Y-%m-%dT%H:%MZ), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
}

port_up() { ss -ltnH "sport = :$1" | grep -q LISTEN; }

# start_collector PORT DB [extra --key value ...]: starts it, waits for the listener (10 s).
start_collector() {
    local port=$1 db=$2
    shift 2
    "$coll" --listen "127.0.0.1:$port" --db "$db" --ca "$pki/ca.crt" --cert "$pki/collector.crt" \
        --key "$pki/collector.key" --api_listen "127.0.0.1:$((port + 1000))" --log_level warn "$@" \
        ${BENCH_COLLECTOR_ARGS:-} >>"$work/collector.log" 2>&1 &
    cpid=$!
    for _ in $(seq 100); do
        port_up "$port" && return 0
        sleep 0.1
    done
    echo "bench_collector: collector did not start (see $work/collector.log)" >&2
    cat "$work/collector.log" >&2
    exit 1
}

stop_collector() {
    [[ -n $cpid ]] || return 0
    kill -TERM "$cpid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    cpid=
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))" "$@"; }
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }

mline=$(machine)
echo "$mline"
row "| benchmark | epwatch | baseline | ratio | target | met |"
row "|---|---:|---:|---:|---|---|"

if want a || want b || want c; then
    n=1000
    want b && n=20000
    "$here/fleetcerts.sh" "$pki" "$n"
fi

# ---- a: durable ingest rate ----------------------------------------------------------------------
if want a; then
    echo "== a: durable ingest, 1,000 agents, as fast as acks allow" >&2
    "$base" --db "$work/base.db" --rows 300000 --hosts 1000 --batch "$batch" --json >"$work/base.json"
    rm -f "$work"/base.db*
    start_collector 17501 "$work/a.db"
    "$sim" --certs "$pki" --connect 127.0.0.1:17501 --agents 1000 --window 32 --duration 50 \
        --warmup 15 --connecting 128 --json --quiet >"$work/a.json"
    stop_collector
    c_rate=$(jget "$work/a.json" "round(acked_per_s)")
    b_rate=$(jget "$work/base.json" "round(rows_per_s)")
    met=no
    python3 -c "import sys; sys.exit(0 if $c_rate >= 50000 and $b_rate / $c_rate <= 2 else 1)" && met=yes
    row "| (a) durable ingest, 1,000 agents, window 32 (snapshots/s acked after commit) | $c_rate | $b_rate (bare SQLite loop) | $(ratio "$c_rate" "$b_rate") | >= 50,000/s and >= 0.5 of baseline | $met |"
    echo "   collector run: $(cat "$work/a.json")" >&2
    echo "   baseline: $(cat "$work/base.json")" >&2
    rm -f "$work"/a.db*
fi

# ---- b: connections and RSS ----------------------------------------------------------------------
if want b; then
    echo "== b: connections at one snapshot per minute" >&2
    # The collector needs one descriptor per agent plus its own (listener, database, WAL, epoll,
    # signals, ...); fleetsim processes need one each plus slack.
    hard=$(ulimit -Hn)
    agents=20000
    ((agents > hard - 100)) && agents=$((hard - 100))
    ulimit -n "$hard"
    start_collector 17502 "$work/b.db" --max_connections 20000 --idle_timeout 5m
    sleep 1
    idle=$(rss_kib "$cpid")
    per=$(((agents + 1) / 2))
    "$sim" --certs "$pki" --connect 127.0.0.1:17502 --agents "$per" --interval-ms 60000 \
        --duration 300 --warmup 5 --connecting 64 --json --quiet --status "$work/b1.status" \
        >"$work/b1.json" &
    s1=$!
    "$sim" --certs "$pki" --connect 127.0.0.1:17502 --first "$per" --agents $((agents - per)) \
        --src-addrs 8 --interval-ms 60000 --duration 300 --warmup 5 --connecting 64 --json --quiet \
        --status "$work/b2.status" >"$work/b2.json" &
    s2=$!
    t0=$(date +%s)
    streaming=0
    # Bounded: up to 240 s for every agent to connect.
    while (($(date +%s) - t0 < 240)); do
        sleep 2
        a1=$(sed -n 's/.*streaming=\([0-9]*\).*/\1/p' "$work/b1.status" 2>/dev/null || echo 0)
        a2=$(sed -n 's/.*streaming=\([0-9]*\).*/\1/p' "$work/b2.status" 2>/dev/null || echo 0)
        streaming=$((${a1:-0} + ${a2:-0}))
        ((streaming >= agents)) && break
    done
    ramp=$(($(date +%s) - t0))
    sleep 20 # a third of the fleet has sent a snapshot since; buffers settled
    full=$(rss_kib "$cpid")
    fds=$(ls "/proc/$cpid/fd" | wc -l)
    kill -TERM "$s1" "$s2" 2>/dev/null || true
    wait "$s1" "$s2" || true
    stop_collector
    total_mib=$(python3 -c "print('%.1f' % ($full / 1024))")
    perconn=$(python3 -c "print('%.1f' % (($full - $idle) / max($streaming, 1)))")
    met=no
    ((full < 1048576 && streaming >= agents)) && met=yes
    row "| (b) $streaming agents connected (of $agents; ramp ${ramp} s), 1 snapshot/min each: collector RSS | $total_mib MiB ($perconn KiB per connection, $fds fds) | $((idle / 1024)) MiB idle | $(ratio "$full" "$idle") | < 1 GiB total | $met |"
    echo "   fleetsim: $(cat "$work/b1.json") $(cat "$work/b2.json")" >&2
    rm -f "$work"/b.db*
fi

# ---- c: ack latency at 10,000 snapshots/s --------------------------------------------------------
if want c; then
    echo "== c: ack latency at 10,000 snapshots/s" >&2
    [[ -f $work/base.json ]] ||
        "$base" --db "$work/base.db" --rows 300000 --hosts 1000 --batch "$batch" --json >"$work/base.json"
    start_collector 17503 "$work/c.db"
    "$sim" --certs "$pki" --connect 127.0.0.1:17503 --agents 1000 --rate 10000 --duration 50 \
        --warmup 15 --connecting 128 --json --quiet >"$work/c.json"
    stop_collector
    p50=$(jget "$work/c.json" "latency_ms['p50']")
    p99=$(jget "$work/c.json" "latency_ms['p99']")
    mx=$(jget "$work/c.json" "latency_ms['max']")
    got=$(jget "$work/c.json" "round(acked_per_s)")
    txn=$(jget "$work/base.json" "round($batch / rows_per_s * 1000, 1)")
    met=no
    python3 -c "import sys; sys.exit(0 if $p99 < 50 and $got >= 9500 else 1)" && met=yes
    row "| (c) ack latency at 10,000 snapshots/s (1,000 agents; $got/s acked) | p50 $p50 ms, p99 $p99 ms, max $mx ms | $txn ms per $batch-row transaction (bare loop) | $(ratio "$p99" "$txn") (p99) | p99 < 50 ms | $met |"
    rm -f "$work"/c.db*
fi

# ---- d: operator queries -------------------------------------------------------------------------
if want d; then
    echo "== d: operator queries, 100,000 hosts, 1,000 with 7 days at 1/min" >&2
    qdb=$cache/querydb-v1.db
    t0=$(date +%s)
    "$queries" --db "$qdb" --reps 7 --json >"$work/d.json"
    echo "   query database ready/populated + measured in $(($(date +%s) - t0)) s ($(du -h "$qdb" | cut -f1))" >&2
    fleet=$(jget "$work/d.json" "fleet_ms['median']")
    hist=$(jget "$work/d.json" "history_ms['median']")
    # Baseline: the same statements through the sqlite3 CLI, every row printed to /dev/null (what
    # an operator would run instead; the CLI's start-up is included), timed to the millisecond.
    end=$((1760000000000 + 7 * 1440 * 60000))
    ms_of() { local t0 t1; t0=$(date +%s%N); sqlite3 "$qdb" "$1" >/dev/null; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)); }
    clif=$(ms_of "SELECT identity, first_seen, last_seen, agent_version, os, platform, interval_ms, last_seq, gaps, dropped, latest_id, latest_seq, latest_taken_at, latest_netns, latest_pressure_pct, latest_pressure_source, latest_tcp_in_use, latest_tcp_max, latest_udp_in_use, latest_udp_max, latest_exclusive_ports, latest_kernel_ports, latest_total_sockets, latest_worst_dest, latest_worst_dest_conns, latest_top_pid, latest_top_name, latest_top_ports, latest_port_starved FROM hosts ORDER BY identity")
    clih=$(ms_of "SELECT (taken_at / 300000) * 300000 AS b, max(pressure_pct), avg(pressure_pct), count(*) FROM snapshots WHERE host = 'fleet-000037' AND taken_at >= $((end - 7 * 1440 * 60000)) AND taken_at < $end GROUP BY b ORDER BY b")
    met=no
    python3 -c "import sys; sys.exit(0 if $fleet < 100 else 1)" && met=yes
    row "| (d) fleet table, 100,000 hosts (store_reader_hosts, median of 7) | $fleet ms | $clif ms (same SQL, sqlite3 CLI) | $(ratio "$fleet" "$clif") | < 100 ms | $met |"
    met=no
    python3 -c "import sys; sys.exit(0 if $hist < 50 else 1)" && met=yes
    row "| (d) one host's 7-day history at 5 min (store_reader_history, median of 7) | $hist ms | $clih ms (same SQL, sqlite3 CLI) | $(ratio "$hist" "$clih") | < 50 ms | $met |"
fi

# ---- e: the agent --------------------------------------------------------------------------------
if want e; then
    echo "== e: the agent (tests/bench/bench_agent.sh)" >&2
    if [[ -x $here/bench_agent.sh && -x $build/agent/epwatch-agent ]]; then
        SIZES=${SIZES:-"1000 10000 50000"} timeout 1500 "$here/bench_agent.sh" "$build" || echo "bench_agent.sh failed" >&2
    else
        echo "   skipped: $build/agent/epwatch-agent or bench_agent.sh missing" >&2
    fi
fi

if [[ -n $out ]]; then
    {
        echo
        echo "$mline"
        echo
        printf '%s\n' "${rows[@]}"
    } >>"$out"
fi
