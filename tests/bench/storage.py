"""make bench, storage scenario: keel watches an NFS export on nfs-ganesha
(loopback) while wrk loads a proxied route to nginx. The server is frozen
with SIGSTOP three times: once for OUTAGE seconds (10 min by default, as the
goal says), then twice for 5 s. Measured, the worst of the three:

  storage_detect_ms        SIGSTOP to keel_storage_up 0 (goal: 3 000)
  storage_recover_ms       SIGCONT to keel_storage_up 1 (goal: 5 000)
  storage_d_state_max      keel threads seen in D state at once, sampled
                           every 100 ms through every outage (goal: 0)
  storage_outage_p99_ratio the proxied route's p99 during the long outage
                           over its p99 before it, same wrk, same run

  storage_mount_giveup_ms  then, with the server frozen again, a mount of
                           it is added by a reload (NFSv3, so mount.nfs
                           waits on MOUNT in user space: this machine's
                           kernel has no NFS client); the worst of three
                           attempts, from the helper's start to its end
                           (killed at mount_timeout, 5 s; goal: 5 000)

BENCH_STORAGE_OUTAGE=SECONDS shortens the long outage."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (CLIENT_CPU, KEEL, PROXY_CPU, free_port, merge_figures, stop_all,  # noqa: E402
                   wait_port)

OUTAGE = int(os.environ.get("BENCH_STORAGE_OUTAGE", "600"))
TOKEN = "bench-metrics-token-0123456789"
GANESHA = """NFS_CORE_PARAM { Bind_addr = 127.0.0.1; Protocols = 3, 4; Mount_Path_Pseudo = true; }
NFSV4 { Graceless = true; }
EXPORT { Export_Id = 1; Path = %s; Pseudo = /export; Access_Type = RW;
  Squash = No_Root_Squash; SecType = sys; Protocols = 3, 4; Transports = TCP;
  FSAL { Name = VFS; } }
LOG { Default_Log_Level = WARN; }
"""


def storage_up(admin):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % admin,
                                 headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=2) as r:
        m = re.search(r'keel_storage_up\{mount="share"\} (\d)', r.read().decode())
    return m is not None and m.group(1) == "1"


def wait_up(admin, want, limit):
    t0 = time.monotonic()
    while storage_up(admin) != want:
        if time.monotonic() - t0 > limit:
            raise SystemExit("bench: keel_storage_up never became %d in %d s" % (want, limit))
        time.sleep(0.02)
    return (time.monotonic() - t0) * 1000


def keel_tasks(pid):
    """Every thread of keel's master and its children."""
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    tasks = []
    for p in pids:
        try:
            tasks += ["/proc/%d/task/%s/stat" % (p, t) for t in os.listdir("/proc/%d/task" % p)]
        except OSError:
            pass
    return tasks


def d_state(pid):
    n = 0
    for path in keel_tasks(pid):
        try:
            with open(path) as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "D"
        except OSError:
            pass
    return n


def p99(port, seconds):
    out = subprocess.run(CLIENT_CPU + ["wrk", "-t1", "-c20", "-d%ds" % seconds, "--latency",
                                       "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out, re.M)
    if m is None:
        raise SystemExit("bench: wrk said:\n" + out[-1500:])
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def metric(admin, name, mount):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % admin,
                                 headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=5) as r:
        m = re.search(r'%s\{mount="%s"(?:,result="gave_up")?\} (\d+)' % (name, mount),
                      r.read().decode())
    return int(m.group(1)) if m else None


def giveups(admin, ganesha, keel_pid, conf, dead):
    """Adds a mount of the frozen server by a reload; the worst time of
    three attempts to give up."""
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace('export: "/export" } }', 'export: "/export" }, dead: { servers: '
                             '["127.0.0.1"], export: "/export", path: "%s", options: nfsvers=3 } }'
                             % dead))
    os.kill(ganesha.pid, signal.SIGSTOP)
    worst, seen = 0, 0
    try:
        os.kill(keel_pid, signal.SIGHUP)
        limit = time.monotonic() + 60
        while seen < 3:
            if time.monotonic() > limit:
                raise SystemExit("bench: the mount attempts against a frozen server never gave up")
            n = metric(admin, "keel_storage_mount_attempts_total", "dead") or 0
            if n > seen:
                time.sleep(0.3)        # the killed helper is reaped, its time final
                ms = metric(admin, "keel_storage_mount_last_attempt_ms", "dead")
                worst, seen = max(worst, ms), n
                print("  mount attempt %d against the frozen server: gave up after %d ms"
                      % (n, ms))
            time.sleep(0.05)
    finally:
        os.kill(ganesha.pid, signal.SIGCONT)
    return worst


def main():
    for tool in ("ganesha.nfsd", "rpcbind", "nginx", "wrk", "mount.nfs"):
        if shutil.which(tool) is None:
            raise SystemExit("bench: %s is missing (tests/setup.sh installs it)" % tool)
    tmp = tempfile.mkdtemp(prefix="keel-bench-storage-")
    procs = []
    try:
        export = os.path.join(tmp, "export")
        os.makedirs(export)
        subprocess.run(["pkill", "-x", "rpcbind"], capture_output=True)
        subprocess.run(["pkill", "-f", "ganesha.nfsd"], capture_output=True)
        time.sleep(0.2)
        procs.append(subprocess.Popen(["rpcbind", "-f", "-w"], start_new_session=True))
        with open(os.path.join(tmp, "ganesha.conf"), "w") as f:
            f.write(GANESHA % export)
        g = subprocess.Popen(["ganesha.nfsd", "-F", "-f", os.path.join(tmp, "ganesha.conf"),
                              "-L", os.path.join(tmp, "ganesha.log"), "-p",
                              os.path.join(tmp, "ganesha.pid")], start_new_session=True)
        procs.append(g)
        wait_port(2049)
        origin = free_port()
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write("worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
                    "events { worker_connections 4096; }\nhttp { access_log off; server { "
                    "listen 127.0.0.1:%d; location / { return 200 \"ok\\n\"; } } }\n"
                    % (tmp, tmp, origin))
        procs.append(subprocess.Popen(CLIENT_CPU + ["nginx", "-c", os.path.join(tmp, "nginx.conf")],
                                      start_new_session=True))
        wait_port(origin)
        front, admin = free_port(), free_port()
        with open(os.path.join(tmp, "keel.yaml"), "w") as f:
            f.write('state_dir: "%s"\npid_file: ""\nworkers: { count: 1 }\nlog: { level: warn }\n'
                    'access_log: { format: off }\nmonitors: { routes: false, servers: false }\n'
                    'admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false }, '
                    'metrics_token: "%s" }\nlisteners: [{ address: "127.0.0.1:%d" }]\n'
                    'upstreams: { app: { servers: [{ address: "127.0.0.1:%d" }] } }\n'
                    'routes: [{ path: "/", upstream: app }]\n'
                    'storage: { mounts: { share: { servers: ["127.0.0.1"], export: "/export" } } }\n'
                    % (tmp, admin, TOKEN, front, origin))
        k = subprocess.Popen(PROXY_CPU + [KEEL, "-c", os.path.join(tmp, "keel.yaml")],
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(tmp, "keel.log"), "wb"))
        procs.append(k)
        wait_port(admin)
        wait_up(admin, True, 15)

        print("Storage: nfs-ganesha frozen with SIGSTOP for %d s, then twice for 5 s; "
              "wrk -c20 on a proxied route" % OUTAGE)
        before = p99(front, 10)
        detects, recovers, during = [], [], None
        worst_d = [0]
        for i, length in enumerate((OUTAGE, 5, 5)):
            stop_sampling = threading.Event()

            def sample():
                while not stop_sampling.is_set():
                    worst_d[0] = max(worst_d[0], d_state(k.pid))
                    time.sleep(0.1)
            t = threading.Thread(target=sample)
            t.start()
            t0 = time.monotonic()
            os.kill(g.pid, signal.SIGSTOP)
            try:
                detects.append(wait_up(admin, False, 30))
                if i == 0:
                    during = p99(front, min(20, max(5, length - 5)))
                time.sleep(max(0.0, length - (time.monotonic() - t0)))
            finally:
                os.kill(g.pid, signal.SIGCONT)
            recovers.append(wait_up(admin, True, 30))
            stop_sampling.set()
            t.join()
            print("  outage %d (%3d s): down after %6.0f ms, up %5.0f ms after SIGCONT, "
                  "D-state threads seen: %d" % (i + 1, length, detects[-1], recovers[-1],
                                                worst_d[0]))
        giveup = giveups(admin, g, k.pid, os.path.join(tmp, "keel.yaml"),
                         os.path.join(tmp, "dead"))
    finally:
        stop_all(procs)
        shutil.rmtree(tmp, ignore_errors=True)

    fig = {"storage_detect_ms": round(max(detects)),
           "storage_recover_ms": round(max(recovers)),
           "storage_d_state_max": worst_d[0],
           "storage_outage_p99_ratio": round(during / before, 3),
           "storage_mount_giveup_ms": giveup}
    print("  proxied route p99: %.2f ms before, %.2f ms during the outage (ratio %.2f)"
          % (before, during, fig["storage_outage_p99_ratio"]))
    print("  worst: detected in %d ms (goal 3 000), healthy %d ms after SIGCONT (goal 5 000), "
          "%d threads in D state (goal 0), a mount attempt gave up after %d ms (goal 5 000)"
          % (fig["storage_detect_ms"], fig["storage_recover_ms"], fig["storage_d_state_max"],
             fig["storage_mount_giveup_ms"]))
    merge_figures(fig)


if __name__ == "__main__":
    main()
