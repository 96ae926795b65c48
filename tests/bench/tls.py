"""make bench, TLS scenario: keel and nginx side by side, each terminating
HTTPS with the same ECDSA P-256 certificate on one pinned worker, in front
of the same origin. Four figures, medians of alternating rounds:
  - keep-alive req/s over TLS (wrk -c50, connections reused);
  - Connection: close req/s: wrk reconnecting for every request; wrk
    resumes its sessions on reconnect (OpenSSL keeps the ticket across
    SSL_clear), so these are resumed handshakes plus a request each;
  - full handshakes/s: `openssl s_time -new`, every connection checked to
    be a new session, two clients at once;
  - resumed handshakes/s: `openssl s_time -reuse` (session tickets), every
    connection checked to have resumed, two clients at once.
s_time sends HTTP/1.0 requests: keel sends those on as HTTP/1.0 with
"Connection: close", a new connection to the origin each time, where nginx
(proxy_http_version 1.1) keeps its upstream connections; that is counted.
Merges tls_* and ratio_tls_* keys into build/bench.json."""

import os
import re
import shutil
import subprocess
import tempfile
import time

from benchlib import (CLIENT_CPU, KEEL, PIN, PROXY_CPU, ROUNDS, SECONDS, BenchError, Table,
                      cpu_seconds, cpu_ticks, free_port, load_average, medians, merge_figures,
                      rounds, stop_all, tree, wait_port, wrk)


def handshakes(port, pids, reuse, clients=2):
    """Handshakes per second: `clients` openssl s_time at once, each
    fetching /app_a/ (HTTP/1.0) per connection, with -new (every handshake
    a full one) or -reuse (every one resumed after the first). s_time
    prints "*" for a new session and "r" for a resumed one; a connection
    of the other kind makes the reading invalid. (wrk cannot measure full
    handshakes: it resumes its sessions when it reconnects.)"""
    procs = pids()
    t0 = cpu_ticks(procs)
    w0 = time.monotonic()
    runs = [subprocess.Popen(CLIENT_CPU + ["openssl", "s_time", "-connect", "127.0.0.1:%d" % port,
                                           "-reuse" if reuse else "-new", "-time", str(SECONDS),
                                           "-www", "/app_a/"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(clients)]
    total = 0
    for r in runs:
        out = r.communicate(timeout=SECONDS + 60)[0]
        m = re.search(r"(\d+) connections in \d+ real seconds", out)
        marks = "".join(re.findall(r"^[*r]+$", out, re.M))     # one mark per connection
        if m is None or int(m.group(1)) == 0:
            raise BenchError("openssl s_time said: " + out[-400:])
        wrong = marks.count("*") if reuse else marks.count("r")
        if wrong > 0:
            raise BenchError("%d of %s connections were %s" % (
                wrong, m.group(1), "new sessions" if reuse else "resumed"))
        total += int(m.group(1))
    wall = time.monotonic() - w0
    cpu = cpu_seconds(t0, cpu_ticks(procs))
    if cpu <= 0:
        raise BenchError("%d resumed connections in 0 CPU-s" % total)
    return {"rps": total / wall, "p50": 0.0, "p99": 0.0, "requests": total,
            "cpu100k": cpu * 100000.0 / total, "busy": cpu / wall, "errors": 0, "socket": ""}


def main():
    for tool in ("wrk", "nginx", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh --bench installs it)" % tool)
    tmp = tempfile.mkdtemp(prefix="keel-bench-tls-")
    origin, p_keel, p_nginx, admin = (free_port() for _ in range(4))
    procs = []

    def start(argv, port, name):
        p = subprocess.Popen(argv, stdout=open(os.path.join(tmp, name + ".log"), "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        wait_port(port)
        return p

    try:
        crt, key = os.path.join(tmp, "bench.crt"), os.path.join(tmp, "bench.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=bench"], check=True, capture_output=True)
        with open(os.path.join(tmp, "origin.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/origin.pid;
error_log %s/origin.err; events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:%d backlog=4096;
  location / { return 200 "ok\\n"; } } }
""" % (tmp, tmp, origin))
        start(CLIENT_CPU + ["nginx", "-c", os.path.join(tmp, "origin.conf")], origin, "origin")

        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/nginx.pid;
error_log %s/nginx.err; events { worker_connections 8192; }
http { access_log off;
  upstream app_a { server 127.0.0.1:%d max_fails=30 fail_timeout=20s; keepalive 128; }
  server { listen 127.0.0.1:%d ssl backlog=4096;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
    location ^~ /app_a/ { proxy_pass http://app_a/app_a/; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; } } }
""" % (tmp, tmp, origin, p_nginx, crt, key))
        nginx = start(PROXY_CPU + ["nginx", "-c", os.path.join(tmp, "nginx.conf")],
                      p_nginx, "nginx")

        with open(os.path.join(tmp, "keel.yaml"), "w") as f:
            f.write("""pid_file: ""
state_dir: %s/state
workers: { count: 1 }
access_log: { format: off }
monitors: { routes: false, servers: false }
admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }
listeners:
  - { address: "127.0.0.1:%d", tls: { certificates: [ { cert: %s, key: %s } ] } }
upstreams:
  app_a: { servers: [ { address: "127.0.0.1:%d", max_fails: 30, fail_timeout: 20s } ] }
routes: [ { path: /app_a/, upstream: app_a } ]
""" % (tmp, admin, p_keel, crt, key, origin))
        keel = start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel.yaml")], p_keel, "keel")

        targets = {"keel": (p_keel, lambda: tree(keel.pid)),
                   "nginx": (p_nginx, lambda: tree(nginx.pid))}

        def url(name):
            return "https://127.0.0.1:%d/app_a/" % targets[name][0]
        print("TLS: load average %s at the start; %d rounds; %s" % (
            load_average(), ROUNDS,
            "proxies pinned to CPU 1, clients and origin to CPU 0" if PIN else "no CPU pinning"))
        got = {
            "rps": medians(rounds(targets, lambda n: wrk(url(n), targets[n][1]), "keep-alive")),
            "close": medians(rounds(targets, lambda n: wrk(url(n), targets[n][1], close=True),
                                    "close, resumed")),
            "handshakes": medians(rounds(targets, lambda n: handshakes(targets[n][0], targets[n][1],
                                                                       False),
                                         "full handshakes")),
            "resumed": medians(rounds(targets, lambda n: handshakes(targets[n][0], targets[n][1],
                                                                    True),
                                      "resumed handshakes")),
        }
        fig = {}
        print()
        t = Table(("nginx",))
        for key, label, goal in (("rps", "TLS keep-alive req/s", ">= 1.25"),
                                 ("close", "TLS Connection: close req/s", ""),
                                 ("handshakes", "TLS full handshakes/s", ">= 1.0"),
                                 ("resumed", "TLS resumed handshakes/s", ">= 1.0")):
            m = got[key]
            r = t.row(label, m["keel"]["rps"], [m["nginx"]["rps"]], goal)
            c = t.row("  CPU-s per 100k", m["keel"]["cpu100k"], [m["nginx"]["cpu100k"]], "",
                      "%11.3f")
            for name in targets:
                fig["tls_%s_%s" % (key, name)] = round(m[name]["rps"], 1)
                fig["tls_%s_cpu_s_per_100k_%s" % (key, name)] = round(m[name]["cpu100k"], 4)
                fig["tls_%s_errors_%s" % (key, name)] = m[name]["errors"]
            fig["ratio_tls_%s_vs_nginx" % key] = round(r[0], 3)
            fig["ratio_tls_%s_cpu_vs_nginx" % key] = round(c[0], 3)
        merge_figures(fig)
    finally:
        stop_all(procs)
        if os.environ.get("BENCH_KEEP"):
            print("  files kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
