"""Two gateways, one address: keel boxes sharing a virtual IPv4 address by
VRRPv3, each in a network namespace the test makes, on a bridge with a
client namespace. Nothing leaves the namespaces. Each box runs keel in
front of its own backend (answering with the box's name), so the client
sees which box served it through the virtual address. Also: keel against
a real keepalived with the same virtual router id, and bad ha settings."""

import json
import os
import re
import signal
import subprocess
import time

import harness
from harness import KEEL, check, wait_for

ADVERT_FAST = "100ms"


def sh(*argv, ns=None, check_rc=True):
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    r = subprocess.run(argv, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise harness.TestFailure("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


class Lan:
    """A bridge in its own namespace, and boxes on it: namespace
    NAME+tag with interface eth0 at 10.79.tag.X/24 and fd79:tag::X/64
    (duplicate address detection off, so addresses work at once). The
    client is a box."""

    def __init__(self, h):
        self.h = h
        self.tag = os.getpid() % 200 + 1
        self.br = "hbr%d" % self.tag
        self.boxes = {}
        self._gone(self.br)
        try:
            sh("ip", "netns", "add", self.br)
        except harness.TestFailure as e:
            harness.skip("no network namespaces here: %s" % e)
        h.defer(lambda: self._gone(self.br))
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.br)
        sh("ip", "link", "set", "br0", "up", ns=self.br)

    @staticmethod
    def _gone(ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def box(self, name, host):
        """Namespace for box name, with 10.79.tag.host on eth0."""
        ns = "h%s%d" % (name, self.tag)
        port = "p%s%d" % (name, self.tag)
        self._gone(ns)
        sh("ip", "netns", "add", ns)
        self.h.defer(lambda: self._gone(ns))
        sh("ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
           "netns", self.br)
        sh("ip", "link", "set", port, "master", "br0", ns=self.br)
        sh("ip", "link", "set", port, "up", ns=self.br)
        sh("ip", "addr", "add", "%s/24" % self.addr(host), "dev", "eth0", ns=ns)
        for conf in ("all", "default", "eth0"):
            sh("sh", "-c", "echo 0 > /proc/sys/net/ipv6/conf/%s/accept_dad" % conf, ns=ns)
        sh("ip", "addr", "add", "%s/64" % self.addr6(host), "dev", "eth0", "nodad", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        self.boxes[name] = ns
        return ns

    def addr(self, host):
        return "10.79.%d.%d" % (self.tag, host)

    def addr6(self, host):
        return "fd79:%x::%x" % (self.tag, host)

    def port_of(self, name):
        return "p%s%d" % (name, self.tag)

    def has(self, ns, ip):
        """ip is one of ns's addresses on eth0."""
        return (" %s/" % ip) in sh("ip", "-6" if ":" in ip else "-4", "addr", "show", "dev",
                                   "eth0", ns=ns)


def get(ns, url, timeout=0.5):
    """curl from namespace ns: the body, or None."""
    r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", str(timeout), url],
                       capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else None


def served_by(ns, url, timeout=0.5):
    body = get(ns, url, timeout)
    try:
        return json.loads(body)["server"] if body else None
    except (ValueError, KeyError):
        return None


def backend(h, ns, name, port, tag=""):
    """The box's app server, answering with the box's name."""
    return h.start("backend-" + name + tag, ["ip", "netns", "exec", ns, "python3",
                                             os.path.join(harness.HERE, "backend.py"),
                                             "--port", str(port), "--name", name])


def box_keel(h, lan, name, host, priority, vip, advert=ADVERT_FAST, extra="", upstream="",
             server="", upstreams=None, listen='"0.0.0.0:8080"'):
    """A box: its namespace, a backend named after it, and keel with ha."""
    ns = lan.box(name, host)
    bport = 9000 + host
    backend(h, ns, name, bport)
    conf = """pid_file: "%s"
state_dir: "%s"
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["127.0.0.1:8081"], tls: { enabled: false }, metrics_token: "%s" }
listeners: [ { address: LISTEN } ]
upstreams: { app: { %sservers: [ { address: "127.0.0.1:%d"%s } ] } }
routes: [ { path: /, upstream: app } ]
UPSTREAMS
ha:
  interface: eth0
  vrid: 42
  priority: %d
  addresses: [ "%s" ]
  advert_interval: %s
%s""" % (h.path(name + ".pid"), h.path("state-" + name), harness.METRICS_TOKEN, upstream, bport,
       server, priority, vip, advert, extra)
    if upstreams is not None:
        conf = re.sub(r"upstreams: .*\n", "", conf).replace("UPSTREAMS", upstreams)
    conf = conf.replace("UPSTREAMS\n", "").replace("LISTEN", listen)
    path = h.write(name + ".yaml", conf)
    return start_keel(h, name, ns, path)


def start_keel(h, name, ns, path):
    p = h.start(name, ["ip", "netns", "exec", ns, KEEL, "-c", path])
    p.runs_keel = True
    p.ns = ns
    p.wait_log(r"ha: BACKUP for vrid", timeout=10)
    return p


def test_two_keels_elect_one_master_and_a_killed_one_is_replaced_within_a_second(h):
    lan = Lan(h)
    vip = lan.addr(50)
    url = "http://%s:8080/" % vip
    a = box_keel(h, lan, "a", 1, 200, vip)
    b = box_keel(h, lan, "b", 2, 100, vip)
    client = lan.box("c", 100)

    a.wait_log(r"ha: MASTER for vrid 42 on eth0 \(priority 200", timeout=5)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)
    check(lan.has(a.ns, vip) and not lan.has(b.ns, vip), "the address is on a only")
    check("MASTER" not in b.log(), "b never became master:\n" + b.log()[-1500:])

    # SIGKILL: no goodbye. b takes over after 3 x 100 ms + skew.
    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGKILL)
    wait_for("the client served by b", lambda: served_by(client, url, 0.2) == "b", timeout=5)
    took = time.monotonic() - t0
    print("    SIGKILL of the master to the first answer through b: %.0f ms" % (took * 1000))
    check(took < 1.0, "took %.2f s (goal: under 1 s with 100 ms adverts)" % took)
    check(lan.has(b.ns, vip), "b holds the address")

    # a comes back: it clears the address it left behind, starts as
    # backup, then takes the address back (preempt, priority 200 > 100).
    sh("ip", "link", "set", "eth0", "down", ns=a.ns)   # its stale address must not answer ARP
    check(lan.has(a.ns, vip), "a still had the address a SIGKILL left behind")
    sh("ip", "link", "set", "eth0", "up", ns=a.ns)
    a2 = start_keel(h, "a2", a.ns, h.path("a.yaml"))
    check(not lan.has(a.ns, vip), "a restarted without the stale address")
    a2.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    b.wait_log(r"ha: BACKUP for vrid 42 .*: [\d.]+ advertises priority 200", timeout=5)
    wait_for("the client served by a again", lambda: served_by(client, url) == "a", timeout=5)
    wait_for("b to give the address up", lambda: not lan.has(b.ns, vip), timeout=2)


def test_a_stopped_master_hands_over_at_once_and_a_frozen_one_takes_back_after_thaw(h):
    lan = Lan(h)
    vip = lan.addr(51)
    url = "http://%s:8080/" % vip
    a = box_keel(h, lan, "a", 1, 200, vip, advert="1s")
    b = box_keel(h, lan, "b", 2, 100, vip, advert="1s")
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER", timeout=8)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)

    # SIGSTOP: a stops advertising without knowing it. With 1 s adverts b
    # waits 3 s + its skew, about 3.6 s.
    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGSTOP)
    b.wait_log(r"ha: MASTER for vrid 42 .*no advert from", timeout=6)
    took = time.monotonic() - t0
    print("    SIGSTOP of the master to b master (1 s adverts): %.0f ms" % (took * 1000))
    check(3.0 < took < 4.5, "b took over after %.2f s, not 3 x 1 s + skew" % took)
    wait_for("the client served by b", lambda: served_by(client, url) == "b", timeout=3)

    # Thawed, a still thinks it is master: its next advert (priority 200)
    # makes b step down, b's last advert tells a the split healed.
    os.killpg(a.pid, signal.SIGCONT)
    b.wait_log(r"ha: BACKUP for vrid 42 .*advertises priority 200", timeout=4)
    a.wait_log(r"is also master \(priority 100\): a split has healed", timeout=4)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)
    check(not lan.has(b.ns, vip), "b gave the address up")

    # SIGTERM: a says goodbye (priority 0) and b takes over after its skew
    # alone, not three intervals.
    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGTERM)
    wait_for("the client served by b", lambda: served_by(client, url, 0.2) == "b", timeout=5)
    took = time.monotonic() - t0
    print("    SIGTERM of the master to the first answer through b: %.0f ms" % (took * 1000))
    check(took < 1.5, "a clean stop took %.2f s to hand over" % took)
    check(not lan.has(a.ns, vip), "a removed the address when it stopped")


def keepalived(h, lan, ns, name, priority, vip, advert=1):
    conf = h.write(name + ".conf", """global_defs {
  router_id %s
  vrrp_version 3
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 42
  priority %d
  advert_int %s
  virtual_ipaddress {
    %s/%d
  }
}
""" % (name, priority, advert, vip, 128 if ":" in vip else 32))
    pidfile = h.path(name + ".pid")
    p = h.start(name, ["ip", "netns", "exec", ns, "keepalived", "-n", "-l", "-D",
                       "-f", conf, "-p", pidfile, "-r", h.path(name + "-vrrp.pid"),
                       "-c", h.path(name + "-checkers.pid"),
                       "--no-syslog", "--log-console"])
    return p


def test_keel_and_keepalived_elect_one_master_between_them(h):
    if subprocess.run(["which", "keepalived"], capture_output=True).returncode != 0:
        harness.skip("keepalived is not installed")
    lan = Lan(h)
    vip = lan.addr(52)
    url = "http://%s:8080/" % vip
    a = box_keel(h, lan, "a", 1, 150, vip, advert="1s")
    kns = lan.box("k", 2)
    ka = keepalived(h, lan, kns, "keepalived", 100, vip)
    client = lan.box("c", 100)

    a.wait_log(r"ha: MASTER for vrid 42", timeout=8)
    wait_for("keepalived to be backup", lambda: "Entering BACKUP STATE" in ka.log(), timeout=8)
    wait_for("the client served by keel", lambda: served_by(client, url) == "a", timeout=5)
    time.sleep(2.5)    # keepalived would take over after 3 s without adverts it accepts
    check("Entering MASTER STATE" not in ka.log(),
          "keepalived took over from keel:\n" + ka.log()[-2000:])
    check(not lan.has(kns, vip), "keepalived did not add the address")

    # keel goes: keepalived takes the address at keel's priority-0 advert.
    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGTERM)
    wait_for("keepalived to be master", lambda: "Entering MASTER STATE" in ka.log(), timeout=5)
    print("    keel stopped to keepalived master: %.0f ms" % ((time.monotonic() - t0) * 1000))
    wait_for("keepalived to hold the address", lambda: lan.has(kns, vip), timeout=3)

    # keel comes back with the higher priority: it takes the address back
    # and keepalived hears it and steps down.
    a2 = start_keel(h, "a2", a.ns, h.path("a.yaml"))
    a2.wait_log(r"ha: MASTER for vrid 42", timeout=8)
    wait_for("keepalived to step down", lambda: ka.log().count("Entering BACKUP STATE") >= 2,
             timeout=5)
    wait_for("keepalived to drop the address", lambda: not lan.has(kns, vip), timeout=3)
    wait_for("the client served by keel", lambda: served_by(client, url) == "a", timeout=5)


def test_keel_is_backup_to_a_keepalived_of_higher_priority(h):
    if subprocess.run(["which", "keepalived"], capture_output=True).returncode != 0:
        harness.skip("keepalived is not installed")
    lan = Lan(h)
    vip = lan.addr(53)
    kns = lan.box("k", 2)
    ka = keepalived(h, lan, kns, "keepalived", 200, vip)
    wait_for("keepalived to be master", lambda: "Entering MASTER STATE" in ka.log(), timeout=8)
    a = box_keel(h, lan, "a", 1, 100, vip, advert="1s")
    time.sleep(4.5)      # more than 3 intervals and keel's skew
    check("MASTER" not in a.log(), "keel took over from a live keepalived:\n" + a.log()[-1500:])
    check(not lan.has(a.ns, vip), "keel did not add the address")
    st = sh("curl", "-s", "http://127.0.0.1:8081/api/v1/status", ns=a.ns, check_rc=False)
    del st   # the admin API needs a session; the log said enough

    ka.signal(signal.SIGKILL)
    a.wait_log(r"ha: MASTER for vrid 42 .*no advert from %s" % re.escape(lan.addr(2)),
               timeout=6)
    wait_for("keel to hold the address", lambda: lan.has(a.ns, vip), timeout=2)


def test_bad_ha_settings_are_refused_with_their_reason(h):
    lan = Lan(h)
    ns = lan.box("a", 1)
    base = """pid_file: ""
state_dir: "%s"
admin: { listen: ["127.0.0.1:8081"], tls: { enabled: false } }
""" % h.path("state")
    cases = [
        ("ha: { interface: nosuch0, addresses: [ \"%s\" ] }" % lan.addr(50),
         r'ha.interface: no interface named "nosuch0"'),
        ("ha: { interface: eth0, addresses: [ \"10.200.0.1\" ] }",
         r"ha.addresses\[0\]: 10.200.0.1 is not on eth0's subnet \(%s/24\)"
         % re.escape(lan.addr(1))),
        ("ha: { interface: eth0, addresses: [ \"%s\" ] }" % lan.addr(1),
         r"is eth0's own address"),
        ("ha: { interface: eth0, addresses: [ \"%s/33\" ] }" % lan.addr(50),
         r"ha.addresses\[0\].*the prefix length must be 1-32"),
        ("ha: { interface: eth0, addresses: [ \"10.1.2\" ] }",
         r'ha.addresses\[0\].*"10.1.2" is not an IP address'),
        ("ha: { interface: eth0, vrid: 256, addresses: [ \"%s\" ] }" % lan.addr(50),
         r"ha.vrid"),
        ("ha: { interface: eth0, advert_interval: 105ms, addresses: [ \"%s\" ] }" % lan.addr(50),
         r"ha.advert_interval: 105 ms is not a multiple of 10 ms"),
        ("ha: { interface: eth0 }", r"ha.addresses is empty"),
        ("ha: { interface: eth0, peers: [ \"gw-b\" ], addresses: [ \"%s\" ] }" % lan.addr(50),
         r'ha.peers\[0\]: "gw-b" is not an IPv4 address'),
        ("ha: { interface: eth0, auth_key: short, addresses: [ \"%s\" ] }" % lan.addr(50),
         r"ha.auth_key: 16 characters or more, the same on every box"),
    ]
    for i, (ha, want) in enumerate(cases):
        conf = h.write("bad%d.yaml" % i, base + ha + "\n")
        r = subprocess.run(["ip", "netns", "exec", ns, KEEL, "-c", conf], capture_output=True,
                           text=True, timeout=20)
        out = r.stdout + r.stderr
        check(r.returncode != 0, "keel started with %s" % ha)
        check(re.search(want, out), "for %s wanted /%s/, got:\n%s" % (ha, want, out[-800:]))
        check("Sanitizer" not in out and "runtime error" not in out, out[-2000:])


def test_a_reload_retunes_without_a_hand_over_and_a_bad_one_keeps_the_running_config(h):
    lan = Lan(h)
    vip, vip2 = lan.addr(54), lan.addr(55)
    a = box_keel(h, lan, "a", 1, 150, vip)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    conf = h.path("a.yaml")
    good = open(conf).read()

    # An interface that does not exist: refused, nothing changes.
    with open(conf, "w") as f:
        f.write(good.replace("interface: eth0", "interface: nosuch0"))
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r'ha: cannot prepare: ha.interface: no interface named "nosuch0"', after=mark)
    a.wait_log(r"reload refused; keeping generation 1", after=mark)
    check(lan.has(a.ns, vip), "the master kept its address")

    # An address off the subnet: refused the same way.
    with open(conf, "w") as f:
        f.write(good.replace('"%s"' % vip, '"%s", "10.250.0.1"' % vip))
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"ha.addresses\[1\]: 10.250.0.1 is not on eth0's subnet", after=mark)
    a.wait_log(r"reload refused; keeping generation 1", after=mark)

    # Another priority and a second address: the master stays master,
    # adds the address, and never gives the first one up.
    with open(conf, "w") as f:
        f.write(good.replace("priority: 150", "priority: 160")
                .replace('"%s"' % vip, '"%s", "%s"' % (vip, vip2)))
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"ha: settings changed for vrid 42 on eth0: priority 160, every 100 ms, "
               r"2 addresses", after=mark)
    wait_for("the second address", lambda: lan.has(a.ns, vip2), timeout=3)
    check(lan.has(a.ns, vip), "the first address stayed")
    check("BACKUP" not in a.log()[mark:], "a reload made the master step down:\n" + a.log()[mark:])

    # ha off: the addresses go.
    with open(conf, "w") as f:
        f.write(good.split("ha:")[0])
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"configuration generation 3 loaded", after=mark)
    wait_for("the addresses to go", lambda: not lan.has(a.ns, vip) and not lan.has(a.ns, vip2),
             timeout=3)


def test_a_master_that_cannot_serve_gives_the_address_away_and_takes_it_back_when_it_can(h):
    lan = Lan(h)
    vip = lan.addr(56)
    url = "http://%s:8080/" % vip
    checks = "health: { type: http, interval: 200ms, timeout: 150ms, unhealthy: 2, healthy: 2 }, "
    track = "  check_interval: 200ms\n  fall: 2\n  rise: 3\n"
    server = ", max_fails: 1, fail_timeout: 1s"
    a = box_keel(h, lan, "a", 1, 200, vip, extra=track, upstream=checks, server=server)
    b = box_keel(h, lan, "b", 2, 100, vip, extra=track, upstream=checks, server=server)
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)

    # a's only app server dies: a's upstream has no server up, a gives the
    # address away, b serves.
    t0 = time.monotonic()
    dead = [p for p in h.procs if p.name == "backend-a"][0]
    os.killpg(dead.pid, signal.SIGKILL)
    a.wait_log(r"ha: this box cannot serve after 2 failed checks \(upstream app: no server can "
               r"take requests \(127.0.0.1:9001: .*\)\): priority 1", timeout=5)
    a.wait_log(r"ha: BACKUP for vrid 42 on eth0 \(priority 1, .*\): this box cannot serve")
    b.wait_log(r"ha: MASTER for vrid 42", timeout=3)
    wait_for("the client served by b", lambda: served_by(client, url, 0.3) == "b", timeout=3)
    print("    a's app server killed to the client served by b: %.0f ms"
          % ((time.monotonic() - t0) * 1000))
    time.sleep(1)     # a stays backup while it cannot serve
    check(served_by(client, url) == "b", "b kept the address")
    check(not lan.has(a.ns, vip), "a gave the address up")

    # a's app server is back: after its checks rise, a takes the address
    # back (preempt).
    mark = a.mark()
    backend(h, a.ns, "a", 9001, tag="-again")
    a.wait_log(r"ha: this box serves again after 3 good checks: priority 200", after=mark,
               timeout=5)
    a.wait_log(r"ha: MASTER for vrid 42", after=mark, timeout=3)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)
    check(not lan.has(b.ns, vip), "b gave the address back")


def test_adverts_lost_one_way_leave_one_master_through_the_lease_in_redis(h):
    lan = Lan(h)
    vip = lan.addr(57)
    url = "http://%s:8080/" % vip
    rns = lan.box("r", 200)
    raddr = lan.addr(200)
    h.start("redis", ["ip", "netns", "exec", rns, "redis-server", "--bind", raddr,
                      "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no",
                      "--dir", h.dir])
    # The gateways find the Redis master through a real Sentinel.
    sconf = h.write("sentinel.conf", "port 26379\nbind %s\nprotected-mode no\ndir %s\n"
                    "sentinel monitor mymaster %s 6379 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n" % (raddr, h.dir, raddr))
    h.start("sentinel", ["ip", "netns", "exec", rns, "redis-server", sconf, "--sentinel"])
    wait_for("the Sentinel", lambda: raddr in sh("redis-cli", "-h", raddr, "-p", "26379",
                                                 "SENTINEL", "get-master-addr-by-name",
                                                 "mymaster", ns=rns, check_rc=False), timeout=5)
    shared = ('redis:\n  sentinels: ["%s:26379"]\n  master_name: mymaster\n'
              '  check_interval: 200ms\n' % raddr)
    a = box_keel(h, lan, "a", 1, 200, vip, extra=shared)
    b = box_keel(h, lan, "b", 2, 100, vip, extra=shared)
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    for p in (a, b):
        p.wait_log(r'redis: following master "mymaster" through 1 Sentinel', timeout=1)
    wait_for("the lease in Redis", lambda: sh("redis-cli", "-h", raddr, "GET", "keel:kv:ha.42",
                                              ns=rns).strip() == "%s,200" % lan.addr(1),
             timeout=5)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)

    # a's adverts stop reaching b (and only b), while b's reach a and
    # Redis is reachable from both
    # (b's route back to a goes nowhere and b checks the reverse path
    # strictly: what a sends, b drops on arrival; what b sends reaches a.)
    sh("sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter && "
       "echo 1 > /proc/sys/net/ipv4/conf/eth0/rp_filter", ns=b.ns)
    sh("ip", "route", "add", "blackhole", lan.addr(1) + "/32", ns=b.ns)
    b.wait_log(r"ha: no advert from %s, but it holds the lease with priority 200: its adverts "
               r"are lost on the way to this box; staying backup" % re.escape(lan.addr(1)),
               timeout=3)
    time.sleep(2)        # more than five times b's down timer
    check("MASTER" not in b.log(), "b became master while a was:\n" + b.log()[-1500:])
    check(not lan.has(b.ns, vip) and lan.has(a.ns, vip), "the address stayed on a only")
    check(served_by(client, url) == "a", "the client is still served by a")

    # The loss ends: b hears a again, and the condition it raised clears.
    sh("ip", "route", "del", "blackhole", lan.addr(1) + "/32", ns=b.ns)
    b.wait_log(r"ha: adverts from %s arrive again" % re.escape(lan.addr(1)), timeout=3)
    b.wait_log(r"alert: recovery: adverts: adverts from %s arrive again"
               % re.escape(lan.addr(1)), timeout=3)

    # a dies while the loss goes on again: its lease runs out, b takes over.
    sh("ip", "route", "add", "blackhole", lan.addr(1) + "/32", ns=b.ns)
    time.sleep(0.5)
    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGKILL)
    b.wait_log(r"ha: MASTER for vrid 42", timeout=3)
    wait_for("the client served by b", lambda: served_by(client, url, 0.2) == "b", timeout=3)
    took = time.monotonic() - t0
    print("    SIGKILL of the master under one-way loss to b serving: %.0f ms" % (took * 1000))
    check(took < 1.0, "took %.2f s" % took)


def pinned(ns, url, cookie=None):
    """(server, cookie) of one request from ns, sending cookie if given."""
    argv = ["ip", "netns", "exec", ns, "curl", "-s", "-m", "1", "-D", "-", url]
    if cookie:
        argv[6:6] = ["-H", "Cookie: KEELID=" + cookie]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    head, _, body = out.partition("\n\n")      # text mode: \r\n read as \n
    m = re.search(r"(?im)^set-cookie: KEELID=([A-Za-z0-9_-]+)", head)
    try:
        return json.loads(body)["server"], m.group(1) if m else cookie
    except (ValueError, KeyError):
        return None, cookie


def test_users_pinned_through_one_gateway_keep_their_server_through_the_other(h):
    lan = Lan(h)
    vip = lan.addr(58)
    url = "http://%s:8080/" % vip
    sns = lan.box("s", 150)
    for i in (1, 2, 3):
        h.start("s%d" % i, ["ip", "netns", "exec", sns, "python3",
                            os.path.join(harness.HERE, "backend.py"), "--port", str(9100 + i),
                            "--name", "s%d" % i, "--host", lan.addr(150)])
        wait_for("app server s%d" % i,
                 lambda i=i: get(sns, "http://%s:%d/" % (lan.addr(150), 9100 + i)) is not None)
    ups = ("upstreams: { app: { balance: cookie, servers: [ %s ] } }\n"
           % ", ".join('{ address: "%s:%d" }' % (lan.addr(150), 9100 + i) for i in (1, 2, 3)))
    key = 'proxy: { cookie_key: "the pair\'s shared affinity secret" }\n'
    a = box_keel(h, lan, "a", 1, 200, vip, upstreams=ups, extra=key)
    b = box_keel(h, lan, "b", 2, 100, vip, upstreams=ups, extra=key)
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    wait_for("the app servers", lambda: pinned(client, url)[0] is not None, timeout=5)

    users = [pinned(client, url) for _ in range(18)]
    check(all(s is not None and c for s, c in users), users)
    check(len({s for s, _ in users}) == 3, "the users are spread over the 3 servers: %s" % users)
    check("cookie_key" not in a.log() and "shared affinity secret" not in a.log(),
          "the secret stays out of the log")

    # A planned switch-over: a stops, b takes the address.
    os.killpg(a.pid, signal.SIGTERM)
    b.wait_log(r"ha: MASTER for vrid 42", timeout=3)
    wait_for("b's answers", lambda: pinned(client, url)[0] is not None, timeout=3)
    lost = [(s, c) for s, c in users if pinned(client, url, c)[0] != s]
    print("    pins lost in a planned switch-over: %d of %d" % (len(lost), len(users)))
    check(not lost, "users moved to another server: %s" % lost)


def metric(ns, name, labels):
    text = sh("curl", "-s", "-m", "2", "-H", "Authorization: Bearer " + harness.METRICS_TOKEN,
              "http://127.0.0.1:8081/metrics", ns=ns)
    for line in text.splitlines():
        if line.startswith(name + "{") and all(l in line for l in labels):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_server_one_gateway_took_out_is_out_on_the_other_through_redis(h):
    lan = Lan(h)
    vip = lan.addr(59)
    url = "http://%s:8080/" % vip
    sns, rns = lan.box("s", 150), lan.box("r", 200)
    servers = []
    for i in (1, 2, 3):
        servers.append(h.start("s%d" % i, ["ip", "netns", "exec", sns, "python3",
                                           os.path.join(harness.HERE, "backend.py"),
                                           "--port", str(9100 + i), "--name", "s%d" % i,
                                           "--host", lan.addr(150)]))
        wait_for("app server s%d" % i,
                 lambda i=i: get(sns, "http://%s:%d/" % (lan.addr(150), 9100 + i)) is not None)
    h.start("redis", ["ip", "netns", "exec", rns, "redis-server", "--bind", lan.addr(200),
                      "--port", "6379", "--protected-mode", "no", "--save", "",
                      "--appendonly", "no", "--dir", h.dir])
    ups = ("upstreams: { app: { servers: [ %s ] } }\n"
           % ", ".join('{ address: "%s:%d", max_fails: 1, fail_timeout: 20s }'
                       % (lan.addr(150), 9100 + i) for i in (1, 2, 3)))
    extra = 'redis:\n  nodes: ["%s:6379"]\n  check_interval: 200ms\n' % lan.addr(200)
    confs = {}
    for n, host, prio in (("a", 1, 200), ("b", 2, 100)):
        confs[n] = box_keel(h, lan, n, host, prio, vip, upstreams=ups,
                            extra=extra + "node: gw-%s\n" % n)
    a, b = confs["a"], confs["b"]
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    wait_for("answers", lambda: served_by(client, url) is not None, timeout=5)

    # s2 dies; requests through a find it out (and are answered by s1, s3).
    s2 = servers[1]
    os.killpg(s2.pid, signal.SIGKILL)
    got = [served_by(client, url, 1.0) for _ in range(6)]
    check(all(g in ("s1", "s3") for g in got), got)
    check(metric(a.ns, "keel_server_failures_total", ['server="%s:9102"' % lan.addr(150)]) >= 1,
          "a found s2 dead")
    b.wait_log(r"health: app/%s:9102 out for \d+ ms more: gateway gw-a took it out"
               % re.escape(lan.addr(150)), timeout=3)
    check(metric(b.ns, "keel_server_up", ['server="%s:9102"' % lan.addr(150)]) == 0,
          "s2 is out on b")

    # Through b now: s2 is never tried there.
    os.killpg(a.pid, signal.SIGTERM)
    b.wait_log(r"ha: MASTER for vrid 42", timeout=3)
    wait_for("answers through b", lambda: served_by(client, url) is not None, timeout=3)
    got = [served_by(client, url, 1.0) for _ in range(6)]
    check(all(g in ("s1", "s3") for g in got), got)
    check(metric(b.ns, "keel_server_failures_total", ['server="%s:9102"' % lan.addr(150)]) == 0,
          "b never tried s2")


SNIFF = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
s.settimeout(float(sys.argv[2]))
n = 0
try:
    while True:
        p = s.recv(2000)
        if p[16:20] == socket.inet_aton("224.0.0.18"):
            n += 1
except socket.timeout:
    pass
print(n)
"""


def multicast_adverts(ns, me, seconds):
    """VRRP adverts sent to 224.0.0.18 that ns hears within seconds."""
    out = sh("python3", "-c", SNIFF, me, str(seconds), ns=ns)
    return int(out.strip())


def test_unicast_peers_elect_a_master_without_multicast(h):
    lan = Lan(h)
    vip = lan.addr(60)
    url = "http://%s:8080/" % vip
    a = box_keel(h, lan, "a", 1, 200, vip, extra='  peers: [ "%s" ]\n' % lan.addr(2))
    b = box_keel(h, lan, "b", 2, 100, vip, extra='  peers: [ "%s" ]\n' % lan.addr(1))
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)
    check(multicast_adverts(client, lan.addr(100), 1.0) == 0,
          "no advert went to the multicast group")
    check("MASTER" not in b.log(), "b heard a's unicast adverts and stayed backup:\n"
          + b.log()[-1500:])

    t0 = time.monotonic()
    os.killpg(a.pid, signal.SIGKILL)
    wait_for("the client served by b", lambda: served_by(client, url, 0.2) == "b", timeout=5)
    took = time.monotonic() - t0
    print("    unicast: SIGKILL of the master to the first answer through b: %.0f ms"
          % (took * 1000))
    check(took < 1.0, "took %.2f s" % took)

    # A multicast keel of the same router is not a peer: b does not hear it.
    c = box_keel(h, lan, "d", 3, 250, vip)
    c.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    time.sleep(0.5)
    check(b.log().count("ha: BACKUP") == 1, "b stepped down for a box that is not its peer:\n"
          + b.log()[-1500:])


def test_a_vrid_clash_is_shown_and_a_reload_onto_a_vrid_in_use_is_refused(h):
    lan = Lan(h)
    vip_a, vip_b = lan.addr(60), lan.addr(61)
    a = box_keel(h, lan, "a", 1, 150, vip_a)
    b = box_keel(h, lan, "b", 2, 100, vip_b)
    # Another router (b) on a's VRID, for another address: each keeps its
    # own address and says so, and neither obeys the other.
    for p, other in ((a, lan.addr(2)), (b, lan.addr(1))):
        p.wait_log(r"ha: vrid 42 on eth0 is also used by %s for 10\.79\.\d+\.6[01] \(this box: "
                   r"10\.79\.\d+\.6[01]\): its adverts are ignored" % re.escape(other), timeout=5)
        p.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    check(lan.has(a.ns, vip_a) and lan.has(b.ns, vip_b), "each holds its own address")
    check("BACKUP for vrid 42 on eth0 (priority 100" not in b.log()[b.log().index("MASTER"):],
          "b stepped down for a router that is not its own")

    # b moves to VRID 43; the clash clears on a within three intervals.
    conf = h.path("b.yaml")
    text = open(conf).read()
    with open(conf, "w") as f:
        f.write(text.replace("vrid: 42", "vrid: 43"))
    b.signal(signal.SIGHUP)
    b.wait_log(r"ha: MASTER for vrid 43", timeout=5)
    a.wait_log(r"ha: no more adverts for vrid 42 from %s" % re.escape(lan.addr(2)), timeout=5)

    # A reload of a onto VRID 43, which b uses for its address: refused,
    # and a stays master of 42.
    conf = h.path("a.yaml")
    good = open(conf).read()
    with open(conf, "w") as f:
        f.write(good.replace("vrid: 42", "vrid: 43"))
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"ha: cannot prepare: ha.vrid: 43 is in use on eth0 by %s for %s \(heard "
               r"0\.\d s ago\): pick another" % (re.escape(lan.addr(2)), re.escape(vip_b)),
               after=mark)
    a.wait_log(r"reload refused; keeping generation 1", after=mark)
    check(lan.has(a.ns, vip_a), "a kept its address")
    # VRID 43 with b's own address is b's router, not a clash: taken.
    with open(conf, "w") as f:
        f.write(good.replace("vrid: 42", "vrid: 43").replace('"%s"' % vip_a, '"%s"' % vip_b))
    mark = a.mark()
    a.signal(signal.SIGHUP)
    a.wait_log(r"configuration generation 2 loaded", after=mark)
    a.wait_log(r"ha: (MASTER|BACKUP) for vrid 43", after=mark, timeout=5)


REPLAY = r"""
import socket, struct, sys
# Captures one advert of vrid 42 from sys.argv[2], then sends it again,
# byte for byte, when told on stdin: a replay from this box, with the
# master's source address.
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
s.settimeout(5)
while True:
    pkt, src = s.recvfrom(2048)
    if src[0] == sys.argv[2] and pkt[21] == 42:
        break
print("captured %d" % len(pkt), flush=True)
sys.stdin.readline()
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for _ in range(5):
    out.sendto(pkt, ("224.0.0.18", 0))
print("replayed", flush=True)
"""


def test_signed_adverts_ignore_a_box_without_the_key_and_a_replay(h):
    lan = Lan(h)
    vip = lan.addr(62)
    key = '  auth_key: "a shared secret of the pair"\n'
    a = box_keel(h, lan, "a", 1, 200, vip, extra=key)
    b = box_keel(h, lan, "b", 2, 100, vip, extra=key)
    a.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    check("MASTER" not in b.log(), "b heard a's signed adverts and stayed backup")
    # A box with the highest priority and no key (plain VRRP, as
    # keepalived sends): neither takes it for a master.
    x = box_keel(h, lan, "x", 3, 250, vip)
    x.wait_log(r"ha: MASTER for vrid 42", timeout=5)
    for p in (a, b):
        p.wait_log(r"ha: an advert from %s for vrid 42 ignored: not authenticated "
                   r"\(no keel trailer\)" % re.escape(lan.addr(3)), timeout=3)
    time.sleep(0.5)
    check("BACKUP for vrid 42" not in a.log()[a.log().index("MASTER"):],
          "a stepped down for an unsigned advert:\n" + a.log()[-1500:])
    x.signal(signal.SIGKILL)
    x.wait()
    # The same with another key.
    y = box_keel(h, lan, "y", 4, 250, vip, extra='  auth_key: "not the pair\'s secret!"\n')
    for p in (a, b):
        p.wait_log(r"ha: an advert from %s for vrid 42 ignored: not authenticated "
                   r"\(another key, or altered\)" % re.escape(lan.addr(4)), timeout=12)
    y.signal(signal.SIGKILL)
    y.wait()

    # A replay: one of a's adverts captured, a frozen, b master; the
    # capture sent again (a's source, a's priority 200) does not move b.
    cns = lan.box("c", 100)
    r = subprocess.Popen(["ip", "netns", "exec", cns, "python3", "-c", REPLAY,
                          lan.addr(100), lan.addr(1)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    h.defer(r.kill)
    check(r.stdout.readline().startswith("captured"), "an advert of a was captured")
    a.signal(signal.SIGSTOP)
    h.defer(lambda: a.signal(signal.SIGCONT))
    b.wait_log(r"ha: MASTER for vrid 42", timeout=3)
    mark = b.mark()
    r.stdin.write("go\n")
    r.stdin.flush()
    check(r.stdout.readline().strip() == "replayed")
    time.sleep(0.5)
    check("BACKUP" not in b.log()[mark:], "b stepped down for a replay:\n" + b.log()[mark:])
    check(lan.has(b.ns, vip), "b holds the address")
    a.signal(signal.SIGCONT)
    b.wait_log(r"ha: BACKUP for vrid 42", timeout=3, after=mark)


def test_ipv6_two_keels_elect_one_master_and_a_killed_one_is_replaced_within_a_second(h):
    lan = Lan(h)
    vip = lan.addr6(0x50)
    a = box_keel(h, lan, "a", 1, 200, vip, listen='"[::]:8080"')
    b = box_keel(h, lan, "b", 2, 100, vip, listen='"[::]:8080"')
    client = lan.box("c", 100)
    a.wait_log(r"ha: MASTER for vrid 42 on eth0 \(priority 200, fe80::", timeout=5)
    wait_for("the address on a", lambda: lan.has(a.ns, vip), timeout=3)
    url = "http://[%s]:8080/" % vip
    wait_for("the client served by a", lambda: served_by(client, url) == "a", timeout=5)
    check("MASTER" not in b.log(), "b heard a's IPv6 adverts and stayed backup")
    # The adverts, seen from the client: from a's link-local address to
    # ff02::12, hop limit 255 (else b would not have taken them).
    a.signal(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for("b to answer", lambda: served_by(client, url, timeout=0.2) == "b", timeout=3,
             interval=0.01)
    took = time.monotonic() - t0
    check(took < 1.0, "took %.2f s (goal: under 1 s with 100 ms adverts)" % took)
    check(lan.has(b.ns, vip), "b holds the address")
    # The client's neighbour entry moved to b's MAC at once: the
    # unsolicited neighbour advert (override) told it.
    mac_b = sh("cat", "/sys/class/net/eth0/address", ns=b.ns).strip()
    neigh = sh("ip", "-6", "neigh", "show", vip, ns=client)
    check(mac_b in neigh, "the client's entry for %s: %s (b is %s)" % (vip, neigh, mac_b))


def test_ipv6_keel_and_keepalived_elect_one_master_between_them(h):
    if subprocess.run(["which", "keepalived"], capture_output=True).returncode != 0:
        harness.skip("keepalived is not installed (tests/setup.sh installs it)")
    lan = Lan(h)
    vip = lan.addr6(0x51)
    kns = lan.box("k", 2)
    ka = keepalived(h, lan, kns, "keepalived", 200, vip)
    wait_for("keepalived to be master", lambda: "Entering MASTER STATE" in ka.log(), timeout=8)
    a = box_keel(h, lan, "a", 1, 100, vip, advert="1s", listen='"[::]:8080"')
    time.sleep(4.5)      # more than 3 intervals and keel's skew
    check("MASTER" not in a.log(), "keel took over from a live keepalived:\n" + a.log()[-1500:])
    check(not lan.has(a.ns, vip), "keel did not add the address")
    check("bad_packets" not in a.log() and "dropped" not in a.log())
    ka.signal(signal.SIGKILL)
    a.wait_log(r"ha: MASTER for vrid 42 .*no advert from fe80::", timeout=6)
    wait_for("keel to hold the address", lambda: lan.has(a.ns, vip), timeout=2)
    # And keel as master with keepalived of lower priority: keepalived
    # stays backup.
    kb = keepalived(h, lan, kns, "keepalived2", 50, vip)
    time.sleep(4.5)
    check("Entering MASTER STATE" not in kb.log(), "keepalived took over from keel:\n" +
          kb.log()[-1500:])
    check(lan.has(a.ns, vip) and not lan.has(kns, vip))


def test_ipv6_bad_settings_are_refused_with_their_reason(h):
    lan = Lan(h)
    ns = lan.box("a", 1)
    base = """pid_file: ""
state_dir: "%s"
admin: { listen: ["127.0.0.1:8081"], tls: { enabled: false } }
""" % h.path("state")
    cases = [
        ('ha: { interface: eth0, addresses: [ "fd00:dead::1" ] }',
         r"ha.addresses\[0\]: fd00:dead::1 is on none of eth0's IPv6 prefixes"),
        ('ha: { interface: eth0, addresses: [ "%s", "%s" ] }' % (lan.addr6(0x50), lan.addr(50)),
         r"ha.addresses\[1\]: .* is IPv4 and the first address is not: a virtual router is "
         r"of one family"),
        ('ha: { interface: eth0, addresses: [ "%s/129" ] }' % lan.addr6(0x50),
         r"the prefix length must be 1-128"),
        ('ha: { interface: eth0, addresses: [ "%s" ] }' % lan.addr6(1), r"is eth0's own address"),
        ('ha: { interface: eth0, peers: [ "%s" ], addresses: [ "%s" ] }'
         % (lan.addr(2), lan.addr6(0x50)), r'ha.peers\[0\]: ".*" is not an IPv6 address'),
    ]
    for i, (ha, want) in enumerate(cases):
        conf = h.write("bad%d.yaml" % i, base + ha + "\n")
        r = subprocess.run(["ip", "netns", "exec", ns, KEEL, "-c", conf], capture_output=True,
                           text=True, timeout=20)
        out = r.stdout + r.stderr
        check(r.returncode != 0, "keel started with %s" % ha)
        check(re.search(want, out), "for %s wanted /%s/, got:\n%s" % (ha, want, out[-800:]))
