"""Supervision: a worker that dies or stops making progress is restarted
with backoff; one that keeps dying is left down (failed, alerted) while the
other serves, and a reload starts it again; the password hasher comes back
and loses no login; `keel --supervise` restarts a master that died or
froze, passes signals on, and stops cleanly."""

import json
import os
import signal
import time

import harness
from harness import check, free_port, http_get, wait_for
from test_api import Admin, PASSWORD, setup
from test_monitor import hooks, receiver
from test_proxy import get, yaml_conf


def conf(h, front, admin, supervise, count=1, extra=""):
    a = h.http_backend("a")
    text = yaml_conf(front, admin, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    text = text.replace("workers: { count: 1 }", "workers: { count: %d }" % count)
    return text + "supervise: { %s }\n" % supervise + extra


def parts(a):
    """The supervise status, by part name."""
    return {p["name"]: p for p in status(a)["parts"]}


def status(a):
    st, js = a.call("GET", "/api/v1/status")
    check(st == 200, (st, js))
    return js["supervise"]


def serving(front):
    try:
        return get(front, "/", timeout=1).status == 200
    except OSError:
        return False


def test_a_killed_worker_serves_again_and_its_restart_is_counted(h):
    front, admin = free_port(), free_port()
    k = h.keel(conf(h, front, admin, "backoff_min: 100ms"), wait_port=admin)
    a, _ = setup(k, admin)
    wait_for("the proxy", lambda: serving(front))
    victim = parts(a)["worker 1"]["pid"]
    check(victim in k.children(), (victim, k.children()))
    os.kill(victim, signal.SIGKILL)
    k.wait_log(r"worker 1 \(pid %d\) killed by signal 9 \(Killed\); starting another in "
               r"\d+ ms \(restart 1 within 300 s; 9 more" % victim)
    wait_for("the proxy again", lambda: serving(front), timeout=5)
    p = parts(a)["worker 1"]
    check(p["state"] == "running" and p["pid"] != victim and p["restarts"] == 1
          and p["last_exit"] == "killed by signal 9 (Killed)", p)
    m = http_get(admin, "/metrics").body
    check('keel_part_restarts_total{part="worker 1"} 1' in m
          and 'keel_part_up{part="worker 1"} 1' in m and 'keel_part_up{part="master"} 1' in m, m)


def test_a_frozen_worker_is_killed_for_no_progress_and_replaced(h):
    front, admin = free_port(), free_port()
    k = h.keel(conf(h, front, admin, "progress_limit: 1s"), wait_port=admin)
    a, _ = setup(k, admin)
    wait_for("the proxy", lambda: serving(front))
    victim = parts(a)["worker 1"]["pid"]
    os.kill(victim, signal.SIGSTOP)
    k.wait_log(r"worker 1 \(pid %d\) made no progress for 1\.\d s: killing it" % victim,
               timeout=5)
    wait_for("the proxy again", lambda: serving(front), timeout=5)
    p = parts(a)["worker 1"]
    check(p["pid"] != victim and p["last_exit"] == "no progress for 1 s", p)
    check(not os.path.exists("/proc/%d" % victim) or
          open("/proc/%d/stat" % victim).read().rsplit(")", 1)[1].split()[0] == "Z",
          "the frozen worker still runs")


def test_a_worker_that_keeps_dying_is_left_down_alerted_and_a_reload_revives_it(h):
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    alerts = ('alerts: { webhooks: [ { url: "http://127.0.0.1:%d/hook", secret: "s" } ] }\n'
              % hook)
    k = h.keel(conf(h, front, admin, "backoff_min: 20ms, backoff_max: 200ms, restarts: 3, "
                    "window: 1m", count=2, extra=alerts), wait_port=admin)
    a, _ = setup(k, admin)
    wait_for("the proxy", lambda: serving(front))
    killed = []
    for _ in range(4):
        p = wait_for("worker 1 running", lambda: (lambda q: q if q["state"] == "running"
                                                  else None)(parts(a)["worker 1"]))
        os.kill(p["pid"], signal.SIGKILL)
        killed.append(p["pid"])
        wait_for("worker 1 down", lambda: parts(a)["worker 1"]["pid"] != p["pid"])
    k.wait_log(r"worker 1 \(pid %d\) killed by signal 9 \(Killed\), after 3 restarts "
               r"within 60 s: left down \(failed\)" % killed[-1])
    p = parts(a)["worker 1"]
    check(p["state"] == "failed" and p["restarts"] == 3, p)
    time.sleep(0.5)                       # no restart comes
    check(parts(a)["worker 1"]["state"] == "failed")
    check(len(k.children()) == 1, k.children())     # worker 2 alone
    for _ in range(5):
        check(serving(front), "worker 2 serves alone")
    got = wait_for("the alert", lambda: [m for m in hooks(out)
                                        if "process worker 1" in m["body"]], timeout=10)
    msg = json.loads(got[0]["body"])
    check(msg["event"] == "alert" and msg["subject"] == "process worker 1"
          and "after 3 restarts within 60 s" in msg["detail"], msg)
    check('keel_part_failed{part="worker 1"} 1' in http_get(admin, "/metrics").body)

    k.signal(signal.SIGHUP)
    k.wait_log(r"worker 1: starting again \(it had failed: killed by signal 9")
    wait_for("worker 1 again", lambda: parts(a)["worker 1"]["state"] == "running")
    wait_for("the recovery", lambda: [m for m in hooks(out) if "process worker 1" in m["body"]
                                      and json.loads(m["body"])["event"] == "recovery"],
             timeout=10)


def test_the_password_hasher_comes_back_and_no_login_is_lost(h):
    front, admin = free_port(), free_port()
    k = h.keel(conf(h, front, admin, "backoff_min: 100ms"), wait_port=admin)
    a, _ = setup(k, admin)
    hasher = [int(x) for x in open("/proc/%d/task/%d/children" % (k.pid, k.pid)).read().split()
              if open("/proc/%s/comm" % x).read().strip() == "keel-hash"]
    check(len(hasher) == 1, hasher)
    os.kill(hasher[0], signal.SIGKILL)
    st, js = Admin(admin).call("POST", "/api/v1/login", {"user": "admin", "password": PASSWORD})
    check(st == 200, (st, js))      # sent to the dead one, or waiting for the next one
    k.wait_log(r"password hasher \(pid %d\) killed by signal 9 \(Killed\); starting another"
               % hasher[0])
    p = parts(a)["password hasher"]
    check(p["state"] == "running" and p["restarts"] == 1, p)
    # The master did not spin on the dead hasher's socket.
    with open("/proc/%d/stat" % k.pid) as f:
        before = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    time.sleep(1)
    with open("/proc/%d/stat" % k.pid) as f:
        after = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    check(after - before < 30, "the master used %d ticks in 1 s" % (after - before))


def master_pid(h):
    with open(h.path("keel.pid")) as f:
        return int(f.read())


def test_the_supervisor_restarts_a_dead_or_frozen_master_and_stops_cleanly(h):
    front, admin = free_port(), free_port()
    k = h.keel(conf(h, front, admin, "progress_limit: 1s"), wait_port=admin,
               args=("--supervise",))
    a, _ = setup(k, admin)
    k.wait_log(r"supervisor \(pid %d\) keeps the master running" % k.pid)
    first = master_pid(h)
    check(first != k.pid and first in k.children(), (first, k.pid, k.children()))
    wait_for("the proxy", lambda: serving(front))

    os.kill(first, signal.SIGKILL)
    k.wait_log(r"master \(pid %d\) killed by signal 9 \(Killed\); starting another" % first)
    wait_for("a new master", lambda: master_pid(h) != first, timeout=5)
    wait_for("the admin server", lambda: http_get(admin, "/healthz").status == 200, timeout=5)
    wait_for("the proxy again", lambda: serving(front), timeout=5)
    check(a.login()[0] == 200)      # sessions live in the master: a new one, a new login
    st = status(a)
    m = {p["name"]: p for p in st["parts"]}["master"]
    check(st["supervised"] and m["restarts"] == 1 and m["pid"] == master_pid(h)
          and m["last_exit"] == "killed by signal 9 (Killed)", st)

    second = master_pid(h)
    os.kill(second, signal.SIGSTOP)
    k.wait_log(r"master \(pid %d\) made no progress for 1\.\d s: killing it" % second,
               timeout=5)
    wait_for("a third master", lambda: master_pid(h) not in (first, second), timeout=5)
    wait_for("the admin server", lambda: http_get(admin, "/healthz").status == 200, timeout=5)
    wait_for("the proxy again", lambda: serving(front), timeout=5)
    check(a.login()[0] == 200)
    m = {p["name"]: p for p in status(a)["parts"]}["master"]
    check(m["restarts"] == 2 and m["last_exit"] == "no progress for 1 s", m)

    third = master_pid(h)
    # Each master wrote its pid beside the file and renamed it over: a
    # reader never found the file empty, and nothing is left beside it.
    left = [n for n in os.listdir(os.path.dirname(h.path("keel.pid"))) if n.startswith("keel.pid.")]
    check(left == [], left)
    k.signal(signal.SIGHUP)                # passed on: the master reloads
    k.wait_log(r"configuration generation 2 loaded")
    k.signal(signal.SIGTERM)
    check(k.wait(15) == 0, "the supervisor's exit: %s" % k.popen.returncode)
    check(not os.path.exists("/proc/%d" % third), "the master outlived its supervisor")
    k.wait_log(r"main: stopped")


def test_keel_stop_ends_the_supervisor_too(h):
    front, admin = free_port(), free_port()
    k = h.keel(conf(h, front, admin, ""), wait_port=admin, args=("--supervise",))
    r = h.run_keel("stop", "-c", h.path("keel.yaml"))
    check(r.returncode == 0, r.stderr)
    check(k.wait(15) == 0, "exit %s" % k.popen.returncode)
    k.wait_log(r"the master stopped \(keel stop\)")


def test_bad_supervise_settings_are_refused_and_the_supervisor_never_starts(h):
    conf_path = h.write("bad.yaml", "supervise: { backoff_min: 2s, backoff_max: 1s }\n"
                        "pid_file: \"\"\nstate_dir: \"%s\"\n" % h.path("st"))
    r = h.run_keel("--supervise", "-c", conf_path)
    check(r.returncode == 1 and "backoff_min (2000 ms) is above backoff_max (1000 ms)"
          in r.stderr and "keeps the master running" not in r.stderr, r.stderr)
