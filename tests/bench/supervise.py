"""make bench, supervision scenario: how fast keel comes back, and how
fast a qemu guest (TCG) goes down. Figures, into build/bench.json:

  supervise_worker_restart_ms    SIGKILL of the only proxy worker to the
                                 front door answering 200 again; median of
                                 10 (goal: 200)
  supervise_part_restart_ms      SIGKILL of the master under `keel
                                 --supervise` to the admin server and the
                                 front door both answering again; median of
                                 5 (goal: 1 000)
  watchdog_reset_over_timeout_ms a guest with an i6300esb (5 s): every
                                 worker SIGSTOPped to the guest's reset,
                                 minus the timeout (goal: <= 1 000)
  reboot_hung_nfs_ms             keel as the guest's /init with an NFS
                                 mount whose server was cut: the API's
                                 reboot to the guest's reset (goal: 10 000)
  boot_to_ui_ratio               qemu start to keel's setup page answering
                                 through hostfwd (keel as /init, DHCP),
                                 over the same for a trivial static /init
                                 (busybox: modules, a static address,
                                 httpd) on the same kernel; medians of 3
                                 each, alternated (goal: 1.2)"""

import os
import re
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

import guest  # noqa: E402
import harness  # noqa: E402
import nfsserver  # noqa: E402
from harness import free_port, http_get  # noqa: E402
from benchlib import merge_figures  # noqa: E402
from test_api import Admin, PASSWORD  # noqa: E402

HOST_CONF = """workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }
listeners: [{ address: "127.0.0.1:%d" }]
upstreams: { app: { servers: [{ address: "127.0.0.1:%d" }] } }
routes: [{ path: "/", upstream: app }]
supervise: { backoff_max: 1s }
"""
# backoff_max 1 s: a process that ran 1 s starts over at backoff_min
# (100 ms, jittered into 50..100), so each kill measures a first restart.

GUEST_CONF = """state_dir: /var/lib/keel
pid_file: ""
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["0.0.0.0:8080"], tls: { enabled: false } }
listeners: [{ address: "0.0.0.0:80" }]
upstreams: { app: { servers: [{ address: "127.0.0.1:9" }] } }
routes: [{ path: "/", upstream: app }]
"""

TRIVIAL_INIT = r"""#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules.order); do /bin/busybox insmod "/lib/modules/$m"; done
/bin/busybox ip link set lo up
/bin/busybox ip link set eth0 up
/bin/busybox ip addr add 10.0.2.15/24 dev eth0
/bin/busybox mkdir -p /www
echo ok > /www/index.html
exec /bin/busybox httpd -f -p 8080 -h /www
"""


def answers(port, path="/"):
    try:
        return http_get(port, path, timeout=0.5).status
    except OSError:
        return 0


def until(what, fn, limit):
    t0 = time.monotonic()
    while not fn():
        if time.monotonic() - t0 > limit:
            raise SystemExit("bench: %s did not happen within %d s" % (what, limit))
        time.sleep(0.002)
    return time.monotonic() - t0


def worker_and_master(h):
    origin = h.nginx_backend("origin")
    admin, front = free_port(), free_port()
    k = h.keel(HOST_CONF % (admin, front, origin), wait_port=admin, args=("--supervise",))
    until("the front door", lambda: answers(front) == 200, 10)
    worker = []
    for _ in range(10):
        with open(h.path("keel.pid")) as f:
            master = int(f.read())
        kids = [int(x) for x in open("/proc/%d/task/%d/children" % (master, master)).read().split()
                if open("/proc/%s/comm" % x).read().strip() == "keel"]
        t0 = time.monotonic()
        os.kill(kids[0], signal.SIGKILL)
        # The master keeps the listening socket: a request waits in its
        # backlog until the new worker takes it.
        until("a new worker serving", lambda: answers(front) == 200, 10)
        worker.append((time.monotonic() - t0) * 1000)
        time.sleep(1.5)
    master_ms = []
    for _ in range(5):
        with open(h.path("keel.pid")) as f:
            master = int(f.read())
        t0 = time.monotonic()
        os.kill(master, signal.SIGKILL)
        until("the master's pid file", lambda: open(h.path("keel.pid")).read().strip() not in
              ("", str(master)), 10)
        until("the admin server and the front door",
              lambda: answers(admin, "/healthz") == 200 and answers(front) == 200, 10)
        master_ms.append((time.monotonic() - t0) * 1000)
        time.sleep(1.5)
    k.signal(signal.SIGTERM)
    k.wait(15)
    return statistics.median(worker), statistics.median(master_ms), worker, master_ms


def watchdog_over(h):
    conf = GUEST_CONF.replace('state_dir: /var/lib/keel\npid_file: ""\n', "state_dir: /state\n") \
        + "watchdog: { device: /dev/watchdog, timeout: 5s }\nsupervise: { progress_limit: 60s }\n"
    ctrl = free_port()
    vm = guest.boot(h, conf, name="wd", forward=[(ctrl, 7000)], modules=["i6300esb"],
                    devices=["i6300esb"])
    vm.wait_log(r"watchdog /dev/watchdog \(.*\) armed: timeout 5 s", timeout=30)
    time.sleep(2)
    out = guest.shell(ctrl, "for p in $(pidof keel); do set -- $(cat /proc/$p/stat); "
                            "echo \"pid $1 ppid $4\"; done")
    procs = [(int(a), int(b)) for a, b in re.findall(r"pid (\d+) ppid (\d+)", out)]
    pids = {p for p, _ in procs}
    workers = [p for p, pp in procs if pp in pids]
    t0 = time.monotonic()
    guest.shell(ctrl, "kill -STOP %s" % " ".join(map(str, workers)))
    vm.wait(20)
    return (time.monotonic() - t0) * 1000 - 5000


def reboot_hung_nfs(h):
    nfsserver.start(h)
    relay = guest.Relay(h, "10.0.2.100", (111, 2049, 20048))
    admin = free_port()
    conf = GUEST_CONF + (
        "storage: { mounts: { share: { servers: [\"10.0.2.100\"], export: /export, "
        "path: /share, probe_interval: 500ms, probe_timeout: 1s } } }\n")
    vm = guest.boot(h, conf, name="nfs", forward=[(admin, 8080)], relays=[relay], pid1=True)
    vm.wait_log(r"storage share: mounted 10\.0\.2\.100:/export on /share", timeout=40)
    token = vm.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    a = Admin(admin)
    st, js = a.call("POST", "/api/v1/setup", {"token": token, "user": "admin",
                                               "password": PASSWORD})
    a.csrf = js["csrf"]
    mark = vm.mark()
    relay.cut()
    vm.wait_log(r"storage share: 10\.0\.2\.100:/export (hung|failed)", timeout=20, after=mark)
    time.sleep(2)
    t0 = time.monotonic()
    st, js = a.call("POST", "/api/v1/commands/system.reboot", {})
    if st != 202:
        raise SystemExit("bench: the reboot was refused: %s %s" % (st, js))
    vm.wait(30)
    return (time.monotonic() - t0) * 1000


def boot_keel(h, i):
    admin = free_port()
    vm = guest.boot(h, GUEST_CONF, name="boot-keel-%d" % i, forward=[(admin, 8080)], pid1=True)
    until("keel's setup page", lambda: answers(admin) == 200, 60)
    took = time.monotonic() - vm.boot_started
    vm.popen.kill()
    vm.popen.wait()
    return took


def boot_trivial(h, i):
    port = free_port()
    vmlinuz, _ = guest.kernel()
    initrd = h.path("trivial-%d.cpio" % i)
    guest.initramfs(harness.KEEL, "", initrd)
    # The same initramfs, with the trivial /init in place of the test one.
    c = guest.Cpio()
    data = open(initrd, "rb").read()
    c.out = bytearray(data[:data.rfind(b"070701")])     # without the trailer
    c.ino = 100000
    c.file("/init", TRIVIAL_INIT.encode(), 0o755)
    with open(initrd, "wb") as f:
        f.write(c.done())
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            "-kernel", vmlinuz, "-initrd", initrd,
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1",
            "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:%d-10.0.2.15:8080" % port,
            "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci",
            "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot"]
    t0 = time.monotonic()
    p = h.start("trivial-%d" % i, argv)
    until("the trivial init's page", lambda: answers(port) == 200, 60)
    took = time.monotonic() - t0
    p.popen.kill()
    p.popen.wait()
    return took


def main():
    if not guest.available():
        raise SystemExit("bench: the qemu guest is missing (tests/setup.sh)")
    h = harness.Harness("bench-supervise")
    fig = {}
    try:
        w, m, ws, ms = worker_and_master(h)
        print("  worker SIGKILL to serving: median %.0f ms (%s)" % (w, " ".join("%.0f" % x for x in ws)))
        print("  master SIGKILL to serving: median %.0f ms (%s)" % (m, " ".join("%.0f" % x for x in ms)))
        fig["supervise_worker_restart_ms"] = round(w)
        fig["supervise_part_restart_ms"] = round(m)
        h.stop_all()
        over = watchdog_over(h)
        print("  watchdog: reset %.0f ms after the 5 s timeout" % over)
        fig["watchdog_reset_over_timeout_ms"] = round(over)
        h.stop_all()
        if nfsserver.available():
            r = reboot_hung_nfs(h)
            print("  reboot from the API with a hung NFS mount: %.0f ms" % r)
            fig["reboot_hung_nfs_ms"] = round(r)
            h.stop_all()
        ks, ts = [], []
        for i in range(3):
            ks.append(boot_keel(h, i))
            ts.append(boot_trivial(h, i))
            h.stop_all()
        ratio = statistics.median(ks) / statistics.median(ts)
        print("  boot to an HTTP answer: keel %s s, trivial /init %s s: ratio %.2f"
              % (" ".join("%.1f" % x for x in ks), " ".join("%.1f" % x for x in ts), ratio))
        fig["boot_to_ui_ratio"] = round(ratio, 2)
    finally:
        h.stop_all()
    merge_figures(fig)


if __name__ == "__main__":
    main()
