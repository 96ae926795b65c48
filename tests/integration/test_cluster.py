"""One configuration for several gateways (the `cluster` section): real keel
processes on loopback sharing a real redis-server. A change applied on one
is applied on the others, each keeping its own listeners and node name; a
gateway that was stopped catches up when it is back; two gateways changed
apart while Redis was away are shown in conflict, neither is overwritten,
and an admin keeps one; a gateway with another key takes nothing."""

import json
import re
import subprocess

import harness
from harness import KEEL, check, free_port, http_get, wait_for
from test_api import Admin, setup

KEY = "correct-horse-battery-staple"


class Gateway:
    def __init__(self, h, name, redis_port, servers, key=KEY, extra="", node=None):
        self.h, self.name = h, name
        self.front, self.admin_port = free_port(), free_port()
        self.text = """node: %s
pid_file: "%s"
state_dir: "%s"
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }
listeners:
  - address: "127.0.0.1:%d"
redis:
  nodes: ["127.0.0.1:%d"]
  check_interval: 200ms
cluster: { name: shop, key: "%s" }
%s""" % (node or name, h.path(name + ".pid"), h.path("state-" + name), self.admin_port, self.front,
         redis_port, key, extra) + apps(servers)
        self.api = None
        self.start()

    def start(self):
        if self.api is None:
            self.k = self.h.keel(self.text, name=self.name, wait_port=self.admin_port)
        else:   # from the file as keel left it (an apply writes it)
            self.k = self.h.start(self.name, [KEEL, "-c", self.h.path(self.name + ".yaml")],
                                  ready=lambda: http_get(self.admin_port, "/healthz").status == 200)
        if self.api is None:
            self.api, _ = setup(self.k, self.admin_port)
        else:
            st, js = self.api.login()
            check(st == 200, (st, js))
        return self.k

    def status(self):
        st, js = self.api.call("GET", "/api/v1/status")
        check(st == 200, (st, js))
        return js["cluster"]

    def yaml(self):
        st, body = self.api.call("GET", "/api/v1/config/yaml")
        check(st == 200, st)
        return body

    def apply(self, text, comment="test"):
        st, js = self.api.call("PUT", "/api/v1/config/yaml?comment=" + comment, text,
                               headers={"Content-Type": "application/yaml"})
        check(st == 200, (st, js))
        return js

    def served(self):
        r = http_get(self.front, "/")
        return json.loads(r.body)["server"] if r.status == 200 else None


def apps(servers):
    return "upstreams:\n  u:\n    servers:\n" + "".join(
        '      - { address: "127.0.0.1:%d" }\n' % p for p in servers) + \
        'routes:\n  - { path: /, upstream: u }\n'


def proc(h, name):
    return [p for p in h.procs if p.name == name][0]


def redis_again(h, name, port):
    h.start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", h.dir],
            ready=lambda: harness.redis_cmd(port, "PING") == "+PONG")


def backends(h, names):
    return {n: h.http_backend(n) for n in names}


def own_part(g):
    """What a gateway applies for itself: its own text with new apps."""
    return g.text[:g.text.index("upstreams:")]


def in_sync(gws, gen=None):
    def probe():
        sts = [g.status() for g in gws]
        return all(s["state"] == "in sync" for s in sts) and \
            len({s["revision"] for s in sts}) == 1 and \
            (gen is None or all(s["generation"] == gen for s in sts))
    return probe


def test_a_change_on_one_gateway_is_applied_on_the_others_each_keeping_its_own(h):
    be = backends(h, ["s1", "s2", "s3"])
    rport = h.redis()
    a = Gateway(h, "gw-a", rport, [be["s1"]])
    # a's first change makes generation 1; b joins afterwards, new, and takes it.
    a.apply(own_part(a) + apps([be["s1"], be["s2"]]))
    check(a.status()["generation"] == 1, a.status())
    b = Gateway(h, "gw-b", rport, [be["s3"]])
    wait_for("b takes a's configuration", in_sync([a, b], 1), timeout=5)
    b.k.wait_log(r"cluster: generation 1 \([0-9a-f]{16}\) from gw-a applied as revision")
    seen = {b.served() for _ in range(8)}
    check(seen == {"s1", "s2"}, "b serves a's upstream, got %s" % seen)
    # b kept its own listener, admin address and node name.
    check(b.status()["node"] == "gw-b")
    check(http_get(b.front, "/").status == 200 and http_get(a.front, "/").status == 200)
    st, revs = b.api.call("GET", "/api/v1/revisions")
    check(revs[0]["author"] == "cluster:gw-a" and "generation 1 from gw-a" in revs[0]["comment"],
          revs[0])
    check("127.0.0.1:%d" % b.front in b.yaml() and "127.0.0.1:%d" % a.front not in b.yaml(),
          b.yaml())
    check("correct-horse" not in b.k.log() and "correct-horse" not in a.k.log(),
          "the key is never logged")
    # Nothing readable in Redis: the entries are sealed.
    raw = subprocess.run(["redis-cli", "-p", str(rport), "--raw", "GET", "keel:kv:conf.shop.gw-a"],
                         capture_output=True, text=True).stdout
    check(raw.startswith("1.") and "upstreams" not in raw, raw[:200])

    # The other way round: a change on b reaches a.
    b.apply(own_part(b) + apps([be["s1"], be["s2"], be["s3"]]), "three")
    wait_for("a takes b's change", in_sync([a, b], 2), timeout=5)
    wait_for("a serves s3 too", lambda: "s3" in {a.served() for _ in range(9)}, timeout=3)

    # b stopped; a changes twice; b back catches up on its return.
    b.k.signal(15)
    b.k.wait()
    a.apply(own_part(a) + apps([be["s1"]]), "one")
    a.apply(own_part(a) + apps([be["s2"]]), "two")
    check(a.status()["generation"] == 4, a.status())
    b.start()
    wait_for("b catches up", in_sync([a, b], 4), timeout=5)
    check({b.served() for _ in range(4)} == {"s2"}, "b serves what a runs")
    b.apply(own_part(b).replace("count: 1", "count: 2") + apps([be["s2"]]), "own-only")
    check(b.status()["generation"] == 4, "a change of b's own settings is not the cluster's")
    check(a.status()["generation"] == 4)
    st, js = b.api.call("POST", "/api/v1/cluster/resolve", {"keep": "gw-a"})
    check(st == 409 and "already runs" in js["error"], (st, js))
    # b renamed: its old entry goes, and a does not keep a gateway that no
    # longer is (nor shows a conflict with it).
    b.apply(own_part(b).replace("node: gw-b", "node: gw-b2") + apps([be["s2"]]), "renamed")
    wait_for("a to see gw-b2 only", lambda: [p["node"] for p in a.status()["peers"]] == ["gw-b2"],
             timeout=5)
    check(a.status()["state"] == "in sync", a.status())


def test_gateways_changed_apart_are_shown_in_conflict_until_an_admin_keeps_one(h):
    be = backends(h, ["s1", "s2", "s3"])
    rport = h.redis()
    a = Gateway(h, "gw-a", rport, [be["s1"]])
    a.apply(own_part(a) + apps([be["s1"], be["s2"]]))
    b = Gateway(h, "gw-b", rport, [be["s1"]])
    wait_for("in sync", in_sync([a, b], 1), timeout=5)
    # Redis goes away; each gateway is changed on its own.
    proc(h, "redis").signal(9)
    proc(h, "redis").wait()
    a.apply(own_part(a) + apps([be["s1"]]), "a-alone")
    b.apply(own_part(b) + apps([be["s3"]]), "b-alone")
    redis_again(h, "redis2", rport)
    wait_for("both see the conflict", lambda: a.status()["state"] == "conflict" and
             b.status()["state"] == "conflict", timeout=10)
    # Nothing was merged or overwritten: each serves what it was given.
    check({a.served() for _ in range(4)} == {"s1"} and {b.served() for _ in range(4)} == {"s3"})
    peers = {p["node"]: p for p in b.status()["peers"]}
    check(peers["gw-a"]["state"] == "diverged" and peers["gw-a"]["comment"] == "a-alone", peers)
    a.k.wait_log(r"cluster: .*changed apart: neither is applied", timeout=3)
    st, js = a.api.call("POST", "/api/v1/cluster/resolve", {"keep": "gw-x"})
    check(st == 409 and "no readable gateway" in js["error"], (st, js))
    st, js = a.api.call("POST", "/api/v1/cluster/resolve", {})
    check(st == 400, (st, js))
    # The admin keeps b's configuration, from a.
    st, js = a.api.call("POST", "/api/v1/cluster/resolve", {"keep": "gw-b"})
    check(st == 200, (st, js))
    wait_for("one configuration again", in_sync([a, b]), timeout=5)
    check({a.served() for _ in range(4)} == {"s3"}, "a runs b's configuration")
    st, audit = a.api.call("GET", "/api/v1/audit")
    check(any(e["action"] == "cluster resolve" for e in audit), audit[:3])
    # And the other way: apart again, this time the admin keeps this gateway's.
    proc(h, "redis2").signal(9)
    proc(h, "redis2").wait()
    a.apply(own_part(a) + apps([be["s2"]]), "a-again")
    b.apply(own_part(b) + apps([be["s1"]]), "b-again")
    redis_again(h, "redis3", rport)
    wait_for("conflict again", lambda: b.status()["state"] == "conflict", timeout=10)
    st, js = b.api.call("POST", "/api/v1/cluster/resolve", {"keep": "gw-b"})
    check(st == 200, (st, js))
    wait_for("b's kept", in_sync([a, b]), timeout=5)
    check({a.served() for _ in range(4)} == {"s1"}, "a runs b's configuration")


def test_a_gateway_with_another_key_takes_nothing(h):
    be = backends(h, ["s1", "s2"])
    rport = h.redis()
    a = Gateway(h, "gw-a", rport, [be["s1"]])
    a.apply(own_part(a) + apps([be["s1"], be["s2"]]))
    c = Gateway(h, "gw-c", rport, [be["s2"]], key="another-key-of-16-chars")
    wait_for("c cannot read a", lambda: any(p["state"] == "unreadable" for p in
                                            c.status()["peers"]), timeout=5)
    peer = c.status()["peers"][0]
    check("not sealed with this cluster's key" in peer["error"], peer)
    check(c.status()["generation"] == 0 and {c.served() for _ in range(4)} == {"s2"})
    # A forged entry in Redis, under b's name, is refused the same way.
    harness.redis_cmd(rport, "SET", "keel:kv:conf.shop.gw-z", "1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    harness.redis_cmd(rport, "PUBLISH", "keel:kv", "conf.shop.gw-z")
    wait_for("a refuses the forged entry", lambda: any(
        p["node"] == "gw-z" and p["state"] == "unreadable" for p in a.status()["peers"]), timeout=5)
    check(a.status()["generation"] == 1)


def test_bad_cluster_settings_are_refused_with_their_reason(h):
    base = 'pid_file: ""\nstate_dir: "%s"\nadmin: { tls: { enabled: false } }\n' % h.path("state")
    cases = [
        ("cluster: { name: shop }", r"cluster.key: a cluster needs a key of 16 characters"),
        ("cluster: { name: shop, key: short }", r"cluster.key: a cluster needs a key"),
        ('cluster: { name: "a b", key: "%s" }' % KEY, r"cluster.name: may hold only letters"),
    ]
    for i, (c, want) in enumerate(cases):
        conf = h.write("bad%d.yaml" % i, base + c + "\n")
        r = subprocess.run([KEEL, "-c", conf], capture_output=True, text=True, timeout=20)
        out = r.stdout + r.stderr
        check(r.returncode != 0, "keel started with %s" % c)
        check(re.search(want, out), "for %s wanted /%s/, got:\n%s" % (c, want, out[-800:]))
        check("short" not in out, "the key is not echoed")


def test_two_gateways_with_one_name_are_told(h):
    be = backends(h, ["s1", "s2"])
    rport = h.redis()
    a = Gateway(h, "gw-a", rport, [be["s1"]])
    a.apply(own_part(a) + apps([be["s1"], be["s2"]]))
    # A second box set up with a's node name: one of the two says so.
    c = Gateway(h, "gw-c", rport, [be["s2"]], node="gw-a")
    told = r"node name: DOWN: another gateway of cluster shop calls itself gw-a too"
    wait_for("a box to say so", lambda: re.search(told, a.k.log() + c.k.log()), timeout=8)
    # Neither took the other's entry for a peer's, and a runs what it ran.
    check(a.status()["generation"] == 1 and a.status()["peers"] == [], a.status())
    check(c.status()["peers"] == [] and {c.served() for _ in range(4)} == {"s2"}, c.status())
