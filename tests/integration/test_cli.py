"""keel status and keel reload from the command line, through the running
master's control socket (STATE_DIR/keel.sock, 0600): what a person reads,
colour only on a terminal, --json for scripts, a reload that says how it
went, and a keel that is not running said plainly."""

import json
import os
import stat
import subprocess

import harness
from harness import check, free_port, http_get, wait_for
from test_proxy import yaml_conf


def start(h):
    a, b = h.http_backend("a1"), h.http_backend("a2")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"app_a": [a, (b, "backup: true")]},
                     [{"path": "/app_a/", "upstream": "app_a"}])
    k = h.keel(text, wait_port=admin)
    return front, admin, k, h.path("keel.yaml")


def test_status_for_a_person_and_for_scripts(h):
    front, admin, k, conf = start(h)
    check(http_get(front, "/app_a/x").status == 200)
    sock = h.path("state") + "/keel.sock"
    check(stat.S_IMODE(os.stat(sock).st_mode) == 0o600, oct(os.stat(sock).st_mode))
    r = h.run_keel("status", "-c", conf)
    check(r.returncode == 0, r.stderr)
    out = r.stdout
    check(out.startswith("keel ") and " on keel: up " in out.splitlines()[0], out)
    check("\033[" not in out, "colour in a pipe: %r" % out)
    lines = [l for l in out.splitlines() if "app_a" in l and "127.0.0.1" in l]
    check(len(lines) == 2, out)
    check(" up " in lines[0] or lines[0].split()[2] == "up", out)
    r = h.run_keel("status", "-c", conf, "--json")
    js = json.loads(r.stdout)
    check(js["node"] == "keel" and js["proxy"]["servers"][0]["state"] == "up", js["proxy"])
    # On a terminal: colour (and NO_COLOR turns it off)
    tty = subprocess.run(["script", "-qc", "%s status -c %s" % (harness.KEEL, conf), "/dev/null"],
                         capture_output=True, text=True, timeout=30, cwd=h.dir)
    check("\033[32mup" in tty.stdout, repr(tty.stdout[:400]))
    env = dict(os.environ, NO_COLOR="1")
    tty = subprocess.run(["script", "-qc", "%s status -c %s" % (harness.KEEL, conf), "/dev/null"],
                         capture_output=True, text=True, timeout=30, cwd=h.dir, env=env)
    check("\033[32m" not in tty.stdout, repr(tty.stdout[:400]))


def test_reload_says_how_it_went(h):
    front, admin, k, conf = start(h)
    gen = http_get(admin, "/healthz").json()["config_generation"]
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 0 and ("reloaded: generation %d" % (gen + 1)) in r.stdout,
          r.stdout + r.stderr)
    check(http_get(admin, "/healthz").json()["config_generation"] == gen + 1)
    # A file the master refuses (a certificate that is not there): said,
    # exit 1, the running configuration stays.
    text = open(conf).read().replace(
        "listeners:\n", "listeners:\n  - address: \"127.0.0.1:%d\"\n    tls: { certificates: "
        "[ { cert: /nonexistent.crt, key: /nonexistent.key } ] }\n" % free_port(), 1)
    open(conf, "w").write(text)
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 1 and "not reloaded:" in r.stderr and "nonexistent.crt" in r.stderr,
          (r.returncode, r.stdout, r.stderr))
    check(http_get(admin, "/healthz").json()["config_generation"] == gen + 1)
    check(http_get(front, "/app_a/x").status == 200)


def test_a_keel_that_is_not_running_is_said_so(h):
    d = h.path("none")
    conf = h.write("none.yaml", 'state_dir: "%s"\npid_file: ""\n' % d)
    r = h.run_keel("status", "-c", conf)
    check(r.returncode == 1 and "cannot reach the running keel" in r.stderr, r.stderr)
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 1 and "cannot reach" in r.stderr and "no pid_file" in r.stderr,
          r.stderr)


def test_systemd_notifications_ready_status_watchdog_stopping(h):
    """Type=notify: READY=1 with MAINPID once serving, STATUS on a reload,
    WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM."""
    import socket
    import time
    path = h.path("notify.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    a = h.http_backend("a1")
    front, admin = free_port(), free_port()
    conf = h.write("keel.yaml", 'state_dir: "%s"\npid_file: ""\n' % h.path("state") +
                   yaml_conf(front, admin, {"u": [a]}, [{"path": "/", "upstream": "u"}]))
    k = h.start("keel", [harness.KEEL, "-c", conf], env=env)
    got = rx.recv(4096).decode()
    check(got.startswith("READY=1\n") and "MAINPID=%d" % k.pid in got, got)
    check(http_get(front, "/").status == 200, "READY before serving")
    t0 = time.monotonic()
    pings = 0
    while time.monotonic() - t0 < 1.0:
        if rx.recv(4096) == b"WATCHDOG=1":
            pings += 1
    check(4 <= pings <= 7, "%d watchdog pings in 1 s at 200 ms" % pings)
    r = h.run_keel("reload", "-c", conf)
    check(r.returncode == 0, r.stderr)

    def until(pred):
        seen = []
        while not any(pred(m) for m in seen):
            seen.append(rx.recv(4096).decode())     # a timeout fails the test
        return seen

    until(lambda m: m.startswith("STATUS=serving, configuration generation 2"))
    k.signal(15)
    until(lambda m: m == "STOPPING=1")
    k.wait()
