"""Synthetic monitors and alerts with real peers: a dead server's monitor
opens one incident (one signed webhook), recovers with a notice, keeps its
results in SQLite; route monitors go through keel's front door; health
transitions alert; webhook deliveries are retried."""

import hashlib
import hmac
import json
import signal
import os
import sqlite3
import time

import harness
from harness import check, free_port, http_get, wait_for
from test_proxy import yaml_conf


def receiver(h, fail=0):
    port = free_port()
    out = h.path("hooks.jsonl")
    h.start("receiver", ["python3", os.path.join(harness.HERE, "receiver.py"), "--port", str(port),
                         "--out", out, "--fail", str(fail)],
            ready=lambda: http_get(port, "/").status == 200)
    return port, out


def hooks(out):
    if not os.path.exists(out):
        return []
    with open(out) as f:
        return [json.loads(line) for line in f]


def conf(front, admin, ups, routes, hook_port, monitors, alerts=""):
    text = yaml_conf(front, admin, ups, routes).replace(
        "monitors: { routes: false, servers: false }\n", "")
    return text + ("monitors: { %s }\n" % monitors) + (
        'alerts: { failures: 2, window: 1m, recover: 2%s, '
        'webhooks: [ { url: "http://127.0.0.1:%d/hook", secret: "s3cret" } ] }\n'
        % (alerts, hook_port))


def test_a_dead_server_alerts_once_then_recovers(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    k = h.keel(conf(front, admin, {"ua": [a, b]}, [{"path": "/", "upstream": "ua"}], hook,
                    "routes: false, servers: true, interval: 1s, timeout: 500ms"),
               wait_port=admin)
    victim = [p for p in h.procs if p.name == "a"][0]
    victim.popen.kill()
    victim.popen.wait(5)
    got = wait_for("the alert", lambda: hooks(out), timeout=10)
    msg = json.loads(got[0]["body"])
    check(msg["event"] == "alert" and msg["subject"] == "server ua/127.0.0.1:%d" % a, msg)
    check("2 failures within 1 min" in msg["detail"] and "Connection refused" in msg["detail"], msg)
    sig = hmac.new(b"s3cret", got[0]["body"].encode(), hashlib.sha256).hexdigest()
    check(got[0]["headers"]["X-Keel-Signature"] == "sha256=" + sig, got[0]["headers"])
    time.sleep(3)            # more failures, but the incident is open: no storm
    check(len(hooks(out)) == 1, hooks(out))

    h.start("a-again", ["python3", os.path.join(harness.HERE, "backend.py"),
                        "--port", str(a), "--name", "a"],
            ready=lambda: http_get(a, "/").status == 200)
    got = wait_for("the recovery", lambda: hooks(out)[1:], timeout=10)
    msg = json.loads(got[0]["body"])
    check(msg["event"] == "recovery" and msg["subject"] == "server ua/127.0.0.1:%d" % a, msg)

    db = sqlite3.connect(h.path("state/monitor.db"))
    name = "server ua/127.0.0.1:%d" % a
    fails = db.execute("SELECT count(*) FROM raw WHERE monitor = ? AND ok = 0", (name,)).fetchone()[0]
    passes = db.execute("SELECT count(*) FROM raw WHERE monitor = ? AND ok = 1", (name,)).fetchone()[0]
    minute = db.execute("SELECT sum(n), sum(fails) FROM minute WHERE monitor = ?", (name,)).fetchone()
    check(fails >= 2 and passes >= 2 and minute[0] == fails + passes and minute[1] == fails,
          (fails, passes, minute))
    m = http_get(admin, "/metrics").body
    check('keel_alerts_total{event="alert"} 1' in m and 'keel_alerts_total{event="recovery"} 1' in m, m)


def test_route_monitors_go_through_the_front_door(h):
    a = h.http_backend("a")
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    h.keel(conf(front, admin, {"ua": [a]}, [{"path": "/app/", "upstream": "ua"}], hook,
                "routes: true, servers: false, interval: 1s"), wait_port=admin)

    def probed():
        m = http_get(admin, "/metrics").body
        return ('keel_monitor_up{monitor="route /app/"} 1' in m and
                'keel_route_requests_total{route="/app/",upstream="ua"} ' in m and
                'keel_route_requests_total{route="/app/",upstream="ua"} 0' not in m)
    wait_for("a route probe through keel", probed, timeout=5)


def test_operator_monitor_checks_status_and_body(h):
    a = h.http_backend("a")
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    text = conf(front, admin, {"ua": [a]}, [{"path": "/", "upstream": "ua"}], hook,
                'routes: false, servers: false, list: { '
                'good: { url: "http://127.0.0.1:%d/login", body: "\\"server\\": \\"a\\"", interval: 1s }, '
                'bad: { url: "http://127.0.0.1:%d/login", body: "Sign in", interval: 1s } }' % (a, a))
    h.keel(text, wait_port=admin)
    got = wait_for("the alert", lambda: hooks(out), timeout=10)
    msg = json.loads(got[0]["body"])
    check(msg["subject"] == "monitor bad" and 'does not contain \\"Sign in\\"' in json.dumps(msg), msg)
    m = http_get(admin, "/metrics").body
    check('keel_monitor_up{monitor="monitor good"} 1' in m, m)


def test_health_transitions_alert_and_recover(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    ups = {"ua": ["health: { type: http, path: /, interval: 300ms, timeout: 200ms }", a, b]}
    k = h.keel(conf(front, admin, ups, [{"path": "/", "upstream": "ua"}], hook,
                    "routes: false, servers: false"), wait_port=admin)
    victim = [p for p in h.procs if p.name == "a"][0]
    victim.popen.kill()
    victim.popen.wait(5)
    got = wait_for("the DOWN alert", lambda: hooks(out), timeout=5)
    msg = json.loads(got[0]["body"])
    check(msg["subject"] == "server ua/127.0.0.1:%d" % a and msg["detail"].startswith("DOWN: "), msg)
    h.start("a-again", ["python3", os.path.join(harness.HERE, "backend.py"),
                        "--port", str(a), "--name", "a"],
            ready=lambda: http_get(a, "/").status == 200)
    got = wait_for("the UP notice", lambda: hooks(out)[1:], timeout=5)
    check(json.loads(got[0]["body"])["event"] == "recovery", got)


def test_a_down_server_removed_by_a_reload_is_recovered_not_left_raised(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    hook, out = receiver(h)
    front, admin = free_port(), free_port()
    ups = {"ua": ["health: { type: http, path: /, interval: 300ms, timeout: 200ms }", a, b]}
    k = h.keel(conf(front, admin, ups, [{"path": "/", "upstream": "ua"}], hook,
                    "routes: false, servers: false"), wait_port=admin)
    victim = [p for p in h.procs if p.name == "a"][0]
    victim.popen.kill()
    victim.popen.wait(5)
    wait_for("the DOWN alert", lambda: hooks(out), timeout=5)
    # Take the dead server out of the config: its incident closes.
    with open(h.path("keel.yaml")) as f:
        text = f.read()
    with open(h.path("keel.yaml"), "w") as f:
        f.write(text.replace("127.0.0.1:%d" % a, "127.0.0.1:%d" % b, 1)
                if text.count("127.0.0.1:%d" % b) == 1 else text)
    check(open(h.path("keel.yaml")).read().count("127.0.0.1:%d" % a) == 0, "a still configured")
    k.signal(signal.SIGHUP)
    got = wait_for("the recovery", lambda: hooks(out)[1:], timeout=5)
    msg = json.loads(got[0]["body"])
    check(msg["event"] == "recovery" and msg["subject"] == "server ua/127.0.0.1:%d" % a
          and "no longer checked" in msg["detail"], msg)


def test_webhook_deliveries_are_retried(h):
    a = h.http_backend("a")
    hook, out = receiver(h, fail=2)
    dead = free_port()
    front, admin = free_port(), free_port()
    k = h.keel(conf(front, admin, {"ua": [a, dead]}, [{"path": "/", "upstream": "ua"}], hook,
                    "routes: false, servers: true, interval: 1s, timeout: 500ms"),
               wait_port=admin)
    wait_for("the alert after two refusals", lambda: hooks(out), timeout=15)
    k.wait_log(r"webhook http://127\.0\.0\.1:%d/hook: try 2 failed \(status 500, expected 200-299\)" % hook)
    k.wait_log(r"webhook http://127\.0\.0\.1:%d/hook: delivered" % hook)


def test_monitor_and_webhook_urls_are_checked(h):
    path = h.write("bad.yaml", yaml_conf(8000, 8001, {"ua": [9000]}, [{"path": "/", "upstream": "ua"}])
                   + 'alerts: { webhooks: [ { url: "https://hooks.example.com/x" } ] }\n')
    r = h.run_keel("-t", "-c", path)
    check(r.returncode == 1 and "alerts.webhooks[0].url: https is not supported yet" in r.stderr,
          r.stderr)


def smtp_server(h):
    cert, key = h.path("mail.pem"), h.path("mail.key")
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=mail.test",
                    "-addext", "subjectAltName=DNS:mail.test"],
                   check=True, capture_output=True)
    port = free_port()
    out = h.path("mail.jsonl")
    import socket
    h.start("smtpd", ["/usr/bin/python3", os.path.join(harness.HERE, "smtpd.py"), str(port), out,
                      cert, key, "alerts", "hunter2"],
            ready=lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
    return port, out, cert


def mail_conf(front, admin, a, dead, smtp, cert, to, tls_name, extra=""):
    """Server monitors on a live and a dead server; alerts by e-mail only."""
    text = yaml_conf(front, admin, {"ua": [a, dead]}, [{"path": "/", "upstream": "ua"}]).replace(
        "monitors: { routes: false, servers: false }\n", "")
    return text + ("monitors: { routes: false, servers: true, interval: 1s, timeout: 500ms }\n"
                   "alerts:\n  failures: 1\n  email:\n    to: [%s]\n"
                   "    server: \"127.0.0.1:%d\"\n    tls_name: %s\n    ca_file: \"%s\"\n"
                   "    user: alerts\n    password: hunter2\n%s"
                   % (to, smtp, tls_name, cert, extra))


def test_alert_mail_goes_out_over_starttls_with_auth(h):
    a = h.http_backend("a")
    dead = free_port()
    smtp, out, cert = smtp_server(h)
    front, admin = free_port(), free_port()
    k = h.keel(mail_conf(front, admin, a, dead, smtp, cert, "ops@example.com, oncall@example.com",
                         "mail.test", "    from: keel@gw1.example.com\n"), wait_port=admin)
    got = wait_for("the alert mail", lambda: hooks(out), timeout=15)
    mail = got[0]
    check(mail["tls"] and mail["user"] == "alerts", mail)
    check(mail["from"] == "keel@gw1.example.com", mail)
    check(sorted(mail["to"]) == ["oncall@example.com", "ops@example.com"], mail)
    check("Subject: [keel keel] ALERT: server ua/127.0.0.1:%d" % dead in mail["data"], mail["data"])
    check("Connection refused" in mail["data"], mail["data"])
    k.wait_log(r"e-mail via 127\.0\.0\.1:%d sent to 2 recipients" % smtp)
    check("hunter2" not in k.log(), "the password reached the log")


def test_a_wrong_certificate_name_is_refused(h):
    a = h.http_backend("a")
    dead = free_port()
    smtp, out, cert = smtp_server(h)
    front, admin = free_port(), free_port()
    k = h.keel(mail_conf(front, admin, a, dead, smtp, cert, "ops@example.com", "other.test"),
               wait_port=admin)
    k.wait_log(r"e-mail via 127\.0\.0\.1:%d: try 1 failed: TLS handshake: " % smtp, timeout=15)
    check(hooks(out) == [], "mail went to a server with the wrong name")
