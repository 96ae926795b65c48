"""The harness itself: real peers come up and are probed ready, and every
process a test started is gone after it, even when the test fails or hangs."""

import os
import subprocess
import sys

from harness import HERE, check, http_get, redis_cmd


def test_real_peers_start_and_answer(h):
    rport = h.redis()
    check(redis_cmd(rport, "SET", "k", "v") == "+OK")
    check(redis_cmd(rport, "GET", "k") == "$1\r\nv")
    bport = h.http_backend("app1")
    r = http_get(bport, "/x")
    check(r.status == 200 and r.json()["server"] == "app1" and r.json()["target"] == "/x", r.body)


def test_teardown_kills_peers_of_failing_and_hanging_tests(h):
    """...and a skipped test is counted as skipped, never as passed."""
    pids = h.path("pids")
    env = dict(os.environ, KEEL_IT_PIDS=pids)
    r = subprocess.run([sys.executable, os.path.join(HERE, "run.py"), "--timeout", "5",
                        "--dir", os.path.join(HERE, "fixtures"), "--result", h.path("result")],
                       capture_output=True, text=True, env=env, timeout=60)
    check(r.returncode == 1, r.stdout)
    check(r.stdout.rstrip().endswith("0 passed, 2 failed, 1 skipped"), r.stdout)
    check("SKIP test_fails.skips_here: nothing to check on this machine" in r.stdout, r.stdout)
    with open(h.path("result")) as f:
        lines = f.read().splitlines()
    check(lines[0] == "0 2 1" and len(lines) == 3 and
          all(l.startswith("test_fails.") for l in lines[1:]), "the result file: %r" % lines)
    check("this test fails on purpose" in r.stdout and "timed out" in r.stdout, r.stdout)
    with open(pids) as f:
        started = [int(x) for x in f.read().split()]
    check(len(started) == 3, started)
    for pid in started:
        check(not os.path.exists("/proc/%d" % pid), "pid %d outlived its test" % pid)
