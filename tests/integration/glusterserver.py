"""A real GlusterFS for the tests: glusterd (its state in the test's
directory) and a replica-2 volume gv0 with one brick on 127.0.0.2 and one on
127.0.0.3 (the gluster CLI refuses bricks on 127.0.0.1). glusterd listens on
its fixed port 24007, so one test at a time."""

import glob
import os
import shutil
import signal
import subprocess
import time

from harness import TestFailure, wait_for

VOL = """volume management
    type mgmt/glusterd
    option working-directory %s
    option transport-type socket
    option transport.socket.listen-port 24007
    option ping-timeout 0
    option event-threads 1
end-volume
"""


def available():
    return (shutil.which("glusterd") and shutil.which("gluster") and
            shutil.which("mount.glusterfs") and os.path.exists("/dev/fuse"))


def gluster(*args, check=True):
    r = subprocess.run(["gluster", "--mode=script", *args], capture_output=True, text=True,
                       timeout=60)
    if check and r.returncode != 0:
        raise TestFailure("gluster %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def pids(pattern):
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def kill(pattern, sig=signal.SIGKILL):
    for pid in pids(pattern):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def unmount_all(under):
    """Lazily unmounts every mount below the directory (keel leaves its
    mounts in place when it stops) and ends their FUSE clients."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(under)]
    for p in reversed(points):
        subprocess.run(["umount", "-l", p], capture_output=True)
    kill("glusterfs.*--process-name fuse")


class Gluster:
    def __init__(self, h):
        self.h = h
        self.work = h.path("glusterd")
        self.vol = h.write("glusterd.vol", VOL % self.work)
        self.bricks = [h.path("brick1"), h.path("brick2")]

    def start_glusterd(self):
        self.glusterd = self.h.start("glusterd", ["glusterd", "-N", "-f", self.vol,
                                                  "--log-file", self.h.path("glusterd.log")])
        wait_for("glusterd to answer", lambda: subprocess.run(
            ["gluster", "--mode=script", "volume", "list"], capture_output=True,
            timeout=10).returncode == 0, timeout=20, interval=0.2)

    def brick_pids(self):
        return {b: pids("glusterfsd.*%s" % b) for b in self.bricks}

    def wait_bricks(self):
        wait_for("both bricks to run", lambda: all(self.brick_pids().values()), timeout=30,
                 interval=0.2)

    def kill_brick(self, n):
        for pid in self.brick_pids()[self.bricks[n]]:
            os.kill(pid, signal.SIGKILL)

    def kill_all(self):
        """glusterd, both bricks and the self-heal daemon: the servers are gone."""
        kill("glusterfsd.*%s" % self.h.dir)
        kill("glusterfs.*shd/gv0")
        self.glusterd.signal(signal.SIGKILL)
        self.glusterd.wait(5)


def start(h):
    """glusterd and gv0, started; returns a Gluster."""
    # Leftovers of an earlier run hold the port or the bricks.
    kill("glusterfsd")
    kill("glusterfs.*shd/")
    kill("^glusterd")
    time.sleep(0.3)
    g = Gluster(h)
    os.makedirs(g.work, exist_ok=True)
    for b in g.bricks:
        os.makedirs(b, exist_ok=True)
    h.defer(lambda: (kill("glusterfsd.*%s" % h.dir), kill("glusterfs.*shd/gv0"),
                     unmount_all(h.dir)))
    g.start_glusterd()
    gluster("volume", "create", "gv0", "replica", "2", "127.0.0.2:" + g.bricks[0],
            "127.0.0.3:" + g.bricks[1], "force")
    gluster("volume", "start", "gv0")
    g.wait_bricks()
    return g
