#!/usr/bin/env python3
"""opcli_test: runs the built `epwatch` CLI against a live HTTPS operator API and checks its
tables, --json output, messages and exit codes (0 ok, 1 API error, 2 usage, 3 unreachable/TLS).

The API is opcli_server.py's canned stand-in, started in-process on a free loopback port, with
certificates made at test time by certs/epwatch-certs: CA "good" (collector certificate naming
only DNS:collector, operator and agent certificates) and CA "other" (an operator certificate and
a collector certificate nobody here trusts). Every epwatch run is bounded by a timeout.

Usage: opcli_test.py --epwatch PATH --certs-tool PATH --workdir DIR [-k SUBSTRING]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opcli_server  # noqa: E402

RUN_TIMEOUT = 20
RC_OK, RC_FAIL, RC_USAGE, RC_CONN = 0, 1, 2, 3


class Ctx:
    pass


def sh(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


def make_certs(tool, d):
    good, other = os.path.join(d, "good"), os.path.join(d, "other")
    sh([tool, "init", good])
    sh([tool, "collector", good, "collector"])
    sh([tool, "operator", good, "op1"])
    sh([tool, "--ca-name", "other CA", "init", other])
    sh([tool, "operator", other, "op1"])
    sh([tool, "collector", other, "collector", "--ip", "127.0.0.1"])
    return good, other


def free_closed_port():
    """A loopback port with nothing listening (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(c, args, env_extra=None, locale="C.UTF-8"):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LC_ALL", "LC_CTYPE", "LANG", "EPWATCH_CONFIG", "EPWATCH_TOKEN")}
    env["HOME"] = c.home  # no stray per-user config
    env["LC_ALL"] = locale
    env.update(env_extra or {})
    p = subprocess.run([c.epwatch] + args, capture_output=True, timeout=RUN_TIMEOUT, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def conn(c, cert=True, ca=None, port=None):
    """Connection flags: by address 127.0.0.1, verifying the certificate's name 'collector'."""
    a = ["--api", "https://127.0.0.1:%d" % (port or c.port), "--server-name", "collector",
         "--ca", ca or os.path.join(c.good, "ca.crt")]
    if cert:
        a += ["--cert", os.path.join(c.good, "op1.crt"), "--key", os.path.join(c.good, "op1.key")]
    return a


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_rc(got, want, out, err):
    expect(got == want, "exit %d, want %d\nstdout:\n%s\nstderr:\n%s" % (got, want, out, err))


def last_request(c):
    return c.server.requests[-1] if c.server.requests else ""


# ---- cases ----

def case_hosts_table(c):
    rc, out, err = run(c, conn(c) + ["hosts"])
    expect_rc(rc, RC_OK, out, err)
    lines = out.splitlines()
    expect(lines[0].split() == ["HOST", "PRESSURE", "STATUS", "TREND", "LAST", "SEEN", "ALERTS",
                                "TOP", "PROCESS"], "header: %r" % lines[0])
    # Silent first, then worst pressure first, whatever order the server used.
    expect([l.split()[0] for l in lines[1:]] == ["old-9", "db-1", "web-2"], out)
    expect("93.2%" in lines[2] and "critical" in lines[2] and "↑ +12.5%/h" in lines[2], lines[2])
    expect("↘ -2.5%/h" in lines[3], lines[3])
    expect("pgbouncer (pid 4242): 24000 ports" in lines[2], lines[2])
    expect(" 2h ago " in lines[1], lines[1])
    ago = lines[3].split("  ")
    expect(any(x.strip() in tuple("%ds ago" % n for n in range(12, 18)) for x in ago), lines[3])
    # Aligned: every row starts its PRESSURE column where the header does (right-aligned).
    end = lines[0].index("PRESSURE") + len("PRESSURE")
    expect(all(l[end - 1] == "%" for l in lines[1:]), out)
    expect(last_request(c) == "/api/v1/hosts", last_request(c))


def case_hosts_ascii(c):
    for extra, loc in (([], "C"), (["--ascii"], "C.UTF-8")):
        rc, out, err = run(c, conn(c) + ["hosts"] + extra, locale=loc)
        expect_rc(rc, RC_OK, out, err)
        expect(out.isascii(), "non-ASCII output with %s LC_ALL=%s:\n%s" % (extra, loc, out))
        expect("^ +12.5%/h" in out and "\\ -2.5%/h" in out, out)


def case_hosts_json(c):
    rc, out, err = run(c, conn(c) + ["hosts", "--json"])
    expect_rc(rc, RC_OK, out, err)
    arr = json.loads(out)
    expect(isinstance(arr, list) and len(arr) == 3, out)
    for h in arr:
        for k in ("host", "pressure_pct", "status", "last_seen", "active_alerts"):
            expect(k in h, "%s missing in %r" % (k, h))
        expect(h["status"] in ("ok", "warning", "critical", "silent"), h["status"])
    expect([h["host"] for h in arr] == ["old-9", "db-1", "web-2"], out)


def case_history(c):
    rc, out, err = run(c, conn(c) + ["history", "db-1"])
    expect_rc(rc, RC_OK, out, err)
    expect(last_request(c) == "/api/v1/hosts/db-1/history?since=6h", last_request(c))
    lines = out.splitlines()
    expect(lines[0].startswith("db-1  ") and "step 5m  10 points" in lines[0], lines[0])
    spark = lines[1]
    expect(spark.startswith("max% 0-100 |") and "peak 92.5% at" in spark, spark)
    bar = spark[spark.index("|") + 1:spark.rindex("|")]
    # 12 buckets, 10.0 + 7.5 i percent, buckets 4 and 5 empty.
    expect(bar == "▁▂▃▃  ▅▆▆▇▇█", "sparkline %r" % bar)
    expect(lines[3].split() == ["TIME", "MAX%", "AVG%", "SAMPLES"], lines[3])
    expect(len(lines) == 4 + 10, out)

    rc, out, err = run(c, conn(c) + ["history", "db-1", "--since", "24h", "--until", "1h",
                                     "--step", "15m", "--ascii"])
    expect_rc(rc, RC_OK, out, err)
    req = last_request(c)
    expect(req.startswith("/api/v1/hosts/db-1/history?since=24h&until=20") and
           req.endswith("Z&step=15m") and "%3A" in req, req)
    expect(out.isascii() and "|_.--  =++**#|" in out, out)

    rc, out, err = run(c, conn(c) + ["history", "db-1", "--json"])
    expect_rc(rc, RC_OK, out, err)
    obj = json.loads(out)
    expect(obj["host"] == "db-1" and len(obj["points"]) == 10 and obj["step_s"] == 300, out)


def case_top(c):
    rc, out, err = run(c, conn(c) + ["top", "db-1"])
    expect_rc(rc, RC_OK, out, err)
    lines = out.splitlines()
    expect(lines[0].split() == ["Computer", "DateTime", "LocalAddress", "#OfEPortsInUse",
                                "Max#OfEPorts", "%EPortUsage", "#OfTcpListeningPorts",
                                "#OfPids"], lines[0])
    expect(lines[2].split()[0] == "db-1" and lines[2].split()[2:] ==
           ["10.0.0.2", "26300", "28232", "93.2", "4", "31"], lines[2])
    for s in ("\nUDP:\n", "\nPressure: 93.2% (source: destination 10.0.0.5:5432",
              "\nTop processes:\n", "pgbouncer", "\nTop remote endpoints:\n", "10.0.0.5",
              "canned by opcli_server"):
        expect(s in out, "%r not in:\n%s" % (s, out))
    expect(last_request(c) == "/api/v1/hosts/db-1/snapshot", last_request(c))

    rc, out, err = run(c, conn(c) + ["top", "db-1", "--at", "2026-11-25T12:00:00Z"])
    expect_rc(rc, RC_OK, out, err)
    expect(last_request(c) == "/api/v1/hosts/db-1/snapshot?at=2026-11-25T12%3A00%3A00Z",
           last_request(c))

    rc, out, err = run(c, conn(c) + ["top", "db-1", "--json"])
    expect_rc(rc, RC_OK, out, err)
    obj = json.loads(out)
    expect(obj["hostname"] == "db-1" and obj["seq"] == 8123, out)


def case_alerts(c):
    rc, out, err = run(c, conn(c) + ["alerts"])
    expect_rc(rc, RC_OK, out, err)
    expect(last_request(c) == "/api/v1/alerts?active=true", last_request(c))
    lines = out.splitlines()
    expect(lines[0].split() == ["ID", "HOST", "KIND", "SEVERITY", "STATE", "RAISED", "RESOLVED",
                                "SUMMARY"], lines[0])
    expect(len(lines) == 3 and "active" in lines[1] and "resolved" not in out, out)
    expect(lines[1].split()[:5] == ["12", "db-1", "threshold", "critical", "active"], lines[1])

    rc, out, err = run(c, conn(c) + ["alerts", "--all"])
    expect_rc(rc, RC_OK, out, err)
    expect(last_request(c) == "/api/v1/alerts", last_request(c))
    expect(len(out.splitlines()) == 4 and "resolved" in out and " 3h ago " in out, out)

    rc, out, err = run(c, conn(c) + ["alerts", "--all", "--host", "web-2", "--json"])
    expect_rc(rc, RC_OK, out, err)
    expect(last_request(c) == "/api/v1/alerts?host=web-2", last_request(c))
    arr = json.loads(out)
    expect(len(arr) == 1 and arr[0]["active"] is False, out)
    for k in ("host", "kind", "severity", "active", "raised_at", "resolved_at", "evidence"):
        expect(k in arr[0], "%s missing in %r" % (k, arr[0]))

    rc, out, err = run(c, conn(c) + ["alerts", "--json"])
    expect_rc(rc, RC_OK, out, err)
    arr = json.loads(out)
    expect(len(arr) == 2 and all(a["active"] for a in arr), out)
    expect(all(a["resolved_at"] is None for a in arr), out)


def case_unknown_host(c):
    rc, out, err = run(c, conn(c) + ["top", "nope"])
    expect_rc(rc, RC_FAIL, out, err)
    expect("no such host: nope" in err and "404" in err and out == "", err)


def case_token(c):
    rc, out, err = run(c, conn(c, cert=False) + ["--token", "good-token", "hosts", "--json"])
    expect_rc(rc, RC_OK, out, err)
    rc, out, err = run(c, conn(c, cert=False) + ["hosts"], {"EPWATCH_TOKEN": "good-token"})
    expect_rc(rc, RC_OK, out, err)
    rc, out, err = run(c, conn(c, cert=False) + ["--token", "bad-token", "hosts"])
    expect_rc(rc, RC_FAIL, out, err)
    expect("invalid bearer token" in err and "401" in err, err)


def case_no_credentials(c):
    rc, out, err = run(c, conn(c, cert=False) + ["hosts"])
    expect_rc(rc, RC_FAIL, out, err)
    expect("401" in err and "operator certificate or a bearer token" in err, err)


def case_unreachable(c):
    port = free_closed_port()
    rc, out, err = run(c, conn(c, port=port) + ["hosts"])
    expect_rc(rc, RC_CONN, out, err)
    want = "cannot reach collector at https://127.0.0.1:%d: connection refused" % port
    expect(want in err, err)


def case_client_cert_other_ca(c):
    a = conn(c, cert=False) + ["--cert", os.path.join(c.other, "op1.crt"),
                               "--key", os.path.join(c.other, "op1.key"), "hosts"]
    rc, out, err = run(c, a)
    expect_rc(rc, RC_CONN, out, err)
    expect("refused our client certificate" in err and "op1.crt" in err, err)


def case_untrusted_server(c):
    rc, out, err = run(c, conn(c, ca=os.path.join(c.other, "ca.crt")) + ["hosts"])
    expect_rc(rc, RC_CONN, out, err)
    expect("collector's certificate" in err and "not trusted by --ca" in err and
           "other/ca.crt" in err, err)


def case_wrong_name(c):
    a = [x for x in conn(c) if x not in ("--server-name", "collector")]
    rc, out, err = run(c, a + ["hosts"])
    expect_rc(rc, RC_CONN, out, err)
    expect("not valid for the name '127.0.0.1'" in err and "server_name" in err, err)


def case_timeout(c):
    # Accepts TCP (the kernel does, from the backlog) but never speaks TLS.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    try:
        t0 = time.monotonic()
        rc, out, err = run(c, conn(c, port=s.getsockname()[1]) + ["--timeout", "1s", "hosts"])
        expect(time.monotonic() - t0 < 10, "took too long")
    finally:
        s.close()
    expect_rc(rc, RC_CONN, out, err)
    expect("cannot reach collector at https://127.0.0.1:" in err and
           "no answer within 1 s" in err, err)


def case_config_file(c):
    ini = os.path.join(c.workdir, "epwatch.ini")
    with open(ini, "w") as f:
        f.write("; written by opcli_test\napi = https://127.0.0.1:%d\nserver_name = collector\n"
                "ca = %s\ncert = %s\nkey = %s\ntimeout = 10s\n"
                % (c.port, os.path.join(c.good, "ca.crt"), os.path.join(c.good, "op1.crt"),
                   os.path.join(c.good, "op1.key")))
    rc, out, err = run(c, ["--config", ini, "hosts"])
    expect_rc(rc, RC_OK, out, err)
    rc, out, err = run(c, ["hosts", "--json"], {"EPWATCH_CONFIG": ini})
    expect_rc(rc, RC_OK, out, err)
    # The per-user default location.
    user = os.path.join(c.home, ".config", "epwatch")
    os.makedirs(user, exist_ok=True)
    shutil.copy(ini, os.path.join(user, "epwatch.ini"))
    try:
        rc, out, err = run(c, ["alerts"])
        expect_rc(rc, RC_OK, out, err)
        # Flags override the file: a closed port on the command line wins.
        port = free_closed_port()
        rc, out, err = run(c, ["--api", "https://127.0.0.1:%d" % port, "hosts"])
        expect_rc(rc, RC_CONN, out, err)
        expect(str(port) in err, err)
    finally:
        shutil.rmtree(os.path.join(c.home, ".config"))
    bad = os.path.join(c.workdir, "bad.ini")
    with open(bad, "w") as f:
        f.write("api = https://x:1\ntimeout = soon\n")
    rc, out, err = run(c, ["--config", bad, "hosts"])
    expect_rc(rc, RC_USAGE, out, err)
    expect("bad.ini:2" in err and "timeout" in err, err)
    rc, out, err = run(c, ["--config", os.path.join(c.workdir, "missing.ini"), "hosts"])
    expect_rc(rc, RC_USAGE, out, err)
    expect("missing.ini" in err, err)


def case_usage(c):
    rc, out, err = run(c, ["--help"])
    expect_rc(rc, RC_OK, out, err)
    for s in ("Usage: epwatch", "hosts", "history HOST", "top HOST", "alerts", "--api",
              "--ca", "--cert", "--key", "--token", "--server_name", "Exit status"):
        expect(s in out, "%r not in --help" % s)
    for cmd in ("hosts", "history", "top", "alerts"):
        rc, out, err = run(c, [cmd, "--help"])
        expect_rc(rc, RC_OK, out, err)
        expect(out.startswith("Usage: epwatch " + cmd), out)
    rc, out, err = run(c, ["--version"])
    expect_rc(rc, RC_OK, out, err)
    expect(out.startswith("epwatch 0.") or out.startswith("epwatch 1."), out)
    for args, msg in ((["hosts"], "no collector address"),
                      (conn(c) + [], "missing COMMAND"),
                      (conn(c) + ["fleet"], "unknown command 'fleet'"),
                      (conn(c) + ["hosts", "--bogus"], "unknown option '--bogus'"),
                      (conn(c) + ["top"], "missing HOST"),
                      (conn(c) + ["history", "db-1", "--since", "yesterday"], "--since"),
                      (conn(c) + ["history", "db-1", "--step"], "missing value"),
                      (conn(c) + ["hosts", "--at", "1h"], "not valid for this command"),
                      (["--api", "http://127.0.0.1:1", "hosts"], "https:// only"),
                      (conn(c) + ["--timeout", "forever", "hosts"], "timeout"),
                      (conn(c, ca="/nonexistent/ca.crt") + ["hosts"], "cannot read")):
        rc, out, err = run(c, args)
        expect_rc(rc, RC_USAGE, out, err)
        expect(msg in err, "%r not in stderr for %r:\n%s" % (msg, args, err))


def case_example_config(c):
    """collector/epwatch.ini.example parses; "~/" paths are expanded; flags override it."""
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "collector",
                           "epwatch.ini.example")
    cfg = os.path.join(c.home, ".config", "epwatch")
    os.makedirs(cfg, exist_ok=True)
    for name, src in (("operator.crt", "op1.crt"), ("operator.key", "op1.key")):
        shutil.copy(os.path.join(c.good, src), os.path.join(cfg, name))
    try:
        rc, out, err = run(c, ["--config", example, "--ca", os.path.join(c.good, "ca.crt"),
                               "--api", "https://127.0.0.1:%d" % c.port,
                               "--server-name", "collector", "hosts"])
        expect_rc(rc, RC_OK, out, err)
    finally:
        shutil.rmtree(os.path.join(c.home, ".config"))


CASES = [case_usage, case_hosts_table, case_hosts_ascii, case_hosts_json, case_history,
         case_top, case_alerts, case_unknown_host, case_token, case_no_credentials,
         case_unreachable, case_client_cert_other_ca, case_untrusted_server,
         case_wrong_name, case_timeout, case_config_file, case_example_config]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epwatch", required=True)
    ap.add_argument("--certs-tool", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    a = ap.parse_args()

    c = Ctx()
    c.epwatch = os.path.abspath(a.epwatch)
    c.workdir = os.path.abspath(a.workdir)
    shutil.rmtree(c.workdir, ignore_errors=True)
    os.makedirs(c.workdir)
    c.home = os.path.join(c.workdir, "home")
    os.makedirs(c.home)
    c.good, c.other = make_certs(a.certs_tool, os.path.join(c.workdir, "certs"))
    c.server = opcli_server.Server(0, os.path.join(c.good, "collector.crt"),
                                   os.path.join(c.good, "collector.key"),
                                   os.path.join(c.good, "ca.crt"))
    c.port = c.server.start()

    failed = 0
    try:
        for case in CASES:
            if a.k not in case.__name__:
                continue
            try:
                case(c)
                print("ok    %s" % case.__name__, flush=True)
            except (AssertionError, subprocess.TimeoutExpired, ValueError, KeyError,
                    IndexError) as e:
                failed += 1
                print("FAIL  %s: %s" % (case.__name__, e), flush=True)
    finally:
        c.server.shutdown()
        c.server.server_close()
    print("%d failed" % failed if failed else "all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
