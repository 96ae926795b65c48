"""Real Redis for the tests: a master, a replica and three Sentinels on
loopback (quorum 2, down-after-milliseconds 2000), or plain nodes."""

import os
import time

from harness import Resp, RespError, free_port, wait_for


def call(port, *args, password=None, timeout=2.0):
    c = Resp(port, timeout=timeout)
    try:
        if password:
            c.call("AUTH", password)
        return c.call(*args)
    finally:
        c.close()


def node(h, name, replica_of=None, password=None, port=None, extra=()):
    port = port or free_port()
    d = h.path(name)
    os.makedirs(d, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", d, "--notify-keyspace-events", "KEA"]
    if password:
        argv += ["--requirepass", password, "--masterauth", password]
    if replica_of:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    argv += list(extra)

    def ready():
        try:
            return call(port, "PING", password=password) == "PONG"
        except OSError:
            return False
    h.start(name, argv, ready=ready)
    return port


def role(port, password=None):
    try:
        r = call(port, "ROLE", password=password, timeout=0.5)
        return r[0].decode() if isinstance(r, list) else None
    except (OSError, ConnectionError):
        return None


class Cluster:
    def __init__(self, h, password=None, sentinels=3):
        self.h = h
        self.password = password
        self.ports = {}
        self.ports["a"] = node(h, "redis-a", password=password)
        self.ports["b"] = node(h, "redis-b", replica_of=self.ports["a"], password=password)
        self.sentinels = []
        for i in range(sentinels):
            port = free_port()
            conf = ["port %d" % port, "bind 127.0.0.1", "dir %s" % h.dir,
                    "sentinel monitor mymaster 127.0.0.1 %d 2" % self.ports["a"],
                    # 1000 ms let a node busy for a second under make test's
                    # load be failed over, and the restarted old master won
                    # the second election.
                    "sentinel down-after-milliseconds mymaster 2000",
                    "sentinel failover-timeout mymaster 3000",
                    "sentinel parallel-syncs mymaster 1"]
            if password:
                conf.append("sentinel auth-pass mymaster %s" % password)
            path = h.write("sentinel-%d.conf" % i, "\n".join(conf) + "\n")
            h.start("sentinel-%d" % i, ["redis-server", path, "--sentinel"],
                    ready=lambda p=port: call(p, "PING") == "PONG")
            self.sentinels.append(port)
        # Ready when every Sentinel knows the replica and the other Sentinels.
        def known():
            for s in self.sentinels:
                if len(call(s, "SENTINEL", "replicas", "mymaster")) < 1:
                    return False
                if len(call(s, "SENTINEL", "sentinels", "mymaster")) < len(self.sentinels) - 1:
                    return False
            return True
        wait_for("the Sentinels to know each other", known, timeout=30, interval=0.2)

    def master(self):
        r = call(self.sentinels[0], "SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(r[1])

    def name_of(self, port):
        return [k for k, v in self.ports.items() if v == port][0]

    def proc(self, port):
        want = "redis-" + self.name_of(port)
        return [p for p in self.h.procs if p.name == want and p.alive()][0]

    def conf_lines(self):
        return ("redis:\n  sentinels: [%s]\n  master_name: mymaster\n"
                % ", ".join('"127.0.0.1:%d"' % s for s in self.sentinels) +
                ("  password: \"%s\"\n" % self.password if self.password else ""))
