"""make test-redis-suite: Redis's own test suite, in external mode, once
straight to redis-server and once through keel's RESP front, every unit
against a fresh server started as Redis's external CI starts it.

The suite comes from the Debian source package of the installed
redis-server (same version; the upstream tarball's sha256 is pinned), is
kept in the deps cache, and nothing is fetched while the units run. A test
is identified by its unit and name; keel's figures are judged against the
direct run of the same session:

  resp_suite_passed_direct   tests that passed straight to Redis (all of
                             them, the excluded ones too)
  resp_suite_passed_keel     those of them that passed through keel
  resp_suite_failed_keel     tests that failed (or raised) through keel
  resp_suite_not_run_keel    tests that passed direct but never reported
                             through keel (their unit stopped early)

Tests listed in tests/redis-suite/excluded.txt (with the reason) run
straight to Redis but not through keel, and are counted apart.

  python3 tests/redis-suite/run.py [--keel build/keel] [--units a,b] [--jobs-log DIR]
"""

import argparse
import collections
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("KEEL_DEPS_CACHE", os.path.expanduser("~/.cache/keel-deps"))
# The upstream tarball behind Debian 12's redis-server; it stays the same
# across Debian's security revisions, which only add patches.
PIN_VERSION = "7.0.15"
PIN_SHA256 = "4b1dc4ee6d622a09fff9c6777191209750fb5e5a725ef78ea012d6eef4c22982"
SERVER_FLAGS = ["--enable-debug-command", "yes", "--enable-protected-configs", "yes",
                "--enable-module-command", "yes", "--save", "", "--appendonly", "no"]
UNIT_TIMEOUT = 300


def sh(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def suite_dir():
    """The suite of the installed redis-server, unpacked once into the cache."""
    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "redis-server"],
                         capture_output=True, text=True).stdout.strip()
    if not ver:
        raise SystemExit("redis-suite: redis-server is not installed (tests/setup.sh)")
    upstream = ver.split(":")[-1].split("-")[0]
    if upstream != PIN_VERSION:
        raise SystemExit("redis-suite: redis-server is %s, the pin is %s: update PIN_VERSION "
                         "and PIN_SHA256 in %s" % (upstream, PIN_VERSION, __file__))
    base = os.path.join(CACHE, "redis-suite")
    tree = os.path.join(base, "redis-" + ver.replace(":", "_").replace("~", "_"))
    if os.path.exists(os.path.join(tree, ".ready")):
        return tree
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(dir=base)
    try:
        r = subprocess.run(["apt-get", "source", "-qq", "--download-only",
                            "-o", "APT::Sandbox::User=root", "redis=" + ver], cwd=work,
                           capture_output=True, text=True)
        orig = os.path.join(work, "redis_%s.orig.tar.gz" % PIN_VERSION)
        if not os.path.exists(orig):
            raise SystemExit("redis-suite: apt-get source redis=%s failed (deb-src entries: "
                             "core/deps.sh adds them):\n%s" % (ver, r.stderr[-2000:]))
        with open(orig, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != PIN_SHA256:
            raise SystemExit("redis-suite: %s has sha256 %s, not the pinned %s"
                             % (orig, got, PIN_SHA256))
        dsc = glob.glob(os.path.join(work, "*.dsc"))
        if len(dsc) != 1:
            raise SystemExit("redis-suite: no .dsc for redis=%s" % ver)
        sh(["dpkg-source", "-x", dsc[0], os.path.join(work, "src")],
           stdout=subprocess.DEVNULL)
        # Debian's binaries instead of building Redis.
        for b in ("server", "cli", "benchmark", "check-aof", "check-rdb", "sentinel"):
            dst = os.path.join(work, "src", "src", "redis-" + b)
            if os.path.lexists(dst):
                os.unlink(dst)
            os.symlink("/usr/bin/redis-" + b, dst)
        shutil.rmtree(tree, ignore_errors=True)
        os.rename(os.path.join(work, "src"), tree)
        open(os.path.join(tree, ".ready"), "w").close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tree


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_ping(port, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                           text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.05)
    raise SystemExit("redis-suite: nothing answered PING on port %d" % port)


def stop(p):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


RESULT = re.compile(r"^\[(ok|err|exception|skip|ignore)\]:?\s*(.*?)"
                    r"(?: \(\d+ ms\)| in tests/\S+\.tcl)?\s*$")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def run_unit(tree, unit, keel, tmp, skip=()):
    """Runs one unit against a fresh redis-server, through keel when keel
    is a binary's path, without the tests named in skip; a Counter of
    (outcome, test name) and the log."""
    redis = free_port()
    d = tempfile.mkdtemp(dir=tmp)
    srv = kp = None
    logs = {}
    try:
        logs["redis"] = open(os.path.join(d, "redis.log"), "wb")
        srv = subprocess.Popen(["redis-server", "--port", str(redis), "--bind", "127.0.0.1",
                                "--dir", d] + SERVER_FLAGS, stdout=logs["redis"],
                               stderr=subprocess.STDOUT, start_new_session=True)
        wait_ping(redis)
        port = redis
        if keel:
            port, admin = free_port(), free_port()
            conf = os.path.join(d, "keel.yaml")
            with open(conf, "w") as f:
                f.write('state_dir: "%s"\npid_file: ""\nworkers: { count: 1 }\n'
                        'log: { level: info }\nmonitors: { routes: false, servers: false }\n'
                        'admin: { listen: ["127.0.0.1:%d"], tls: { enabled: false } }\n'
                        'redis:\n  nodes: ["127.0.0.1:%d"]\n'
                        '  front: { listen: ["127.0.0.1:%d"] }\n' % (d, admin, redis, port))
            logs["keel"] = open(os.path.join(d, "keel.log"), "wb")
            kp = subprocess.Popen([keel, "-c", conf], stdout=logs["keel"],
                                  stderr=subprocess.STDOUT, start_new_session=True)
            wait_ping(port)
        argv = ["./runtest", "--host", "127.0.0.1", "--port", str(port), "--tags", "-slow",
                "--durable", "--clients", "1", "--single", unit]
        if skip:
            with open(os.path.join(d, "skip"), "w") as f:
                f.write("\n".join(skip) + "\n")
            argv += ["--skipfile", os.path.join(d, "skip")]
        try:
            r = subprocess.run(argv, cwd=tree, capture_output=True, text=True, errors="replace",
                               timeout=UNIT_TIMEOUT)
            out = r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") + "\n[timeout] the unit ran " \
                  "past %d s\n" % UNIT_TIMEOUT
        got = collections.Counter()
        for line in COLOUR.sub("", out).splitlines():
            m = RESULT.match(line.strip())
            if m:
                got[(m.group(1), m.group(2))] += 1
        tail = ""
        for name in ("keel",):
            if name in logs:
                logs[name].flush()
                with open(logs[name].name, errors="replace") as f:
                    tail = f.read()[-4000:]
        return got, out, tail
    finally:
        stop(kp)
        stop(srv)
        for f in logs.values():
            f.close()
        shutil.rmtree(d, ignore_errors=True)


def excluded():
    """(unit, test name) pairs: "UNIT: NAME" lines; '#' starts a comment line."""
    path = os.path.join(HERE, "excluded.txt")
    names = set()
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                unit, _, name = line.partition(": ")
                names.add((unit.strip(), name.strip()))
    return names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", default=os.path.join(ROOT, "build", "keel"))
    ap.add_argument("--units", default="")
    ap.add_argument("--logs", default=os.path.join(ROOT, "build", "redis-suite"))
    ap.add_argument("--no-direct", action="store_true", help="only through keel")
    a = ap.parse_args()
    for tool in ("tclsh", "redis-server", "redis-cli", "dpkg-source"):
        if shutil.which(tool) is None:
            raise SystemExit("redis-suite: %s is missing (tests/setup.sh --bench installs it)"
                             % tool)
    tree = suite_dir()
    units = [u for u in a.units.split(",") if u] or subprocess.run(
        ["./runtest", "--list-tests"], cwd=tree, capture_output=True, text=True,
        check=True).stdout.split()
    os.makedirs(a.logs, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="keel-redis-suite-")
    skip = excluded()
    totals = collections.Counter()
    failed = []
    t0 = time.monotonic()
    try:
        for unit in units:
            safe = unit.replace("/", "_")
            direct = collections.Counter()
            if not a.no_direct:
                direct, dout, _ = run_unit(tree, unit, None, tmp)
                with open(os.path.join(a.logs, safe + ".direct.log"), "w") as f:
                    f.write(dout)
            got, out, tail = run_unit(tree, unit, a.keel, tmp,
                                      sorted(n for u, n in skip if u == unit))
            with open(os.path.join(a.logs, safe + ".log"), "w") as f:
                f.write(out + "\n---- keel's log ----\n" + tail)
            ok_d = collections.Counter({n: c for (o, n), c in direct.items() if o == "ok"})
            ok_k = collections.Counter({n: c for (o, n), c in got.items() if o == "ok"})
            # A test that fails straight to Redis too is not keel's; a unit
            # that raised is, whatever the test it was in.
            bad_k = collections.Counter({n: c for (o, n), c in got.items()
                                         if (o == "err" and (a.no_direct or n in ok_d)) or
                                         o == "exception"})
            bad_d = sum(c for (o, n), c in direct.items() if o in ("err", "exception"))
            n_skip = sum(c for n, c in (ok_d | bad_k).items() if (unit, n) in skip)
            passed = sum(min(c, ok_d[n]) for n, c in ok_k.items()
                         if (unit, n) not in skip) if not a.no_direct else sum(ok_k.values())
            fails = sum(c for n, c in bad_k.items() if (unit, n) not in skip)
            reported = ok_k + bad_k
            not_run = sum(max(0, c - reported[n]) for n, c in ok_d.items() if (unit, n) not in skip)
            pd = sum(ok_d.values())	# the excluded too: keel is judged against all
            totals.update(direct=pd, keel=passed, failed=fails, not_run=not_run,
                          excluded=n_skip, direct_failed=bad_d)
            for n in bad_k:
                if (unit, n) not in skip:
                    failed.append("%s: %s" % (unit, n))
            for n, c in ok_d.items():
                if (unit, n) not in skip and c > reported[n]:
                    failed.append("%s: %s (not run)" % (unit, n))
            print("  %-40s direct %4d  keel %4d  failed %3d  not run %3d%s%s"
                  % (unit, pd, passed, fails, not_run,
                     "  excluded %d" % n_skip if n_skip else "",
                     "  (failed direct too: %d)" % bad_d if bad_d else ""), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("Redis %s's suite, %d units, %.0f s: direct %d passed (%d failed there too); "
          "keel %d passed, %d failed, %d not run (%d excluded, see docs/OPERATIONS.md)"
          % (PIN_VERSION, len(units), time.monotonic() - t0, totals["direct"],
             totals["direct_failed"], totals["keel"], totals["failed"], totals["not_run"],
             totals["excluded"]))
    for f in failed:
        print("    " + f)
    if not a.units and not a.no_direct:
        sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
        from benchlib import merge_figures
        merge_figures({"resp_suite_passed_direct": totals["direct"],
                       "resp_suite_passed_keel": totals["keel"],
                       "resp_suite_failed_keel": totals["failed"],
                       "resp_suite_not_run_keel": totals["not_run"]})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
