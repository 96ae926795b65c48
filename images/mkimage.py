#!/usr/bin/env python3
"""Builds keel's images without loop mounts or root: a unified kernel image
(UKI: systemd-boot's EFI stub with Debian's kernel, an initramfs with keel as
/init, and the command line), and a GPT disk holding an EFI system partition
with systemd-boot and slots A and B (each a UKI), and an ext4 data
partition. Raw for dd, qcow2 for a VM.

    mkimage.py uki   --keel K --arch A --version V --out F
    mkimage.py disk  --keel K --arch A --version V --out DIR
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import initramfs  # noqa: E402

ARCHES = {
    # arch: (EFI name suffix, Debian arch, stub)
    "x86_64": ("x64", "amd64", "linuxx64.efi.stub"),
    "aarch64": ("aa64", "arm64", "linuxaa64.efi.stub"),
}

# Drivers for the disks and NICs of a small x86 or ARM box and of qemu,
# the filesystems of the data and EFI partitions, and the NFS client.
MODULES = ["virtio_pci", "virtio_net", "virtio_blk", "virtio_rng", "e1000", "e1000e", "igb",
           "r8169", "nvme", "ahci", "sd_mod", "xhci_pci", "usb_storage",
           "crc32c_generic", "ext4", "vfat", "nls_cp437", "nls_ascii", "efivarfs", "nfsv3",
           "nfsv4"]

ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
ESP_LABEL = "keel-esp"
DATA_LABEL = "keel-data"
SECTOR = 512
MIB = 1 << 20
ESP_MIB = 160           # three UKIs: two slots and an update being written
DATA_MIB = 96

# The last console= is /dev/console, where keel logs: the serial port.
SERIAL = {"x86_64": "ttyS0", "aarch64": "ttyAMA0"}
CMDLINE = ("console=tty0 console=%s quiet loglevel=3 panic=5 "
           "keel.data=PARTLABEL=" + DATA_LABEL + " keel.esp=PARTLABEL=" + ESP_LABEL)


def run(*argv, **kw):
    subprocess.run(argv, check=True, **kw)


def cache_dir():
    return os.path.expanduser(os.environ.get("KEEL_IMAGE_CACHE", "~/.cache/keel-guest"))


def kernel(arch):
    """(vmlinuz, modules dir) of the unpacked Debian kernel for arch."""
    sub = "linux" if arch == "x86_64" else "linux-" + ARCHES[arch][1]
    vm = sorted(glob.glob(os.path.join(cache_dir(), sub, "boot", "vmlinuz-*")))
    if not vm:
        sys.exit("mkimage: no Debian kernel for %s in %s (tests/setup.sh unpacks it)"
                 % (arch, os.path.join(cache_dir(), sub)))
    ver = os.path.basename(vm[-1])[len("vmlinuz-"):]
    return vm[-1], os.path.join(cache_dir(), sub, "lib", "modules", ver)


def stub(arch):
    name = ARCHES[arch][2]
    for d in ("/usr/lib/systemd/boot/efi", os.path.join(cache_dir(), "systemd-boot-" +
                                                         ARCHES[arch][1], "usr/lib/systemd/boot/efi")):
        if os.path.exists(os.path.join(d, name)):
            return d
    sys.exit("mkimage: no %s (Debian's systemd-boot-efi)" % name)


def build_initramfs(keel, arch, version, drop=()):
    _, mods = kernel(arch)
    c = initramfs.Cpio()
    initramfs.system(c, keel, mods, [m for m in MODULES if m not in drop],
                     tools=(arch == "x86_64"))
    c.copy("/init", keel, 0o755)
    with open(os.path.join(HERE, "default.yaml"), "rb") as f:
        c.file("/etc/keel/default.yaml", f.read())
    c.file("/etc/keel/version", (version + "\n").encode())
    return initramfs.compress(c.done())


def section_end(path, objdump):
    """The first page past the stub's last section."""
    out = subprocess.run([objdump, "-h", path], capture_output=True, text=True,
                         check=True).stdout
    end = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0].isdigit():
            end = max(end, int(f[3], 16) + int(f[2], 16))
    return (end + 0xfff) & ~0xfff


def build_uki(keel, arch, version, out, drop=()):
    vmlinuz, _ = kernel(arch)
    d = stub(arch)
    stubf = os.path.join(d, ARCHES[arch][2])
    objcopy = "objcopy" if arch == "x86_64" else "aarch64-linux-gnu-objcopy"
    objdump = "objdump" if arch == "x86_64" else "aarch64-linux-gnu-objdump"
    with tempfile.TemporaryDirectory() as t:
        parts = {
            # No VERSION_ID: systemd-boot would order the slots by it, and
            # keel orders them by name (images/README.md).
            ".osrel": ('ID=keel\nNAME="keel"\nPRETTY_NAME="keel %s"\n' % version).encode(),
            ".cmdline": (CMDLINE % SERIAL[arch] + "\0").encode(),
            ".linux": open(vmlinuz, "rb").read(),
            ".initrd": build_initramfs(keel, arch, version, drop),
        }
        argv = [objcopy]
        vma = section_end(stubf, objdump)
        for name, data in parts.items():
            p = os.path.join(t, name[1:])
            with open(p, "wb") as f:
                f.write(data)
            argv += ["--add-section", "%s=%s" % (name, p),
                     "--change-section-vma", "%s=0x%x" % (name, vma)]
            vma = (vma + len(data) + 0xffff) & ~0xffff
        run(*argv, stubf, out)


def build_disk(keel, arch, version, outdir):
    efi = ARCHES[arch][0]
    os.makedirs(outdir, exist_ok=True)
    base = os.path.join(outdir, "keel-%s" % arch)
    with tempfile.TemporaryDirectory() as t:
        uki = os.path.join(t, "keel.efi")
        build_uki(keel, arch, version, uki)
        esp = os.path.join(t, "esp.img")
        run("mkfs.vfat", "-C", "-F", "32", "-n", "KEEL-ESP", esp, str(ESP_MIB * 1024),
            stdout=subprocess.DEVNULL)
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        for d in ("EFI", "EFI/BOOT", "EFI/Linux", "loader", "keel"):
            run("mmd", "-i", esp, "::" + d, env=env)
        boot = os.path.join(stub(arch), "systemd-boot%s.efi" % efi)
        run("mcopy", "-i", esp, boot, "::EFI/BOOT/BOOT%s.EFI" % efi.upper(), env=env)
        loader = os.path.join(t, "loader.conf")
        with open(loader, "w") as f:
            f.write("timeout 0\neditor no\n")
        run("mcopy", "-i", esp, loader, "::loader/loader.conf", env=env)
        # Both slots hold the image: A is the one booted (generation 2
        # sorts first), B the fallback from the first boot on.
        run("mcopy", "-i", esp, uki, "::EFI/Linux/keel-2-a.efi", env=env)
        run("mcopy", "-i", esp, uki, "::EFI/Linux/keel-1-b.efi", env=env)
        for slot in ("a", "b"):
            info = os.path.join(t, "slot")
            with open(info, "w") as f:
                f.write("version %s\narch %s\nsize %d\nsource image\n"
                        % (version, arch, os.path.getsize(uki)))
            run("mcopy", "-i", esp, info, "::keel/slot-%s" % slot, env=env)
        data = os.path.join(t, "data.img")
        run("mke2fs", "-q", "-F", "-t", "ext4", "-L", DATA_LABEL, data, "%dM" % DATA_MIB)
        raw = base + ".img"
        total = 1 + ESP_MIB + DATA_MIB + 1
        with open(raw, "wb") as f:
            f.truncate(total * MIB)
        table = ("label: gpt\n"
                 "start=%d, size=%d, type=%s, name=\"%s\"\n"
                 "start=%d, size=%d, type=%s, name=\"%s\"\n"
                 % (MIB // SECTOR, ESP_MIB * MIB // SECTOR, ESP_GUID, ESP_LABEL,
                    (1 + ESP_MIB) * MIB // SECTOR, DATA_MIB * MIB // SECTOR, LINUX_GUID,
                    DATA_LABEL))
        run("sfdisk", "-q", "--no-reread", "--no-tell-kernel", raw, input=table.encode(),
            stdout=subprocess.DEVNULL)
        run("dd", "if=" + esp, "of=" + raw, "bs=1M", "seek=1", "conv=notrunc,sparse",
            "status=none")
        run("dd", "if=" + data, "of=" + raw, "bs=1M", "seek=%d" % (1 + ESP_MIB),
            "conv=notrunc,sparse", "status=none")
        run("qemu-img", "convert", "-O", "qcow2", raw, base + ".qcow2")
        shutil.copy(uki, base + ".efi")
    print("mkimage: %s.img, %s.qcow2 (%d MiB disk) and %s.efi (%.1f MiB UKI)"
          % (base, base, total, base, os.path.getsize(base + ".efi") / MIB))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("uki", "disk"))
    ap.add_argument("--keel", required=True)
    ap.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--drop-module", action="append", default=[],
                    help="leave a kernel module out (to make a broken image for a test)")
    a = ap.parse_args()
    try:
        if a.what == "uki":
            build_uki(a.keel, a.arch, a.version, a.out, a.drop_module)
        else:
            build_disk(a.keel, a.arch, a.version, a.out)
    except initramfs.Missing as e:
        sys.exit("mkimage: %s" % e)
    except subprocess.CalledProcessError as e:
        sys.exit("mkimage: %s failed (exit %d)" % (" ".join(e.cmd), e.returncode))


if __name__ == "__main__":
    main()
