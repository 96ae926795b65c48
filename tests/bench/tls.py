"""make bench, TLS scenario: keel and nginx side by side, each terminating
HTTPS with the same ECDSA P-256 certificate on one pinned worker, in front
of the same origin. Two figures, rounds alternating:
  - keep-alive req/s over TLS (wrk -c50, connections reused);
  - handshakes/s: wrk with "Connection: close", so every request is a new
    connection and a full handshake (wrk does not resume sessions).
Merges tls_* and ratio_tls_* keys into build/bench.json."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from proxy import (CLIENT_CPU, KEEL, PIN, PROXY_CPU, ROUNDS, SECONDS, children, cpu_ticks,
                   free_port, merge_figures, stop_all, wait_port)


def wrk_tls(port, pids, close):
    t0 = cpu_ticks(pids)
    argv = CLIENT_CPU + ["wrk", "-t1", "-c50", "-d%ds" % SECONDS]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + ["https://127.0.0.1:%d/app_a/" % port],
                         capture_output=True, text=True, timeout=SECONDS + 30).stdout
    cpu = (cpu_ticks(pids) - t0) / float(os.sysconf("SC_CLK_TCK"))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "per_cpu": total / cpu if cpu > 0 else 0.0,
            "errors": (int(errors.group(1)) if errors else 0) + (1 if sock else 0),
            "socket": sock.group(1) if sock else ""}


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

        targets = {"keel": (p_keel, lambda: children(keel.pid)),
                   "nginx": (p_nginx, lambda: children(nginx.pid))}
        runs = {(n, c): [] for n in targets for c in (False, True)}
        for r in range(ROUNDS):
            for close in (False, True):
                for name, (port, pids) in targets.items():
                    res = wrk_tls(port, pids(), close)
                    runs[(name, close)].append(res)
                    print("  round %d %-6s %-15s %9.0f req/s  %7.0f per CPU-s%s" % (
                        r + 1, name, "handshakes" if close else "keep-alive", res["rps"],
                        res["per_cpu"], "  ERRORS %d %s" % (res["errors"], res["socket"])
                        if res["errors"] else ""))
                    sys.stdout.flush()

        fig = {}
        for name in targets:
            for close, key_ in ((False, "rps"), (True, "handshakes")):
                xs = runs[(name, close)]
                fig["tls_%s_%s" % (key_, name)] = round(sum(x["rps"] for x in xs) / len(xs), 1)
                fig["tls_%s_per_cpu_s_%s" % (key_, name)] = round(
                    sum(x["per_cpu"] for x in xs) / len(xs), 1)
                fig["tls_%s_errors_%s" % (key_, name)] = sum(x["errors"] for x in xs)
        fig["ratio_tls_rps_vs_nginx"] = round(fig["tls_rps_keel"] / fig["tls_rps_nginx"], 3)
        fig["ratio_tls_handshakes_vs_nginx"] = round(
            fig["tls_handshakes_keel"] / fig["tls_handshakes_nginx"], 3)

        print()
        print("  proxies pinned to CPU 1, wrk and origin to CPU 0" if PIN else "  no CPU pinning")
        print("  %-6s %14s %16s" % ("proxy", "TLS req/s", "handshakes/s"))
        for name in targets:
            print("  %-6s %14.0f %16.0f" % (name, fig["tls_rps_" + name],
                                            fig["tls_handshakes_" + name]))
        print()
        print("  keel/nginx over TLS: keep-alive req/s x%.2f, handshakes/s x%.2f (goal >= 1.0)"
              % (fig["ratio_tls_rps_vs_nginx"], fig["ratio_tls_handshakes_vs_nginx"]))
        merge_figures(fig)
    finally:
        stop_all(procs)
        if os.environ.get("BENCH_KEEP"):
            print("  files kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
