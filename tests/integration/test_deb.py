"""make deb: the package's files, modes and systemd unit; then installed
with dpkg into a fresh Debian 12 (debootstrap minbase, cached as a tarball
in ~/.cache/keel-deb), run there in a network namespace of its own with its
packaged configuration, answering through its proxy and `keel status`;
then removed (the conffile stays) and purged (nothing stays)."""

import os
import shutil
import stat
import subprocess

import harness
from harness import check, skip, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.expanduser(os.environ.get("KEEL_DEB_CACHE", "~/.cache/keel-deb"))
TARBALL = os.path.join(CACHE, "bookworm-minbase.tgz")


def sh(*argv, timeout=600, ok=True):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if ok and r.returncode != 0:
        raise harness.TestFailure("%s: exit %d\n%s%s" % (" ".join(argv), r.returncode,
                                                         r.stdout[-1500:], r.stderr[-1500:]))
    return r


def build(h):
    if harness.SANITIZED:
        skip("the package holds the static build; the sanitizer build is not one")
    out = h.path("keel.deb")
    sh(os.path.join(ROOT, "images/deb/mkdeb.sh"), harness.KEEL, "0.1.0", "x86_64", out)
    return out


def test_package_files_modes_and_unit(h):
    deb = build(h)
    listing = sh("dpkg-deb", "-c", deb).stdout
    rows = {l.split()[-1]: l.split()[0] for l in listing.splitlines()}
    for path, mode in (("./usr/sbin/keel", "-rwxr-xr-x"), ("./etc/keel/keel.yaml", "-rw-r--r--"),
                       ("./lib/systemd/system/keel.service", "-rw-r--r--"),
                       ("./var/lib/keel/", "drwx------"), ("./", "drwxr-xr-x")):
        check(rows.get(path) == mode, "%s: %s in\n%s" % (path, rows.get(path), listing))
    check(sh("dpkg-deb", "-f", deb, "Architecture").stdout.strip() == "amd64")
    check(sh("dpkg-deb", "-I", deb, "conffiles").stdout.strip() == "/etc/keel/keel.yaml")
    # The unit as systemd reads it, with the packaged binary's real path
    if shutil.which("systemd-analyze") is None:
        return
    x = h.path("x")
    sh("dpkg-deb", "-x", deb, x)
    unit = open(os.path.join(x, "lib/systemd/system/keel.service")).read()
    check("Type=notify" in unit and "WatchdogSec=" in unit and "ExecReload=" in unit, unit)
    with open(h.path("keel.service"), "w") as f:
        f.write(unit.replace("/usr/sbin/keel", os.path.join(x, "usr/sbin/keel")))
    r = sh("systemd-analyze", "verify", h.path("keel.service"), ok=False)
    errs = [l for l in (r.stdout + r.stderr).splitlines()
            if "keel.service" in l and "sysinit.target" not in l]
    check(not errs, "\n".join(errs))


def chroot_debian(h):
    """A fresh Debian 12 minbase tree (from the cached tarball; made on
    first use from Debian's mirror)."""
    if shutil.which("debootstrap") is None:
        skip("debootstrap is not installed (tests/setup.sh installs it)")
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(TARBALL):
        work = h.path("dbs-work")
        sh("debootstrap", "--variant=minbase", "--make-tarball=" + TARBALL + ".tmp", "bookworm",
           work, "http://deb.debian.org/debian", timeout=900)
        os.rename(TARBALL + ".tmp", TARBALL)
    d = h.path("debian")
    sh("debootstrap", "--variant=minbase", "--unpack-tarball=" + TARBALL, "bookworm", d,
       "http://deb.debian.org/debian", timeout=900)
    return d


def test_installed_in_a_fresh_debian_it_answers_then_goes_cleanly(h):
    deb = build(h)
    d = chroot_debian(h)
    shutil.copy(deb, os.path.join(d, "tmp/keel.deb"))
    r = sh("chroot", d, "dpkg", "-i", "/tmp/keel.deb")
    check("Setting up keel (0.1.0)" in r.stdout, r.stdout)
    st = os.stat(os.path.join(d, "var/lib/keel"))
    check(stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode))
    check(os.access(os.path.join(d, "usr/sbin/keel"), os.X_OK))

    ns = "keeldeb%d" % os.getpid()
    sh("ip", "netns", "add", ns)
    h.defer(lambda: subprocess.run(["ip", "netns", "del", ns], capture_output=True))
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    sh("mount", "-t", "proc", "proc", os.path.join(d, "proc"))
    h.defer(lambda: subprocess.run(["umount", "-l", os.path.join(d, "proc")],
                                   capture_output=True))
    # The packaged configuration's app_a servers: one of them, in the namespace
    h.start("app_a.1", ["ip", "netns", "exec", ns, "python3", os.path.join(HERE, "backend.py"),
                        "--port", "8101", "--name", "app_a.1"])
    k = h.start("keel", ["ip", "netns", "exec", ns, "chroot", d, "/usr/sbin/keel", "-c",
                         "/etc/keel/keel.yaml"])

    def answer():
        r = sh("ip", "netns", "exec", ns, "curl", "-s", "-D", "-", "-o", "/dev/null",
               "http://127.0.0.1:8000/app_a/x", ok=False)
        return r.stdout if r.stdout.startswith("HTTP/1.1 200") else None
    head = wait_for("keel in the chroot to answer", answer, timeout=20)
    check("x-keel-upstream: 127.0.0.1:8101" in head.lower(), head)
    r = sh("ip", "netns", "exec", ns, "chroot", d, "/usr/sbin/keel", "status", "-c",
           "/etc/keel/keel.yaml")
    check("127.0.0.1:8101" in r.stdout and "\033[" not in r.stdout, r.stdout)
    k.signal(15)
    k.wait()

    sh("chroot", d, "dpkg", "-r", "keel")
    check(not os.path.exists(os.path.join(d, "usr/sbin/keel")), "binary left after remove")
    check(os.path.exists(os.path.join(d, "etc/keel/keel.yaml")), "conffile gone on remove")
    sh("chroot", d, "dpkg", "-P", "keel")
    for p in ("etc/keel/keel.yaml", "var/lib/keel", "lib/systemd/system/keel.service"):
        check(not os.path.exists(os.path.join(d, p)), "%s left after purge" % p)


test_installed_in_a_fresh_debian_it_answers_then_goes_cleanly.timeout = 900
