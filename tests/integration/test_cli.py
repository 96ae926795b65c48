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
