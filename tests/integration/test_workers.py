"""The master and its workers: a worker that dies is replaced while the
others serve; SIGTERM drains in-flight requests; a second SIGTERM stops at
once; reloads replace the workers without failing a request, even under
load, and tunnels survive them; `keel reload` checks before it signals."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import check, free_port, http_get, wait_for
from test_proxy import get, yaml_conf


def start2(h, count=2, drain="30s", extra_routes=None, nginx=False, quiet=False):
    if nginx:     # load tests: a backend that keeps up with wrk
        a, b = h.nginx_backend("a"), h.nginx_backend("b")
    else:
        a, b = h.http_backend("a"), h.http_backend("b")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"ua": [a, b]},
                     [{"path": "/", "upstream": "ua"}] + (extra_routes or []))
    text = text.replace("workers: { count: 1 }",
                        "workers: { count: %d, drain_timeout: %s }" % (count, drain))
    if quiet:       # load tests: no access log lines by the hundred thousand
        text += "access_log: { format: off }\n"
    k = h.keel(text, wait_port=admin)
    wait_for("%d workers" % count, lambda: len(k.children()) == count)
    wait_for("the proxy", lambda: get(front, "/").status == 200)
    return front, admin, k, text


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(h):
    front, _, k, _ = start2(h)
    victim = k.children()[0]
    os.kill(victim, signal.SIGKILL)
    k.wait_log(r"worker \d \(pid %d\) killed by signal 9 \(Killed\); starting another" % victim)
    wait_for("a new worker", lambda: len(k.children()) == 2 and victim not in k.children())
    for _ in range(10):
        check(get(front, "/").status == 200)


def test_sigterm_lets_in_flight_requests_finish(h):
    front, _, k, _ = start2(h)
    result = {}

    def slow():
        result["r"] = get(front, "/_sleep/1500", timeout=10)
    t = threading.Thread(target=slow)
    t.start()
    at_backend = lambda: any("GET /_sleep/1500" in open(h.path(n + ".log")).read()
                             for n in ("a", "b"))
    wait_for("the request at a backend", at_backend, timeout=5)
    k.signal(signal.SIGTERM)
    t.join(10)
    check(result.get("r") is not None and result["r"].status == 200, result)
    check(k.wait(10) == 0, "exit status %s" % k.popen.returncode)
    check(re.search(r"draining 1 connection", k.log()), k.log())


def test_a_second_sigterm_stops_at_once(h):
    front, _, k, _ = start2(h)
    def doomed():
        try:
            get(front, "/_sleep/5000", timeout=10)
        except Exception:       # this request is cut off on purpose
            pass
    t = threading.Thread(target=doomed)
    t.daemon = True
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    k.signal(signal.SIGTERM)
    time.sleep(0.1)
    k.signal(signal.SIGTERM)
    k.wait(5)
    check(time.monotonic() - t0 < 3, "took %.1fs" % (time.monotonic() - t0))


def test_reload_replaces_workers_and_old_ones_drain(h):
    front, _, k, text = start2(h)
    old = set(k.children())
    k.signal(signal.SIGHUP)
    wait_for("new workers", lambda: len(set(k.children()) - old) == 2)
    wait_for("old workers gone", lambda: not (set(k.children()) & old))
    check(get(front, "/").status == 200)
    k.wait_log(r"worker \d \(pid \d+, generation 1\) finished")


def test_a_hundred_reloads_under_load_fail_no_request(h):
    if shutil.which("wrk") is None:
        raise AssertionError("wrk is not installed (tests/setup.sh installs it)")
    front, admin, k, _ = start2(h, count=2, nginx=True, quiet=True)
    # A failed request is an error or a refusal; one that is merely slow on
    # a loaded two-core machine is not, hence wrk's longer timeout.
    wrk = subprocess.Popen(["wrk", "-t2", "-c20", "-d60s", "--timeout", "10s",
                            "http://127.0.0.1:%d/" % front],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        # One at a time: signals sent while the master is busy would merge.
        for gen in range(2, 102):
            k.signal(signal.SIGHUP)
            wait_for("generation %d" % gen,
                     lambda: http_get(admin, "/healthz").json()["config_generation"] >= gen,
                     timeout=20, interval=0.005)
        time.sleep(0.5)
    finally:
        wrk.send_signal(signal.SIGINT)      # wrk then prints what it counted
    out = wrk.communicate(timeout=30)[0]
    done = re.search(r"(\d+) requests in", out)
    check(done and int(done.group(1)) > 1000, out)
    check("Non-2xx" not in out and "Socket errors" not in out, out)


def test_an_upgraded_tunnel_survives_a_reload(h):
    front, _, k, _ = start2(h, count=1)
    with socket.create_connection(("127.0.0.1", front)) as s:
        s.settimeout(5)
        s.sendall(b"GET /_upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        check(head.startswith(b"HTTP/1.1 101"), head)
        old = set(k.children())
        k.signal(signal.SIGHUP)
        wait_for("a new worker", lambda: len(set(k.children()) - old) == 1)
        s.sendall(b"still there?")
        check(s.recv(100) == b"still there?")
        check(set(k.children()) & old, "the old worker left with the tunnel open")
    wait_for("the old worker to finish", lambda: not (set(k.children()) & old))


def test_keel_reload_command_checks_first(h):
    front, _, k, _ = start2(h, count=1)
    conf = h.path("keel.yaml")
    with open(conf) as f:
        text = f.read()      # with the pid_file line the harness adds
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 0 and "keel: reloaded: generation 2" in r.stdout, r.stdout + r.stderr)
    k.wait_log(r"configuration generation 2 loaded")
    h.write("keel.yaml", text + "bogus: 1\n")
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 1 and "keel.yaml:%d: bogus: unknown setting" % (text.count("\n") + 1) in r.stderr,
          r.stderr)
    check("generation 3" not in k.log(), "a bad file was signalled anyway")
    h.write("keel.yaml", text)
    r = h.run_keel("stop", "-c", conf)
    check(r.returncode == 0, r.stderr)
    check(k.wait(10) == 0)
    check(not os.path.exists(h.path("keel.pid")), "pid file left behind")


def test_killing_a_backend_under_load_fails_no_get(h):
    if shutil.which("wrk") is None:
        raise AssertionError("wrk is not installed (tests/setup.sh installs it)")
    front, admin, k, _ = start2(h, count=2, nginx=True, quiet=True)
    victim = [p for p in h.procs if p.name == "a"][0]
    wrk = subprocess.Popen(["wrk", "-t2", "-c20", "-d6s", "--timeout", "10s",
                            "http://127.0.0.1:%d/" % front],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(2)
    os.killpg(victim.pid, signal.SIGKILL)
    out = wrk.communicate(timeout=30)[0]
    done = re.search(r"(\d+) requests in", out)
    check(done and int(done.group(1)) > 1000, out)
    check("Non-2xx" not in out and "Socket errors" not in out, out)
    k.wait_log(r"server 127\.0\.0\.1:\d+ out of service")


def test_out_of_fds_pauses_accepting_without_spinning(h):
    a = h.http_backend("a")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    conf = h.write("keel.yaml", 'pid_file: ""\nstate_dir: "%s"\n' % h.path("state") + text)
    import harness
    k = h.start("keel", ["sh", "-c", "ulimit -n 48 && exec %s -c %s" % (harness.KEEL, conf)],
                ready=lambda: http_get(admin, "/healthz").status == 200)
    wait_for("the worker", lambda: len(k.children()) == 1)
    worker = k.children()[0]

    def cpu_ticks():
        with open("/proc/%d/stat" % worker) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])    # utime + stime

    held = []
    for _ in range(60):          # more than the worker has fds for
        try:
            held.append(socket.create_connection(("127.0.0.1", front), timeout=2))
        except OSError:
            break
    k.wait_log(r"accept: (No file descriptors available|Too many open files); accepting paused")
    t0 = cpu_ticks()
    time.sleep(1.0)
    used = cpu_ticks() - t0
    check(used < 20, "the worker used %d ticks in 1 s while out of fds" % used)
    for s in held:
        s.close()
    wait_for("serving again", lambda: get(front, "/").status == 200, timeout=10)


def test_a_websocket_echo_survives_a_reload(h):
    import harness
    ws_port = free_port()
    h.start("ws", ["/usr/bin/python3", os.path.join(harness.HERE, "wsecho.py"), "serve", str(ws_port)],
            ready=lambda: socket.create_connection(("127.0.0.1", ws_port), timeout=1).close() or True)
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, {"ws": [ws_port]}, [{"path": "/", "upstream": "ws"}]),
               wait_port=admin)
    client = subprocess.Popen(["/usr/bin/python3", os.path.join(harness.HERE, "wsecho.py"), "client",
                               "ws://127.0.0.1:%d/chat" % front],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        check(client.stdout.readline().strip() == "open")
        client.stdin.write("before the reload\n")
        client.stdin.flush()
        check(client.stdout.readline().strip() == "before the reload")
        old = set(k.children())
        k.signal(signal.SIGHUP)
        wait_for("a new worker", lambda: len(set(k.children()) - old) == 1)
        client.stdin.write("after the reload\n")
        client.stdin.flush()
        check(client.stdout.readline().strip() == "after the reload")
        check(set(k.children()) & old, "the old worker left with the WebSocket open")
    finally:
        client.stdin.close()
        client.wait(10)
