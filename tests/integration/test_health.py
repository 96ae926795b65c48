"""Active health checks with real backends: a frozen server is marked DOWN
within unhealthy x interval + timeout and gets no more requests; it comes
back UP after the healthy threshold, its weight ramped by slow start; a
wrong status or body on the health path marks it DOWN; with every server
unhealthy, fail_open still routes and fail_closed answers 503."""

import os
import re
import shutil
import signal
import subprocess
import time

from harness import check, free_port, http_get, wait_for
from test_proxy import get, yaml_conf

FAST = ("health: { type: http, path: %s, interval: 300ms, timeout: 200ms, "
        "healthy: 2, unhealthy: 2%s }")


def metric(admin, series):
    m = http_get(admin, "/metrics").body
    found = re.search(re.escape(series) + r" (\d+)", m)
    check(found, "no %s in /metrics" % series)
    return int(found.group(1))


def start(h, a, b, health, extra_upstream=(), route=None, quiet=False):
    front, admin = free_port(), free_port()
    up = [health] + list(extra_upstream) + [a, b]
    text = yaml_conf(front, admin, {"ua": up}, [route or {"path": "/", "upstream": "ua"}])
    if quiet:
        text += "access_log: { format: off }\n"
    k = h.keel(text, wait_port=admin)
    return front, admin, k


def test_a_frozen_server_goes_down_and_gets_no_more_requests(h):
    if shutil.which("wrk") is None:
        raise AssertionError("wrk is not installed (tests/setup.sh installs it)")
    a, b = h.nginx_backend("a"), h.nginx_backend("b")
    front, admin, k = start(h, a, b, FAST % ("/", ""), quiet=True)
    frozen = [p for p in h.procs if p.name == "a"][0]
    wrk = subprocess.Popen(["wrk", "-t1", "-c10", "-d6s", "--timeout", "10s",
                            "http://127.0.0.1:%d/" % front],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    t0 = time.monotonic()
    os.killpg(frozen.pid, signal.SIGSTOP)      # nginx's master and worker
    try:
        k.wait_log(r"health: ua/127\.0\.0\.1:%d DOWN after 2 failed checks: "
                   r"(read|connect) timed out after 200 ms" % a, timeout=5)
        took = time.monotonic() - t0
        check(took < 2 * 0.3 + 0.2 + 0.5, "DOWN after %.2fs" % took)
        series = 'keel_server_requests_total{upstream="ua",server="127.0.0.1:%d"}' % a
        before = metric(admin, series)
        time.sleep(1.5)
        check(metric(admin, series) == before, "requests still went to the DOWN server")
        check(metric(admin, 'keel_server_up{upstream="ua",server="127.0.0.1:%d"}' % a) == 0)
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    k.wait_log(r"health: ua/127\.0\.0\.1:%d UP after 2 passed checks" % a, timeout=5)
    wrk.communicate(timeout=30)


def test_status_500_on_the_health_path_only_marks_down(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, a, b, FAST % ("/_status/500", ""))
    k.wait_log(r"ua/127\.0\.0\.1:%d DOWN after 2 failed checks: status 500, expected 200-399" % a)
    k.wait_log(r"ua/127\.0\.0\.1:%d DOWN after 2 failed checks: status 500" % b)


def test_body_mismatch_marks_down_and_a_match_keeps_up(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, a, b, FAST % ("/login", ', body: "\\"server\\": \\"a\\""'))
    # a's JSON names "a", b's names "b": only b fails the body match.
    k.wait_log(r'ua/127\.0\.0\.1:%d DOWN after 2 failed checks: body does not contain' % b)
    time.sleep(1)
    check("127.0.0.1:%d DOWN" % a not in k.log(), k.log())
    check(all(get(front, "/").json()["server"] == "a" for _ in range(6)))


def test_tcp_check_marks_a_dead_port_down(h):
    a = h.http_backend("a")
    dead = free_port()
    front, admin, k = start(h, a, dead, "health: { type: tcp, interval: 300ms, timeout: 200ms }")
    k.wait_log(r"ua/127\.0\.0\.1:%d DOWN after 2 failed checks: connect: Connection refused" % dead)
    check(metric(admin, 'keel_server_checks_total{upstream="ua",server="127.0.0.1:%d"}' % a) >= 2)


def test_all_unhealthy_fail_open_routes_and_fail_closed_answers_503(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, a, b, FAST % ("/_status/503", ""), ["all_down: fail_open"])
    k.wait_log(r"%d DOWN" % a)
    k.wait_log(r"%d DOWN" % b)
    check(get(front, "/x").status == 200)
    h.stop_all()
    a, b = h.http_backend("a2"), h.http_backend("b2")
    front, admin, k = start(h, a, b, FAST % ("/_status/503", ""))
    wait_for("both DOWN", lambda: k.log().count(" DOWN after") == 2, timeout=5)
    check(get(front, "/x").status == 503)


def test_slow_start_ramps_a_returning_server(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, (a, "weight: 10"), (b, "weight: 10"),
                            FAST % ("/", ""), ["slow_start: 4s"])
    frozen = [p for p in h.procs if p.name == "a"][0]
    frozen.signal(signal.SIGSTOP)
    k.wait_log(r"%d DOWN" % a, timeout=5)
    frozen.signal(signal.SIGCONT)
    k.wait_log(r"%d UP after 2 passed checks" % a, timeout=5)
    early = [get(front, "/").json()["server"] for _ in range(20)]
    check(early.count("a") <= 5, "a got %d of 20 right after it came back" % early.count("a"))
    time.sleep(4)
    late = [get(front, "/").json()["server"] for _ in range(20)]
    check(8 <= late.count("a") <= 12, "a got %d of 20 after slow start" % late.count("a"))


def test_health_settings_are_checked(h):
    path = h.write("bad.yaml", yaml_conf(8000, 8001, {"ua": [
        "health: { type: http, path: nope, status: '200-99x' }", 9000]},
        [{"path": "/", "upstream": "ua"}]))
    r = h.run_keel("-t", "-c", path)
    check(r.returncode == 1, r.stderr)
    check("upstreams.ua.health.status: must be codes or ranges of 100..599" in r.stderr, r.stderr)
    check("upstreams.ua.health.path: must start with '/', got 'nope'" in r.stderr, r.stderr)


def test_a_frozen_server_is_ejected_without_health_checks(h):
    """Default settings, no active checks: stall detection takes a frozen
    server out within about stall_timeout (500 ms) and moves its waiting
    GETs, so no request waits for the 60 s read_timeout."""
    if shutil.which("wrk") is None:
        raise AssertionError("wrk is not installed (tests/setup.sh installs it)")
    a, b = h.nginx_backend("a"), h.nginx_backend("b")
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, {"ua": [a, b]}, [{"path": "/", "upstream": "ua"}])
               + "access_log: { format: off }\n", wait_port=admin)
    frozen = [p for p in h.procs if p.name == "a"][0]
    wrk = subprocess.Popen(["wrk", "-t1", "-c10", "-d5s", "--timeout", "10s", "--latency",
                            "http://127.0.0.1:%d/" % front],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        k.wait_log(r"upstream ua: server 127\.0\.0\.1:%d stalled: no byte for \d+ ms with "
                   r"\d+ requests waiting; out of service for 10000 ms" % a, timeout=3)
        k.wait_log(r"requests? moved off stalled server 127\.0\.0\.1:%d" % a, timeout=3)
        out = wrk.communicate(timeout=30)[0]
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    check("Socket errors" not in out and "Non-2xx" not in out, out)
    worst = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(ms|s)", out)
    check(worst and (worst.group(2) == "ms" or float(worst.group(1)) < 1.5), out)


def test_one_slow_request_is_not_a_stall(h):
    """A single slow answer on an otherwise idle server is not a freeze."""
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, {"ua": [a, b]}, [{"path": "/", "upstream": "ua"}]),
               wait_port=admin)
    r = get(front, "/_sleep/1500", timeout=10)
    check(r.status == 200 and r.body == "slept\n", r.status)
    check("stalled" not in k.log(), k.log())
