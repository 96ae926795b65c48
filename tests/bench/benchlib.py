"""What the make bench scenarios share: ports, process trees and their CPU
time, wrk runs, medians of alternating rounds, syscall counts, a CPU hog,
and build/bench.json.

A reading that cannot be right (a process tree that used no CPU while it
served requests, a process that vanished) raises BenchError: it is printed
as such and never enters a median."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KEEL = os.path.join(ROOT, "build", "keel")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
# With two or more cores, each proxy under test gets CPU 1 to itself and
# the client and the origin share CPU 0: req/s then measures what a proxy
# does with one core, not how the scheduler shared two between programs.
PIN = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
PROXY_CPU = ["taskset", "-c", "1"] if PIN else []
CLIENT_CPU = ["taskset", "-c", "0"] if PIN else []
TICK = float(os.sysconf("SC_CLK_TCK"))


class BenchError(Exception):
    """A reading that cannot be trusted."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("bench: nothing answers on port %d" % port)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree(pid):
    """pid and all its descendants: the master and every worker."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_ticks(pids):
    """utime + stime of the processes, in clock ticks, by pid."""
    got = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            raise BenchError("process %d is gone: its CPU time cannot be read" % pid)
        got[pid] = int(fields[11]) + int(fields[12])
    return got


def cpu_seconds(before, after):
    """CPU seconds between two cpu_ticks() readings of one process tree; a
    process in one reading only (a worker that died) makes it unreadable."""
    if set(before) != set(after):
        raise BenchError("the processes changed during the run (%s, then %s)"
                         % (sorted(before), sorted(after)))
    return sum(after[p] - before[p] for p in before) / TICK


def private_kib(pids):
    """User-space memory the processes hold: private pages (RSS minus shared)."""
    total = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    return total


def _ms(out, label):
    m = re.search(r"%s\s+([\d.]+)(us|ms|s)\b" % label, out)
    if m is None:
        raise BenchError("wrk printed no %s latency" % label)
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v


def wrk(url, pids, seconds=SECONDS, close=False, conns=50):
    """One wrk run against url while the process tree pids (a callable)
    serves it: req/s, p50/p99 ms, CPU seconds of the tree per 100 000
    requests, and errors."""
    argv = CLIENT_CPU + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    procs = pids()
    t0 = cpu_ticks(procs)
    w0 = time.monotonic()
    out = subprocess.run(argv + [url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    cpu = cpu_seconds(t0, cpu_ticks(procs))
    wall = time.monotonic() - w0
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise BenchError("wrk said: " + out[-500:])
    total = int(m.group(1))
    if total == 0:
        raise BenchError("no request completed")
    if cpu <= 0:
        raise BenchError("%d requests served in 0 CPU-seconds by pids %s" % (total, procs))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": _ms(out, "50%"), "p99": _ms(out, "99%"), "requests": total,
            "cpu100k": cpu * 100000.0 / total, "busy": cpu / wall,
            "errors": (int(errors.group(1)) if errors else 0), "socket": sock.group(1) if sock else ""}


def median(xs):
    xs = sorted(xs)
    if not xs:
        raise BenchError("no valid round")
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


def rounds(targets, run, label, nrounds=ROUNDS):
    """Runs run(name) for every target, in alternating rounds (A B C A B C),
    printing each; an impossible reading is printed and left out. Returns
    {name: [results]}."""
    got = {name: [] for name in targets}
    for r in range(nrounds):
        for name in targets:
            try:
                res = run(name)
            except BenchError as e:
                print("  round %d %-8s %-22s UNREADABLE: %s (left out)" % (r + 1, name, label, e))
                continue
            got[name].append(res)
            print("  round %d %-8s %-22s %9.0f req/s  p99 %6.2f ms  %6.3f CPU-s/100k  busy %3.0f%%%s" % (
                r + 1, name, label, res["rps"], res["p99"], res["cpu100k"], 100 * res.get("busy", 0),
                "  ERRORS %d %s" % (res["errors"], res["socket"])
                if res["errors"] or res["socket"] else ""))
    return got


def medians(got):
    """{name: {figure: median over the rounds}}."""
    out = {}
    for name, xs in got.items():
        out[name] = {k: median([x.get(k, 0.0) for x in xs])
                     for k in ("rps", "p50", "p99", "cpu100k", "busy")}
        out[name]["errors"] = sum(x["errors"] for x in xs)
    return out


class Table:
    """Prints figure | keel | nginx | haproxy | ratios | goal, one line each."""

    def __init__(self, others):
        self.others = others
        print("  %-34s %11s" % ("figure", "keel") + "".join(" %11s" % o for o in others)
              + "".join(" %9s" % ("/" + o[:7]) for o in others) + "  goal")

    def row(self, name, keel, vals, goal, fmt="%11.0f"):
        ratios = [keel / v if v else float("nan") for v in vals]
        print("  %-34s " % name + fmt % keel + "".join(" " + fmt % v for v in vals)
              + "".join(" %9.2f" % r for r in ratios) + "  " + goal)
        return ratios


def syscalls(pids, load, seconds=3):
    """Counts the syscalls of the process tree pids while load() runs, with
    strace -c (slow, but counts are what it is for). Returns ({name: count},
    requests done by load())."""
    out = "/tmp/keel-bench-strace-%d" % os.getpid()
    argv = ["strace", "-f", "-c", "-q", "-o", out]
    for p in pids:
        argv += ["-p", str(p)]
    st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)   # attached
    try:
        requests = load()
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(30)
    counts = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                counts[m.group(2)] = int(m.group(1))
    os.unlink(out)
    if requests <= 0 or not counts:
        raise BenchError("no syscalls or no requests counted")
    return counts, requests


class Hog:
    """stress-ng --cpu 1 pinned to the proxy's CPU, for as long as it is
    entered."""

    def __enter__(self):
        if shutil.which("stress-ng") is None:
            raise SystemExit("bench: stress-ng is missing (tests/setup.sh --bench installs it)")
        self.p = subprocess.Popen(["stress-ng", "--cpu", "1", "--taskset", "1" if PIN else "0",
                                   "--timeout", "3600s", "--quiet"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        os.killpg(self.p.pid, signal.SIGTERM)
        self.p.wait(10)


def stop_all(procs):
    """SIGTERM (after SIGCONT, for frozen ones) each process group, then
    SIGKILL what has not gone after 5 s."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGCONT)
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def merge_figures(fig):
    """Adds a scenario's figures to build/bench.json (one flat object)."""
    out = os.path.join(ROOT, "build", "bench.json")
    data = {}
    if os.path.exists(out):
        with open(out) as f:
            data = json.load(f)
    data.update(fig)
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    print("  figures written to build/bench.json")
