"""A qemu guest (TCG) for what this machine's kernel cannot do: kernel NFS
mounts. It boots Debian's kernel (tests/setup.sh unpacks it) with an
initramfs made here: busybox, util-linux mount and mount.nfs with their
libraries, the kernel modules for virtio networking and NFS, and keel.
PID 1 is a shell script: it loads the modules, sets up slirp's network
(the guest is 10.0.2.15, the host's loopback is 10.0.2.2), starts keel
with the test's config, and then reports every keel process it sees in D
state, with its process group (keel's helpers lead their own). keel's log and those reports come out on the serial console, which
is the Proc's log. A shell listens on the guest's port 7000 for the
test's commands (shell())."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import time

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "images"))
import initramfs as initramfs_lib  # noqa: E402
from initramfs import TOOLS, Cpio  # noqa: E402,F401

CACHE = os.path.expanduser(os.environ.get("KEEL_GUEST_CACHE", "~/.cache/keel-guest"))
MODULES = ["virtio_pci", "virtio_net", "virtio_rng", "nfsv4", "nfsv3"]

INIT = r"""#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/lib/modules/$m" || echo "guest: insmod $m failed"; done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
mkdir -p /state /run /tmp
(while :; do nc -l -p 7000 -e /bin/sh; done) &
echo "guest: up"
keel -c /keel.yaml &
while :; do
	for s in /proc/[0-9]*/stat; do
		read -r l 2>/dev/null < "$s" || continue
		case "$l" in *"(keel) D "*) set -- $l; echo "guest: D state: pid $1 group $5";; esac
	done
	sleep 0.5
done
"""

def kernel():
    """(vmlinuz, modules dir), or None when setup.sh did not unpack them."""
    vm = sorted(glob.glob(os.path.join(CACHE, "linux", "boot", "vmlinuz-*")))
    if not vm:
        return None
    ver = os.path.basename(vm[-1])[len("vmlinuz-"):]
    mods = os.path.join(CACHE, "linux", "lib", "modules", ver)
    return (vm[-1], mods) if os.path.isdir(mods) else None


def available():
    return (kernel() is not None and shutil.which("qemu-system-x86_64") is not None and
            os.path.exists("/bin/busybox") and all(os.path.exists(p) for p in TOOLS.values()))


def need():
    if not available():
        harness.skip("qemu-system-x86, busybox-static, nfs-common or the guest kernel in %s "
                     "is missing (tests/setup.sh)" % CACHE)


def initramfs(keel_bin, conf_text, path, modules=(), pid1=False):
    """Writes the guest's initramfs with keel and its config to path;
    pid1: keel is /init, and /etc/keel/modules lists the modules."""
    _, mods_dir = kernel()
    c = Cpio()
    c.mkdir("state")
    c.copy("/bin/busybox", "/bin/busybox", 0o755)
    c.symlink("/bin/sh", "busybox")     # for /init; it links the other applets
    try:
        order = initramfs_lib.system(c, keel_bin, mods_dir, MODULES + list(modules))
    except initramfs_lib.Missing as e:
        raise harness.TestFailure(str(e))
    c.file("/modules.order", "".join(os.path.basename(p) + "\n" for p in order).encode())
    if pid1:
        c.copy("/init", keel_bin, 0o755)
    else:
        c.file("/init", INIT.encode(), 0o755)
    c.file("/keel.yaml", conf_text.encode())
    with open(path, "wb") as f:
        f.write(c.done())


class Relay:
    """One more address for services on the host's loopback, as the guest
    sees it: slirp runs `busybox nc 127.0.0.1 PORT` for each connection the
    guest makes to addr:PORT, while the flag file is there. cut() makes the
    address dead (no new connection, the open ones closed), mend() brings
    it back. slirp gives the guest the host at 10.0.2.2 only; this is how a
    test gets a second NFS server."""

    def __init__(self, h, addr, ports):
        self.addr, self.ports = addr, ports
        self.flag = h.path("relay-%s.up" % addr)
        self.mend()

    def netdev(self):
        return "".join(",guestfwd=tcp:%s:%d-cmd:sh -c \"test -e %s && exec busybox nc 127.0.0.1 %d\""
                       % (self.addr, p, self.flag, p) for p in self.ports)

    def cut(self):
        if os.path.exists(self.flag):
            os.unlink(self.flag)
        for p in self.ports:
            subprocess.run(["pkill", "-f", "^busybox nc 127.0.0.1 %d$" % p], capture_output=True)

    def mend(self):
        with open(self.flag, "w"):
            pass


def boot(h, conf_text, name="guest", forward=(), relays=(), modules=(), devices=(),
         pid1=False):
    """Boots the guest with keel and conf_text; forward: (host port, guest
    port) pairs on 127.0.0.1; relays: Relay objects; modules: more kernel
    modules to load; devices: more qemu -device values; pid1: keel is the
    init (no shell then: the test talks HTTP). Returns the qemu Proc, its
    log the console."""
    need()
    vmlinuz, _ = kernel()
    initrd = h.path(name + ".cpio")
    initramfs(harness.KEEL, conf_text, initrd, modules, pid1)
    net = "user,id=n0" + "".join(",hostfwd=tcp:127.0.0.1:%d-10.0.2.15:%d" % f for f in forward)
    net += "".join(r.netdev() for r in relays)
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-smp", "1",
            "-kernel", vmlinuz, "-initrd", initrd,
            "-append", "console=ttyS0 quiet loglevel=3 panic=-1" +
            (" -- -c /keel.yaml" if pid1 else ""),
            "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",    # as a real box's hardware RNG: keel waits for entropy
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"]
    for d in devices:
        argv += ["-device", d]
    t0 = time.monotonic()
    p = h.start(name, argv)
    p.runs_keel = True          # its console is keel's log: sanitizer reports count
    p.boot_started = t0
    p.wait_log(r"main: keel \S+ started" if pid1 else r"guest: up", timeout=60)
    return p


def shell(port, command, timeout=10.0):
    """Runs command in the guest's shell (its port 7000, forwarded to the
    host's port); returns what it printed. slirp accepts the host's
    connection before the guest's listener is back between two commands,
    then drops it: the command did not run, and is sent again."""
    deadline = time.monotonic() + timeout
    while True:
        out = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
                c.sendall(command.encode() + b"\necho guest-shell-done\nexit\n")
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    out += chunk
        except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
            pass
        if b"guest-shell-done" in out:
            return out.decode(errors="replace").replace("guest-shell-done\n", "")
        if out or time.monotonic() > deadline:
            raise harness.TestFailure("the guest's shell: %r gave %r" % (command, out))
        time.sleep(0.2)


# ---- keel's disk images (images/mkimage.py) under UEFI --------------------------------------

OVMF = "/usr/share/OVMF/OVMF_CODE.fd"
IMAGE_TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mmd", "mke2fs", "qemu-img", "objcopy")
MKIMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "images",
                       "mkimage.py")


AAVMF = "/usr/share/AAVMF/AAVMF_CODE.fd"
ARM_CACHE = os.path.join(CACHE, "linux-arm64")
ARM_STUB = os.path.join(CACHE, "systemd-boot-arm64", "usr/lib/systemd/boot/efi/linuxaa64.efi.stub")


def need_image(arch="x86_64"):
    need()
    missing = [t for t in IMAGE_TOOLS if shutil.which(t) is None]
    if arch == "x86_64":
        if not os.path.exists(OVMF):
            missing.append("ovmf")
        if not os.path.exists("/usr/lib/systemd/boot/efi/linuxx64.efi.stub"):
            missing.append("systemd-boot-efi")
    else:
        if not os.path.exists(AAVMF):
            missing.append("qemu-efi-aarch64")
        if shutil.which("qemu-system-aarch64") is None:
            missing.append("qemu-system-arm")
        if not glob.glob(os.path.join(ARM_CACHE, "boot", "vmlinuz-*")):
            missing.append("Debian's arm64 kernel in " + ARM_CACHE)
        if not os.path.exists(ARM_STUB):
            missing.append("systemd-boot-efi:arm64's stub")
    if missing:
        harness.skip("image tools missing: %s (tests/setup.sh)" % ", ".join(missing))


def mkimage(what, out, version, keel=None, drop=(), arch="x86_64"):
    """Runs images/mkimage.py; returns what it wrote (the disk's base path
    for "disk", the UKI for "uki")."""
    argv = ["python3", MKIMAGE, what, "--keel", keel or harness.KEEL, "--version", version,
            "--out", out, "--arch", arch]
    for m in drop:
        argv += ["--drop-module", m]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise harness.TestFailure("mkimage %s: %s" % (what, r.stderr[-2000:]))
    return os.path.join(out, "keel-" + arch) if what == "disk" else out


def overlay(h, base_qcow2, name):
    """A copy-on-write disk over the image: the test's writes stay its own."""
    path = h.path(name + ".qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.abspath(base_qcow2),
                    "-F", "qcow2", path], check=True)
    return path


def boot_disk(h, disk, name="image", forward=(), arch="x86_64"):
    """Boots a keel disk image the way a box does: UEFI firmware, then
    systemd-boot from the EFI partition, then a slot's kernel with keel as
    its init. Reboots stay in the same qemu (no -no-reboot): an update's
    reboot and a rollback happen as on the box. Returns the Proc; its log
    is the serial console, every boot after the other."""
    net = "user,id=n0" + "".join(",hostfwd=tcp:127.0.0.1:%d-10.0.2.15:%d" % f for f in forward)
    if arch == "x86_64":
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1",
                "-bios", OVMF]
    else:
        # AAVMF is a 64 MiB flash, with a writable one beside it for its
        # variables (a copy per box).
        nvram = h.path(name + "-vars.fd")
        if not os.path.exists(nvram):
            shutil.copy("/usr/share/AAVMF/AAVMF_VARS.fd", nvram)
        argv = ["qemu-system-aarch64", "-M", "virt", "-cpu", "max", "-accel", "tcg",
                "-m", "1024", "-smp", "1",
                "-drive", "if=pflash,format=raw,readonly=on,file=" + AAVMF,
                "-drive", "if=pflash,format=raw,file=" + nvram]
    argv += ["-drive", "file=%s,if=virtio,format=qcow2" % disk,
            "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-display", "none", "-monitor", "none", "-serial", "stdio"]
    t0 = time.monotonic()
    p = h.start(name, argv)
    p.runs_keel = True
    p.boot_started = t0
    return p


def esp_file(h, disk, path):
    """A file of the image's EFI partition, read from outside with mtools
    (qemu stopped): its bytes, or None."""
    raw = h.path("esp-read.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", disk, raw], check=True)
    out = h.path("esp-read.out")
    r = subprocess.run(["mcopy", "-n", "-i", raw + "@@1M", "::" + path, out],
                       capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    os.unlink(raw)
    if r.returncode != 0:
        return None
    with open(out, "rb") as f:
        return f.read()


def esp_list(h, disk, folder="EFI/Linux"):
    raw = h.path("esp-list.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", disk, raw], check=True)
    r = subprocess.run(["mdir", "-b", "-i", raw + "@@1M", "::" + folder], capture_output=True,
                       text=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    os.unlink(raw)
    return sorted(os.path.basename(l.strip()) for l in r.stdout.splitlines() if l.strip())
