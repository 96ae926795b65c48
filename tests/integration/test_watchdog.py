"""The hardware watchdog, in a qemu guest with an i6300esb: never on this
machine itself. qemu runs with -no-reboot, so the guest's reset ends the
qemu process: its exit is the reset, timed from the host."""

import re
import signal
import time

import guest
import harness
from harness import check, free_port, http_get

CONF = """state_dir: /state
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin: { listen: ["10.0.2.15:8080"], tls: { enabled: false } }
listeners: [{ address: "0.0.0.0:80" }]
upstreams: { app: { servers: [{ address: "127.0.0.1:9" }] } }
routes: [{ path: "/", upstream: app }]
watchdog: { device: /dev/watchdog, timeout: 5s }
supervise: { progress_limit: 60s }
"""
# progress_limit: a frozen worker is left frozen, for the watchdog to see
# (by default the master restarts it 5 s on, before a 15 s watchdog fires).

ESCALATE = CONF.replace("supervise: { progress_limit: 60s }",
                        "supervise: { restarts: 1, escalation: reboot }")


def keel_pids(ctrl):
    """The guest's keel processes: (master, the others)."""
    out = guest.shell(ctrl, "for p in $(pidof keel); do set -- $(cat /proc/$p/stat); "
                            "echo \"pid $1 ppid $4\"; done")
    procs = [(int(a), int(b)) for a, b in re.findall(r"pid (\d+) ppid (\d+)", out)]
    pids = {p for p, _ in procs}
    masters = [p for p, pp in procs if pp not in pids]
    check(len(masters) == 1, "keel processes in the guest: %r" % procs)
    return masters[0], [p for p, _ in procs if p != masters[0]]


def reset_after(vm, since, limit):
    """Seconds from since until the guest reset (qemu ended), or a failure."""
    try:
        vm.wait(limit)
    except Exception:
        raise harness.TestFailure("no reset within %.1f s:\n%s" % (limit, vm.log()[-1500:]))
    return time.monotonic() - since


def boot(h, name, conf=CONF):
    ctrl = free_port()
    vm = guest.boot(h, conf, name=name, forward=[(ctrl, 7000)], modules=["i6300esb"],
                    devices=["i6300esb"])
    m = vm.wait_log(r"watchdog /dev/watchdog \(([^)]*)\) armed: timeout (\d+) s", timeout=30)
    return vm, ctrl, m.group(1), int(m.group(2))


def test_the_watchdog_resets_a_guest_whose_proxy_or_master_stops(h):
    """Pinged while keel works (no reset over twice the timeout); a clean
    stop disarms it (no reset); workers frozen while the master runs, then
    the master frozen: each resets the guest within the timeout and 1 s."""
    guest.need()
    vm, ctrl, ident, timeout = boot(h, "guest1")
    check(timeout == 5, "the hardware took %d s" % timeout)
    time.sleep(2 * timeout)
    check(vm.alive(), "the guest reset while keel pinged:\n%s" % vm.log()[-1500:])
    check("keel-watchdog" not in vm.log() and "no server" not in vm.log(),
          "the front door's answers to the watchdog were routed or logged:\n%s"
          % vm.log()[-1500:])

    master, _ = keel_pids(ctrl)
    mark = vm.mark()
    guest.shell(ctrl, "kill -TERM %d" % master)
    vm.wait_log(r"watchdog /dev/watchdog disarmed \(a clean stop\)", after=mark)
    time.sleep(timeout + 2)
    check(vm.alive(), "the guest reset after a clean stop")

    # keel again; then its worker stops answering while the master runs.
    mark = vm.mark()
    guest.shell(ctrl, "keel -c /keel.yaml >/dev/console 2>&1 </dev/null &")
    vm.wait_log(r"watchdog /dev/watchdog \(.*\) armed", timeout=30, after=mark)
    time.sleep(2)
    master, workers = keel_pids(ctrl)
    check(workers, "no worker to freeze")
    t0 = time.monotonic()
    guest.shell(ctrl, "kill -STOP %s" % " ".join(map(str, workers)))
    frozen_workers = reset_after(vm, t0, timeout + 10)
    check(re.search(r"not pinging: the front door 127\.0\.0\.1:80 did not answer", vm.log()),
          "no log line said why the pings stopped")

    # A second guest: the master frozen.
    vm2, ctrl2, _, _ = boot(h, "guest2")
    time.sleep(2)
    master2, _ = keel_pids(ctrl2)
    t1 = time.monotonic()
    guest.shell(ctrl2, "kill -STOP %d" % master2)
    frozen_master = reset_after(vm2, t1, timeout + 10)
    print("    %s, timeout %d s; reset %.2f s after the worker froze, %.2f s after the "
          "master froze; no reset while pinged or after a clean stop"
          % (ident, timeout, frozen_workers, frozen_master))
    check(frozen_workers <= timeout + 1 and frozen_master <= timeout + 1,
          "a reset later than the timeout and 1 s: %.2f s, %.2f s"
          % (frozen_workers, frozen_master))


def test_a_device_that_is_not_a_watchdog_is_named_and_keel_runs_on(h):
    """A missing device and a device that is not a watchdog (/dev/null): a
    clear log line naming it, the condition raised, keel serving on."""
    for device, said in (("/nonexistent/watchdog", r"/nonexistent/watchdog cannot be opened: "
                          r"No such file or directory; keel runs without a watchdog"),
                         ("/dev/null", r"/dev/null is not a watchdog \(it does not answer "
                          r"WDIOC_GETSUPPORT: .*\); keel runs without a watchdog")):
        admin, front = free_port(), free_port()
        k = h.keel("workers: { count: 1 }\nmonitors: { routes: false, servers: false }\n"
                   "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n"
                   "listeners: [{ address: \"127.0.0.1:%d\" }]\n"
                   "watchdog: { device: %s, timeout: 5s }\n" % (admin, front, device),
                   name="keel-" + device.replace("/", "_"), wait_port=admin)
        k.wait_log(said)
        r = http_get(admin, "/healthz")
        check(r.status == 200, "keel stopped serving: %s" % r.status)
        k.signal(signal.SIGTERM)
        check(k.wait(10) == 0, "keel did not stop cleanly")


def test_a_worker_that_fails_with_reboot_escalation_resets_the_guest(h):
    """supervise.escalation: reboot, restarts: 1: the worker killed twice is
    failed, the watchdog is no longer pinged, and the guest resets within
    the timeout and 1 s of the failure."""
    guest.need()
    vm, ctrl, _, timeout = boot(h, "guest3", ESCALATE)
    time.sleep(2)
    _, workers = keel_pids(ctrl)
    guest.shell(ctrl, "kill -KILL %s" % workers[0])
    vm.wait_log(r"worker 1 \(pid %s\) killed by signal 9 \(Killed\); starting another"
                % workers[0])
    time.sleep(1)
    check(vm.alive(), "the guest reset after one restart")
    _, workers = keel_pids(ctrl)
    t0 = time.monotonic()
    guest.shell(ctrl, "kill -KILL %s" % workers[0])
    took = reset_after(vm, t0, timeout + 10)
    check(re.search(r"worker 1 \(pid %s\) killed by signal 9 \(Killed\), after 1 restart "
                    r"within 300 s: left down \(failed\); supervise.escalation is reboot"
                    % workers[0], vm.log()), vm.log()[-2000:])
    check(re.search(r"not pinging: worker 1 failed \(killed by signal 9 \(Killed\)\), and "
                    r"supervise.escalation is reboot", vm.log()), vm.log()[-2000:])
    print("    reset %.2f s after the worker failed (timeout %d s)" % (took, timeout))
    check(took <= timeout + 1, "reset %.2f s after the failure" % took)
