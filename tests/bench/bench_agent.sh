#!/bin/bash
# bench_agent.sh: times `epwatch-agent --once --json` against `ss -tan` and `ss -tanp` at 1k, 10k
# and 50k loopback connections, and measures the agent's peak RSS.
#
# Usage (root):  tests/bench/bench_agent.sh [BUILD_DIR]      (default: build-linux next to tests/)
# Environment:   SIZES="1000 10000 50000"  connection counts
#                REPS=7                      repetitions per tool and size (medians reported)
#                IDLE_SECONDS=185            length of the idle measurement (0 skips it)
#
# What it does, per size N, inside a fresh network namespace (`ip netns add epwbench-<pid>`,
# deleted on exit whatever happens):
#   - lo up, net.ipv4.ip_local_port_range widened to 1024-65535;
#   - starts BUILD_DIR/tests/epw_holdconns -n N (N connections to its own listener on
#     127.0.0.1:999, both ends held: 2N sockets and 2N fds, spread over as many worker processes
#     as the fd hard limit requires),
#     waits for its "ready" line, then runs each tool REPS times in turn (agent, ss -tan, ss -tanp,
#     output to /dev/null) and takes wall-clock medians, then the agent's peak RSS from three
#     more runs under /usr/bin/time ("Maximum resident set size", the largest of the three);
#   - prints one markdown table row per size: medians in ms, ratios agent/ss, and peak RSS,
#     below a line naming the machine (CPU model, cores, kernel), ready for the README.
# Then, on the host itself (its real sockets, as in production), the idle cost: the agent running
# standalone at the default 60 s interval (`--interval 60s --log FILE --quiet`) for IDLE_SECONDS,
# its CPU (user + system from wait4's rusage) and RSS at the end, beside what the usual
# alternative costs over the same window: `ss -tanp` once a minute (the median of 5 runs' user +
# system time, times the samples the agent took).
# The machine is shared: ratios are only comparable between runs on an otherwise idle host (the
# agent uses two threads, ss one, so load on the second core costs the agent more).
# The /proc scan of the agent (and of ss -p) covers every process of the host, as in production.
# Targets: at 50k connections agent <= 1/10 of `ss -tanp`, peak RSS < 8 MB.
# Bounded: every command runs under `timeout`, holders are killed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build-linux}
agent=$build/agent/epwatch-agent
hold=$build/tests/epw_holdconns
sizes=${SIZES:-"1000 10000 50000"}
reps=${REPS:-7}
ns=epwbench-$$
holder=

for f in "$agent" "$hold"; do
    [ -x "$f" ] || { echo "bench_agent: $f missing (build first)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench_agent: needs root (ip netns)" >&2; exit 1; }
command -v ss >/dev/null || { echo "bench_agent: ss (iproute2) missing" >&2; exit 1; }

cleanup() {
    if [ -n "$holder" ]; then
        kill "$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "${tmp:-}"
}
trap cleanup EXIT
tmp=$(mktemp -d /tmp/epwbench.XXXXXX)

# The machine, for the record (a markdown paragraph, then the table).
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, Linux $(uname -r); medians of $reps runs."
echo
echo '| connections | sockets | agent ms | ss -tan ms | ss -tanp ms | agent / ss -tan | agent / ss -tanp | agent peak RSS KB |'
echo '|---:|---:|---:|---:|---:|---:|---:|---:|'
for n in $sizes; do
    # A fresh namespace per size: the TIME_WAIT sockets of the previous size stay behind.
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" sh -c 'echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range'
    mkfifo "$tmp/ready.$n"
    timeout 900 ip netns exec "$ns" "$hold" -n "$n" >"$tmp/ready.$n" </dev/null &
    holder=$!
    if ! timeout 300 head -n1 "$tmp/ready.$n" | grep -q '^ready'; then
        echo "bench_agent: holder for $n connections did not get ready" >&2
        exit 1
    fi
    timeout 900 ip netns exec "$ns" python3 - "$agent" "$reps" "$n" <<'PY'
import os, statistics, subprocess, sys, time

agent, reps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tools = {
    "agent": [agent, "--once", "--json"],
    "ss_tan": ["ss", "-tan"],
    "ss_tanp": ["ss", "-tanp"],
}
times = {k: [] for k in tools}
devnull = os.open(os.devnull, os.O_WRONLY)
sockets = 0
for _ in range(reps):
    for name, argv in tools.items():  # interleaved, so drift hits every tool alike
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.dup2(devnull, 1)
            os.execvp(argv[0], argv)
        _, status, ru = os.wait4(pid, 0)
        dt = (time.perf_counter() - t0) * 1000.0
        if status != 0:
            sys.exit(f"bench_agent: {argv} exited with status {status}")
        times[name].append(dt)
# Peak RSS through /usr/bin/time: its child is a small process before exec, whereas a child
# forked from this Python would report Python's own RSS (ru_maxrss spans the exec).
rss = 0
for _ in range(3):
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + tools["agent"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=True)
    rss = max(rss, int(r.stderr.strip().splitlines()[-1]))
out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
sockets = out.count("\n")
med = {k: statistics.median(v) for k, v in times.items()}
print(f"| {n} | {sockets} | {med['agent']:.1f} | {med['ss_tan']:.1f} | {med['ss_tanp']:.1f} | "
      f"{med['agent'] / med['ss_tan']:.2f} | {med['agent'] / med['ss_tanp']:.3f} | {rss} |",
      flush=True)
PY
    kill "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    holder=
done

idle=${IDLE_SECONDS:-185}
if [ "$idle" -gt 0 ]; then
    echo
    echo "| idle, 60 s interval, ${idle} s | samples | agent CPU ms | agent % of one core | agent RSS KB | ss -tanp once a minute: CPU ms | ss -tanp % of one core |"
    echo '|---|---:|---:|---:|---:|---:|---:|'
    # CPU from wait4's rusage (microseconds, exited threads included; /proc's clock ticks are too
    # coarse for a few milliseconds a minute).
    timeout $((idle + 120)) python3 - "$agent" "$idle" "$tmp" <<'PY'
import os, signal, statistics, sys, time

agent, idle, tmp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
log = os.path.join(tmp, "idle.log")
pid = os.fork()
if pid == 0:
    err = os.open(os.path.join(tmp, "idle.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 2)
    os.execv(agent, [agent, "--interval", "60s", "--log", log, "--quiet"])
time.sleep(idle)
with open(f"/proc/{pid}/status") as f:
    rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
os.kill(pid, signal.SIGTERM)
_, status, ru = os.wait4(pid, 0)
agent_ms = (ru.ru_utime + ru.ru_stime) * 1000.0
with open(log) as f:  # one table block per sample, each under its header line
    samples = sum(1 for l in f if l.startswith("Computer "))
runs = []
devnull = os.open(os.devnull, os.O_WRONLY)
for _ in range(5):
    p = os.fork()
    if p == 0:
        os.dup2(devnull, 1)
        os.execvp("ss", ["ss", "-tanp"])
    _, st, r = os.wait4(p, 0)
    runs.append((r.ru_utime + r.ru_stime) * 1000.0)
ss_ms = statistics.median(runs) * samples
print(f"| idle, 60 s interval, {idle} s | {samples} | {agent_ms:.1f} | {agent_ms / (idle * 10):.4f} % | "
      f"{rss} | {ss_ms:.1f} | {ss_ms / (idle * 10):.4f} % |", flush=True)
PY
fi
