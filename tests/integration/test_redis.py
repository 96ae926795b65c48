"""The shared Redis: keel's RESP front in front of real redis-server nodes
found through real Sentinels (or by ROLE), failover with kill -9, what the
clients see, and what reaches the old master afterwards (nothing)."""

import json
import os
import re
import socket
import threading
import time

import harness
import test_api
from harness import Resp, RespError, check, free_port, http_get, wait_for
from rediscluster import Cluster, call, node, role


def keel_conf(admin, redis_lines, front, extra=""):
    return ("workers: { count: 2 }\n"
            "monitors: { routes: false, servers: false }\n"
            "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false }, "
            "metrics_token: \"%s\" }\n" % (admin, harness.METRICS_TOKEN) +
            redis_lines + "  front: { listen: [\"127.0.0.1:%d\"], wait_master: 10s }\n" % front +
            extra)


def dropped(c):
    """Whether keel closed this client's connection."""
    try:
        c.call("PING")
        return False
    except (OSError, ConnectionError):
        return True


def front_ready(port, clients=8):
    """Every worker reaches a verified master: a worker verifies it on its
    own, and one that has not yet keeps its clients waiting. Eight clients
    at once, each answered within a second, land on both of two workers
    but for a chance of 1 in 128."""
    def probe():
        cs = []
        try:
            for _ in range(clients):
                cs.append(Resp(port, timeout=1))
            for c in cs:
                c.send("PING")
            return all(c.read() == "PONG" for c in cs)
        except (OSError, RespError):
            return False
        finally:
            for c in cs:
                c.close()
    wait_for("the RESP front to reach the master in every worker", probe, timeout=15)


_admins = {}


def status(k, admin):
    """The status API's "redis" object, through a session."""
    if admin not in _admins:
        _admins[admin] = test_api.setup(k, admin)[0]
    st, js = _admins[admin].call("GET", "/api/v1/status")
    check(st == 200, "status: %s %s" % (st, js))
    return js["redis"]


def metrics(admin):
    return http_get(admin, "/metrics").body


def test_front_speaks_redis_for_real_clients(h):
    """Pipelining, MULTI/EXEC, a blocking BLPOP, SUBSCRIBE, SELECT, HELLO 3
    and AUTH go through as they would to Redis; large values stream; a
    malformed command gets an error and the connection is closed."""
    r = node(h, "redis-a", extra=["--user", "app", "on", ">apppass", "~*", "&*", "+@all"])
    admin, front = free_port(), free_port()
    h.keel(keel_conf(admin, "redis:\n  nodes: [\"127.0.0.1:%d\"]\n" % r, front), wait_port=admin)
    front_ready(front)

    c = Resp(front)
    # Pipelining: 2000 commands in one write, 2000 replies in order.
    c.sock.sendall(b"".join(Resp.encode(["SET", "p%d" % i, str(i)]) for i in range(1000)) +
                   b"".join(Resp.encode(["GET", "p%d" % i]) for i in range(1000)))
    replies = [c.read() for _ in range(2000)]
    check(replies[:1000] == ["OK"] * 1000, "pipelined SETs: %r" % replies[:3])
    check(replies[1000:] == [str(i).encode() for i in range(1000)], "pipelined GETs in order")

    # MULTI/EXEC stays on one server connection.
    check(c.call("MULTI") == "OK")
    check(c.call("INCR", "ctr") == "QUEUED")
    check(c.call("INCR", "ctr") == "QUEUED")
    check(c.call("EXEC") == [1, 2], "EXEC")

    # SELECT is this client's alone.
    check(c.call("SELECT", "3") == "OK")
    check(c.call("SET", "indb3", "x") == "OK")
    other = Resp(front)
    check(other.call("GET", "indb3") is None, "SELECT leaked to another client")
    check(call(r, "SELECT", "3") == "OK")

    # A blocking BLPOP waits, and another client's LPUSH wakes it.
    other.send("BLPOP", "q", "5")
    time.sleep(0.2)
    c.call("SELECT", "0")
    check(c.call("LPUSH", "q", "job") == 1)
    check(other.read() == [b"q", b"job"], "BLPOP")

    # SUBSCRIBE: messages pushed until unsubscribed.
    sub = Resp(front)
    check(sub.call("SUBSCRIBE", "news") == [b"subscribe", b"news", 1])
    check(c.call("PUBLISH", "news", "hello") == 1)
    check(sub.read() == [b"message", b"news", b"hello"], "a pushed message")

    # A large value streams both ways (more than the front's buffers).
    big = os.urandom(8 << 20)
    check(c.call("SET", "big", big) == "OK")
    check(c.call("GET", "big") == big, "an 8 MB value came back changed")

    # AUTH with an ACL user and HELLO 3 go to Redis as they are.
    a = Resp(front)
    check(a.call("AUTH", "app", "apppass") == "OK", "AUTH app")
    check(a.call("ACL", "WHOAMI") == b"app", "ACL WHOAMI")
    check(isinstance(a.call("AUTH", "app", "wrong"), RespError), "a wrong password is refused")
    a.sock.sendall(Resp.encode(["HELLO", "3"]))
    time.sleep(0.2)
    data = a.sock.recv(65536)
    check(data.startswith(b"%"), "HELLO 3 answers with a RESP3 map: %r" % data[:20])

    # A malformed command: an error, then the connection is closed.
    bad = socket.create_connection(("127.0.0.1", front), timeout=2)
    bad.sendall(b"*1\r\n:12\r\n")
    got = bad.recv(4096)
    check(got.startswith(b"-ERR Protocol error"), "protocol error: %r" % got)
    check(bad.recv(4096) == b"", "the connection is closed after a protocol error")
    for x in (c, other, sub, a):
        x.close()
    m = metrics(admin)
    check("keel_redis_master_up 1" in m, "metrics: master up")
    check(re.search(r"keel_redis_front_bad_commands_total 1\b", m), "metrics: a bad command")


class Switch:
    """Listens to a Sentinel and notes when +switch-master arrives."""

    def __init__(self, port):
        self.at = None
        self.payload = None
        self.c = Resp(port, timeout=30)
        self.c.call("SUBSCRIBE", "+switch-master")
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            msg = self.c.read()
            self.at = time.monotonic()
            self.payload = msg[2].decode()
        except Exception:
            pass


class Writer:
    """SET/GET through the front as an app would: reconnect on error."""

    def __init__(self, port):
        self.port = port
        self.ok = []		# monotonic times of good SET+GET pairs
        self.errors = []
        self.stop = False
        self.n = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        c = None
        while not self.stop:
            try:
                if c is None:
                    c = Resp(self.port, timeout=15)
                self.n += 1
                key = "w%d" % self.n
                if c.call("SET", key, str(self.n)) != "OK" or c.call("GET", key) != str(self.n).encode():
                    raise RuntimeError("bad reply")
                self.ok.append(time.monotonic())
                time.sleep(0.005)
            except Exception as e:
                self.errors.append((time.monotonic(), repr(e)))
                if c is not None:
                    c.close()
                c = None
                time.sleep(0.005)

    def first_ok_after(self, t):
        for x in self.ok:
            if x > t:
                return x
        return None


class HttpLoad:
    def __init__(self, port):
        self.port = port
        self.good = self.bad = 0
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                ok = http_get(self.port, "/", timeout=5).status == 200
            except Exception:
                ok = False
            if ok:
                self.good += 1
            else:
                self.bad += 1
            time.sleep(0.01)


class Monitor:
    """MONITOR on a node from the moment it is back: every command it runs."""

    def __init__(self, port):
        self.lines = []
        self.c = None
        deadline = time.monotonic() + 5
        while self.c is None:
            try:
                self.c = Resp(port, timeout=60)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        check(self.c.call("MONITOR") == "OK")
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            while True:
                self.lines.append(self.c.read())
        except Exception:
            pass

    def writes_from(self, exclude_peer):
        """SETs run for anyone but the replication link from exclude_peer."""
        out = []
        for line in self.lines:
            m = re.match(r'\S+ \[\d+ ([^\]]+)\] "(\w+)"', line if isinstance(line, str) else "")
            if m and m.group(2).upper() == "SET" and not m.group(1).endswith(":%d" % exclude_peer):
                out.append(line)
        return out


def _omem(port):
    """The largest output buffer Redis holds for a client (CLIENT LIST omem,
    bytes), leaving out the connection that asks."""
    out = call(port, "CLIENT", "LIST").decode()
    sizes = [int(re.search(r"\bomem=(\d+)", line).group(1)) for line in out.splitlines()
             if "cmd=client|list" not in line and "cmd=client " not in line]
    return max(sizes or [0])


def _rss_kb(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            total += int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
    return total


def test_a_client_that_does_not_read_its_replies_is_not_read(h):
    """A client pipelines 2000 GETs of a 128 KiB value (250 MiB of replies)
    and reads nothing: the front stops taking its commands while its
    replies wait, so Redis's output buffer for it (CLIENT LIST omem) and
    keel's memory stay small; other clients are served meanwhile; when the
    client reads at last, every reply comes, in order."""
    r = node(h, "redis-a")
    admin, front = free_port(), free_port()
    k = h.keel(keel_conf(admin, "redis:\n  nodes: [\"127.0.0.1:%d\"]\n" % r, front),
               wait_port=admin)
    front_ready(front)
    value = os.urandom(128 << 10)
    check(call(r, "SET", "big", value) == "OK")
    n = 2000
    base_rss = _rss_kb(k.children())
    slow = Resp(front, timeout=30)
    slow.sock.sendall(Resp.encode(["GET", "big"]) * n)      # 44 KB: all of it at once
    omem = rss = 0
    end = time.monotonic() + 3
    while time.monotonic() < end:     # the most seen over 3 s
        omem = max(omem, _omem(r))
        rss = max(rss, _rss_kb(k.children()) - base_rss)
        time.sleep(0.1)
    print("    not reading: Redis omem at most %d KiB, keel's RSS grew %d KiB" % (omem >> 10, rss))
    # Unbounded, omem would reach n * 128 KiB = 250 MiB.
    check(omem < 48 << 20, "Redis buffers %d MiB of replies for a client that does not read"
          % (omem >> 20))
    check(rss < 32 << 10, "keel's workers grew by %d KiB" % rss)
    # The others are served meanwhile.
    other = Resp(front)
    check(other.call("SET", "x", "1") == "OK" and other.call("GET", "x") == b"1")
    other.close()
    # It reads at last: all the replies, whole and in order.
    for i in range(n):
        got = slow.read()
        if got != value:
            check(False, "reply %d of %d: %r" % (i, n, got[:40] if got else got))
    check(slow.call("PING") == "PONG")
    slow.close()


def test_apps_cannot_write_keels_keys_or_channel_through_the_front(h):
    """keel's shared state (admin sessions) lives under "keel:" on the same
    Redis: a command through the front that names a key or channel there is
    refused with -NOPERM and the connection closed, before any of it reaches
    Redis, in one piece or split anywhere; other keys are untouched."""
    r = node(h, "redis-a")
    admin, front = free_port(), free_port()
    h.keel(keel_conf(admin, "redis:\n  nodes: [\"127.0.0.1:%d\"]\n" % r, front), wait_port=admin)
    front_ready(front)

    def refused(chunks):
        s = socket.create_connection(("127.0.0.1", front), timeout=3)
        try:
            for chunk in chunks:
                s.sendall(chunk)
                time.sleep(0.05)
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return got
                got += b
        finally:
            s.close()

    forged = Resp.encode(["SET", "keel:kv:session:%s" % ("a" * 64), "forged"])
    for chunks in ([forged], [forged[:20], forged[20:]],
                   [Resp.encode(["PUBLISH", "keel:kv", "session:x"])],
                   [b"SET keel:kv:inline x\r\n"],
                   [Resp.encode(["SET", "ok", "1"]) + Resp.encode(["SET", "keel:kv:y", "z"])]):
        got = refused(chunks)
        check(got.endswith(b"-NOPERM keys and channels starting with \"keel:\" are reserved "
                           b"for keel\r\n"), got)
    check(call(r, "KEYS", "keel:*") == [], "keel: keys reached Redis")
    c = Resp(front)
    check(c.call("SET", "keelish", "1") == "OK" and c.call("GET", "keelish") == b"1")
    c.close()


def test_sentinel_failover_kill_9(h):
    """kill -9 the master: the front's clients are back within 200 ms of
    +switch-master, nothing reaches the old master once it is back, and the
    HTTP proxy does not fail a request meanwhile."""
    cl = Cluster(h)
    app = h.http_backend("app")
    admin, front, web = free_port(), free_port(), free_port()
    extra = ("listeners: [ { address: \"127.0.0.1:%d\" } ]\n"
             "upstreams: { app: { servers: [ { address: \"127.0.0.1:%d\" } ] } }\n"
             "routes: [ { path: \"/\", upstream: app } ]\n" % (web, app))
    k = h.keel(keel_conf(admin, cl.conf_lines(), front, extra), wait_port=admin)
    front_ready(front)
    old = cl.master()
    check(old == cl.ports["a"], "a is the master at first")

    sw = Switch(cl.sentinels[1])
    w = Writer(front)
    load = HttpLoad(web)
    wait_for("writes through the front", lambda: len(w.ok) > 20)
    killed_at = time.monotonic()
    victim = cl.proc(old)
    victim.popen.kill()
    victim.popen.wait(5)
    wait_for("+switch-master", lambda: sw.at is not None, timeout=20, interval=0.01)
    wait_for("a write after the switch", lambda: w.first_ok_after(sw.at) is not None, timeout=5)
    recovery = (w.first_ok_after(sw.at) - sw.at) * 1000
    new = int(sw.payload.split()[4])
    check(new == cl.ports["b"], "b was promoted: %s" % sw.payload)

    # The old master comes back empty, as a master, until Sentinel makes it
    # a replica: watch everything it runs from its first moment.
    h.start("redis-a-again", ["redis-server", "--port", str(old), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", h.path("redis-a")])
    mon = Monitor(old)
    # Sentinel converts it once it has seen it report "master" for a while
    # (its INFO period, up to 10 s, then 8 s more): on a busy machine this
    # has taken over 30 s.
    wait_for("the old master to rejoin as a replica", lambda: role(old) == "slave",
             timeout=50, interval=0.1)
    wait_for("it to sync", lambda: call(old, "DBSIZE") > 0, timeout=20, interval=0.1)
    time.sleep(1.0)		# writes keep coming through the front meanwhile
    w.stop = load.stop = True
    w.t.join(20)
    load.t.join(20)
    writes_old = mon.writes_from(new)

    st = status(k, admin)
    result = {
        "sentinel_switch_ms": round((sw.at - killed_at) * 1000),
        "redis_recovery_ms_keel": round(recovery, 1),
        "keel_switch_to_ready_ms": st["topology"]["last_switch_to_ready_ms"],
        "redis_writes_to_old_master": len(writes_old),
        "writer_errors": len(w.errors),
        "writes_ok": len(w.ok),
        "http_ok": load.good, "http_failed": load.bad,
        "front_dropped_at_failover": st["front"]["dropped_at_failover"],
    }
    os.makedirs(os.path.join(harness.ROOT, "build"), exist_ok=True)
    with open(os.path.join(harness.ROOT, "build", "redis-failover.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("    failover: %s" % json.dumps(result))
    check(recovery <= 200, "operations resumed %.0f ms after +switch-master (goal 200)" % recovery)
    check(not writes_old, "writes reached the old master: %r" % writes_old[:5])
    check(load.bad == 0 and load.good > 50, "HTTP through keel: %d failed, %d ok"
          % (load.bad, load.good))
    check(st["topology"]["master"] == "127.0.0.1:%d" % new, "status: %r" % st["topology"])
    check(st["topology"]["failovers"] >= 1, "status counts the failover")
    check(re.search(r"master 127\.0\.0\.1:%d lost" % old, k.log()), "the loss is logged")
    check("+switch-master mymaster" in k.log(), "the switch is logged")


def test_sentinels_partly_down_and_learnt(h):
    """Sentinels that do not answer are skipped in order; the others are
    learnt from SENTINEL sentinels."""
    cl = Cluster(h)
    dead1, dead2 = free_port(), free_port()
    admin, front = free_port(), free_port()
    lines = ("redis:\n  sentinels: [\"127.0.0.1:%d\", \"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
             "  master_name: mymaster\n  sentinel_timeout: 200ms\n"
             % (dead1, dead2, cl.sentinels[0]))
    k = h.keel(keel_conf(admin, lines, front), wait_port=admin)
    front_ready(front)
    c = Resp(front)
    check(c.call("SET", "x", "1") == "OK")
    st = status(k, admin)["topology"]
    addrs = [s["address"] for s in st["sentinels"]]
    check(addrs[0] == "127.0.0.1:%d" % cl.sentinels[0], "the one that answered goes first: %r" % addrs)
    for s in cl.sentinels:
        check("127.0.0.1:%d" % s in addrs, "Sentinel %d learnt: %r" % (s, addrs))
    down = [s for s in st["sentinels"] if s["address"] in ("127.0.0.1:%d" % dead1, "127.0.0.1:%d" % dead2)]
    check(all(not s["answered"] for s in down), "dead Sentinels are shown as such")
    # Two of the three real ones die: the third still answers.
    for p in [p for p in h.procs if p.name in ("sentinel-0", "sentinel-1")]:
        p.popen.kill()
    c.close()
    check(Resp(front).call("GET", "x") == b"1")


def test_static_nodes_follow_role(h):
    """Without Sentinel: ROLE picks the master; a manual switch (REPLICAOF)
    is noticed at the next check, clients are dropped, and new ones go to
    the new master only."""
    a = node(h, "redis-a")
    b = node(h, "redis-b", replica_of=a)
    admin, front = free_port(), free_port()
    lines = ("redis:\n  nodes: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n  check_interval: 200ms\n"
             % (b, a))
    k = h.keel(keel_conf(admin, lines, front), wait_port=admin)
    front_ready(front)
    c = Resp(front)
    check(c.call("SET", "k", "on-a") == "OK")
    check(call(a, "GET", "k") == b"on-a", "the write went to a, the master")
    # Swap the roles by hand.
    mark = k.mark()
    check(call(b, "REPLICAOF", "NO", "ONE") == "OK")
    check(call(a, "REPLICAOF", "127.0.0.1", str(b)) == "OK")
    t0 = time.monotonic()
    wait_for("the old client to be dropped", lambda: dropped(c), timeout=5, interval=0.02)
    # A worker drops its clients as soon as one of them gets READONLY,
    # which can come before the master's next ROLE check names b.
    k.wait_log(r"redis: master is 127\.0\.0\.1:%d \(ROLE says master\)" % b, timeout=5,
               after=mark)
    front_ready(front)
    d = Resp(front)
    check(d.call("SET", "k2", "on-b") == "OK", "a write after the switch")
    check(call(b, "GET", "k2") == b"on-b", "it went to b, the new master")
    print("    static switch noticed in %.0f ms" % ((time.monotonic() - t0) * 1000))


def test_redis_requiring_auth(h):
    """keel's own connections use the password; the apps send their own AUTH;
    a wrong password leaves no master and the front says why."""
    cl = Cluster(h, password="s3cret")
    admin, front = free_port(), free_port()
    k = h.keel(keel_conf(admin, cl.conf_lines(), front), wait_port=admin)
    wait_for("a master", lambda: status(k, admin)["topology"]["master"] is not None)
    c = Resp(front)
    r = c.call("GET", "x")
    check(isinstance(r, RespError) and "NOAUTH" in str(r), "no AUTH, no data: %r" % r)
    check(c.call("AUTH", "s3cret") == "OK")
    check(c.call("SET", "x", "1") == "OK")
    check("s3cret" not in k.log(), "the password is not logged")

    admin2, front2 = free_port(), free_port()
    lines = cl.conf_lines().replace("s3cret", "wrong") + "  connect_timeout: 200ms\n"
    k2 = h.keel('state_dir: "%s"\n' % h.path("state2") + keel_conf(admin2, lines, front2).replace("wait_master: 10s", "wait_master: 500ms"),
                name="keel2", wait_port=admin2)
    wait_for("the refusal to show", lambda: "WRONGPASS" in
             (status(k2, admin2)["topology"]["last_error"] or ""))
    got = Resp(front2).call("PING")
    check(isinstance(got, RespError) and str(got).startswith("MASTERDOWN"), "front: %r" % got)
    check("wrong" not in re.sub(r"WRONGPASS[^\n]*", "", k2.log()), "the password is not logged")


def test_admin_sessions_shared_through_redis(h):
    """Two gateways on one Redis: a login on one is a session on the other,
    a logout on either ends it; with Redis gone, logins still work (in
    memory) and are written back when it returns."""
    r = node(h, "redis-a")
    lines = "redis:\n  nodes: [\"127.0.0.1:%d\"]\n" % r
    a_admin, a_front, b_admin, b_front = free_port(), free_port(), free_port(), free_port()
    # The gateways share the key that signs session records, and each has
    # the same admin account (a session is adopted only for a known user).
    ka = h.keel(keel_conf(a_admin, lines, a_front).replace(
        "admin: {", 'admin: { session_key_file: "%s",' % h.path("session.key"), 1),
        wait_port=a_admin)
    kb = h.keel('state_dir: "%s"\n' % h.path("state-b") + keel_conf(b_admin, lines, b_front).replace(
        "admin: {", 'admin: { session_key_file: "%s",' % h.path("session.key"), 1),
        name="keel-b", wait_port=b_admin)
    test_api.setup(kb, b_admin)
    a, _ = test_api.setup(ka, a_admin)      # setup logs the admin in on A
    wait_for("A's session in Redis", lambda: len(call(r, "KEYS", "keel:kv:session:*")) == 2)
    check(a.cookie.split("=", 1)[1] not in str(call(r, "KEYS", "*")), "the raw token is not stored")
    b = test_api.Admin(b_admin)
    b.cookie, b.csrf = a.cookie, a.csrf
    st, js = b.call("GET", "/api/v1/status")
    check(st == 200 and js["redis"]["shared_state"] == "redis", "A's session on B: %s %s" % (st, js))
    st, _ = b.call("POST", "/api/v1/logout", {})
    check(st == 200, "logout on B")
    wait_for("the session to end on A", lambda: a.call("GET", "/api/v1/status")[0] == 401)

    # Redis gone: A keeps sessions in memory, nothing fails.
    [p for p in h.procs if p.name == "redis-a"][0].popen.kill()
    st, js = a.login()
    check(st == 200, "login without Redis: %s %s" % (st, js))
    st, js = a.call("GET", "/api/v1/status")
    check(st == 200 and js["redis"]["shared_state"] == "memory", "memory only: %s" % js.get("redis"))
    # Redis back (empty): A writes its sessions back.
    node(h, "redis-a2", port=r)
    wait_for("the sessions written back", lambda: len(call(r, "KEYS", "keel:kv:session:*")) >= 1,
             timeout=10)
    st, _ = b.call("GET", "/api/v1/status")
    check(st == 401, "the old cookie stays ended")
    b.cookie, b.csrf = a.cookie, a.csrf
    wait_for("the new session on B", lambda: b.call("GET", "/api/v1/status")[0] == 200, timeout=5)
