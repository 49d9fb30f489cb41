#!/usr/bin/env python3
"""opcli_server: a stand-in for the collector's operator API (collector/API.md) for CLI tests.

HTTPS only, TLS 1.2 at most (like the collector's mbedTLS), client certificate optional but
verified against --ca when sent; a request is authorised by an operator certificate
(OU=operators) or by `Authorization: Bearer TOKEN` with one of --token; nothing valid gets 401.
(The real collector refuses an agent certificate during the TLS handshake, which Python's ssl
cannot do by OU; tests/integration/opcli_real.sh checks that case against the real collector.) Answers are canned, with times relative to the moment of the request
so relative ages are predictable. Every request path is recorded (`server.requests`) so tests can
check what the CLI asked for.

Standalone: opcli_server.py --cert C --key K --ca CA [--token T]... [--port 0]
prints "PORT n" once listening and serves until killed.
"""
import argparse
import datetime as dt
import http.server
import json
import socketserver
import ssl
import sys
import threading
import urllib.parse

TOKENS_DEFAULT = ("good-token",)


def rfc3339(t):
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canned_hosts(now):
    """Deliberately NOT in the documented order, so the CLI's own sort is visible."""
    return [
        {"host": "web-2", "pressure_pct": 41.5, "pressure_source": "host tcp", "status": "ok",
         "last_seen": rfc3339(now - dt.timedelta(seconds=12)), "active_alerts": 0,
         "trend_pct_per_hour": -2.5, "platform": "linux", "os": "Linux 6.1.0",
         "agent_version": "0.1.0", "tcp_in_use": 11700, "tcp_max": 28232, "kernel_ports": 3,
         "top_process": {"pid": 812, "name": "nginx", "ports": 11000}},
        {"host": "db-1", "pressure_pct": 93.2, "pressure_source": "destination 10.0.0.5:5432",
         "status": "critical", "last_seen": rfc3339(now - dt.timedelta(seconds=3)),
         "active_alerts": 2, "trend_pct_per_hour": 12.5, "platform": "linux",
         "os": "Linux 6.1.0", "agent_version": "0.1.0", "tcp_in_use": 26300, "tcp_max": 28232,
         "kernel_ports": 2, "top_process": {"pid": 4242, "name": "pgbouncer", "ports": 24000}},
        {"host": "old-9", "pressure_pct": 5.0, "pressure_source": "host tcp", "status": "silent",
         "last_seen": rfc3339(now - dt.timedelta(hours=2, minutes=5)), "active_alerts": 1,
         "trend_pct_per_hour": 0, "platform": "windows", "os": "Windows 10.0.20348",
         "agent_version": "0.1.0", "tcp_in_use": 800, "tcp_max": 16384, "kernel_ports": 0,
         "top_process": None},
    ]


def canned_alerts(now):
    return [
        {"id": 12, "host": "db-1", "kind": "threshold", "severity": "critical", "active": True,
         "raised_at": rfc3339(now - dt.timedelta(minutes=7)), "resolved_at": None,
         "last_notified_at": rfc3339(now - dt.timedelta(minutes=2)),
         "summary": "pressure 93.2% >= 90% (destination 10.0.0.5:5432)",
         "evidence": {"pressure_pct": 93.2, "hits": 3}},
        {"id": 11, "host": "old-9", "kind": "silent", "severity": "warning", "active": True,
         "raised_at": rfc3339(now - dt.timedelta(hours=2)), "resolved_at": None,
         "last_notified_at": rfc3339(now - dt.timedelta(minutes=30)),
         "summary": "no snapshot for 2h (interval 60s)", "evidence": {"silent_s": 7500}},
        {"id": 7, "host": "web-2", "kind": "leak", "severity": "warning", "active": False,
         "raised_at": rfc3339(now - dt.timedelta(hours=5)),
         "resolved_at": rfc3339(now - dt.timedelta(hours=3)),
         "last_notified_at": rfc3339(now - dt.timedelta(hours=4)),
         "summary": "nginx (pid 812) +900 ports/h", "evidence": {"pid": 812, "slope": 900}},
    ]


def canned_history(host, now, step_s=300):
    end = now.replace(second=0, microsecond=0)
    start = end - dt.timedelta(seconds=step_s * 12)
    points = []
    for i in range(12):
        if i in (4, 5):  # two buckets without samples: gaps in the sparkline
            continue
        pct = 10.0 + 7.5 * i
        points.append({"t": rfc3339(start + dt.timedelta(seconds=step_s * i)),
                       "max_pct": pct, "avg_pct": pct - 2, "samples": 5})
    return {"host": host, "from": rfc3339(start), "to": rfc3339(end), "step_s": step_s,
            "points": points}


def canned_snapshot(host, now):
    """The agent's --once --json object (common/epw_json.h keys) plus seq."""
    return {
        "hostname": host, "time": rfc3339(now - dt.timedelta(seconds=3)), "platform": "linux",
        "seq": 8123, "sample_duration_ms": 14.25, "pressure_pct": 93.2,
        "pressure_source": "destination 10.0.0.5:5432",
        "ranges": [{"protocol": "tcp", "family": "ipv4", "start": 32768, "count": 28232,
                    "excluded": 0, "source": "sysctl"}],
        "addresses": [
            {"local_address": "10.0.0.2", "protocol": "tcp", "family": "ipv4",
             "ports_in_use": 26300, "max_ports": 28232, "usage_pct": 93.2,
             "listening_ports": 4, "pids": 31},
            {"local_address": "0.0.0.0", "protocol": "udp", "family": "ipv4",
             "ports_in_use": 12, "max_ports": 28232, "usage_pct": 0.0, "listening_ports": 0,
             "pids": 3}],
        "host": [{"protocol": "tcp", "ports_in_use": 26302, "max_ports": 28232,
                  "usage_pct": 93.2}],
        "destinations": [{"local_address": "10.0.0.2", "remote_address": "10.0.0.5",
                          "remote_port": 5432, "protocol": "tcp", "connections": 26000,
                          "free_ports": 2232, "usage_pct": 92.1}],
        "destination_count": 14,
        "states": {"ESTABLISHED": 2300, "TIME_WAIT": 24000},
        "top_processes": [{"pid": 4242, "name": "pgbouncer", "ports": 24000, "other": False},
                          {"pid": 0, "name": "", "ports": 2300, "other": True}],
        "top_remotes": [{"remote_address": "10.0.0.5", "remote_port": 5432,
                         "connections": 26000, "other": False}],
        "kernel_ports": 2, "listening_ports": [22, 5432, 6432], "pid_count": 140,
        "exclusive_ports": 4, "total_sockets": 26500,
        "time_wait": {"seconds": 60, "default": True}, "events": [],
        "notes": ["canned by opcli_server"], "dropped_before": 0, "port_starved": False,
        "spooled": 0,
    }


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "opcli-server/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test prints what matters
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, code, message):
        self.reply(code, {"error": {"code": code, "message": message}})

    def auth(self):
        cert = self.connection.getpeercert()
        ou = None
        if cert:
            for rdn in cert.get("subject", ()):
                for key, value in rdn:
                    if key == "organizationalUnitName":
                        ou = value
        if ou == "operators":
            return True
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:] in self.server.tokens:
            return True
        if header:
            self.error(401, "invalid bearer token")
        else:
            self.error(401, "an operator certificate or a bearer token is required")
        return False

    def do_GET(self):
        self.server.requests.append(self.path)
        if not self.auth():
            return
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        # The CLI reads its clock before it sends the request, so our "now" may run ahead of
        # its: step back a whole 2 s so "7 minutes ago" never renders as "6m ago".
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
        hosts = {h["host"] for h in canned_hosts(now)}
        if url.path == "/api/v1/health":
            return self.reply(200, {"status": "ok", "version": "0.1.0", "agents_connected": 2})
        if url.path == "/api/v1/hosts":
            return self.reply(200, canned_hosts(now))
        if url.path == "/api/v1/alerts":
            alerts = canned_alerts(now)
            if q.get("active") in ("true", "false"):
                alerts = [a for a in alerts if a["active"] == (q["active"] == "true")]
            if "host" in q:
                alerts = [a for a in alerts if a["host"] == q["host"]]
            return self.reply(200, alerts)
        if len(parts) == 6 and parts[:4] == ["", "api", "v1", "hosts"]:
            host = parts[4]
            if host not in hosts:
                return self.error(404, "no such host: %s" % host)
            if parts[5] == "history":
                return self.reply(200, canned_history(host, now))
            if parts[5] == "snapshot":
                return self.reply(200, canned_snapshot(host, now))
        return self.error(404, "no such endpoint: %s" % url.path)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """TLS is done per connection in the handler thread, so one stuck or failing handshake never
    blocks the accept loop."""
    daemon_threads = True

    def __init__(self, port, cert, key, ca, tokens=TOKENS_DEFAULT):
        super().__init__(("127.0.0.1", port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ctx = ctx
        self.tokens = set(tokens)
        self.requests = []

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the refusal (a TLS alert) is what the client reports
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def start(self):
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return self.server_address[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--token", action="append")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = Server(a.port, a.cert, a.key, a.ca, a.token or TOKENS_DEFAULT)
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
