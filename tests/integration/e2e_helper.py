#!/usr/bin/env python3
"""e2e_helper.py: the moving parts of e2e_exhaustion.sh that are easier in Python.

  receiver PORT DIR           webhook receiver on 127.0.0.1:PORT: every POST body is written to
                              DIR/NNNN.json (answer 200); runs until killed
  exhaust LPORT STATE         listens on 127.0.0.1:LPORT and connects to it until connect() fails
                              with EADDRNOTAVAIL, holding every connection; writes STATE/exhausted
                              ("COUNT PID") when the range is exhausted, then waits for the file
                              STATE/release and closes every socket with SO_LINGER 0 (an RST: no
                              TIME_WAIT is left, so the test needs no 60 s wait), writes
                              STATE/released and exits
  wait-hook DIR TRANSITION HOST LPORT PID TIMEOUT
                              waits for a webhook body with that transition of a "pressure" alert
                              of HOST; for "raised" also checks severity critical, the destination
                              (remote port LPORT) and the top process (PID) in the evidence
  check-alerts FILE HOST ACTIVE   `epwatch alerts --json` output has HOST's pressure alert,
                              critical, with active == ACTIVE (true/false) and its evidence
  check-hosts FILE HOST STATUS    `epwatch hosts --json` output has HOST with STATUS and the
                              contract's fields
Exit 0 on success, 1 with a message otherwise.
"""
import errno
import http.server
import json
import os
import socket
import struct
import sys
import time


def fail(msg):
    print("e2e_helper: " + msg, file=sys.stderr)
    sys.exit(1)


def receiver(port, out):
    os.makedirs(out, exist_ok=True)
    count = [0]

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            count[0] += 1
            tmp = os.path.join(out, ".%04d.tmp" % count[0])
            with open(tmp, "wb") as f:
                f.write(body)
            os.rename(tmp, os.path.join(out, "%04d.json" % count[0]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()


def exhaust(lport, state):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen(4096)
    held = []
    while True:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            c.connect(("127.0.0.1", lport))
        except OSError as e:
            c.close()
            if e.errno == errno.EADDRNOTAVAIL:
                break
            fail("connect: %s" % e)
        s, _ = ls.accept()
        held += [c, s]
        if len(held) > 200000:
            fail("no exhaustion: is ip_local_port_range small?")
    with open(os.path.join(state, "exhausted.tmp"), "w") as f:
        f.write("%d %d\n" % (len(held) // 2, os.getpid()))
    os.rename(os.path.join(state, "exhausted.tmp"), os.path.join(state, "exhausted"))
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(state, "release")):
        if time.time() > deadline:
            fail("never released")
        time.sleep(0.05)
    linger = struct.pack("ii", 1, 0)
    for s in held:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()
    ls.close()
    with open(os.path.join(state, "released"), "w") as f:
        f.write("ok\n")


def load_hooks(d):
    out = []
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.endswith(".json"):
            with open(os.path.join(d, name)) as f:
                try:
                    out.append((name, json.load(f)))
                except ValueError:
                    fail("%s: not JSON" % name)
    return out


def wait_hook(d, transition, host, lport, pid, timeout):
    t0 = time.time()
    while True:
        for name, a in load_hooks(d):
            if a.get("transition") != transition or a.get("kind") != "pressure":
                continue
            if a.get("host") != host:
                fail("%s: host %r, expected %r" % (name, a.get("host"), host))
            ev = a.get("evidence") or {}
            if transition == "raised":
                if a.get("severity") != "critical":
                    fail("%s: severity %r" % (name, a.get("severity")))
                dest = ev.get("destination") or {}
                if dest.get("remote_port") != lport or dest.get("remote_address") != "127.0.0.1":
                    fail("%s: destination %r, expected 127.0.0.1:%d" % (name, dest, lport))
                tp = ev.get("top_process") or {}
                if tp.get("pid") != pid or not tp.get("name"):
                    fail("%s: top process %r, expected pid %d" % (name, tp, pid))
                if a.get("active") is not True or not a.get("key"):
                    fail("%s: active/key %r %r" % (name, a.get("active"), a.get("key")))
            else:
                if a.get("active") is not False or not a.get("resolved_at"):
                    fail("%s: active %r resolved_at %r" % (name, a.get("active"),
                                                          a.get("resolved_at")))
            print("%s %s after %.1f s: %s" % (name, transition, time.time() - t0,
                                               a.get("summary")))
            return
        if time.time() - t0 > timeout:
            fail("no %r pressure alert within %.0f s; bodies: %r" %
                 (transition, timeout, [n for n, _ in load_hooks(d)]))
        time.sleep(0.05)


def check_alerts(path, host, active):
    with open(path) as f:
        arr = json.load(f)
    want = active == "true"
    for a in arr:
        for k in ("host", "kind", "severity", "active", "raised_at", "resolved_at", "evidence"):
            if k not in a:
                fail("alerts --json: %r lacks %s" % (a, k))
        if a["host"] == host and a["kind"] == "threshold" and a["severity"] == "critical" \
                and a["active"] is want:
            if want and a["resolved_at"] is not None:
                fail("active alert with resolved_at %r" % a["resolved_at"])
            if not want and not a["resolved_at"]:
                fail("resolved alert without resolved_at")
            if (a["evidence"].get("destination") or {}).get("remote_address") != "127.0.0.1":
                fail("alert evidence lacks the destination: %r" % a["evidence"])
            print("alerts --json: %s %s active=%s" % (a["host"], a["severity"], a["active"]))
            return
    fail("alerts --json: no critical threshold alert of %s with active=%s in %r" %
         (host, active, arr))


def check_hosts(path, host, status):
    with open(path) as f:
        arr = json.load(f)
    for h in arr:
        for k in ("host", "pressure_pct", "status", "last_seen", "active_alerts"):
            if k not in h:
                fail("hosts --json: %r lacks %s" % (h, k))
        if h["host"] == host:
            if h["status"] != status:
                fail("hosts --json: %s status %r, expected %r" % (host, h["status"], status))
            if status == "critical" and (h["active_alerts"] < 1 or h["pressure_pct"] < 90):
                fail("hosts --json: %r" % h)
            print("hosts --json: %s %s %.0f%% alerts=%d" % (host, h["status"], h["pressure_pct"],
                                                            h["active_alerts"]))
            return
    fail("hosts --json: %s missing in %r" % (host, arr))


def main(a):
    if len(a) >= 3 and a[0] == "receiver":
        receiver(int(a[1]), a[2])
    elif len(a) >= 3 and a[0] == "exhaust":
        exhaust(int(a[1]), a[2])
    elif len(a) >= 7 and a[0] == "wait-hook":
        wait_hook(a[1], a[2], a[3], int(a[4]), int(a[5]), float(a[6]))
    elif len(a) >= 4 and a[0] == "check-alerts":
        check_alerts(a[1], a[2], a[3])
    elif len(a) >= 4 and a[0] == "check-hosts":
        check_hosts(a[1], a[2], a[3])
    else:
        fail("usage: see the docstring")


if __name__ == "__main__":
    main(sys.argv[1:])
