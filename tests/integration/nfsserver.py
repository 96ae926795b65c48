"""A real NFS server for the tests: nfs-ganesha (userspace, FSAL VFS) on
127.0.0.1 with rpcbind, exporting a scratch directory as /export. Both use
fixed ports (111 for rpcbind, 2049 for NFS, 20048 for MOUNT, so that a qemu
guest can reach them through fixed relays), so one test at a time."""

import os
import shutil
import subprocess
import time

from harness import TestFailure, wait_for

CONF = """NFS_CORE_PARAM {
	Bind_addr = 127.0.0.1;
	Protocols = 3, 4;
	Mount_Path_Pseudo = true;
	MNT_Port = 20048;
}
NFSV4 { Graceless = true; }
EXPORT {
	Export_Id = 1;
	Path = %s;
	Pseudo = /export;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	Protocols = 3, 4;
	Transports = TCP;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
"""


def available():
    return shutil.which("ganesha.nfsd") and shutil.which("rpcbind") and shutil.which("nfs-ls")


def exports(addr="127.0.0.1"):
    """What a libnfs client lists at nfs://addr/export ('' when nothing)."""
    r = subprocess.run(["nfs-ls", "nfs://%s/export" % addr], capture_output=True, text=True,
                       timeout=10)
    return r.stdout if r.returncode == 0 else ""


def start(h):
    """rpcbind and ganesha; returns (the ganesha Proc, the exported directory)."""
    export = h.path("export")
    os.makedirs(export, exist_ok=True)
    with open(os.path.join(export, "hello.txt"), "w") as f:
        f.write("hello from the share\n")
    subprocess.run(["pkill", "-x", "rpcbind"], capture_output=True)
    subprocess.run(["pkill", "-f", "ganesha.nfsd"], capture_output=True)
    time.sleep(0.2)
    h.start("rpcbind", ["rpcbind", "-f", "-w"])
    conf = h.write("ganesha.conf", CONF % export)
    g = h.start("ganesha", ["ganesha.nfsd", "-F", "-f", conf, "-L", h.path("ganesha.log"),
                            "-p", h.path("ganesha.pid")])
    try:
        wait_for("ganesha to export /export", lambda: "hello.txt" in exports(), timeout=20)
    except TestFailure:
        with open(h.path("ganesha.log"), errors="replace") as f:
            raise TestFailure("ganesha did not come up:\n" + f.read()[-2000:])
    return g, export
