#!/usr/bin/env python3
"""wine_sockets: the Windows agent under Wine sees the Linux host's loopback sockets.

Usage: wine_sockets.py COMMAND... (e.g. wine epwatch-agent.exe --json --count 1)

Holds, on 127.0.0.1 and on ::1: a listener with three connections whose client ends are bound to
ports in the Windows dynamic range, a second listener with one connection left in TIME_WAIT on
the client side, and a UDP socket on a range port. Runs COMMAND while they exist and checks its
JSON: the states, the listening ports and the destinations (ports in host byte order), the
per-address rows of both families and both protocols. Wine 8.0 builds GetExtendedTcpTable and
GetExtendedUdpTable from /proc/net, so this holds on Debian 12's Wine only.

It also checks that the agent is honest about what Wine lacks: WMI's ROOT\StandardCimv2 and netsh
(a stub with no output) cannot give the dynamic ranges, so every range says source "default" and
a note names both failures and the assumed default; the event log cannot be subscribed to
(EvtSubscribe fails), which a note says too.
"""
import json
import random
import socket
import subprocess
import sys

RANGE_START, RANGE_END = 50000, 60999  # inside both Linux's and Windows' default ranges
CLIENTS = 3


def bind_range(sock, addr):
    for _ in range(200):
        port = random.randint(RANGE_START, RANGE_END)
        try:
            sock.bind((addr, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port in range")


def family_setup(fam, addr, keep):
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.bind((addr, 0))
    lst.listen(16)
    keep.append(lst)
    lport = lst.getsockname()[1]
    clients = []
    for _ in range(CLIENTS):
        c = socket.socket(fam, socket.SOCK_STREAM)
        clients.append(bind_range(c, addr))
        c.connect((addr, lport))
        keep.append(c)
        keep.append(lst.accept()[0])

    tw_lst = socket.socket(fam, socket.SOCK_STREAM)
    tw_lst.bind((addr, 0))
    tw_lst.listen(1)
    keep.append(tw_lst)
    tw_port = tw_lst.getsockname()[1]
    c = socket.socket(fam, socket.SOCK_STREAM)
    tw_client = bind_range(c, addr)
    c.connect((addr, tw_port))
    srv = tw_lst.accept()[0]
    c.close()  # the active closer ends in TIME_WAIT
    assert srv.recv(1) == b""
    srv.close()

    u = socket.socket(fam, socket.SOCK_DGRAM)
    udp = bind_range(u, addr)
    keep.append(u)
    return {"listen": lport, "clients": clients, "tw_listen": tw_port, "tw_client": tw_client,
            "udp": udp}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    keep = []
    want = {"127.0.0.1": family_setup(socket.AF_INET, "127.0.0.1", keep),
            "::1": family_setup(socket.AF_INET6, "::1", keep)}
    print("holding:", json.dumps(want))
    sys.stdout.flush()
    res = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=120, check=False)
    for s in keep:
        s.close()
    if res.returncode != 0:
        print("agent exit %d\n%s" % (res.returncode, res.stderr.decode(errors="replace")))
        return 1
    snap = json.loads(res.stdout.decode(errors="replace"))
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    check(snap.get("platform") == "windows", "platform windows")
    states = snap.get("states", {})
    check(states.get("ESTABLISHED", 0) >= 2 * CLIENTS,
          "ESTABLISHED >= %d (got %s)" % (2 * CLIENTS, states.get("ESTABLISHED")))
    check(states.get("TIME_WAIT", 0) >= 2, "TIME_WAIT >= 2 (got %s)" % states.get("TIME_WAIT"))
    check(states.get("UDP", 0) >= 2, "UDP >= 2 (got %s)" % states.get("UDP"))
    listening = set(snap.get("listening_ports", []))
    addrs = {(a["local_address"], a["protocol"]): a for a in snap.get("addresses", [])}
    dests = {(d["local_address"], d["remote_address"], d["remote_port"]): d
             for d in snap.get("destinations", [])}
    dest_complete = snap.get("destination_count", 0) <= len(dests)
    for addr, w in want.items():
        for port in (w["listen"], w["tw_listen"]):
            check(port in listening, "%s listener port %d listed" % (addr, port))
        tcp = addrs.get((addr, "tcp"))
        check(tcp is not None and tcp["ports_in_use"] >= CLIENTS + 1
              and tcp["listening_ports"] >= 2,
              "%s tcp row: >= %d range ports, >= 2 listening (%s)" % (addr, CLIENTS + 1, tcp))
        udp = addrs.get((addr, "udp"))
        check(udp is not None and udp["ports_in_use"] >= 1, "%s udp row (%s)" % (addr, udp))
        for port, n in ((w["listen"], CLIENTS), (w["tw_listen"], 1)):
            d = dests.get((addr, addr, port))
            if d is None and not dest_complete:
                print("skip %s -> %s:%d not among the top destinations" % (addr, addr, port))
                continue
            check(d is not None and d["connections"] == n,
                  "%s -> %s:%d: %d connection(s) (%s)" % (addr, addr, port, n, d))

    # Honest sources: what Wine cannot provide is reported, not invented.
    ranges = snap.get("ranges", [])
    check(len(ranges) == 4 and all(r.get("source") == "default" for r in ranges),
          "4 ranges, all with source default (%s)" % [(r.get("protocol"), r.get("family"),
                                                       r.get("source")) for r in ranges])
    check(all(r.get("start") == 49152 and r.get("count") == 16384 for r in ranges),
          "ranges are the documented default 49152+16384")
    notes = snap.get("notes", [])
    rng = [n for n in notes if n.startswith("dynamic port range: WMI and netsh unavailable")]
    check(len(rng) == 1 and "(WMI: " in rng[0] and "; netsh: " in rng[0]
          and "assumed Windows default 49152-65535" in rng[0],
          "range note explains WMI's and netsh's failures and the default (%s)" % rng)
    if "--once" in sys.argv:
        # A one-shot sample leaves the exhaustion events to the long-running agent.
        check(any("counted by the long-running agent" in n for n in notes),
              "one-shot events note present (%s)" % notes)
    else:
        check(any(n.startswith("event log unavailable: ") for n in notes),
              "event log note present (%s)" % notes)
    check(snap.get("events", []) == [], "no events invented")
    print("%d passed, %d failed" % (0 if failures else 1, 1 if failures else 0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
