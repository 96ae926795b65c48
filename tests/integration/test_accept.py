"""The one accept path (core_net_accept) under a full descriptor table: for
each listener (the proxy, the RESP front, the HTTPS admin server), clients
fill the table of the process that accepts for it; keel pauses accepting
instead of spinning (its CPU time over the next 2 s stays under 5%), says
so once, and serves on every listener again once the clients are gone."""

import os
import socket
import subprocess
import time

from harness import Resp, check, free_port, http_get, wait_for

CPU_WINDOW = 2.0
CPU_MAX = 0.05			# of one core, over the window
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])	# utime, stime
    return total / TICK


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def limit_fds(pid, headroom):
    """Lowers pid's descriptor limit to what it has open plus headroom."""
    n = open_fds(pid) + headroom
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (n, n)], check=True)
    return n


def flood(port, n):
    """n connected clients (the kernel's backlog takes those keel can't)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        socks.append(s)
    return socks


def serves_all(front, rfront, admin):
    def probe():
        try:
            if http_get(front, "/x", timeout=2).status != 200:
                return False
            c = Resp(rfront, timeout=2)
            try:
                if c.call("PING") != "PONG":
                    return False
            finally:
                c.close()
            return http_get(admin, "/healthz", tls=True, timeout=2).status == 200
        except OSError:
            return False
    wait_for("every listener to serve again", probe, timeout=10)


def test_a_full_descriptor_table_pauses_accepting_without_spinning(h):
    back = h.http_backend()
    redis = h.redis()
    front, rfront, admin = free_port(), free_port(), free_port()
    k = h.keel("workers: { count: 1 }\n"
               "monitors: { routes: false, servers: false }\n"
               "admin: { listen: [\"127.0.0.1:%d\"] }\n"
               "listeners: [{ address: \"127.0.0.1:%d\" }]\n"
               "upstreams: { u: { servers: [{ address: \"127.0.0.1:%d\" }] } }\n"
               "routes: [{ path: /, upstream: u }]\n"
               "redis:\n  nodes: [\"127.0.0.1:%d\"]\n"
               "  front: { listen: [\"127.0.0.1:%d\"] }\n"
               % (admin, front, back, redis, rfront), wait_port=admin, admin_tls=True)
    serves_all(front, rfront, admin)
    worker = k.children()[0]
    limit_fds(worker, 6)
    limit_fds(k.pid, 6)

    for name, port, pid in (("proxy", front, worker), ("redis front", rfront, worker),
                            ("admin", admin, k.pid)):
        before = k.log().count("accepting paused")
        socks = flood(port, 40)
        wait_for("%s: keel to run out of descriptors" % name,
                 lambda: k.log().count("accepting paused") > before, timeout=5)
        pids = [k.pid, worker]
        c0, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(CPU_WINDOW)
        used = (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
        check(used < CPU_MAX, "%s: keel used %.1f%% of a core while out of descriptors"
              % (name, 100 * used))
        check(k.log().count("accepting paused") == before + 1,
              "%s: one log line per pause, got:\n%s" % (name, k.log()[-1500:]))
        for s in socks:
            s.close()
        serves_all(front, rfront, admin)
        check(k.alive(), "keel exited")
    check("accepting again after" in k.log(), k.log()[-1500:])
