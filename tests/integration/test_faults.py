"""Allocation failures (core/fault.h), in the sanitizer build only: for every
N, the Nth allocation of a config load, of a reload and of one proxied
request fails. keel reports an error or fails that one request; it never
crashes, the running configuration stays, and ASan finds nothing (leaks
included) in any process. The plain build has no fault injection: there
these tests are skipped, not passed."""

import json
import os
import re
import signal
import time

import harness
from harness import KEEL, check, free_port, http_get, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
# The libraries' leaks that are not keel's to free (libyaml's parse stack
# when yaml_parser_load fails for memory, libnfs's first client name); run.py
# sets the same for every sanitizer run.
SUPP = os.path.join(HERE, "fixtures", "lsan.supp")
MAX_STEPS = 20000


def need_fault_build():
    if not harness.SANITIZED:
        harness.skip("fault injection is in the sanitizer build only (make test-san)")


def fault_env(spec):
    env = dict(os.environ)
    env["KEEL_ALLOC_FAIL"] = spec
    env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % SUPP
    return env


def conf(admin, front, back, extra_route=""):
    return ('state_dir: "%s"\n'
            "workers: { count: 1 }\n"
            "monitors: { routes: true, servers: true, interval: 1h }\n"
            "admin: { listen: [\"127.0.0.1:%d\"], tls: { enabled: false } }\n"
            "listeners: [{ address: \"127.0.0.1:%d\" }]\n"
            "upstreams:\n"
            "  u: { servers: [{ address: \"127.0.0.1:%d\" }, { address: \"127.0.0.1:%d\", weight: 2 }],"
            " health: { type: http, path: /, interval: 1h } }\n"
            "routes:\n  - { path: /, upstream: u }\n%s"
            % ("%s", admin, front, back, back, extra_route))


def sanitizer_text(text):
    return "Sanitizer" in text or "runtime error:" in text


def test_every_allocation_of_a_config_load_can_fail(h):
    need_fault_build()
    path = h.write("keel.yaml", conf(free_port(), free_port(), free_port()) % h.path("state"))
    for n in range(1, MAX_STEPS):
        r = h.run_keel("-t", "-c", path, env=fault_env("load:%d" % n), sanitizer_ok=True)
        out = r.stdout + r.stderr
        check(not sanitizer_text(out), "allocation %d:\n%s" % (n, out[-3000:]))
        check(r.returncode in (0, 1), "allocation %d: exit %d\n%s" % (n, r.returncode, out))
        if "none failed" in r.stderr:
            check(r.returncode == 0, out)
            print("    config load: each of %d allocations failed once" % (n - 1))
            break
        if r.returncode == 1:
            check(re.search(r"out of memory|Cannot allocate memory", r.stderr), "allocation %d: %s"
                  % (n, r.stderr))
            check("(null)" not in r.stderr, r.stderr)
    else:
        check(False, "the load never ran out of allocations to fail")


def start_faulty(h, spec, text):
    path = h.write("keel.yaml", text)
    return h.start("keel", [KEEL, "-c", path], env=fault_env(spec)), path


def test_every_allocation_of_a_reload_can_fail_and_the_running_config_stays(h):
    need_fault_build()
    back = h.http_backend()
    admin, front = free_port(), free_port()
    text = conf(admin, front, back) % h.path("state")
    k, path = start_faulty(h, "reload:1+", text)
    wait_for("keel", lambda: http_get(admin, "/healthz").status == 200)
    wait_for("the route", lambda: http_get(front, "/x").status == 200)
    with open(path, "w") as f:
        f.write(conf(admin, front, back, "  - { path: /new/, upstream: u }\n") % h.path("state"))
    done = False
    for n in range(1, MAX_STEPS):
        k.signal(signal.SIGHUP)
        wait_for("reload %d to end" % n,
                 lambda: re.search(r"fault: reload #%d: " % n, k.log()), timeout=10)
        check(k.alive(), "keel died at allocation %d:\n%s" % (n, k.log()[-3000:]))
        check(not sanitizer_text(k.log()), k.log()[-3000:])
        if "reload #%d: done after" % n in k.log():
            print("    reload: each of %d allocations failed once" % (n - 1))
            done = True
            break
    check(done, "the reload never ran out of allocations to fail")
    # The running configuration served throughout; the last one is the new one.
    wait_for("the new route", lambda: http_get(front, "/new/x").status == 200)
    check(http_get(front, "/x").status == 200)
    h.stop_all()
    check(not h.sanitizer_reports(), h.sanitizer_reports())


def test_every_allocation_of_a_proxied_request_can_fail(h):
    need_fault_build()
    back = h.http_backend()
    admin, front = free_port(), free_port()
    k, _ = start_faulty(h, "request:1+", conf(admin, front, back) % h.path("state"))
    wait_for("keel", lambda: http_get(admin, "/healthz").status == 200)
    worker = k.children()[0]
    done = False
    for n in range(1, MAX_STEPS):
        try:
            st = http_get(front, "/x", headers={"Connection": "close"}, timeout=5).status
        except OSError:
            st = 0		# the connection was closed: that one request failed
        check(st in (0, 200, 500, 502, 503, 504), "request %d: status %d" % (n, st))
        wait_for("request %d to end" % n,
                 lambda: re.search(r"fault: request #%d: " % n, k.log()), timeout=10)
        check(k.children() == [worker], "the worker was replaced at allocation %d:\n%s"
              % (n, k.log()[-3000:]))
        if "request #%d: done after" % n in k.log():
            check(st == 200, "no allocation failed, yet status %d" % st)
            print("    request: each of %d allocations failed once" % (n - 1))
            done = True
            break
    check(done, "the request never ran out of allocations to fail")
    h.stop_all()
    check(not h.sanitizer_reports(), h.sanitizer_reports())


class LogTail:
    """New lines of a process's log, read from where the last read ended
    (a walk of thousands of steps must not reread the whole log)."""

    def __init__(self, proc):
        self.f = open(proc.log_path, "rb")

    def wait(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            chunk = self.f.read()
            if chunk:
                buf += chunk
                m = re.search(pattern.encode(), buf)
                if m:
                    return m
            else:
                time.sleep(0.002)
        raise harness.TestFailure("timed out waiting for /%s/" % pattern)


def test_every_allocation_of_an_api_apply_can_fail(h):
    need_fault_build()
    import test_api
    back = h.http_backend()
    admin, front = free_port(), free_port()
    k, _ = start_faulty(h, "apply:1+", conf(admin, front, back) % h.path("state"))
    wait_for("keel", lambda: http_get(admin, "/healthz").status == 200)
    a, _ = test_api.setup(k, admin)
    st, base = a.call("GET", "/api/v1/config")
    check(st == 200, base)
    with_r = json.loads(json.dumps(base))
    with_r["routes"].append({"path": "/r/", "upstream": "u"})
    tail = LogTail(k)
    has_r = False			# what the running config is
    done = False
    for n in range(1, MAX_STEPS):
        st, js = a.call("PUT", "/api/v1/config", base if has_r else with_r)
        m = tail.wait(r"fault: apply #%d: (allocation \d+ failed|done after)" % n)
        check(k.alive(), "keel died at allocation %d:\n%s" % (n, k.log()[-3000:]))
        check(st == 200 or (st >= 400 and js.get("error")), "apply %d: %s %s" % (n, st, js))
        if st == 200:
            has_r = not has_r
        if n % 100 == 0 or st == 200:	# the running config is the one answered
            check(http_get(front, "/x").status == 200, "the running config stopped serving")
            running = [x["path"] for x in a.call("GET", "/api/v1/config")[1]["routes"]]
            check(("/r/" in running) == has_r,
                  "apply %d: answered %s, yet the running routes are %s" % (n, st, running))
        if m.group(1).startswith(b"done"):
            check(st == 200, (st, js))
            print("    apply: each of %d allocations failed once" % (n - 1))
            done = True
            break
    check(done, "the apply never ran out of allocations to fail")
    h.stop_all()
    check(not h.sanitizer_reports(), h.sanitizer_reports())
