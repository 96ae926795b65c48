"""make bench, proxy scenario: keel, nginx and HAProxy side by side in one
run, each with one worker and upstream keep-alive, in front of the same
origin (nginx answering "ok"). Rounds alternate A B C A B C; then each
holds 3000 idle keep-alive clients and the growth of its user-space memory
is divided by 3000. Prints a table and merges its figures into
build/bench.json. Everything runs on loopback and ends by itself."""

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KEEL = os.path.join(ROOT, "build", "keel")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
# With two or more cores, each proxy under test gets CPU 1 to itself and
# wrk and the origin share CPU 0: req/s then measures what a proxy does
# with one core, not how the scheduler shared two between three programs.
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
PROXY_CPU = ["taskset", "-c", "1"] if PIN else []
CLIENT_CPU = ["taskset", "-c", "0"] if PIN else []
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
IDLE = int(os.environ.get("BENCH_IDLE", "3000"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("bench: nothing answers on port %d" % port)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def private_kib(pids):
    """User-space memory the processes hold: private pages (RSS minus shared)."""
    total = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    return total


def cpu_ticks(pids):
    """utime + stime of the processes, in clock ticks."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def wrk(port, pids):
    t0 = cpu_ticks(pids)
    out = subprocess.run(CLIENT_CPU + ["wrk", "-t1", "-c50", "-d%ds" % SECONDS, "--latency",
                          "http://127.0.0.1:%d/app_a/" % port],
                         capture_output=True, text=True, timeout=SECONDS + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(r"%s\s+([\d.]+)(us|ms|s)\b" % label, out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    cpu = (cpu_ticks(pids) - t0) / float(os.sysconf("SC_CLK_TCK"))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "cpu": cpu,
            "per_cpu": total / cpu if cpu > 0 else 0.0,
            "errors": (int(errors.group(1)) if errors else 0), "socket": sock.group(1) if sock else ""}


def idle_bytes(port, pids):
    """Opens IDLE keep-alive connections, each having made one request."""
    time.sleep(0.5)
    before = private_kib(pids())
    conns = []
    req = b"GET /app_a/ HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(IDLE):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        conns.append(s)
    for s in conns:
        got = b""
        while b"ok\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit("bench: a proxy closed an idle connection")
            got += chunk
    time.sleep(2.5)   # idle means idle: caches of the burst may be trimmed
    after = private_kib(pids())
    for s in conns:
        s.close()
    return max(0.0, (after - before) * 1024.0 / IDLE)


def stop_all(procs):
    """SIGTERM (after SIGCONT, for frozen ones) each process group, then
    SIGKILL what has not gone after 5 s."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGCONT)
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def merge_figures(fig):
    """Adds a scenario's figures to build/bench.json (one flat object)."""
    out = os.path.join(ROOT, "build", "bench.json")
    data = {}
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    data.update(fig)
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    print("  figures written to build/bench.json")


def main():
    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh --bench installs it)" % tool)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    tmp = tempfile.mkdtemp(prefix="keel-bench-")
    origin, p_keel, p_nginx, p_haproxy, admin = (free_port() for _ in range(5))
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
error_log %s/nginx.err; events { worker_connections 8192; }
http { access_log off;
  upstream app_a { server 127.0.0.1:%d max_fails=30 fail_timeout=20s; keepalive 128; }
  server { listen 127.0.0.1:%d backlog=4096;
    location ^~ /app_a/ { proxy_pass http://app_a/app_a/; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; } } }
""" % (tmp, tmp, origin, p_nginx))
        nginx = start(PROXY_CPU + ["nginx", "-c", os.path.join(tmp, "nginx.conf")], p_nginx, "nginx")

        with open(os.path.join(tmp, "haproxy.cfg"), "w") as f:
            f.write("""global
  nbthread 1
  maxconn 8000
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
""" % (p_haproxy, origin))
        haproxy = start(PROXY_CPU + ["haproxy", "-f", os.path.join(tmp, "haproxy.cfg")], p_haproxy, "haproxy")

        with open(os.path.join(tmp, "keel.yaml"), "w") as f:
            f.write("""pid_file: ""
workers: { count: 1 }
access_log: { format: off }
admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }
listeners: [ { address: "127.0.0.1:%d" } ]
upstreams:
  app_a: { servers: [ { address: "127.0.0.1:%d", max_fails: 30, fail_timeout: 20s } ] }
routes: [ { path: /app_a/, upstream: app_a } ]
""" % (admin, p_keel, origin))
        keel = start(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel.yaml")], p_keel, "keel")

        targets = {
            "keel": (p_keel, lambda: children(keel.pid)),
            "nginx": (p_nginx, lambda: children(nginx.pid)),
            "haproxy": (p_haproxy, lambda: [haproxy.pid] + children(haproxy.pid)),
        }
        runs = {name: [] for name in targets}
        for r in range(ROUNDS):
            for name, (port, pids) in targets.items():
                res = wrk(port, pids())
                runs[name].append(res)
                print("  round %d %-8s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.0f req/CPU-s%s" % (
                    r + 1, name, res["rps"], res["p50"], res["p99"], res["per_cpu"],
                    "  ERRORS %d %s" % (res["errors"], res["socket"]) if res["errors"] or res["socket"] else ""))
                sys.stdout.flush()

        fig = {"proxy_cpu_pinned": PIN}
        for name in targets:
            n = len(runs[name])
            fig["proxy_rps_" + name] = round(sum(x["rps"] for x in runs[name]) / n, 1)
            fig["proxy_p50_ms_" + name] = round(sum(x["p50"] for x in runs[name]) / n, 3)
            fig["proxy_p99_ms_" + name] = round(sum(x["p99"] for x in runs[name]) / n, 3)
            fig["proxy_errors_" + name] = sum(x["errors"] for x in runs[name])
            fig["proxy_req_per_cpu_s_" + name] = round(sum(x["per_cpu"] for x in runs[name]) / n, 1)
        for name, (port, pids) in targets.items():
            fig["proxy_idle_conn_bytes_" + name] = round(idle_bytes(port, pids), 1)
        for other in ("nginx", "haproxy"):
            fig["ratio_rps_vs_" + other] = round(fig["proxy_rps_keel"] / fig["proxy_rps_" + other], 3)
            fig["ratio_p99_vs_" + other] = round(fig["proxy_p99_ms_keel"] / fig["proxy_p99_ms_" + other], 3)
            fig["ratio_req_per_cpu_vs_" + other] = round(
                fig["proxy_req_per_cpu_s_keel"] / fig["proxy_req_per_cpu_s_" + other], 3)

        print()
        print("  proxies pinned to CPU 1, wrk and origin to CPU 0" if PIN else "  no CPU pinning")
        print("  %-8s %10s %9s %9s %12s %12s" % ("proxy", "req/s", "p50 ms", "p99 ms",
                                                 "req/CPU-s", "B/idle conn"))
        for name in targets:
            print("  %-8s %10.0f %9.2f %9.2f %12.0f %12.0f" % (
                name, fig["proxy_rps_" + name], fig["proxy_p50_ms_" + name],
                fig["proxy_p99_ms_" + name], fig["proxy_req_per_cpu_s_" + name],
                fig["proxy_idle_conn_bytes_" + name]))
        print()
        print("  keel/nginx:   req/s x%.2f (target >= 1.25), p99 x%.2f (target <= 0.8)" % (
            fig["ratio_rps_vs_nginx"], fig["ratio_p99_vs_nginx"]))
        print("  keel/haproxy: req/s x%.2f (target >= 1.25), p99 x%.2f (target <= 0.8)" % (
            fig["ratio_rps_vs_haproxy"], fig["ratio_p99_vs_haproxy"]))
        print("  keel idle connection: %.0f bytes (target <= 512)" % fig["proxy_idle_conn_bytes_keel"])
        print("  requests per CPU-second of the proxy: keel/nginx x%.2f, keel/haproxy x%.2f" % (
            fig["ratio_req_per_cpu_vs_nginx"], fig["ratio_req_per_cpu_vs_haproxy"]))

        merge_figures(fig)
    finally:
        stop_all(procs)
        if os.environ.get("BENCH_KEEP"):
            print("  files kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
