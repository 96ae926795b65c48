"""Shared storage against a real NFS server (nfs-ganesha on loopback): keel
probes it from its own loop through libnfs, notices a frozen server
(SIGSTOP) within 3 s while the proxy's other routes answer as before and no
keel process ever sits in D state, raises and clears the alert, and names
what is wrong with a server that is not there, an export that does not
exist, and a configuration it refuses."""

import os
import re
import signal
import time

import harness
import nfsserver
import test_api
from harness import check, free_port, http_get, wait_for
from test_proxy import yaml_conf

MOUNT = """storage:
  mounts:
    share:
      servers: [%s]
      export: "%s"
      path: "/share"
      probe_interval: 500ms
      probe_timeout: 1s
"""


def storage(admin, a):
    st, js = a.call("GET", "/api/v1/status")
    check(st == 200, "status: %s %s" % (st, js))
    return js["storage"]["mounts"][0]


def proc_states(k):
    """The state letter of keel's master and every child (R, S, D...)."""
    out = {}
    for pid in [k.pid] + k.children():
        try:
            with open("/proc/%d/stat" % pid) as f:
                out[pid] = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
    return out


def latency(front):
    t0 = time.monotonic()
    r = http_get(front, "/")
    check(r.status == 200, "the proxied route: %s" % r.status)
    return time.monotonic() - t0


def test_a_frozen_nfs_server_is_hung_within_3_s_and_healthy_again(h):
    if not nfsserver.available():
        harness.skip("nfs-ganesha, rpcbind or libnfs-utils is not installed (tests/setup.sh)")
    g, export = nfsserver.start(h)
    app = h.http_backend("app")
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, {"ua": [app]}, [{"path": "/", "upstream": "ua"}],
                         extra=MOUNT % ('"127.0.0.1"', "/export")), wait_port=admin)
    a, _ = test_api.setup(k, admin)
    wait_for("the share to be healthy", lambda: storage(admin, a)["state"] == "healthy",
             timeout=10)
    m = storage(admin, a)
    check(m["server"] == "127.0.0.1" and m["total_bytes"] > 0 and m["free_bytes"] > 0,
          "the share's server and space: %r" % m)
    check(m["mounted"] is False, "/share is not mounted on this machine: %r" % m)
    check('keel_storage_up{mount="share"} 1' in http_get(admin, "/metrics").body)
    before = sorted(latency(front) for _ in range(20))

    # Frozen: the kernel would wait 60 s per RPC; keel gives up on its own.
    t0 = time.monotonic()
    os.kill(g.pid, signal.SIGSTOP)
    try:
        during, worst_d = [], 0
        while storage(admin, a)["state"] != "hung":
            check(time.monotonic() - t0 < 5, "not hung 5 s after SIGSTOP: %r" % storage(admin, a))
            during.append(latency(front))
            worst_d = max(worst_d, sum(s == "D" for s in proc_states(k).values()))
            time.sleep(0.05)
        detect = time.monotonic() - t0
        m = storage(admin, a)
        check(re.match(r"(MOUNT|GETATTR|FSSTAT) timed out after 1000 ms \(2nd miss\)",
                       m["servers"][0]["reason"]), "the reason: %r" % m["servers"][0])
        k.wait_log(r"alert: storage share: DOWN: 127\.0\.0\.1:/export hung")
        for _ in range(20):
            during.append(latency(front))
            worst_d = max(worst_d, sum(s == "D" for s in proc_states(k).values()))
        check(worst_d == 0, "a keel process was in D state")
        check(max(during) < 0.5, "the proxy's route slowed down: worst %.3f s" % max(during))
    finally:
        os.kill(g.pid, signal.SIGCONT)
    t1 = time.monotonic()
    wait_for("the share to answer again", lambda: storage(admin, a)["state"] in
             ("healthy", "slow"), timeout=5, interval=0.05)
    recover = time.monotonic() - t1
    k.wait_log(r"recovery: storage share: UP: 127\.0\.0\.1:/export")
    print("    hung %.2f s after SIGSTOP, answering %.2f s after SIGCONT; proxied GET "
          "p50 %.1f ms before, worst %.1f ms during" %
          (detect, recover, before[10] * 1000, max(during) * 1000))
    check(detect <= 3.0, "detected in %.2f s, the goal is 3 s" % detect)


def test_what_is_wrong_with_a_mount_is_named(h):
    """No server at the address, an export that does not exist, and a
    configuration that is refused before anything starts."""
    if not nfsserver.available():
        harness.skip("nfs-ganesha, rpcbind or libnfs-utils is not installed (tests/setup.sh)")
    nfsserver.start(h)
    admin = free_port()
    conf = MOUNT % ('"127.0.0.1"', "/nope") + \
        "    empty:\n      servers: [\"127.0.0.9\"]\n      export: \"/export\"\n"
    k = h.keel("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
               "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n" % admin + conf,
               wait_port=admin)
    a, _ = test_api.setup(k, admin)

    def mounts():
        st, js = a.call("GET", "/api/v1/status")
        return {m["name"]: m for m in js["storage"]["mounts"]}
    wait_for("both mounts to fail", lambda: all(m["state"] == "failed"
                                                for m in mounts().values()), timeout=10)
    ms = mounts()
    check(ms["share"]["servers"][0]["reason"].startswith("MOUNT: "),
          "a missing export: %r" % ms["share"])
    check(ms["empty"]["servers"][0]["reason"].startswith("MOUNT: "),
          "no server there: %r" % ms["empty"])
    print("    a missing export: %s; no server: %s" % (ms["share"]["servers"][0]["reason"],
                                                         ms["empty"]["servers"][0]["reason"]))
    k.wait_log(r"storage share: 127\.0\.0\.1:/nope failed: MOUNT: ")
    k.wait_log(r"storage empty: 127\.0\.0\.9:/export failed: MOUNT: ")

    bad = h.write("bad.yaml", "storage:\n  mounts:\n    s:\n      servers: [\"nas.local\"]\n"
                  "      export: \"export\"\n      path: \"share\"\n"
                  "    \"a b\":\n      servers: [\"10.0.0.7\"]\n      export: \"/x\"\n"
                  "      path: \"/share/\"\n")
    r = h.run_keel("-t", "-c", bad)
    check(r.returncode != 0, "a bad storage config was accepted")
    for what in ("storage.mounts.s.servers[0]", "\"nas.local\" is not an IP address",
                 "storage.mounts.s.export", "must start with '/'", "storage.mounts.s.path",
                 "may hold only letters", "without a trailing '/'"):
        check(what in r.stderr + r.stdout, "%r not in:\n%s" % (what, r.stderr + r.stdout))
