"""Shared storage against a real NFS server (nfs-ganesha on loopback): keel
probes it from its own loop through libnfs, notices a frozen server
(SIGSTOP) within 3 s while the proxy's other routes answer as before and no
keel process ever sits in D state, raises and clears the alert, and names
what is wrong with a server that is not there, an export that does not
exist, and a configuration it refuses."""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import glusterserver
import guest
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
    g, _ = nfsserver.start(h)
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

    # The form that adds a mount lists a server's exports first.
    st, js = a.call("POST", "/api/v1/commands/storage.exports", {"arg": "127.0.0.1"})
    check(st == 200 and [e["path"] for e in js["exports"]] == ["/export"] and js["cut"] is False,
          "%s %r" % (st, js))
    st, js = a.call("POST", "/api/v1/commands/storage.exports", {"arg": "127.0.0.9"})
    check(st == 502 and js["error"].startswith("127.0.0.9"), "no server: %s %r" % (st, js))
    st, js = a.call("POST", "/api/v1/commands/storage.exports", {"arg": "nas.local"})
    check(st == 400 and js["error"] == '"nas.local" is not an IP address', "%s %r" % (st, js))
    st, js = a.call("POST", "/api/v1/commands/storage.nothing", {})
    check(st == 404, "an unknown command: %s %r" % (st, js))
    st, js = a.call("GET", "/api/v1/commands")
    check({"storage.exports", "storage.remount", "storage.switch"} <=
          {c["name"] for c in js["commands"]}, "the commands: %r" % js)
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

    # keel stops cleanly while the export list waits on a frozen server:
    # the admin request is let go, not left suspended in libmicrohttpd.
    def ask():
        try:
            a.call("POST", "/api/v1/commands/storage.exports", {"arg": "127.0.0.1"})
        except OSError:
            pass            # keel went away meanwhile, as it should
    os.kill(g.pid, signal.SIGSTOP)
    h.defer(lambda: g.signal(signal.SIGCONT) if g.alive() else None)
    waiting = threading.Thread(target=ask, daemon=True)
    waiting.start()
    time.sleep(0.5)
    k.signal(signal.SIGTERM)
    rc = k.wait(10)
    os.kill(g.pid, signal.SIGCONT)
    check(rc == 0 and "suspended" not in k.log(), "keel stopped with %s:\n%s" % (rc, k.log()[-600:]))
    k.wait_log(r"main: stopped")


GLUSTER = """storage:
  mounts:
    share:
      type: glusterfs
      servers: ["127.0.0.2", "127.0.0.3"]
      volume: gv0
      path: "%s"
      canary_interval: 500ms
"""


def mounted(path):
    """(fstype, source) of path in this machine's mount table, or None."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            if a.split()[4] == path:
                found = tuple(b.split()[:2])    # the last one is on top
    return found


def by_name(a):
    st, js = a.call("GET", "/api/v1/status")
    check(st == 200, "status: %s %s" % (st, js))
    return {m["name"]: m for m in js["storage"]["mounts"]}


def test_keel_mounts_glusterfs_keeps_it_through_a_dead_brick_and_remounts_it(h):
    """keel FUSE-mounts a replica-2 volume; one brick killed: still healthy;
    glusterd and both bricks killed: detected and alerted; back: mounted
    again and healthy; dropped from the config: unmounted."""
    if not glusterserver.available():
        harness.skip("glusterfs-server, glusterfs-client or /dev/fuse is missing "
                     "(tests/setup.sh)")
    g = glusterserver.start(h)
    share = h.path("share")
    admin = free_port()
    base = ("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
            "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n" % admin)
    t0 = time.monotonic()
    k = h.keel(base + GLUSTER % share, wait_port=admin)
    a, _ = test_api.setup(k, admin)
    wait_for("the volume to be mounted and healthy", lambda: by_name(a)["share"]["state"] ==
             "healthy", timeout=20)
    m = by_name(a)["share"]
    check(mounted(share) == ("fuse.glusterfs", "127.0.0.2:/gv0"), "mount table: %r" %
          (mounted(share),))
    check(m["owner"] == "keel" and m["check"]["ok"] and "backup-volfile-servers=127.0.0.3"
          in m["options"], "the mount: %r" % m)
    k.wait_log(r"storage share: mounted 127\.0\.0\.2:/gv0 on .*/share in \d+ ms")
    print("    mounted and healthy %.2f s after keel started" % (time.monotonic() - t0))
    with open(os.path.join(share, "app.txt"), "w") as f:
        f.write("uploaded\n")
    check(all(os.path.exists(os.path.join(b, "app.txt")) for b in g.bricks),
          "a file written to the mount is on both bricks")
    check(os.path.exists(os.path.join(g.bricks[0], ".keel-canary-keel-share")), "no canary file")

    # An operator's remount, through the API: audited, and the mount comes back.
    st, js = a.call("POST", "/api/v1/commands/storage.remount", {"target": "share"})
    check(st == 202 and js["mount"] == "share", "remount: %s %r" % (st, js))
    wait_for("the remount", lambda: by_name(a)["share"]["mounts"] == 2 and
             by_name(a)["share"]["state"] == "healthy", timeout=15)
    k.wait_log(r"storage share: unmounting .*/share: admin asked for a remount")
    st, js = a.call("POST", "/api/v1/commands/storage.switch", {"target": "share",
                                                                 "arg": "127.0.0.3"})
    check(st == 400 and "GlusterFS" in js["error"], "switch on GlusterFS: %s %r" % (st, js))
    st, js = a.call("POST", "/api/v1/commands/storage.remount", {"target": "nope"})
    check(st == 404 and js["error"] == 'no mount named "nope"', "%s %r" % (st, js))
    st, js = a.call("POST", "/api/v1/commands/storage.remount", {"target": "share"},
                    headers={"X-CSRF-Token": "0" * 32})
    check(st == 403, "a command without the CSRF token: %s" % st)
    _, audit = a.call("GET", "/api/v1/audit")
    check(any(e["action"] == "command" and e["detail"] == "storage.remount share: 202"
              for e in audit), "the remount is not audited: %r" % audit[:5])

    # One brick gone: the replica serves; the mount stays healthy.
    g.kill_brick(0)
    end = time.monotonic() + 4
    while time.monotonic() < end:
        m = by_name(a)["share"]
        check(m["state"] == "healthy", "one dead brick made the mount %s: %s" %
              (m["state"], m["reason"]))
        time.sleep(0.2)

    # glusterd and both bricks gone: the checks fail, keel says so.
    t1 = time.monotonic()
    g.kill_all()
    k.wait_log(r"alert: storage share: DOWN: ")
    detect = time.monotonic() - t1
    m = by_name(a)["share"]
    check(m["state"] in ("failed", "hung", "missing", "mounting") and
          m["last_incident"] is not None, "the mount after all servers went: %r" % m)
    print("    all servers down: alert after %.2f s: %s" % (detect, m["last_incident"]["reason"]))
    check(detect < 3, "noticed after %.2f s" % detect)
    wait_for("a failed remount", lambda: by_name(a)["share"]["attempts"] >= 2, timeout=15)

    # Back: keel mounts it again on its own.
    t2 = time.monotonic()
    g.start_glusterd()
    g.wait_bricks()
    wait_for("the mount to be healthy again", lambda: by_name(a)["share"]["state"] ==
             "healthy", timeout=30, interval=0.2)
    k.wait_log(r"recovery: storage share: UP: ")
    m = by_name(a)["share"]
    check(m["mounts"] >= 2 and mounted(share) is not None, "remounted: %r" % m)
    print("    healthy %.2f s after glusterd came back (%d attempts, %d mounts)" %
          (time.monotonic() - t2, m["attempts"], m["mounts"]))
    with open(os.path.join(share, "app.txt")) as f:
        check(f.read() == "uploaded\n", "the file is there after the remount")

    # The mount leaves the configuration: keel unmounts what it made.
    with open(k.argv[2], "w") as f:
        f.write('pid_file: "%s"\nstate_dir: "%s"\n' % (h.path("keel.pid"), h.path("state")) +
                base)
    k.signal(signal.SIGHUP)
    wait_for("the share to be unmounted", lambda: mounted(share) is None, timeout=10)
    k.wait_log(r"storage: unmounted .*/share \(its mount left the configuration\)")


def test_a_dead_nfs_server_holds_up_its_own_mount_attempt_only(h):
    """mount(8) against a frozen NFS server would wait for minutes: keel
    kills it at mount_timeout (5 s) while a GlusterFS mount next to it is
    mounted at once."""
    if not nfsserver.available() or not glusterserver.available() or \
            not shutil.which("mount.nfs"):
        harness.skip("nfs-ganesha, nfs-common or GlusterFS is missing (tests/setup.sh)")
    ng, _ = nfsserver.start(h)
    glusterserver.start(h)
    admin = free_port()
    nfs_path, gl_path = h.path("nfs"), h.path("share")
    os.kill(ng.pid, signal.SIGSTOP)
    h.defer(lambda: os.kill(ng.pid, signal.SIGCONT) if ng.alive() else None)
    conf = (GLUSTER % gl_path) + ("    nfs:\n      servers: [\"127.0.0.1\"]\n"
                                  "      export: /export\n      path: \"%s\"\n"
                                  "      options: nfsvers=3\n" % nfs_path)
    t0 = time.monotonic()
    k = h.keel("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
               "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n" % admin +
               conf, wait_port=admin)
    a, _ = test_api.setup(k, admin)
    wait_for("the GlusterFS mount", lambda: by_name(a)["share"]["state"] == "healthy",
             timeout=20, interval=0.05)
    gl_ready = time.monotonic() - t0
    check(gl_ready < 4, "the GlusterFS mount waited for the NFS one: %.2f s" % gl_ready)
    check(by_name(a)["nfs"]["state"] == "mounting", "the NFS attempt: %r" % by_name(a)["nfs"])
    wait_for("the NFS attempt to give up", lambda: by_name(a)["nfs"]["giveups"] >= 1,
             timeout=10, interval=0.05)
    m = by_name(a)["nfs"]
    check(m["state"] == "failed" and "gave up after" in m["reason"], "the reason: %r" % m)
    check(m["last_attempt_ms"] <= 5500, "gave up after %d ms" % m["last_attempt_ms"])
    check(not pids_of_mount(nfs_path), "mount(8) still runs: %r" % pids_of_mount(nfs_path))
    print("    GlusterFS healthy at %.2f s; the NFS attempt gave up after %d ms: %s" %
          (gl_ready, m["last_attempt_ms"], m["reason"]))


def pids_of_mount(path):
    r = subprocess.run(["pgrep", "-f", "mount.* %s" % path], capture_output=True, text=True)
    return r.stdout.split()


def test_keel_never_touches_a_mount_it_did_not_make(h):
    """A tmpfs on the path: keel reports it and leaves it; a bad storage
    configuration names each mistake and the running one stays."""
    path = h.path("share")
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path], check=True)
    h.defer(lambda: subprocess.run(["umount", "-l", path]))
    admin = free_port()
    conf = ("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
            "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n"
            "storage:\n  mounts:\n    share:\n      servers: [\"127.0.0.9\"]\n"
            "      export: /export\n      path: \"%s\"\n      adopt: true\n" % (admin, path))
    k = h.keel(conf, wait_port=admin)
    a, _ = test_api.setup(k, admin)
    wait_for("the mount to be refused", lambda: by_name(a)["share"]["state"] == "failed")
    m = by_name(a)["share"]
    check("is already mounted (tmpfs tmpfs), not by keel: not from one of its servers"
          in m["reason"] and m["owner"] == "other", "the reason: %r" % m)
    time.sleep(1.5)
    check(mounted(path) == ("tmpfs", "tmpfs") and by_name(a)["share"]["attempts"] == 0,
          "keel touched a mount it did not make: %r" % by_name(a)["share"])

    bad = h.write("bad.yaml", "storage:\n  mounts:\n"
                  "    a:\n      type: glusterfs\n      servers: [\"10.0.0.7\"]\n"
                  "      export: /x\n      path: /share\n"
                  "    b:\n      servers: [\"10.0.0.7\"]\n      volume: gv0\n"
                  "      export: /x\n      path: /share\n      options: \"hard,soft;reboot\"\n"
                  "    c:\n      servers: [\"10.0.0.7\"]\n      export: /x\n      path: /\n"
                  "    d:\n      servers: [\"10.0.0.7\"]\n      export: /x\n      path: /share/d\n"
                  "    e:\n      servers: [\"10.0.0.7\"]\n      export: /x\n      path: /srv/../e\n")
    r = h.run_keel("-t", "-c", bad)
    out = r.stderr + r.stdout
    check(r.returncode != 0, "a bad storage config was accepted")
    for what in ("storage.mounts.a.volume", "a GlusterFS mount needs its volume's name",
                 "storage.mounts.a.export", "is for NFS; a GlusterFS mount names its volume",
                 "storage.mounts.b.volume", "is for GlusterFS",
                 "storage.mounts.b.options", "may hold only letters",
                 "storage.mounts.b.path", "/share is already the path of mount a",
                 "storage.mounts.c.path", "keel does not mount over /",
                 "storage.mounts.d.path", "/share/d is inside mount a (/share)",
                 "storage.mounts.e.path", "must be a plain path: no '//', '.' or '..'"):
        check(what in out, "%r not in:\n%s" % (what, out))


def test_a_static_route_serves_the_export_through_libnfs_and_504s_when_it_hangs(h):
    """Files from ganesha's export at /files/: index, MIME type, ETag and
    Last-Modified with 304s, Range, HEAD, 405, a folder redirect, a listing
    where asked, no way out (.., %2e%2e, a symbolic link); a frozen server
    gives 504 after the route's timeout while the proxied route answers as
    before, and files again once it is back."""
    if not nfsserver.available():
        harness.skip("nfs-ganesha, rpcbind or libnfs-utils is not installed (tests/setup.sh)")
    g, export = nfsserver.start(h)
    pub = os.path.join(export, "public")
    os.makedirs(os.path.join(pub, "sub"))
    os.makedirs(os.path.join(pub, ".well-known"))
    files = {"index.html": b"<h1>home</h1>\n", "app.js": b"console.log('hi');\n",
             "sub/x.txt": b"x\n", "big.bin": os.urandom(1 << 20), ".env": b"SECRET=1\n",
             ".well-known/acme.txt": b"token\n", "huge.bin": b"h" * (32 << 20)}
    for name, data in files.items():
        with open(os.path.join(pub, name), "wb") as f:
            f.write(data)
    with open(os.path.join(export, "secret.txt"), "w") as f:
        f.write("outside the folder\n")
    os.symlink("../secret.txt", os.path.join(pub, "link.txt"))
    app = h.http_backend("app")
    front, admin = free_port(), free_port()
    routes = [{"path": "/files/", "static": {"mount": "share", "root": "/public",
                                              "timeout": "1s"}},
              {"path": "/list/", "static": {"mount": "share", "root": "/public",
                                             "index": "", "listing": True}},
              {"path": "/", "upstream": "ua"}]
    # The first server has nothing listening: each request mounts from the next.
    k = h.keel(yaml_conf(front, admin, {"ua": [app]}, routes,
                         extra=MOUNT % ('"127.0.0.9", "127.0.0.1"', "/export")), wait_port=admin)

    r = http_get(front, "/files/app.js")
    check(r.status == 200 and r.body == files["app.js"].decode(), "app.js: %s %r" % (r.status, r.body))
    check(r.headers["content-type"].startswith("text/javascript") and
          r.headers["accept-ranges"] == "bytes" and r.headers["etag"].startswith('"'),
          "headers: %r" % r.headers)
    etag, lm = r.headers["etag"], r.headers["last-modified"]
    check(http_get(front, "/files/").body == "<h1>home</h1>\n", "the index")
    r = http_get(front, "/files/sub?a=1")
    check(r.status == 301 and r.headers["location"] == "/files/sub/?a=1", "a folder: %r" % (r.headers,))
    check(http_get(front, "/files/sub/").status == 403, "a folder without index or listing")
    check(http_get(front, "/files/nope.txt").status == 404, "a missing file")
    r = http_get(front, "/files/app.js", headers={"If-None-Match": etag})
    check(r.status == 304 and r.body == "" and r.headers["etag"] == etag, "If-None-Match: %r" % r.status)
    check(http_get(front, "/files/app.js", headers={"If-Modified-Since": lm}).status == 304,
          "If-Modified-Since")
    r = http_get(front, "/files/app.js", headers={"Range": "bytes=0-6"})
    check(r.status == 206 and r.body == "console" and
          r.headers["content-range"] == "bytes 0-6/%d" % len(files["app.js"]), "Range: %r" % (r.headers,))
    r = http_get(front, "/files/app.js", headers={"Range": "bytes=-4"})
    check(r.status == 206 and r.body == "');\n", "a suffix range: %r" % r.body)
    r = http_get(front, "/files/app.js", headers={"Range": "bytes=9999-"})
    check(r.status == 416 and r.headers["content-range"] == "bytes */%d" % len(files["app.js"]),
          "unsatisfiable: %s %r" % (r.status, r.headers))
    r = http_get(front, "/files/app.js", method="HEAD")
    check(r.status == 200 and r.body == "" and
          r.headers["content-length"] == str(len(files["app.js"])), "HEAD: %r" % (r.headers,))
    r = http_get(front, "/files/app.js", method="POST", body="x")
    check(r.status == 405 and r.headers["allow"] == "GET, HEAD", "POST: %s" % r.status)
    # A megabyte, read in 64 KiB calls as the client takes it, on a kept connection.
    c = http.client.HTTPConnection("127.0.0.1", front, timeout=10)
    for _ in range(2):
        c.request("GET", "/files/big.bin")
        resp = c.getresponse()
        body = resp.read()
        check(resp.status == 200 and body == files["big.bin"], "big.bin: %s, %d bytes" %
              (resp.status, len(body)))
    c.close()
    for bad in (b"/files/../secret.txt", b"/files/%2e%2e/secret.txt", b"/files/%2E%2e/secret.txt",
                b"/files/..%2fsecret.txt", b"/files/sub/%2e%2e/%2e%2e/secret.txt",
                b"/files/a%00b"):
        out = harness.raw_request(front, b"GET " + bad + b" HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400"), "%s: %r" % (bad, out[:60]))
    check(http_get(front, "/files/link.txt").status == 404, "a symbolic link is not followed")
    for hidden in ("/files/.env", "/files/sub/.env", "/list/.env", "/files/.well-knownx"):
        check(http_get(front, hidden).status == 404, "a dot file: %s" % hidden)
    r = http_get(front, "/files/.well-known/acme.txt")
    check(r.status == 200 and r.body == "token\n", ".well-known: %s" % r.status)
    r = http_get(front, "/list/sub/")
    check(r.status == 200 and '<a href="x.txt">x.txt</a>' in r.body, "the listing: %r" % r.body)
    r = http_get(front, "/list/")
    check('href="sub/"' in r.body and ".keel" not in r.body, "the top listing: %r" % r.body)

    # A download the client stops reading holds a file of the connection.
    paused = socket.socket()
    paused.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    paused.connect(("127.0.0.1", front))
    paused.sendall(b"GET /files/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)

    # Frozen: this route says 504 after its 1 s to every request waiting on
    # the server, the paused download is cut, and the proxied route does
    # not wait.
    os.kill(g.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        result = {}

        def slow(i):
            result[i] = http_get(front, "/files/app.js" if i % 2 else "/files/big.bin",
                                 timeout=10)
            result["t%d" % i] = time.monotonic() - t0
        threads = [threading.Thread(target=slow, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        worst = max(latency(front) for _ in range(20))
        for t in threads:
            t.join()
        for i in range(6):
            check(result[i].status == 504 and 0.9 <= result["t%d" % i] <= 3,
                  "a frozen server: %s after %.2f s" % (result[i].status, result["t%d" % i]))
        check(worst < 0.5, "the proxied route waited: %.3f s" % worst)
        result["t"] = max(result["t%d" % i] for i in range(6))
        # Cut while the server is still frozen, before the client reads on.
        k.wait_log(r'"GET /files/huge\.bin HTTP/1\.1" 200 ', timeout=2)
        paused.settimeout(5)
        got = b""
        while True:
            chunk = paused.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        paused.close()
        check(got.startswith(b"HTTP/1.1 200") and len(got) < (32 << 20),
              "the paused download was not cut: %d bytes" % len(got))
    finally:
        os.kill(g.pid, signal.SIGCONT)
    wait_for("files again", lambda: http_get(front, "/files/app.js").status == 200, timeout=10)
    k.wait_log(r"static /files/: trying 127\.0\.0\.1 next", timeout=1)
    print("    six 504s within %.2f s after the server froze; the proxied route's worst %.1f ms meanwhile"
          % (result["t"], worst * 1000))


GUEST = """state_dir: /state
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["10.0.2.15:8080"], tls: { enabled: false } }
storage:
  mounts:
    share:
      servers: ["10.0.2.2"]
      export: /export
      path: /share
      probe_interval: 500ms
      probe_timeout: 1s
      canary_interval: 500ms
      canary_timeout: 1s
    backup:
      servers: ["10.0.2.9", "10.0.2.2"]
      export: /export
      path: /backup
    refused:
      servers: ["10.0.2.2"]
      export: /export
      path: /refused
      options: "wsize=lots"
    moving:
      servers: ["10.0.2.100", "10.0.2.2"]
      export: /export
      path: /moving
      failback: true
      mount_timeout: 15s    # a slow guest (TCG, ASan) may take longer than 5 s
      # NFSv3: to NFSv4.1 both addresses are one server (one ganesha), and
      # the kernel would join them into one client; fixed ports, no locks.
      options: "nfsvers=3,port=2049,mountport=20048,mountproto=tcp,nolock"
      probe_interval: 500ms
      probe_timeout: 1s
"""


def test_kernel_nfs_mounts_in_a_qemu_guest_fail_over_hang_and_recover(h):
    """keel in a qemu guest with a Debian kernel mounts ganesha's export
    through the kernel's NFS client: the canary writes through it; a mount
    whose first server is dead comes from the second after that attempt's
    deadline; options the kernel refuses are named; a mount whose server
    dies moves to the next one, and back when it returns (failback); a
    frozen ganesha is hung within 3 s with no keel process but the
    abandoned check helpers in D state, and healthy again after SIGCONT."""
    guest.need()
    if not nfsserver.available():
        harness.skip("nfs-ganesha, rpcbind or libnfs-utils is not installed (tests/setup.sh)")
    g, export = nfsserver.start(h)
    admin = free_port()
    t0 = time.monotonic()
    primary = guest.Relay(h, "10.0.2.100", (111, 2049, 20048))   # the same ganesha, elsewhere
    vm = guest.boot(h, GUEST, forward=[(admin, 8080)], relays=[primary])
    booted = time.monotonic() - t0
    master = int(vm.wait_log(r"main: keel \S+ started \(pid (\d+),", timeout=30).group(1))
    m = vm.wait_log(r"storage share: mounted 10\.0\.2\.2:/export on /share in (\d+) ms",
                    timeout=30)
    share_ms = int(m.group(1))
    wait_for("the canary to write through the guest's kernel", lambda: any(
        n.startswith(".keel-canary-") for n in os.listdir(export)), timeout=15)

    # The dead first server's attempt is given up at its deadline; the
    # second one mounts.
    vm.wait_log(r"storage backup: mounted 10\.0\.2\.2:/export on /backup in \d+ ms", timeout=30)
    check(not re.search(r"storage backup: mounted 10\.0\.2\.9", vm.log()), "mounted from the dead one")
    a, _ = test_api.setup(vm, admin)
    st, js = a.call("GET", "/api/v1/status")
    ms = {x["name"]: x for x in js["storage"]["mounts"]}
    check(st == 200 and ms["share"]["state"] in ("healthy", "slow"), "share: %r" % ms.get("share"))
    check(ms["backup"]["server"] == "10.0.2.2" and ms["backup"]["attempts"] >= 2 and
          ms["backup"]["source"] == "10.0.2.2:/export", "backup: %r" % ms["backup"])
    backup = "%d attempts, %d given up" % (ms["backup"]["attempts"], ms["backup"]["giveups"])
    refused = vm.wait_log(r"storage refused: mount 10\.0\.2\.2:/export: (mount\.nfs: [^(\n]*)",
                          timeout=30)
    check("incorrect mount option" in refused.group(1), "the refusal: %r" % refused.group(1))

    # The primary dies under a kernel mount: keel moves it to the second
    # server, and back once the primary has answered for 10 s.
    vm.wait_log(r"storage moving: (mounted|found its mount of) 10\.0\.2\.100:/export on /moving",
                timeout=30)
    wait_for("moving to be healthy on the primary", lambda: any(
        x["name"] == "moving" and x["state"] == "healthy" and x["server"] == "10.0.2.100"
        for x in a.call("GET", "/api/v1/status")[1]["storage"]["mounts"]), timeout=20)
    t3, mark = time.monotonic(), vm.mark()
    primary.cut()
    # "found its mount": an attempt given up that mounted late is kept.
    vm.wait_log(r"storage moving: (mounted|found its mount of) 10\.0\.2\.2:/export on /moving",
                timeout=40, after=mark)
    switched = time.monotonic() - t3
    t4, mark = time.monotonic(), vm.mark()
    primary.mend()
    vm.wait_log(r"storage moving: (mounted|found its mount of) 10\.0\.2\.100:/export on /moving",
                timeout=60, after=mark)
    back = time.monotonic() - t4
    check(re.search(r"storage moving: .*switching to 10\.0\.2\.2", vm.log()), "no switch logged")
    print("    the primary cut: on the second server %.1f s later; mended: back on the primary "
          "%.1f s later" % (switched, back))

    # Frozen: hung within 3 s; only helpers (their own group) in D state.
    os.kill(g.pid, signal.SIGSTOP)
    h.defer(lambda: g.signal(signal.SIGCONT) if g.alive() else None)
    t1, mark = time.monotonic(), vm.mark()
    try:
        vm.wait_log(r"storage share: 10\.0\.2\.2:/export hung", timeout=15, after=mark)
        detect = time.monotonic() - t1
        time.sleep(3)
    finally:
        mark = vm.mark()
        os.kill(g.pid, signal.SIGCONT)
    t2 = time.monotonic()
    vm.wait_log(r"storage share: 10\.0\.2\.2:/export healthy", timeout=30, after=mark)
    recover = time.monotonic() - t2
    dstate = [(int(p), int(grp)) for p, grp in
              re.findall(r"guest: D state: pid (\d+) group (\d+)", vm.log())]
    bad = [p for p, grp in dstate if p != grp or p == master]
    check(not bad, "keel's own processes in D state: %r (master %d)" % (bad, master))
    check(detect <= 3.5, "hung after %.2f s, the goal is 3 s" % detect)
    print("    guest up in %.1f s; /share mounted in %d ms; /backup after %s; refused: %s"
          % (booted, share_ms, backup, refused.group(1)))
    print("    hung %.2f s after SIGSTOP, healthy %.2f s after SIGCONT; %d helper%s seen in D "
          "state, keel's own none" % (detect, recover, len({p for p, _ in dstate}),
                                      "" if len({p for p, _ in dstate}) == 1 else "s"))

