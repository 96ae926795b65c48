"""keel as PID 1 of a qemu guest (TCG), its /init, with no shell beside
it: it mounts the system's filesystems, loads the kernel modules the image
lists, gets a DHCP lease from slirp, sets the clock from an SNTP server on
the host, waits for those gates before the proxy starts, serves the setup
page through hostfwd, shows its kernel log, and reboots from the API, in
under 10 s even with a hung NFS mount."""

import json
import os
import re
import time

import guest
import harness
import nfsserver
from harness import check, free_port, http_get, wait_for
from test_api import Admin, PASSWORD

CONF = """node: gw-init
state_dir: /var/lib/keel
pid_file: ""
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["0.0.0.0:8080"], tls: { enabled: false } }
listeners: [{ address: "0.0.0.0:80" }]
upstreams: { app: { servers: [{ address: "127.0.0.1:9" }] } }
routes: [{ path: "/", upstream: app }]
supervise: { wait_for: [link, address, clock] }
system: { ntp: ["10.0.2.2:%d"] }
"""


def sntpd(h, offset=3600):
    port = free_port()
    h.start("sntpd", ["python3", os.path.join(harness.HERE, "sntpd.py"), "--port", str(port),
                      "--offset", str(offset)])
    return port


def admin_of(h, vm, port):
    token = vm.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    a = Admin(port)
    st, js = a.call("POST", "/api/v1/setup", {"token": token, "user": "admin",
                                               "password": PASSWORD})
    check(st == 200, (st, js))
    a.csrf = js["csrf"]
    return a


def test_keel_as_pid1_boots_leases_sets_the_clock_serves_and_reboots(h):
    guest.need()
    ntp = sntpd(h)
    admin, front = free_port(), free_port()
    vm = guest.boot(h, CONF % ntp, name="init", forward=[(admin, 8080), (front, 80)], pid1=True)
    log = vm.log
    vm.wait_log(r"init: loaded \d+ kernel modules \(.*virtio_net.*\)")
    vm.wait_log(r"interface eth0: DHCP lease of 10\.0\.2\.15 for \d+ s from 10\.0\.2\.2")
    # sntpd answers an hour ahead; the guest's clock came from a real-time
    # clock of whole seconds, so the step is 3600 s give or take one.
    vm.wait_log(r"clock stepped by \+(3599|3600|3601)\d\d\d ms from 10\.0\.2\.2:%d" % ntp)
    vm.wait_log(r"ready after [\d.]+ s: starting the workers", timeout=20)
    check(re.search(r"the workers wait for (link|address|clock)", log()), log()[-3000:])
    r = wait_for("the setup page through hostfwd",
                 lambda: (lambda x: x if x.status == 200 else None)(http_get(admin, "/")),
                 timeout=20)
    ready = time.monotonic() - vm.boot_started
    check("keel" in r.body, r.body[:300])
    check(http_get(front, "/").status == 502)      # the proxy runs; its app is not there
    a = admin_of(h, vm, admin)
    st, js = a.call("GET", "/api/v1/status")
    check(st == 200, (st, js))
    sysj, sup = js["system"], js["supervise"]
    eth0 = sysj["interfaces"][0]
    check(sysj["init"] and sysj["hostname"] == "gw-init" and eth0["name"] == "eth0"
          and eth0["mode"] == "dhcp" and eth0["state"] == "bound"
          and eth0["address"] == "10.0.2.15/24" and eth0["gateway"] == "10.0.2.2"
          and eth0["lease_s"] > 0 and sysj["clock"]["synced"], sysj)
    # The guest's clock is the host's plus the server's hour.
    guest_time = time.mktime(time.strptime(sysj["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    check(abs(guest_time - (time.time() + 3600)) < 30, (sysj["time"], time.time()))
    check(sup["supervised"] and not sup["waiting"]
          and all(g["open"] for g in sup["gates"]), sup)
    st, js = a.call("POST", "/api/v1/commands/system.kernel_log", {})
    check(st == 200 and "Linux version" in js["text"], (st, str(js)[:300]))

    t0 = time.monotonic()
    st, js = a.call("POST", "/api/v1/commands/system.reboot", {})
    check(st == 202, (st, js))
    vm.wait(15)
    took = time.monotonic() - t0
    check(re.search(r"init: rebooting now", log()), log()[-2000:])
    print("    setup page answering %.1f s after qemu started; reboot from the API %.1f s"
          % (ready, took))
    check(took < 10, "the reboot took %.1f s" % took)


def test_a_reboot_with_a_hung_nfs_mount_takes_under_10_s(h):
    guest.need()
    if not nfsserver.available():
        harness.skip("nfs-ganesha, rpcbind or libnfs-utils is not installed (tests/setup.sh)")
    ntp = sntpd(h, offset=0)
    nfsserver.start(h)
    relay = guest.Relay(h, "10.0.2.100", (111, 2049, 20048))
    admin = free_port()
    conf = (CONF % ntp).replace("supervise: { wait_for: [link, address, clock] }\n", "") + (
        "storage: { mounts: { share: { servers: [\"10.0.2.100\"], export: /export, "
        "path: /share, probe_interval: 500ms, probe_timeout: 1s, canary_interval: 500ms, "
        "canary_timeout: 1s } } }\n")
    vm = guest.boot(h, conf, name="init-nfs", forward=[(admin, 8080)], relays=[relay],
                    pid1=True)
    vm.wait_log(r"storage share: mounted 10\.0\.2\.100:/export on /share", timeout=40)
    a = admin_of(h, vm, admin)
    mark = vm.mark()
    relay.cut()
    vm.wait_log(r"storage share: 10\.0\.2\.100:/export (hung|failed)", timeout=20, after=mark)
    time.sleep(2)                       # helpers are stuck in the kernel by now
    t0 = time.monotonic()
    st, js = a.call("POST", "/api/v1/commands/system.reboot", {})
    check(st == 202, (st, js))
    vm.wait(20)
    took = time.monotonic() - t0
    print("    reboot with the NFS mount hung: %.1f s" % took)
    check(re.search(r"init: rebooting now", vm.log()), vm.log()[-2000:])
    check(took < 10, "the reboot took %.1f s" % took)
