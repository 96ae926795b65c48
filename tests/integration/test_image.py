"""keel's disk image (images/mkimage.py) booted the way a box boots it:
UEFI firmware (OVMF), systemd-boot, a slot's unified kernel image, keel as
PID 1. First boot to the setup wizard and a request through the front door
to a backend on the host; then signed A/B updates: a good one committed, a
tampered one and one signed with another key refused with nothing written,
one whose keel fails its own checks rolled back by itself, and power cuts
(qemu killed) at random points that never leave the box unbootable and
never roll back a committed slot."""

import json
import os
import random
import re
import shutil
import subprocess
import threading
import time

import guest
import harness
from harness import check, free_port, http_get, wait_for
from test_api import Admin, PASSWORD

BASE_VERSION = "0.1.0-img"
ROOT = os.path.join(harness.HERE, "..", "..")
DEV_KEY = os.path.join(ROOT, "build", "keys", "dev.pem")


def need():
    if harness.SANITIZED:
        harness.skip("the image holds the static release build; these run in the release pass")
    guest.need_image()
    if not os.path.exists(DEV_KEY):
        harness.skip("no development update key in build/keys (make builds it)")


class Box:
    """One qemu box booted from an overlay of a keel disk image."""

    def __init__(self, h, base, name="box", arch="x86_64"):
        self.h, self.name, self.arch = h, name, arch
        self.disk = guest.overlay(h, base + ".qcow2", name)
        self.admin_port, self.front_port = free_port(), free_port()
        self.boots = 0
        self.vm = None
        self.admin = None

    def boot(self):
        self.boots += 1
        self.vm = guest.boot_disk(self.h, self.disk, name="%s-%d" % (self.name, self.boots),
                                  forward=[(self.admin_port, 443), (self.front_port, 80)],
                                  arch=self.arch)
        return self.vm

    def kill(self):
        """A power cut: qemu is gone at once, the guest's caches with it."""
        if self.vm is not None and self.vm.alive():
            self.vm.popen.kill()
            self.vm.wait(10)

    def up(self, timeout=120, after=0):
        """Waits until keel on the box answers its admin API."""
        def probe():
            if not self.vm.alive():
                raise harness.TestFailure("qemu exited:\n" + self.vm.log()[-3000:])
            a = Admin(self.admin_port, tls=True)
            st, js = a.call("GET", "/api/v1/setup", timeout=5)
            return a if st == 200 else None
        self.vm.wait_log(r"main: keel \S+ started", timeout=timeout, after=after)
        return wait_for("keel's admin API on the box", probe, timeout=60, interval=0.5)

    def setup(self):
        token = self.vm.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
        a = Admin(self.admin_port, tls=True)
        st, js = a.call("POST", "/api/v1/setup", {"token": token, "user": "admin",
                                                   "password": PASSWORD})
        check(st == 200, (st, js))
        a.csrf = js["csrf"]
        self.admin = a
        return a

    def login(self):
        a = Admin(self.admin_port, tls=True)
        st, js = a.login()
        check(st == 200, (st, js))
        self.admin = a
        return a

    def status(self):
        st, js = self.admin.call("GET", "/api/v1/status", timeout=20)
        check(st == 200, (st, js))
        return js

    def upload(self, path, timeout=300, downgrade=False):
        with open(path, "rb") as f:
            data = f.read()
        return self.admin.call("POST", "/api/v1/update" + ("?downgrade=1" if downgrade else ""),
                               data, timeout=timeout,
                               headers={"Content-Type": "application/octet-stream"})

    def set_tries(self, n):
        st, yaml = self.admin.call("GET", "/api/v1/config/yaml")
        check(st == 200, (st, yaml))
        st, js = self.admin.call("PUT", "/api/v1/config/yaml",
                                 yaml + "update: { tries: %d }\n" % n,
                                 headers={"Content-Type": "application/yaml"})
        check(st == 200, (st, js))


UI_SCRIPT = os.path.join(ROOT, "tests", "ui", "update.js")


def ui_available():
    return (shutil.which("node") is not None and os.path.exists("/usr/bin/chromium") and
            os.path.isdir(os.path.join(ROOT, "tests", "ui", "node_modules", "playwright-core")))


def ui(h, box, step, expect=None, bundle_path=None, shot=None):
    """The Update page in headless Chromium (tests/ui/update.js)."""
    argv = ["node", UI_SCRIPT, "--url", "https://127.0.0.1:%d" % box.admin_port, "--do", step,
            "--expect", json.dumps(expect or {})]
    if bundle_path:
        argv += ["--bundle", bundle_path]
    if shot:
        os.makedirs(os.path.join(ROOT, "build", "ui"), exist_ok=True)
        argv += ["--shot", os.path.join(ROOT, "build", "ui", shot)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=400)
    check(r.returncode == 0, "the Update page, %s: %s%s" % (step, r.stdout[-500:], r.stderr[-1500:]))
    return r.stdout.strip()


def base_image(h):
    out = h.path("image")
    return guest.mkimage("disk", out, BASE_VERSION)


def bundle(h, version, key=DEV_KEY, drop=(), arch="x86_64", keel=None):
    uki = guest.mkimage("uki", h.path("keel-%s.efi" % version), version, drop=drop, arch=arch,
                        keel=keel)
    out = h.path("keel-%s.bundle" % version)
    r = h.run_keel("update", "sign", "--key", key, "--version", version, "--arch", arch, uki, out)
    check(r.returncode == 0, r.stderr)
    return out




def test_first_boot_reaches_the_wizard_and_proxies_to_a_host_backend(h):
    need()
    t0 = time.monotonic()
    base = base_image(h)
    built = time.monotonic() - t0
    backend = h.http_backend("app")
    box = Box(h, base)
    vm = box.boot()
    box.up()
    up_s = time.monotonic() - vm.boot_started
    check(re.search(r"init: data partition /dev/vda2 mounted on /var/lib/keel", vm.log()),
          vm.log()[-3000:])
    check(re.search(r"update: running slot a \(%s\)" % re.escape(BASE_VERSION), vm.log()),
          vm.log()[-3000:])
    a = box.setup()
    js = box.status()
    up = js["update"]
    check(up["supported"] and up["running"] == "a" and up["version"] == BASE_VERSION
          and [s["state"] for s in up["slots"]] == ["committed", "committed"], up)
    st, yaml = a.call("GET", "/api/v1/config/yaml")
    check(st == 200, (st, yaml))
    yaml += ("upstreams:\n  app:\n    servers:\n      - { address: \"10.0.2.2:%d\" }\n"
             "routes:\n  - { path: /, upstream: app }\n" % backend)
    st, js = a.call("PUT", "/api/v1/config/yaml", yaml, headers={"Content-Type":
                                                                 "application/yaml"})
    check(st == 200, (st, js))
    r = wait_for("a request through the box's front door",
                 lambda: (lambda x: x if x.status == 200 else None)(http_get(box.front_port, "/")),
                 timeout=20, interval=0.5)
    check("app" in r.body, r.body[:200])
    size = os.path.getsize(base + ".img")
    print("    image built in %.1f s: %d MiB raw, %d MiB qcow2, UKI %.1f MiB; admin answering "
          "%.1f s after qemu started" % (built, size >> 20, os.path.getsize(base + ".qcow2") >> 20,
                                         os.path.getsize(base + ".efi") / 1048576, up_s))


def updates(h):
    """A box on the base image takes three tampered bundles and one signed
    by another key (each refused; the inactive slot checked byte for byte
    from outside afterwards), then a good one (committed after its reboot),
    then one whose keel fails its checks (rolled back by itself). Returns
    the figures."""
    base = base_image(h)
    good = bundle(h, "0.2.0-good")
    with open(good, "rb") as f:
        data = f.read()
    # Tampered bundles: one byte changed in the payload, in the block
    # table and in the manifest; and one signed by a key keel does not know.
    tampered = []
    for where, off in (("payload", len(data) - 3 * 65536 - 17), ("table", 700),
                       ("manifest", 30)):
        b = bytearray(data)
        b[off] ^= 0x01
        p = h.path("tampered-%s.bundle" % where)
        with open(p, "wb") as f:
            f.write(b)
        tampered.append((where, p))
    other = h.path("other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", other], check=True, capture_output=True)
    tampered.append(("other key", bundle(h, "0.2.0-other", key=other)))
    bad = bundle(h, "0.3.0-bad", drop=("ext4",))
    older = bundle(h, "0.1.5")
    with open(base + ".efi", "rb") as f:
        image_uki = f.read()

    box = Box(h, base)
    box.boot()
    box.up()
    box.setup()
    for what, p in tampered:
        st, js = box.upload(p)
        check(st == 400 and "error" in js, (what, st, js))
        print("    %s: %d %s" % (what, st, js["error"]))
        if what == "payload":
            check("does not match its hash" in js["error"], js)
        elif what == "other key":
            check("does not trust" in js["error"], js)
        elif what == "table":
            check("table does not match" in js["error"], js)
        else:
            check("signature does not verify" in js["error"], js)
    up = box.status()["update"]
    check(up["last"]["state"] == "refused" and not up["busy"], up)
    # From outside, qemu stopped: slot b is the image's, byte for byte, and
    # no half-written file is left.
    box.kill()
    names = guest.esp_list(h, box.disk)
    slot_b = guest.esp_file(h, box.disk, "EFI/Linux/keel-1-b.efi")
    check(slot_b is not None and not any("tmp" in n for n in names), names)
    changed = sum(x != y for x, y in zip(slot_b, image_uki)) + abs(len(slot_b) - len(image_uki))
    check(changed == 0, "slot b changed in %d bytes" % changed)
    box.boot()
    box.up()
    box.login()

    # A good bundle, uploaded through the Update page: written to slot b, a
    # reboot, a trial, committed. With one try only: systemd-boot takes it
    # before it boots the slot, so keel sees +0-1 on a slot still on trial.
    box.set_tries(1)
    ui(h, box, "show", {"running": "a", "versions": [BASE_VERSION], "rollback": True,
                        "last": "refused"}, shot="update-1-before.png")
    t0 = time.monotonic()
    mark = box.vm.mark()
    said = ui(h, box, "install", bundle_path=good, shot="update-2-uploaded.png")
    box.vm.wait_log(r"rebooting into it for a trial of 1 boot\b", after=mark)
    uploaded = time.monotonic() - t0
    check("Slot b now holds 0.2.0-good" in said, said)
    box.vm.wait_log(r"update: slot b \(0\.2\.0-good\) committed", timeout=180, after=mark)
    total = time.monotonic() - t0
    box.up(after=mark)
    box.login()
    up = box.status()["update"]
    check(up["running"] == "b" and up["version"] == "0.2.0-good"
          and up["last"]["state"] == "committed"
          and up["slots"][1]["state"] == "committed" and up["slots"][0]["version"] == BASE_VERSION,
          up)
    print("    good update through the UI: upload and write %.1f s (the browser's login "
          "included), reboot to committed %.1f s, %.1f s in all"
          % (uploaded, total - uploaded, total))
    ui(h, box, "show", {"running": "b", "versions": [BASE_VERSION, "0.2.0-good"],
                        "last": "committed", "rollback": True}, shot="update-3-committed.png")
    # An older version is refused unless asked for (Roll back is the way back).
    st, js = box.upload(older)
    check(st == 400 and "older than the running 0.2.0-good" in js["error"], (st, js))

    # Roll back by hand from the page: slot a again, committed.
    mark = box.vm.mark()
    ui(h, box, "rollback")
    box.vm.wait_log(r"update: running slot a \(%s\)" % re.escape(BASE_VERSION), timeout=120,
                    after=mark)
    box.up(after=mark)
    box.login()
    up = box.status()["update"]
    check(up["running"] == "a" and up["version"] == BASE_VERSION
          and up["last"]["state"] == "rolled-back" and not up["trial"], up)

    # A bad one: its keel cannot mount the data partition, so its checks
    # fail; it marks itself bad and the box comes back on slot a.
    mark = box.vm.mark()
    st, js = box.upload(bad)
    check(st == 200 and js["slot"] == "b", (st, js))
    box.vm.wait_log(r"update: slot b \(0\.3\.0-bad\) failed its checks: config store: the "
                    r"data partition PARTLABEL=keel-data is not mounted", timeout=180, after=mark)
    m2 = box.vm.mark()
    box.up(after=m2)
    box.login()
    up = box.status()["update"]
    check(up["running"] == "a" and up["version"] == BASE_VERSION
          and up["last"]["state"] == "failed" and up["last"]["version"] == "0.3.0-bad"
          and "data partition" in up["last"]["why"] and up["slots"][1]["state"] == "bad", up)
    ui(h, box, "show", {"running": "a", "last": "failed", "why": "data partition",
                        "rollback": False}, shot="update-4-rolled-back.png")
    print("    bad update rolled back: %s" % up["last"]["why"])
    return {"update_seconds": round(total, 1), "update_tampered_bytes_written": changed}


def test_signed_updates_tampered_refused_good_committed_bad_rolled_back(h):
    need()
    if not ui_available():
        harness.skip("node, Chromium or tests/ui's playwright-core is missing (tests/setup.sh): "
                     "the update goes through the Update page")
    updates(h)


COMMITTED = re.compile(r"update: slot ([ab]) \(([^)]+)\) committed")


# Where a cut lands, counted from the upload's start (qemu TCG here): the
# upload and write take about 3 s, the reboot into the new slot and its
# trial until the commit about 15 s more.
WINDOWS = ((0.3, 3.2), (3.5, 16.0), (16.0, 24.0), (24.0, 34.0))


def powercuts(h, runs, seed=17):
    """runs power cuts (qemu killed) at random points of an update: while
    it uploads and writes, while the box reboots, during the trial boot and
    around the commit. After each the box is booted again: it must come up,
    and run the last committed slot (or one committed since). Returns the
    figures."""
    base = base_image(h)
    bundles = [bundle(h, "0.2.%d" % i) for i in range(2)]
    box = Box(h, base)
    box.boot()
    box.up()
    box.setup()
    rng = random.Random(seed)
    committed = ("a", BASE_VERSION)
    unbootable = false_rollbacks = 0
    stages = {}
    for run in range(runs):
        cut = rng.uniform(*WINDOWS[run % len(WINDOWS)])
        mark = box.vm.mark()

        def send(path=bundles[run % 2]):
            try:
                box.upload(path, downgrade=True)     # 0.2.0 after 0.2.1
            except Exception:   # noqa: B902 - the cut ends the connection
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(cut)
        box.kill()
        t.join(30)
        log = box.vm.log()[mark:]
        stage = ("after the commit" if COMMITTED.search(log) else
                 "trial boot" if "rebooting now" in log else
                 "upload and write")
        stages[stage] = stages.get(stage, 0) + 1
        for m in COMMITTED.finditer(log):
            committed = (m.group(1), m.group(2))
        box.boot()
        try:
            box.up(timeout=150)
        except harness.TestFailure as e:
            unbootable += 1
            print("    run %d: cut at %.1f s (%s): the box does not come up: %s"
                  % (run, cut, stage, e))
            break
        box.login()
        up = box.status()["update"]
        if up["trial"]:
            # A trial cut short goes on: it commits, or fails and reboots.
            m = box.vm.wait_log(r"update: slot [ab] \([^)]+\) (committed|failed)",
                                timeout=180)
            if m.group(1) == "failed":
                box.up(timeout=150, after=box.vm.mark())
            box.login()
            up = box.status()["update"]
        for m in COMMITTED.finditer(box.vm.log()):     # this qemu's: every boot since the cut
            committed = (m.group(1), m.group(2))
        running = (up["running"], up["version"])
        # The commit of this run's image may have happened just before the
        # cut, its log line still in qemu's serial buffer: running it is
        # no rollback. Running anything older than what was seen
        # committed is.
        new = ("b" if committed[0] == "a" else "a", "0.2.%d" % (run % 2))
        if running == new and up["slots"][ord(new[0]) - 97]["state"] == "committed":
            committed = running
        if running != committed:
            false_rollbacks += 1
        states = "".join("%s:%s " % (s["slot"], s["state"]) for s in up["slots"])
        print("    run %d: cut at %.1f s (%s): running %s %s; committed %s %s; %s"
              % (run, cut, stage, running[0], running[1], committed[0], committed[1], states))
    box.kill()
    return {"update_powercut_runs": runs, "update_unbootable": unbootable,
            "update_false_rollbacks": false_rollbacks}, stages


def test_power_cuts_never_brick_or_roll_back_a_committed_slot(h):
    need()
    fig, stages = powercuts(h, int(os.environ.get("KEEL_POWERCUT_RUNS", "4")),
                            seed=int(time.time()))
    print("    %s; cut in: %s" % (fig, stages))
    check(fig["update_unbootable"] == 0 and fig["update_false_rollbacks"] == 0, fig)


ARM_KEEL = os.path.join(ROOT, "build", "aarch64", "keel")


def test_aarch64_image_boots_to_the_wizard_and_takes_a_signed_update(h):
    """The aarch64 image under qemu-system-aarch64 (virt, AAVMF, TCG): first
    boot to the setup wizard, then a good update committed."""
    need()
    guest.need_image("aarch64")
    if not os.path.exists(ARM_KEEL):
        harness.skip("no build/aarch64/keel (make ARCH=aarch64; CI builds it first)")
    t0 = time.monotonic()
    base = guest.mkimage("disk", h.path("image-arm"), BASE_VERSION, keel=ARM_KEEL,
                         arch="aarch64")
    built = time.monotonic() - t0
    good = bundle(h, "0.2.0-arm", arch="aarch64", keel=ARM_KEEL)
    box = Box(h, base, arch="aarch64")
    vm = box.boot()
    box.up(timeout=240)
    up_s = time.monotonic() - vm.boot_started
    check(re.search(r"main: keel \S+ started \(pid \d+, aarch64", vm.log()), vm.log()[-2000:])
    box.setup()
    up = box.status()["update"]
    check(up["supported"] and up["running"] == "a" and up["version"] == BASE_VERSION, up)
    wrong = bundle(h, "0.2.0-x86")           # an x86_64 image: refused after its signature
    st, js = box.upload(wrong)
    check(st == 400 and "the bundle is for x86_64; this box is aarch64" in js["error"], (st, js))
    # Fetched from a URL this time: a web server on the host.
    port = free_port()
    h.start("httpd", ["python3", "-m", "http.server", "--bind", "127.0.0.1",
                      "--directory", h.dir, str(port)],
            ready=lambda: http_get(port, "/").status == 200)
    st, js = box.admin.call("POST", "/api/v1/commands/update.fetch",
                            {"arg": "http://10.0.2.2:%d/no-such.bundle" % port}, timeout=120)
    check(st == 502 and "answered 404" in js["error"], (st, js))
    t1 = time.monotonic()
    mark = box.vm.mark()
    st, js = box.admin.call("POST", "/api/v1/commands/update.fetch",
                            {"arg": "http://10.0.2.2:%d/%s" % (port, os.path.basename(good))},
                            timeout=300)
    check(st == 200 and js["slot"] == "b", (st, js))
    box.vm.wait_log(r"update: slot b \(0\.2\.0-arm\) committed", timeout=300, after=mark)
    took = time.monotonic() - t1
    box.up(timeout=120, after=mark)
    box.login()
    up = box.status()["update"]
    check(up["running"] == "b" and up["version"] == "0.2.0-arm" and
          up["last"]["state"] == "committed", up)
    print("    aarch64: image built in %.1f s (UKI %.1f MiB); admin answering %.1f s after qemu "
          "started; update upload to committed %.1f s" % (
              built, os.path.getsize(base + ".efi") / 1048576, up_s, took))


test_aarch64_image_boots_to_the_wizard_and_takes_a_signed_update.timeout = 900
test_first_boot_reaches_the_wizard_and_proxies_to_a_host_backend.timeout = 240
test_signed_updates_tampered_refused_good_committed_bad_rolled_back.timeout = 900
test_power_cuts_never_brick_or_roll_back_a_committed_slot.timeout = 1200
