"""The RESP front as transparent as a cable: a busy master is not a dead
one, SCRIPT KILL and FUNCTION KILL reach it, keel's own connections can be
killed without dropping an app, deep replies and replication streams go
through, and protocol errors read as Redis's. The fast slice of
`make test-redis-suite`, which runs Redis's own test suite through keel."""

import os
import re
import socket
import subprocess
import threading
import time

import harness
from harness import Resp, RespError, check, free_port, wait_for
from rediscluster import call, node
from test_redis import dropped, front_ready, keel_conf

# Redis's clock, not ours: the script runs ARGV[1] ms, whatever the load.
SPIN = ("local function now() local t = redis.call('TIME') "
        "return t[1] * 1000 + t[2] / 1000 end "
        "local e = now() + tonumber(ARGV[1]) while now() < e do end return 'done'")


def start(h, extra=(), lines=""):
    r = node(h, "redis-a", extra=list(extra))
    admin, front = free_port(), free_port()
    k = h.keel(keel_conf(admin, "redis:\n  nodes: [\"127.0.0.1:%d\"]\n  check_interval: 200ms\n"
                         % r + lines, front), wait_port=admin)
    front_ready(front)
    return r, front, k


def no_loss(k):
    log = k.log()
    check(" lost: " not in log, "keel took the master for lost:\n%s" % log[-3000:])
    check("disconnected from the old master" not in log, "keel dropped clients:\n%s"
          % log[-3000:])


def test_a_busy_master_keeps_its_clients(h):
    """A Lua script of 3 s, then one of 10 s (past Redis's 5 s busy
    threshold, where ROLE answers BUSY): the caller gets its reply, a client
    blocked in BLPOP and an idle one keep their connections, and a client
    that arrives meanwhile gets Redis's BUSY, not keel's MASTERDOWN."""
    r, front, k = start(h)
    blocked, idle = Resp(front, timeout=30), Resp(front, timeout=30)
    check(idle.call("PING") == "PONG")
    blocked.send("BLPOP", "q", "0")
    for ms in (3000, 10000):
        caller = Resp(front, timeout=ms / 1000 + 10)
        t0 = time.monotonic()
        caller.send("EVAL", SPIN, "0", str(ms))
        if ms > 5000:
            time.sleep(6.5)		# past busy-reply-threshold
            late = Resp(front, timeout=5)
            got = late.call("PING")
            check(isinstance(got, RespError) and str(got).startswith("BUSY"),
                  "a client arriving while the master is busy: %r" % (got,))
            late.close()
        check(caller.read() == b"done", "the script's caller got its reply")
        took = time.monotonic() - t0
        check(took >= ms / 1000 - 0.1, "the script ran %.1f s" % took)
        check(caller.call("PING") == "PONG", "the caller's connection is still there")
        caller.close()
        print("    %d ms script: its caller answered after %.1f s" % (ms, took))
    check(idle.call("LPUSH", "q", "job") == 1, "the idle client's connection is still there")
    check(blocked.read() == [b"q", b"job"], "the client blocked in BLPOP kept its connection")
    no_loss(k)
    check(re.search(r"master 127\.0\.0\.1:\d+ is busy", k.log()),
          "keel said the master was busy:\n%s" % k.log()[-2000:])
    wait_for("keel to see ROLE answered again", lambda: "answers ROLE again" in k.log(),
             timeout=10)


def test_script_kill_function_kill_and_shutdown_reach_a_busy_master(h):
    """An endless script is stopped by SCRIPT KILL sent through the front,
    an endless function by FUNCTION KILL, and SHUTDOWN NOSAVE stops the
    server under a third: the commands Redis takes while busy get there."""
    r, front, k = start(h, extra=["--busy-reply-threshold", "500"])
    caller, killer = Resp(front, timeout=10), Resp(front, timeout=10)

    caller.send("EVAL", "while true do end", "0")
    time.sleep(1.0)
    check(killer.call("SCRIPT", "KILL") == "OK", "SCRIPT KILL through the front")
    got = caller.read()
    check(isinstance(got, RespError) and "SCRIPT KILL" in str(got), "the script: %r" % (got,))
    check(caller.call("PING") == "PONG")

    lib = "#!lua name=spinlib\nredis.register_function('spin', function() while true do end end)"
    check(killer.call("FUNCTION", "LOAD", lib) == b"spinlib")
    caller.send("FCALL", "spin", "0")
    time.sleep(1.0)
    check(killer.call("FUNCTION", "KILL") == "OK", "FUNCTION KILL through the front")
    got = caller.read()
    # Redis 7.0 words it as a script kill, naming the function.
    check(isinstance(got, RespError) and "killed by user" in str(got) and "spin" in str(got),
          "the function: %r" % (got,))
    no_loss(k)

    redis = [p for p in h.procs if p.name == "redis-a"][0]
    caller.send("EVAL", "while true do end", "0")
    time.sleep(1.0)
    killer.send("SHUTDOWN", "NOSAVE")
    wait_for("redis-server to exit on SHUTDOWN NOSAVE", lambda: not redis.alive(), timeout=10)
    k.wait_log(r"master 127\.0\.0\.1:%d lost" % r)


def keels_connections(r):
    """Redis's CLIENT LIST entries named keel-*: {id: name}."""
    out = {}
    for line in call(r, "CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name", "").startswith("keel-"):
            out[f["id"]] = f["name"]
    return out


def test_killing_keels_own_connections_drops_no_app(h):
    """keel names its connections (CLIENT SETNAME). Killing them one by one,
    or all at once with CLIENT KILL SKIPME yes sent through the front, drops
    no app client whose own connection was not killed, and keel
    reconnects quietly."""
    r, front, k = start(h)
    a, b = Resp(front), Resp(front)
    check(a.call("SET", "k", "v") == "OK")
    check(b.call("GET", "k") == b"v")
    steady = {"keel-check", "keel-kv", "keel-kv-sub"}
    wait_for("keel's named connections", lambda: steady <= set(keels_connections(r).values()),
             timeout=10)
    # Only the connections keel keeps: a node's ROLE probe (keel-probe)
    # comes and goes on its own, and one killed is not opened again.
    before = {cid: name for cid, name in keels_connections(r).items() if name in steady}
    for cid in before:
        call(r, "CLIENT", "KILL", "ID", cid)
    time.sleep(1.0)
    check(a.call("GET", "k") == b"v" and b.call("PING") == "PONG",
          "app clients kept their connections while keel's were killed")
    wait_for("keel to reconnect its own", lambda: set(keels_connections(r).values()) >=
             set(before.values()) and not set(keels_connections(r)) & set(before), timeout=10)

    # The operator's mass kill, from a client of the front: every other
    # connection goes (a and b too, as with Redis), the killer stays.
    killed = a.call("CLIENT", "KILL", "SKIPME", "yes")
    check(isinstance(killed, int) and killed >= 2, "CLIENT KILL SKIPME yes: %r" % (killed,))
    time.sleep(1.5)
    check(a.call("PING") == "PONG", "the client that killed the others kept its connection")
    check(a.call("GET", "k") == b"v")
    c = Resp(front)
    check(c.call("GET", "k") == b"v", "a new client is served")
    wait_for("keel to reconnect its own", lambda: {"keel-check", "keel-kv", "keel-kv-sub"} <=
             set(keels_connections(r).values()), timeout=10)
    no_loss(k)


def test_deep_replies_replication_streams_and_protocol_errors(h):
    """A reply nested deeper than any stack and Redis's own recursive-object
    reply are relayed; `redis-cli --rdb` and SYNC get the RDB payload and
    the replication stream; a malformed command gets Redis's error words
    after the replies to the commands before it."""
    r, front, k = start(h)
    c = Resp(front, timeout=10)
    deep = c.call("EVAL", "local t = {} local c = t for i = 1, 200 do local n = {} c[1] = n "
                  "c = n end c[1] = 7 return t", "0")
    depth = 0
    while isinstance(deep, list):
        deep, depth = deep[0], depth + 1
    check(deep == 7 and depth == 201, "a reply 201 levels deep: %d levels, leaf %r"
          % (depth, deep))

    # Redis's own test: a recursive table, cut by Redis with an error.
    raw = socket.create_connection(("127.0.0.1", front), timeout=10)
    raw.sendall(Resp.encode(["EVAL", "local a = {}; local b = {a}; a[1] = b; return a", "0"]))
    data = b""
    while b"-ERR reached lua stack limit\r\n" not in data:
        chunk = raw.recv(65536)
        check(chunk != b"", "the connection closed inside the recursive reply")
        data += chunk
    raw.sendall(b"PING\r\n")
    check(raw.recv(100) == b"+PONG\r\n", "the connection is still good after it")
    raw.close()

    # redis-cli --rdb through the front: a whole RDB file.
    check(c.call("SET", "in-the-dump", "yes") == "OK")
    dump = h.path("dump.rdb")
    out = subprocess.run(["redis-cli", "-p", str(front), "--rdb", dump], capture_output=True,
                         text=True, timeout=30)
    check(out.returncode == 0, "redis-cli --rdb: %s %s" % (out.stdout, out.stderr))
    with open(dump, "rb") as f:
        rdb = f.read()
    check(rdb.startswith(b"REDIS") and b"in-the-dump" in rdb, "the RDB file: %r" % rdb[:20])
    chk = subprocess.run(["redis-check-rdb", dump], capture_output=True, text=True)
    check(chk.returncode == 0, "redis-check-rdb: %s" % chk.stdout[-500:])

    # SYNC inline, as Redis's suite attaches to the replication stream.
    rs = socket.create_connection(("127.0.0.1", front), timeout=10)
    rs.sendall(b"SYNC\r\n")
    buf = b""
    while True:
        while b"\n" not in buf:
            buf += rs.recv(65536)
        line, buf = buf.split(b"\n", 1)
        if line:		# newlines are the master's keepalives
            break
    check(line.startswith(b"$"), "SYNC's payload header: %r" % line)
    n = int(line[1:].rstrip(b"\r"))
    while len(buf) < n:
        buf += rs.recv(65536)
    check(buf[:5] == b"REDIS", "the payload is an RDB")
    buf = buf[n:]
    check(c.call("SET", "propagated", "1") == "OK")
    end = time.monotonic() + 5
    while b"propagated" not in buf and time.monotonic() < end:
        buf += rs.recv(65536)
    check(b"propagated" in buf, "the write came down the replication stream: %r" % buf[-200:])
    rs.close()

    # Protocol errors: the commands before are answered, then Redis's words.
    for bad, words in ((b"*1\r\nfoo\r\n", b"expected '$', got 'f'"),
                       (b"*3000000000\r\n", b"invalid multibulk length"),
                       (b"*1\r\n$-10\r\n", b"invalid bulk length"),
                       (b"*1\r\n$2000000000\r\n", b"invalid bulk length")):
        s = socket.create_connection(("127.0.0.1", front), timeout=5)
        s.sendall(b"PING\r\n*1\r\n$4\r\nPING\r\n" + bad)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        check(got == b"+PONG\r\n+PONG\r\n-ERR Protocol error: " + words + b"\r\n",
              "%r: %r" % (bad, got))
        s.close()
    check(c.call("PING") == "PONG")
    no_loss(k)


def test_replicaof_through_the_front_stops_keel_serving_that_node(h):
    """REPLICAOF sent through the front makes the master a replica: keel's
    verified-master rule then drops its clients and answers new ones
    -MASTERDOWN naming why, until the node is a master again."""
    r = node(h, "redis-a")
    admin, front = free_port(), free_port()
    h.keel("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
           "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n"
           "redis:\n  nodes: [\"127.0.0.1:%d\"]\n  check_interval: 200ms\n"
           "  front: { listen: [\"127.0.0.1:%d\"], wait_master: 1s }\n" % (admin, r, front),
           wait_port=admin)
    front_ready(front)
    c = Resp(front)
    check(c.call("REPLICAOF", "127.0.0.1", str(free_port())) == "OK", "Redis took REPLICAOF")
    wait_for("the client to be dropped", lambda: dropped(c), timeout=5, interval=0.05)
    got = Resp(front, timeout=5).call("PING")
    check(isinstance(got, RespError) and str(got) == "MASTERDOWN keel has no Redis master: "
          "127.0.0.1:%d is a replica, not the master" % r, "a new client: %r" % (got,))
    check(call(r, "REPLICAOF", "NO", "ONE") == "OK")
    front_ready(front)
