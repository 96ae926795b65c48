"""make bench, HA scenario: two gateways sharing one address, keel against
keepalived side by side in one run, in network namespaces this script
makes (a bridge, the two gateways, a client, the app servers and a Redis);
nothing leaves them.

  - ha_failover_ms: keel pair, 100 ms adverts; SIGKILL of the master's
    keel, right after one of its adverts, to the first answer through the
    address (median of the rounds);
  - ha_failover_ratio_vs_keepalived: the same with keepalived's default
    interval (1 s) for a keel pair and for a keepalived pair (keepalived
    and the service it fronts both killed), keel / keepalived;
  - ha_dual_master_ms: adverts from the master lost on the way to the
    backup (one way only) for 5 s, with the lease in Redis: how long both
    held the address (ha_dual_master_ms_no_redis: the same pair without
    Redis, for reference);
  - ha_pins_lost: users pinned through the master (cookie affinity) whose
    server changed after a planned switch-over (SIGTERM).

Merges its figures into build/bench.json."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import KEEL, ROOT, ROUNDS, median, merge_figures

BACKEND = os.path.join(ROOT, "tests", "integration", "backend.py")
TAG = os.getpid() % 200 + 1
BR = "kbbr%d" % TAG


def sh(*argv, ns=None, check=True):
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit("bench ha: %s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


def addr(host):
    return "10.78.%d.%d" % (TAG, host)


def box(name, host):
    ns = "kb%s%d" % (name, TAG)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    sh("ip", "netns", "add", ns)
    port = "q%s%d" % (name, TAG)
    sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
       "netns", BR)
    sh("ip", "link", "set", port, "master", "br0", ns=BR)
    sh("ip", "link", "set", port, "up", ns=BR)
    sh("ip", "addr", "add", "%s/24" % addr(host), "dev", "eth0", ns=ns)
    sh("ip", "link", "set", "eth0", "up", ns=ns)
    sh("ip", "link", "set", "lo", "up", ns=ns)
    return ns


def has(ns, ip):
    return (" %s/" % ip) in sh("ip", "-4", "addr", "show", "dev", "eth0", ns=ns, check=False)


class Procs:
    def __init__(self, tmp):
        self.tmp, self.all = tmp, []

    def start(self, name, ns, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        p.name = name
        self.all.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
            return f.read()

    def kill(self, p, sig=signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        self.all.remove(p)

    def stop_all(self):
        for p in list(self.all):
            self.kill(p, signal.SIGTERM)


def wait(what, probe, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if probe():
            return
        time.sleep(0.02)
    raise SystemExit("bench ha: timed out waiting for " + what)


def answer(ns, url, timeout=0.2, cookie=None):
    """(server, cookie) of one request, or (None, None)."""
    argv = ["ip", "netns", "exec", ns, "curl", "-s", "-m", str(timeout), "-D", "-", url]
    if cookie:
        argv[6:6] = ["-H", "Cookie: KEELID=" + cookie]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        return None, None
    head, _, body = r.stdout.partition("\n\n")
    m = re.search(r"(?im)^set-cookie: KEELID=([A-Za-z0-9_-]+)", head)
    try:
        return json.loads(body)["server"], (m.group(1) if m else cookie)
    except (ValueError, KeyError):
        return None, None


def keel_conf(tmp, name, prio, vip, advert, redis=True):
    ups = ", ".join('{ address: "%s:%d" }' % (addr(150), 9100 + i) for i in (1, 2, 3))
    text = """pid_file: ""
state_dir: "%s/state-%s"
workers: { count: 1 }
access_log: { format: off }
monitors: { routes: false, servers: false }
admin: { listen: ["127.0.0.1:8081"], tls: { enabled: false } }
listeners: [ { address: "0.0.0.0:8080" } ]
upstreams: { app: { balance: cookie, servers: [ %s ] } }
routes: [ { path: /, upstream: app } ]
proxy: { cookie_key: "bench pair shared secret" }
ha: { interface: eth0, vrid: 61, priority: %d, addresses: [ "%s" ], advert_interval: %s }
""" % (tmp, name, ups, prio, vip, advert)
    if redis:
        text += 'redis: { nodes: [ "%s:6379" ], check_interval: 200ms }\n' % addr(200)
    path = os.path.join(tmp, "%s-%s.yaml" % (name, advert))
    with open(path, "w") as f:
        f.write(text)
    return path


def keepalived_conf(tmp, name, prio, vip):
    path = os.path.join(tmp, "ka-%s.conf" % name)
    with open(path, "w") as f:
        f.write("global_defs {\n router_id %s\n vrrp_version 3\n}\n"
                "vrrp_instance V {\n state BACKUP\n interface eth0\n virtual_router_id 62\n"
                " priority %d\n advert_int 1\n virtual_ipaddress {\n  %s/32\n }\n}\n"
                % (name, prio, vip))
    return path


class KeelPair:
    label = "keel"

    def __init__(self, procs, tmp, nss, vip, advert, redis=True):
        self.procs, self.nss, self.vip = procs, nss, vip
        self.conf = {n: keel_conf(tmp, n, p, vip, advert, redis) for n, p in (("a", 200),
                                                                              ("b", 100))}
        self.p = {}
        for n in ("a", "b"):
            self.start(n)

    def start(self, n):
        self.p[n] = self.procs.start("keel-" + n, self.nss[n], [KEEL, "-c", self.conf[n]])

    def kill_master(self, sig=signal.SIGKILL):
        self.procs.kill(self.p["a"], sig)

    def restart_master(self):
        self.start("a")

    def stop(self):
        for n in ("a", "b"):
            if self.p[n] in self.procs.all:
                self.procs.kill(self.p[n], signal.SIGTERM)


class KeepalivedPair:
    label = "keepalived"

    def __init__(self, procs, tmp, nss, vip):
        self.procs, self.tmp, self.nss, self.vip = procs, tmp, nss, vip
        self.p = {}
        for n in ("a", "b"):
            self.start(n)

    def start(self, n):
        conf = keepalived_conf(self.tmp, n, 200 if n == "a" else 100, self.vip)
        pid = os.path.join(self.tmp, "ka-%s" % n)
        ka = self.procs.start("keepalived-" + n, self.nss[n],
                              ["keepalived", "-n", "-l", "-G", "-f", conf, "-p", pid + ".pid",
                               "-r", pid + "-vrrp.pid", "-c", pid + "-chk.pid"])
        svc = self.procs.start("svc-" + n, self.nss[n],
                               ["python3", BACKEND, "--host", "0.0.0.0", "--port", "8080",
                                "--name", n])
        self.p[n] = (ka, svc)

    def kill_master(self, sig=signal.SIGKILL):
        for p in self.p["a"]:
            self.procs.kill(p, sig)

    def restart_master(self):
        self.start("a")

    def stop(self):
        for n in ("a", "b"):
            for p in self.p[n]:
                if p in self.procs.all:
                    self.procs.kill(p, signal.SIGTERM)


ADVERT_WAITER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
s.settimeout(10)
print("ready", flush=True)
while True:
    p = s.recv(2000)
    if p[12:16] == socket.inet_aton(sys.argv[2]) and p[(p[0] & 15) * 4 + 2] > 0:
        print("advert", flush=True)
        break
"""


def after_an_advert(nss):
    """Returns once the master (a) has just advertised, so that every
    kill falls at the same point of its interval, for keel and for
    keepalived alike (otherwise the time since its last advert, 0 to one
    interval, is most of the difference between two rounds)."""
    p = subprocess.Popen(["ip", "netns", "exec", nss["c"], "python3", "-c", ADVERT_WAITER,
                          addr(100), addr(1)], stdout=subprocess.PIPE, text=True)
    try:
        if p.stdout.readline().strip() != "ready" or p.stdout.readline().strip() != "advert":
            raise SystemExit("bench ha: no advert from the master seen")
    finally:
        p.kill()
        p.wait()


POLLER = r"""
import http.client, sys, time
host = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
while True:
    try:
        c = http.client.HTTPConnection(host, 8080, timeout=0.1)
        c.request("GET", "/")
        if c.getresponse().status == 200:
            break
    except OSError:
        time.sleep(0.002)
print("%.1f" % ((time.monotonic() - t0) * 1000), flush=True)
"""


def failover_rounds(pair, nss, url, nrounds):
    """SIGKILL of the master, right after one of its adverts, to the first
    answer through the address, ms."""
    out = []
    for r in range(nrounds):
        wait("%s: a to hold the address" % pair.label, lambda: has(nss["a"], pair.vip)
             and not has(nss["b"], pair.vip))
        wait("%s: answers" % pair.label, lambda: answer(nss["c"], url)[0] is not None)
        time.sleep(1.5)      # the backup has settled on a as master
        # A client in its own namespace asks through the address in a
        # tight loop from the moment of the kill.
        poll = subprocess.Popen(["ip", "netns", "exec", nss["c"], "python3", "-c", POLLER,
                                 pair.vip], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        if poll.stdout.readline().strip() != "ready":
            raise SystemExit("bench ha: the client did not start")
        after_an_advert(nss)
        poll.stdin.write("go\n")
        poll.stdin.flush()
        pair.kill_master()
        try:
            ms = float(poll.communicate(timeout=30)[0].strip())
        except (subprocess.TimeoutExpired, ValueError):
            poll.kill()
            raise SystemExit("bench ha: %s: no answer within 30 s of the kill" % pair.label)
        out.append(ms)
        print("  round %d %-11s SIGKILL of the master to the first answer: %6.0f ms"
              % (r + 1, pair.label, ms))
        # the address left on a's interface by the kill goes when a starts
        pair.restart_master()
    return out


def rp_filter(ns, on):
    sh("sh", "-c", "echo %d > /proc/sys/net/ipv4/conf/all/rp_filter && "
       "echo %d > /proc/sys/net/ipv4/conf/eth0/rp_filter" % (on, on), ns=ns)


def dual_master(pair, nss, seconds=5.0):
    """Adverts from a lost on the way to b for `seconds`: ms both held the address."""
    wait("a to hold the address", lambda: has(nss["a"], pair.vip) and not has(nss["b"], pair.vip))
    time.sleep(1.5)
    rp_filter(nss["b"], 1)
    sh("ip", "route", "add", "blackhole", addr(1) + "/32", ns=nss["b"])
    both, end, last = 0.0, time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < end:
        a, b = has(nss["a"], pair.vip), has(nss["b"], pair.vip)
        now = time.monotonic()
        if a and b:
            both += now - last
        last = now
    sh("ip", "route", "del", "blackhole", addr(1) + "/32", ns=nss["b"])
    rp_filter(nss["b"], 0)
    return both * 1000


def answer_retried(ns, url, cookie=None):
    """A request that failed (not one that was answered by another
    server) is asked again: a lost pin is a wrong answer, not none."""
    for _ in range(5):
        got = answer(ns, url, 1.0, cookie)
        if got[0] is not None:
            return got
        time.sleep(0.2)
    return got


def pins_lost(pair, nss, url, users=30):
    wait("a to hold the address", lambda: has(nss["a"], pair.vip) and not has(nss["b"], pair.vip))
    time.sleep(0.5)
    got = [answer_retried(nss["c"], url) for _ in range(users)]
    if any(s is None or not c for s, c in got):
        raise SystemExit("bench ha: a user got no pin: %s" % got)
    pair.kill_master(signal.SIGTERM)
    wait("b to hold the address", lambda: has(nss["b"], pair.vip))
    wait("answers through b", lambda: answer(nss["c"], url)[0] is not None)
    lost = sum(1 for s, c in got if answer_retried(nss["c"], url, c)[0] != s)
    pair.restart_master()
    return lost, users


def main():
    for tool in ("keepalived", "redis-server", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh --bench installs it)" % tool)
    if os.geteuid() != 0:
        print("ha: skipped: network namespaces need root")
        return
    tmp = tempfile.mkdtemp(prefix="keel-bench-ha-")
    procs = Procs(tmp)
    nss = {}
    subprocess.run(["ip", "netns", "del", BR], capture_output=True)
    sh("ip", "netns", "add", BR)
    try:
        sh("ip", "link", "add", "br0", "type", "bridge", ns=BR)
        sh("ip", "link", "set", "br0", "up", ns=BR)
        for name, host in (("a", 1), ("b", 2), ("c", 100), ("s", 150), ("r", 200)):
            nss[name] = box(name, host)
        for i in (1, 2, 3):
            procs.start("s%d" % i, nss["s"], ["python3", BACKEND, "--host", addr(150),
                                               "--port", str(9100 + i), "--name", "s%d" % i])
        procs.start("redis", nss["r"], ["redis-server", "--bind", addr(200), "--port", "6379",
                                        "--protected-mode", "no", "--save", "",
                                        "--appendonly", "no", "--dir", tmp])
        for i in (1, 2, 3):
            wait("app server s%d" % i, lambda i=i: answer(
                nss["s"], "http://%s:%d/" % (addr(150), 9100 + i))[0] is not None)
        print("ha: %d rounds; gateways in namespaces %s and %s" % (ROUNDS, nss["a"], nss["b"]))
        fig = {}

        vip = addr(50)
        url = "http://%s:8080/" % vip
        pair = KeelPair(procs, tmp, nss, vip, "100ms")
        fast = failover_rounds(pair, nss, url, ROUNDS)
        lost, users = pins_lost(pair, nss, url)
        dual = dual_master(pair, nss)
        pair.stop()
        nolease = KeelPair(procs, tmp, nss, addr(51), "100ms", redis=False)
        dual_nr = dual_master(nolease, nss)
        nolease.stop()

        keel_1s, ka_1s = [], []
        vip2 = addr(52)
        url2 = "http://%s:8080/" % vip2
        for r in range(max(ROUNDS, 5)):     # alternating, one round of each at a time
            pair = KeelPair(procs, tmp, nss, vip2, "1s")
            keel_1s += failover_rounds(pair, nss, url2, 1)
            pair.stop()
            kpair = KeepalivedPair(procs, tmp, nss, vip2)
            ka_1s += failover_rounds(kpair, nss, url2, 1)
            kpair.stop()
            for n in ("a", "b"):     # keepalived killed leaves its address behind too
                sh("ip", "addr", "del", vip2 + "/32", "dev", "eth0", ns=nss[n], check=False)

        fig["ha_failover_ms"] = round(median(fast), 1)
        fig["ha_failover_keel_1s_ms"] = round(median(keel_1s), 1)
        fig["ha_failover_keepalived_1s_ms"] = round(median(ka_1s), 1)
        fig["ha_failover_ratio_vs_keepalived"] = round(median(keel_1s) / median(ka_1s), 3)
        fig["ha_dual_master_ms"] = round(dual, 1)
        fig["ha_dual_master_ms_no_redis"] = round(dual_nr, 1)
        fig["ha_pins_lost"] = lost
        print()
        print("  %-58s %9s  goal" % ("figure", "value"))
        print("  %-58s %9.0f  < 1000" % ("SIGKILL to first answer, 100 ms adverts (ms)",
                                          fig["ha_failover_ms"]))
        print("  %-58s %9.0f" % ("same, 1 s adverts: keel (ms)", fig["ha_failover_keel_1s_ms"]))
        print("  %-58s %9.0f" % ("same, 1 s adverts: keepalived (ms)",
                                 fig["ha_failover_keepalived_1s_ms"]))
        print("  %-58s %9.3f  <= 1.0" % ("keel / keepalived", fig["ha_failover_ratio_vs_keepalived"]))
        print("  %-58s %9.0f  <= 100" % ("two masters under 5 s of one-way loss, lease (ms)",
                                          fig["ha_dual_master_ms"]))
        print("  %-58s %9.0f" % ("same without Redis (ms)", fig["ha_dual_master_ms_no_redis"]))
        print("  %-58s %6d/%d  0" % ("pins lost in a planned switch-over", lost, users))
        merge_figures(fig)
    finally:
        procs.stop_all()
        for ns in list(nss.values()) + [BR]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if os.environ.get("BENCH_KEEP"):
            print("  files kept in " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
