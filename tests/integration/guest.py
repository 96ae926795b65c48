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
import time

import harness

CACHE = os.path.expanduser(os.environ.get("KEEL_GUEST_CACHE", "~/.cache/keel-guest"))
MODULES = ["virtio_pci", "virtio_net", "virtio_rng", "nfsv4", "nfsv3"]
TOOLS = {"/bin/mount": "/usr/bin/mount", "/bin/umount": "/usr/bin/umount",
         "/sbin/mount.nfs": "/sbin/mount.nfs"}

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

NETCONFIG = """tcp\ttpi_cots_ord\tv\tinet\ttcp\t-\t-
udp\ttpi_clts\tv\tinet\tudp\t-\t-
tcp6\ttpi_cots_ord\tv\tinet6\ttcp\t-\t-
udp6\ttpi_clts\tv\tinet6\tudp\t-\t-
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


def modinfo_depends(path):
    """The depends= of a module's .modinfo: the names it needs loaded first."""
    with open(path, "rb") as f:
        data = f.read()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    end = data.index(b"\0", i + 1)
    v = data[i + 9:end].decode()
    return [d for d in v.split(",") if d]


def module_order(mods_dir, wanted):
    """Paths of the wanted modules and what they depend on, dependencies first."""
    index = {}
    for p in glob.glob(os.path.join(mods_dir, "kernel", "**", "*.ko"), recursive=True):
        index[os.path.basename(p)[:-3].replace("-", "_")] = p
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise harness.TestFailure("the guest kernel has no module %s" % name)
        for d in modinfo_depends(index[name]):
            visit(d)
        order.append(index[name])
    for w in wanted:
        visit(w)
    return order


def libraries(binary):
    """The shared libraries ldd finds for binary, the loader included."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


class Cpio:
    """An initramfs in the "newc" format, which the kernel unpacks."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1
        self.dirs = set()

    def _entry(self, name, mode, data=b""):
        name_b = name.lstrip("/").encode() + b"\0"
        hdr = "070701" + "".join("%08x" % v for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.out += hdr.encode() + name_b
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def mkdir(self, path):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, 0o40755)

    def file(self, path, data, mode=0o644):
        self.mkdir(os.path.dirname(path))
        self._entry(path, 0o100000 | mode, data)

    def copy(self, path, src, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        self.file(path, data, mode if mode is not None else os.stat(src).st_mode & 0o755)

    def symlink(self, path, target):
        self.mkdir(os.path.dirname(path))
        self._entry(path, 0o120777, target.encode())

    def done(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def initramfs(keel_bin, conf_text, path, modules=(), pid1=False):
    """Writes the guest's initramfs with keel and its config to path;
    pid1: keel is /init, and /etc/keel/modules lists the modules."""
    _, mods_dir = kernel()
    c = Cpio()
    for d in ("proc", "sys", "dev", "etc", "bin", "sbin", "usr/bin", "lib/modules", "run",
              "tmp", "state"):
        c.mkdir(d)
    c.copy("/bin/busybox", "/bin/busybox", 0o755)
    c.symlink("/bin/sh", "busybox")     # for /init; it links the other applets
    c.copy("/usr/bin/keel", keel_bin, 0o755)
    libs = set(libraries(keel_bin))     # none for the static build; the ASan one has some
    for dst, src in TOOLS.items():
        c.copy(dst, src, 0o755)
        libs.update(libraries(src))
    c.symlink("/sbin/mount.nfs4", "mount.nfs")
    for lib in sorted(libs):
        c.copy(lib, lib, 0o755)
    order = module_order(mods_dir, MODULES + list(modules))
    for p in order:
        c.copy("/lib/modules/" + os.path.basename(p), p, 0o644)
    c.file("/modules.order", "".join(os.path.basename(p) + "\n" for p in order).encode())
    c.file("/etc/keel/modules", "".join(os.path.basename(p) + "\n" for p in order).encode())
    c.symlink("/etc/mtab", "/proc/self/mounts")
    c.file("/etc/hosts", b"127.0.0.1 localhost\n")
    c.file("/etc/netconfig", NETCONFIG.encode())     # libtirpc's, for mount.nfs with NFSv3
    c.file("/etc/protocols", b"ip 0 IP\ntcp 6 TCP\nudp 17 UDP\n")
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
