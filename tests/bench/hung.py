"""make bench, hung-server scenario: two origins behind keel (default
settings) and behind nginx (the usual seed config: max_fails=30
fail_timeout=20s, proxy_next_upstream error timeout invalid_header,
proxy_read_timeout 5s). Open-loop load at RATE req/s for SECONDS; 5 s in,
one origin is frozen with SIGSTOP for 20 s. Prints requests, requests
slower than 1 s, failed requests, the worst latency, and for keel how long
it kept sending new requests to the frozen origin. Merges its figures into
build/bench.json."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, KEEL, free_port, merge_figures, stop_all, wait_port  # noqa: E402

RATE = int(os.environ.get("BENCH_HUNG_RATE", "2000"))
SECONDS = int(os.environ.get("BENCH_HUNG_SECONDS", "30"))
FREEZE_AT, FREEZE_FOR = 5.0, 20.0


def origin(tmp, name):
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; pid %s/%s.pid; error_log %s/%s.err;
events { worker_connections 8192; }
http { access_log off; server { listen 127.0.0.1:%d backlog=8192;
  location / { return 200 "ok\\n"; } } }
""" % (tmp, name, tmp, name, port))
    p = subprocess.Popen(["nginx", "-c", conf], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def run(name, tmp, make_proxy):
    procs = []
    try:
        o1, p1 = origin(tmp, name + "-o1")
        o2, p2 = origin(tmp, name + "-o2")
        procs += [o1, o2]
        proxy, port, detect = make_proxy(p1, p2)
        procs.append(proxy)
        load = subprocess.Popen([os.path.join(ROOT, "build", "openloop"), "127.0.0.1", str(port),
                                 "/app_a/", str(RATE), str(SECONDS), "15"],
                                stdout=subprocess.PIPE, text=True)
        time.sleep(FREEZE_AT)
        os.killpg(o1.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        detected = detect(p1, frozen_at) if detect else None
        time.sleep(max(0.0, FREEZE_FOR - (time.monotonic() - frozen_at)))
        os.killpg(o1.pid, signal.SIGCONT)
        out = json.loads(load.communicate(timeout=SECONDS + 60)[0])
        out["detect_ms"] = detected
        return out
    finally:
        stop_all(procs)


def main():
    subprocess.run(["gcc", "-O2", "-o", os.path.join(ROOT, "build", "openloop"),
                    os.path.join(ROOT, "tests", "bench", "openloop.c")], check=True)
    tmp = tempfile.mkdtemp(prefix="keel-hung-")

    def nginx_proxy(p1, p2):
        port = free_port()
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 1024; }
http { access_log off;
  upstream app_a {
    server 127.0.0.1:%d max_fails=30 fail_timeout=20s;
    server 127.0.0.1:%d max_fails=30 fail_timeout=20s;
  }
  server { listen 127.0.0.1:%d backlog=8192;
    location ^~ /app_a/ {
      proxy_pass http://app_a/app_a/;
      proxy_next_upstream error timeout invalid_header;
      proxy_send_timeout 5s; proxy_read_timeout 5s;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } } }
""" % (tmp, tmp, p1, p2, port))
        p = subprocess.Popen(["nginx", "-c", conf], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        return p, port, None

    def keel_proxy(p1, p2):
        port, admin = free_port(), free_port()
        conf = os.path.join(tmp, "keel.yaml")
        with open(conf, "w") as f:
            f.write("""pid_file: ""
state_dir: "%s/state"
workers: { count: 1 }
access_log: { format: off }
admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false }, metrics_token: bench-token }
listeners: [ { address: "127.0.0.1:%d" } ]
upstreams:
  app_a: { servers: [ { address: "127.0.0.1:%d" }, { address: "127.0.0.1:%d" } ] }
routes: [ { path: /app_a/, upstream: app_a } ]
""" % (tmp, admin, port, p1, p2))
        p = subprocess.Popen([KEEL, "-c", conf], start_new_session=True,
                             stdout=open(os.path.join(tmp, "keel.log"), "w"),
                             stderr=subprocess.STDOUT)
        wait_port(port)

        def detect(frozen_port, frozen_at):
            """Last time the frozen origin's request counter moved."""
            series = 'keel_server_requests_total{upstream="app_a",server="127.0.0.1:%d"} ' % frozen_port
            last_value, last_change = None, frozen_at
            end = frozen_at + 3.0
            while time.monotonic() < end:
                body = urllib.request.urlopen(urllib.request.Request(
                    "http://127.0.0.1:%d/metrics" % admin,
                    headers={"Authorization": "Bearer bench-token"})).read().decode()
                v = int(re.search(re.escape(series) + r"(\d+)", body).group(1))
                if last_value is not None and v != last_value:
                    last_change = time.monotonic()
                last_value = v
                time.sleep(0.01)
            return round((last_change - frozen_at) * 1000)
        return p, port, detect

    results = {}
    for name, make in (("keel", keel_proxy), ("nginx", nginx_proxy)):
        print("  hung server: %s, %d req/s for %d s, one origin frozen at %.0f s for %.0f s ..."
              % (name, RATE, SECONDS, FREEZE_AT, FREEZE_FOR))
        sys.stdout.flush()
        results[name] = run(name, tmp, make)

    print()
    print("  %-6s %9s %9s %9s %9s %14s" % ("proxy", "requests", "slow>1s", "failed", "max s",
                                           "stopped after"))
    for name, r in results.items():
        print("  %-6s %9d %9d %9d %9.2f %14s" % (
            name, r["sent"], r["slow"], r["failed"], r["max_s"],
            "%d ms" % r["detect_ms"] if r["detect_ms"] is not None else "-"))
    k, n = results["keel"], results["nginx"]
    print("  keel slow requests: %.2f%% of nginx's (target <= 1%%); keel failed: %d (target 0)"
          % (100.0 * k["slow"] / max(1, n["slow"]), k["failed"]))
    fig = {
        "hung_slow_keel": k["slow"], "hung_slow_nginx": n["slow"],
        "hung_failed_keel": k["failed"], "hung_failed_nginx": n["failed"],
        "hung_max_s_keel": k["max_s"], "hung_max_s_nginx": n["max_s"],
        "hung_detect_ms_keel": k["detect_ms"],
    }
    merge_figures(fig)


if __name__ == "__main__":
    main()
