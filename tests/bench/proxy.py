"""make bench, proxy scenario: keel, nginx and HAProxy side by side in one
run, each with one worker and upstream keep-alive, in front of the same
origin (nginx answering "ok"). Every figure is the median of alternating
rounds (A B C A B C ...), printed for all three with the goal:

  - req/s, p99 and CPU-seconds per 100 000 requests (master and workers,
    utime+stime), keep-alive clients, then "Connection: close" clients;
  - the same with stress-ng hogging the proxies' CPU;
  - syscalls per request (strace -c over a wrk run), with the table;
  - keel with 1 000 prefix routes and 1 000 host names vs 1 route;
  - 10 000 idle keep-alive clients: memory growth per connection;
  - the floor: build/bench/relay, a relay that only moves bytes (epoll,
    and io_uring batching a turn's receives and sends into one call), in
    the keep-alive rounds. Its CPU per request is what the kernel charges
    any proxy; a goal below it cannot be reached by the proxy's code.

Merges its figures into build/bench.json. Loopback only; ends by itself."""

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from benchlib import (CLIENT_CPU, KEEL, PIN, PROXY_CPU, ROUNDS, BenchError, Hog, Table,
                      free_port, load_average, medians, merge_figures, private_kib,
                      rounds, stop_all, syscalls, tree, wait_port, wrk)

IDLE = int(os.environ.get("BENCH_IDLE", "10000"))
RELAY = os.path.join(os.path.dirname(KEEL), "bench", "relay")
FLOORS = ("relay-epoll", "relay-uring")
ROUTES = 1000


def idle_bytes(port, pids, n):
    """Opens n keep-alive connections, each having made one request; the
    growth of the tree's private memory per connection."""
    time.sleep(0.5)
    before = private_kib(pids())
    conns = []
    req = b"GET /app_a/ HTTP/1.1\r\nHost: bench\r\n\r\n"
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(req)
            conns.append(s)
        for s in conns:
            got = b""
            while b"ok\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise BenchError("a proxy closed an idle connection (%d open)" % len(conns))
                got += chunk
        time.sleep(2.5)   # idle means idle: caches of the burst may be trimmed
        after = private_kib(pids())
    finally:
        for s in conns:
            s.close()
    return max(0.0, (after - before) * 1024.0 / n)


def keel_yaml(admin, port, origin, routes=1, monitors=True):
    """keel's config: one route, or `routes` prefix routes and as many host
    names (all real upstreams), the benchmarked one last. monitors=False
    turns off the probe of every route (1 000 probes are monitoring load,
    not routing cost)."""
    y = ('pid_file: ""\nworkers: { count: 1 }\naccess_log: { format: off }\n'
         + ("" if monitors else "monitors: { routes: false, servers: false }\n") +
         'admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }\n'
         'listeners: [ { address: "127.0.0.1:%d" } ]\n'
         'upstreams:\n  app_a: { servers: [ { address: "127.0.0.1:%d", max_fails: 30, '
         'fail_timeout: 20s } ] }\nroutes:\n' % (admin, port, origin))
    for i in range(routes - 1):
        y += ('  - { path: /app_%04d/, hosts: [ "app%04d.example.com" ], upstream: app_a }\n'
              % (i, i))
    return y + "  - { path: /app_a/, upstream: app_a }\n"


def main():
    for tool in ("wrk", "nginx", "haproxy", "strace"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh --bench installs it)" % tool)
    if not os.access(RELAY, os.X_OK):
        raise SystemExit("bench: %s is missing (make build/bench/relay)" % RELAY)
    # 10 000 idle clients take 10 000 fds in each proxy (and here).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < IDLE + 1000:
        raise SystemExit("bench: %d idle clients need an fd limit above %d (it is %d)"
                         % (IDLE, IDLE + 1000, hard))
    print("proxy: load average %s at the start; %d rounds of %s; %s" % (
        load_average(), ROUNDS, os.environ.get("BENCH_SECONDS", "8") + " s",
        "proxies pinned to CPU 1, wrk and origin to CPU 0" if PIN else "no CPU pinning"))

    tmp = tempfile.mkdtemp(prefix="keel-bench-")
    origin, p_keel, p_nginx, p_haproxy, p_one, p_big, p_epoll, p_uring = (
        free_port() for _ in range(8))
    admin, admin2, admin3 = (free_port() for _ in range(3))
    procs = []

    def start(argv, port, name):
        p = subprocess.Popen(argv, stdout=open(os.path.join(tmp, name + ".log"), "w"),
                             stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(p)
        wait_port(port)
        return p

    try:
        with open(os.path.join(tmp, "origin.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/origin.pid;
error_log %s/origin.err; events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:%d backlog=4096;
  location / { return 200 "ok\\n"; } } }
""" % (tmp, tmp, origin))
        start(CLIENT_CPU + ["nginx", "-c", os.path.join(tmp, "origin.conf")], origin, "origin")

        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write("""worker_processes 1; daemon off; pid %s/nginx.pid;
error_log %s/nginx.err; events { worker_connections 12000; }
http { access_log off;
  upstream app_a { server 127.0.0.1:%d max_fails=30 fail_timeout=20s; keepalive 128; }
  server { listen 127.0.0.1:%d backlog=4096;
    location ^~ /app_a/ { proxy_pass http://app_a/app_a/; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; } } }
""" % (tmp, tmp, origin, p_nginx))
        nginx = start(PROXY_CPU + ["nginx", "-c", os.path.join(tmp, "nginx.conf")], p_nginx, "nginx")

        # HAProxy wants two fds per maxconn: without CAP_SYS_RESOURCE to
        # raise the hard limit, it holds what fits (its figure is per
        # connection all the same).
        hap_conns = min(IDLE, (hard - 300) // 2 - 100)
        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write("""global
  nbthread 1
  maxconn %d
  ulimit-n %d
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 75s
  option forwardfor
  http-reuse always
frontend front
  bind 127.0.0.1:%d
  use_backend app_a if { path_beg /app_a/ }
backend app_a
  server o1 127.0.0.1:%d maxconn 1000
""" % (hap_conns + 100, hard, p_haproxy, origin))
        haproxy = start(PROXY_CPU + ["haproxy", "-f", os.path.join(tmp, "haproxy.cfg")],
                        p_haproxy, "haproxy")

        with open(os.path.join(tmp, "keel.yaml"), "w") as f:
            f.write(keel_yaml(admin, p_keel, origin))
        keel = start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel.yaml")], p_keel, "keel")

        targets = {
            "keel": (p_keel, lambda: tree(keel.pid)),
            "nginx": (p_nginx, lambda: tree(nginx.pid)),
            "haproxy": (p_haproxy, lambda: tree(haproxy.pid)),
        }

        # The floor: the relay connects to the origin once per client
        # connection, which keep-alive clients make once per run.
        floors = {}
        for name, port in zip(FLOORS, (p_epoll, p_uring)):
            p = start(PROXY_CPU + [RELAY, name.split("-")[1], str(port), str(origin)], port, name)
            floors[name] = (port, lambda pid=p.pid: [pid])
        every = dict(targets, **floors)

        def url(name):
            return "http://127.0.0.1:%d/app_a/" % every[name][0]

        fig = {"proxy_cpu_pinned": PIN, "proxy_load_average_start": load_average()}
        got = {}
        for hog in (False, True):
            for close in (False, True):
                label = ("close" if close else "keep-alive") + (" +hog" if hog else "")
                key = ("close" if close else "ka") + ("_hog" if hog else "")

                def run(name):
                    return wrk(url(name), every[name][1], close=close)
                which = targets if close else every
                if hog:
                    with Hog():
                        got[key] = medians(rounds(which, run, label))
                else:
                    got[key] = medians(rounds(which, run, label))

        # Syscalls per request: strace -c over a 3 s keep-alive run, then a
        # close run, of each; per-syscall tables printed for all three.
        sc = {}
        for close in (False, True):
            for name in targets:
                counts, n = syscalls(targets[name][1](),
                                     lambda u=url(name), c=close: _wrk_count(u, c))
                sc[(name, close)] = (counts, n)

        # Routing cost: two more keels, with 1 route, and with 1 000 routes
        # and 1 000 host names, the same otherwise.
        with open(os.path.join(tmp, "keel-one.yaml"), "w") as f:
            f.write(keel_yaml(admin2, p_one, origin, 1, monitors=False))
        with open(os.path.join(tmp, "keel-big.yaml"), "w") as f:
            f.write(keel_yaml(admin3, p_big, origin, ROUTES, monitors=False))
        one = start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel-one.yaml")], p_one, "one")
        big = start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel-big.yaml")], p_big, "big")
        rt = {"1 route": (p_one, lambda: tree(one.pid)),
              "%d routes" % ROUTES: (p_big, lambda: tree(big.pid))}
        routes_got = medians(rounds(rt, lambda n: wrk("http://127.0.0.1:%d/app_a/" % rt[n][0],
                                                          rt[n][1]), "keep-alive"))
        stop_all([one, big])
        procs.remove(one)
        procs.remove(big)

        idle = {}
        for name, (port, pids) in targets.items():
            n = hap_conns if name == "haproxy" else IDLE
            print("  idle: %d keep-alive clients on %s" % (n, name))
            try:
                idle[name] = idle_bytes(port, pids, n)
            except BenchError as e:
                print("  idle %s: %s" % (name, e))
                idle[name] = float("nan")

        # ---- the table ----
        print()
        others = ("nginx", "haproxy")
        t = Table(others)
        for key, label in (("ka", "keep-alive"), ("close", "close"), ("ka_hog", "keep-alive +hog"),
                           ("close_hog", "close +hog")):
            m = got[key]
            r = t.row("req/s, " + label, m["keel"]["rps"], [m[o]["rps"] for o in others],
                      ">= 1.25")
            for o, v in zip(others, r):
                fig["ratio_rps_%s_vs_%s" % (key, o)] = round(v, 3)
            t.row("  proxy CPU busy %", 100 * m["keel"]["busy"], [100 * m[o]["busy"] for o in others],
                  "(well under its share of the core: the client side was the limit)")
            r = t.row("p99 ms, " + label, m["keel"]["p99"], [m[o]["p99"] for o in others],
                      "<= 0.8", "%11.2f")
            for o, v in zip(others, r):
                fig["ratio_p99_%s_vs_%s" % (key, o)] = round(v, 3)
            r = t.row("CPU-s per 100k, " + label, m["keel"]["cpu100k"],
                      [m[o]["cpu100k"] for o in others], "<= 0.7", "%11.3f")
            for o, v in zip(others, r):
                fig["ratio_cpu_%s_vs_%s" % (key, o)] = round(v, 3)
            for name in targets:
                fig["proxy_rps_%s_%s" % (key, name)] = round(m[name]["rps"], 1)
                fig["proxy_p99_ms_%s_%s" % (key, name)] = round(m[name]["p99"], 3)
                fig["proxy_cpu_s_per_100k_%s_%s" % (key, name)] = round(m[name]["cpu100k"], 4)
                fig["proxy_errors_%s_%s" % (key, name)] = m[name]["errors"]
        for close in (False, True):
            key = "close" if close else "ka"
            per = {n: sum(sc[(n, close)][0].values()) / float(sc[(n, close)][1]) for n in targets}
            r = t.row("syscalls/request, " + key, per["keel"], [per[o] for o in others],
                      "<= 1.0", "%11.2f")
            for name in targets:
                fig["proxy_syscalls_per_req_%s_%s" % (key, name)] = round(per[name], 3)
            for o, v in zip(others, r):
                fig["ratio_syscalls_%s_vs_%s" % (key, o)] = round(v, 3)
        r = t.row("idle conn bytes", idle["keel"], [idle[o] for o in others], "<= 0.5")
        for name in targets:
            fig["proxy_idle_conn_bytes_" + name] = round(idle[name], 1)
        for o, v in zip(others, r):
            fig["ratio_idle_conn_bytes_vs_" + o] = round(v, 3)

        print()
        print("  the floor: a relay that only moves bytes, keep-alive (CPU-s per 100k)")
        for key, label in (("ka", "keep-alive"), ("ka_hog", "keep-alive +hog")):
            m = got[key]
            goal = 0.7 * min(m[o]["cpu100k"] for o in others)
            print("    %-17s keel %.3f  epoll relay %.3f  io_uring relay %.3f  "
                  "0.7 x the best of nginx/HAProxy %.3f%s" % (
                      label, m["keel"]["cpu100k"], m["relay-epoll"]["cpu100k"],
                      m["relay-uring"]["cpu100k"], goal,
                      "  (below both floors)" if goal < min(m[f]["cpu100k"] for f in FLOORS)
                      else ""))
            for name in FLOORS:
                k = name.replace("-", "_")
                fig["proxy_rps_%s_%s" % (key, k)] = round(m[name]["rps"], 1)
                fig["proxy_cpu_s_per_100k_%s_%s" % (key, k)] = round(m[name]["cpu100k"], 4)
                fig["ratio_cpu_%s_keel_vs_%s" % (key, k)] = round(
                    m["keel"]["cpu100k"] / m[name]["cpu100k"], 3)

        one, many = routes_got["1 route"]["rps"], routes_got["%d routes" % ROUTES]["rps"]
        fig["proxy_rps_1_route"] = round(one, 1)
        fig["proxy_rps_%d_routes" % ROUTES] = round(many, 1)
        fig["proxy_routes_rps_drop"] = round(1 - many / one, 4)
        print("  %-34s %11.0f (1 route %.0f): drop %.1f%%  goal <= 5%%" % (
            "req/s, %d routes+hosts" % ROUTES, many, one, 100 * (1 - many / one)))

        for close in (False, True):
            print()
            print("  syscalls per request, %s (strace -c):" % ("close" if close else "keep-alive"))
            names = sorted(set().union(*(sc[(n, close)][0] for n in targets)),
                           key=lambda s: -sc[("keel", close)][0].get(s, 0))
            print("    %-16s" % "syscall" + "".join("%10s" % n for n in targets))
            for s in names:
                print("    %-16s" % s + "".join("%10.2f" % (sc[(n, close)][0].get(s, 0) /
                                                          float(sc[(n, close)][1]))
                                                 for n in targets))
        merge_figures(fig)
    finally:
        stop_all(procs)
        if os.environ.get("BENCH_KEEP"):
            print("  files kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _wrk_count(url, close):
    """Requests a 3 s wrk run completed (for the syscall counts)."""
    argv = CLIENT_CPU + ["wrk", "-t1", "-c50", "-d3s", url]
    if close:
        argv[4:4] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"(\d+) requests in", out)
    return int(m.group(1)) if m else 0


if __name__ == "__main__":
    main()
