"""The initramfs of keel's images (and of the test guests): a "newc" cpio
archive the kernel unpacks, holding keel, the kernel modules it loads and
the few host tools the storage part runs (mount, mount.nfs)."""

import glob
import gzip
import os
import subprocess

# What a tool needs to mount NFS the kernel's way: util-linux's mount with
# nfs-common's helper. Paths inside the image, and where they come from.
TOOLS = {"/bin/mount": "/usr/bin/mount", "/bin/umount": "/usr/bin/umount",
         "/sbin/mount.nfs": "/sbin/mount.nfs"}

NETCONFIG = """tcp\ttpi_cots_ord\tv\tinet\ttcp\t-\t-
udp\ttpi_clts\tv\tinet\tudp\t-\t-
tcp6\ttpi_cots_ord\tv\tinet6\ttcp\t-\t-
udp6\ttpi_clts\tv\tinet6\tudp\t-\t-
"""


class Missing(Exception):
    pass


def modinfo_depends(path):
    """The depends= of a module's .modinfo: the names it needs loaded first."""
    with open(path, "rb") as f:
        data = f.read()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    end = data.index(b"\0", i + 1)
    return [d for d in data[i + 9:end].decode().split(",") if d]


def module_order(mods_dir, wanted):
    """Paths of the wanted modules and what they depend on, dependencies
    first. A module the kernel has built in (modules.builtin) is skipped."""
    index, builtin = {}, set()
    for p in glob.glob(os.path.join(mods_dir, "kernel", "**", "*.ko"), recursive=True):
        index[os.path.basename(p)[:-3].replace("-", "_")] = p
    try:
        with open(os.path.join(mods_dir, "modules.builtin")) as f:
            builtin = {os.path.basename(l.strip())[:-3].replace("-", "_") for l in f}
    except OSError:
        pass
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise Missing("the kernel in %s has no module %s" % (mods_dir, name))
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
    """An initramfs in the "newc" format."""

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


def system(c, keel_bin, mods_dir, modules, tools=True):
    """The parts every keel initramfs has: the directories, keel in
    /usr/bin, the modules (listed in /etc/keel/modules, dependencies
    first), the tools with their libraries, and the small /etc files."""
    for d in ("proc", "sys", "dev", "etc", "bin", "sbin", "usr/bin", "lib/modules", "run",
              "tmp", "var/lib/keel", "boot"):
        c.mkdir(d)
    c.copy("/usr/bin/keel", keel_bin, 0o755)
    libs = set(libraries(keel_bin))     # none for the static build; the ASan one has some
    if tools:
        for dst, src in TOOLS.items():
            c.copy(dst, src, 0o755)
            libs.update(libraries(src))
        c.symlink("/sbin/mount.nfs4", "mount.nfs")
    for lib in sorted(libs):
        c.copy(lib, lib, 0o755)
    order = module_order(mods_dir, modules)
    for p in order:
        c.copy("/lib/modules/" + os.path.basename(p), p, 0o644)
    c.file("/etc/keel/modules", "".join("/lib/modules/%s\n" % os.path.basename(p)
                                        for p in order).encode())
    c.symlink("/etc/mtab", "/proc/self/mounts")
    c.file("/etc/hosts", b"127.0.0.1 localhost\n")
    c.file("/etc/netconfig", NETCONFIG.encode())     # libtirpc's, for mount.nfs with NFSv3
    c.file("/etc/protocols", b"ip 0 IP\ntcp 6 TCP\nudp 17 UDP\n")
    return order


def compress(data):
    """gzip at level 6, with no name or time in the header: the same input
    gives the same bytes."""
    return gzip.compress(data, 6, mtime=0)
