"""The admin API with real HTTP: first-boot setup with the one-time token,
every admin route refused without a session, CSRF and content type on
changes, login lockout, logout, the config store's revisions (apply,
validation that changes nothing, drain through the API, diff, rollback),
`keel config export | import` round trips, and applies SIGKILLed midway."""

import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import sqlite3
import subprocess
import threading
import time

import harness
from harness import check, free_port, http_get, wait_for
from test_proxy import yaml_conf

PASSWORD = "correct horse battery"

# Every admin route; each must answer 401 without a session.
ROUTES = [
    ("GET", "/metrics"), ("GET", "/api/v1/session"), ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/status"), ("GET", "/api/v1/config"), ("PUT", "/api/v1/config"),
    ("GET", "/api/v1/config/yaml"), ("PUT", "/api/v1/config/yaml"),
    ("GET", "/api/v1/revisions"), ("GET", "/api/v1/revisions/1"),
    ("GET", "/api/v1/revisions/diff?from=1&to=1"), ("POST", "/api/v1/revisions/1/rollback"),
    ("GET", "/api/v1/logs"), ("GET", "/api/v1/audit"), ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"), ("POST", "/api/v1/password"), ("DELETE", "/api/v1/users/x"),
    ("PUT", "/api/v1/upstreams/u/servers/127.0.0.1:1/state"), ("GET", "/api/v1/nothing"),
    ("POST", "/api/v1/config/confirm"), ("POST", "/api/v1/cluster/resolve"),
    ("GET", "/api/v1/monitors"),
    ("GET", "/api/v1/monitors/history?name=x"), ("POST", "/api/v1/alerts/test"),
    ("GET", "/api/v1/certificates"), ("POST", "/api/v1/certificates"),
    ("GET", "/api/v1/commands"), ("POST", "/api/v1/commands/storage.remount"),
    ("POST", "/api/v1/import/nginx"),
]


class Admin:
    """A client of keel's admin API holding one session."""

    def __init__(self, port, tls=False):
        self.port, self.cookie, self.csrf, self.tls = port, None, None, tls

    def call(self, method, path, body=None, headers=None, raw=False, timeout=15):
        hd = dict(headers or {})
        if self.cookie:
            hd["Cookie"] = self.cookie
        if self.csrf and method not in ("GET", "HEAD") and "X-CSRF-Token" not in hd:
            hd["X-CSRF-Token"] = self.csrf
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is not None and "Content-Type" not in hd:
            hd["Content-Type"] = "application/json"
        if self.tls:
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                            context=ssl._create_unverified_context())
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=hd)
            r = c.getresponse()
            data = r.read().decode()
            cookie = r.getheader("Set-Cookie")
            if cookie and cookie.startswith("keel_session="):
                self.set_cookie = cookie
                value = cookie.split(";")[0]
                self.cookie = value if value != "keel_session=" else None
            if raw:
                return r.status, data, r
            if "json" not in (r.getheader("Content-Type") or ""):
                return r.status, data
            return r.status, (json.loads(data) if data.strip() else {})
        finally:
            c.close()

    def login(self, user="admin", password=PASSWORD):
        st, js = self.call("POST", "/api/v1/login", {"user": user, "password": password})
        if st == 200:
            self.csrf = js["csrf"]
        return st, js


def start(h, backends=2):
    ports = [h.http_backend("b%d" % i) for i in range(backends)]
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"u": ports}, [{"path": "/", "upstream": "u"}])
    k = h.keel(text, wait_port=admin)
    return front, admin, k, ports


def setup(k, admin):
    token = k.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    a = Admin(admin)
    st, js = a.call("POST", "/api/v1/setup",
                    {"token": token, "user": "admin", "password": PASSWORD})
    check(st == 200, (st, js))
    a.csrf = js["csrf"]
    return a, token


def test_every_admin_route_needs_a_session_and_setup_needs_the_token(h):
    front, admin, k, _ = start(h)
    anon = Admin(admin)
    for method, path in ROUTES:
        st, js = anon.call(method, path, body={} if method != "GET" else None)
        check(st == 401, "%s %s without a session: %s %s" % (method, path, st, js))
    check(http_get(admin, "/healthz").status == 200)      # open: for load balancers
    check(anon.call("GET", "/api/v1/setup")[1] == {"setup": True})
    token = k.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    st, js = anon.call("POST", "/api/v1/setup",
                       {"token": "0" * 32, "user": "admin", "password": PASSWORD})
    check(st == 403 and js["field"] == "token", (st, js))
    st, js = anon.call("POST", "/api/v1/setup", {"token": token, "user": "admin",
                                                  "password": "short"})
    check(st == 400 and js["field"] == "password", (st, js))
    a, _ = setup(k, admin)
    check("HttpOnly" in a.set_cookie and "SameSite=Strict" in a.set_cookie, a.set_cookie)
    # Setup happens once.
    st, js = Admin(admin).call("POST", "/api/v1/setup",
                               {"token": token, "user": "eve", "password": PASSWORD})
    check(st == 409, (st, js))
    check(anon.call("GET", "/api/v1/setup")[1] == {"setup": False})
    # With the session every route answers, none with 401.
    for method, path in ROUTES:
        if method != "GET":
            continue
        st, js = a.call(method, path)
        check(st != 401, "%s %s with a session: %s" % (method, path, st))
    # Changes need the CSRF token and a JSON or YAML body.
    st, js = a.call("PUT", "/api/v1/config", {}, headers={"X-CSRF-Token": "0" * 64})
    check(st == 403 and "CSRF" in js["error"], (st, js))
    st, js = a.call("PUT", "/api/v1/config", "x=1",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 415, (st, js))
    # Logout ends the session for good.
    old = a.cookie
    check(a.call("POST", "/api/v1/logout")[0] == 200)
    a.cookie = old
    check(a.call("GET", "/api/v1/status")[0] == 401)
    # A new login gets a new token.
    b = Admin(admin)
    check(b.login()[0] == 200)
    check(b.cookie != old)


def test_an_update_upload_is_refused_on_a_host_saying_why(h):
    """POST /api/v1/update streams to the update command; on a host (keel
    not PID 1) it is refused before a byte is used, with the reason, and a
    large body sent anyway is dropped, not kept; only octet-stream is
    taken. The image tests (test_image.py) install real bundles."""
    front, admin, k, _ = start(h, backends=1)
    a, _ = setup(k, admin)
    st, js = a.call("POST", "/api/v1/update", b"KEELBNDL" + b"\0" * 100,
                    headers={"Content-Type": "application/json"})
    check(st == 415 and "octet-stream" in js["error"], (st, js))
    body = b"KEELBNDL" + os.urandom(4 << 20)
    st, js = a.call("POST", "/api/v1/update", body,
                    headers={"Content-Type": "application/octet-stream"})
    check(st == 409 and "keel is not this system's init (PID 1)" in js["error"], (st, js))
    st, js = a.call("GET", "/api/v1/status")
    up = js["update"]
    check(not up["supported"] and not up["busy"] and up["keys"] and
          len(up["keys"][0]["id"]) == 16, up)
    st, js = a.call("POST", "/api/v1/commands/update.rollback", {})
    check(st == 409 and "updates are off" in js["error"], (st, js))
    check(re.search(r"admin ran update.install: 409", k.log()), k.log()[-2000:])


def _route_path(path):
    """A concrete path for a route pattern: ":x" segments get a value."""
    vals = {":id": "1", ":name": "x", ":upstream": "u", ":server": "127.0.0.1:1"}
    return "/".join(vals.get(seg, "app.js" if seg == "*" else seg) for seg in path.split("/"))


def test_route_table_every_change_needs_a_session_and_the_csrf_token(h):
    """Walks the declared route table (GET /api/v1/routes): every route that
    changes state refuses a request without a session (401) and one with a
    session but without the CSRF token (403), before its body is read; every
    read needs a session unless the table says it is open."""
    front, admin, k, _ = start(h, backends=1)
    a, _ = setup(k, admin)
    st, routes = a.call("GET", "/api/v1/routes")
    check(st == 200 and len(routes) >= 30, (st, routes))
    open_ok = {("GET", "/healthz"), ("GET", "/"), ("GET", "/index.html"), ("GET", "/ui/*"),
               ("GET", "/api/v1/setup"), ("POST", "/api/v1/setup"), ("POST", "/api/v1/login"),
               ("GET", "/metrics")}
    seen = set()
    for rt in routes:
        method, path, auth = rt["method"], rt["path"], rt["auth"]
        check(auth in ("none", "setup-token", "bearer-or-session", "session", "session+csrf"), rt)
        check(rt["body_max"] > 0, rt)
        seen.add((method, path))
        if auth in ("none", "setup-token"):
            check((method, path) in open_ok, "an open route not in the list of open ones: %s" % rt)
            continue
        url = _route_path(path)
        anon = Admin(admin)
        body = "{}" if method != "GET" else None
        st, js = anon.call(method, url, body=body)
        check(st == 401, "%s %s without a session: %s %s" % (method, url, st, js))
        if method in ("GET", "HEAD"):
            check(auth in ("session", "bearer-or-session"), rt)
            continue
        check(auth == "session+csrf", "a change without the CSRF check: %s" % rt)
        st, js = a.call(method, url, body=body, headers={"X-CSRF-Token": ""})
        check(st == 403 and "CSRF" in js["error"], "%s %s without CSRF: %s %s" % (method, url, st, js))
        st, js = a.call(method, url, body=body, headers={"X-CSRF-Token": "0" * 64})
        check(st == 403, "%s %s with a wrong CSRF token: %s %s" % (method, url, st, js))
        # Refused on the head: a large announced body is never waited for.
        with socket.create_connection(("127.0.0.1", admin), timeout=5) as sk:
            sk.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 3000000\r\n\r\n" % (method, url)).encode())
            got = sk.recv(4096).decode(errors="replace")
            check(got.startswith("HTTP/1.1 401"), "%s %s: %r" % (method, url, got[:80]))
    # The table is the whole API: every route the old tests list is in it.
    for method, path in ROUTES:
        bare = path.split("?")[0]
        if bare == "/api/v1/nothing":
            continue
        check(any(m == method and _matches(p, bare) for m, p in seen), (method, path))
    # Still usable with the token.
    check(a.call("POST", "/api/v1/logout")[0] == 200)


def _matches(pattern, path):
    ps, us = pattern.split("/"), path.split("/")
    if ps[-1] == "*":
        return us[:len(ps) - 1] == ps[:-1]
    return len(ps) == len(us) and all(p == u or p.startswith(":") for p, u in zip(ps, us))


def test_failed_logins_lock_out_with_a_growing_delay(h):
    front, admin, k, _ = start(h, backends=1)
    setup(k, admin)
    a = Admin(admin)
    for i in range(5):
        st, js = a.login(password="wrong password %d" % i)
        check(st == 401, (i, st, js))
    st, body, r = a.call("POST", "/api/v1/login", {"user": "admin", "password": PASSWORD},
                         raw=True)
    check(st == 429 and int(r.getheader("Retry-After")) >= 1, (st, body))
    k.wait_log(r"failed login for admin from 127\.0\.0\.1; further logins wait")
    k.wait_log(r"login for admin from 127\.0\.0\.1 refused: locked")
    time.sleep(1.2)
    check(a.login()[0] == 200)
    st, audit = a.call("GET", "/api/v1/audit")
    actions = [e["action"] for e in audit]
    check(actions.count("login failed") == 5 and "login" in actions, actions)
    # An unknown user is refused the same way.
    check(Admin(admin).login(user="nobody")[0] == 401)


def test_config_revisions_apply_validate_drain_diff_and_rollback(h):
    front, admin, k, ports = start(h)
    a, _ = setup(k, admin)
    st, revs = a.call("GET", "/api/v1/revisions")
    check(st == 200 and len(revs) == 1 and revs[0]["current"], revs)

    # An invalid config is refused with every field named, and nothing changes.
    st, conf = a.call("GET", "/api/v1/config")
    bad = json.loads(json.dumps(conf))
    bad["workers"]["count"] = -3
    bad["routes"][0]["upstream"] = "nope"
    st, js = a.call("PUT", "/api/v1/config", bad)
    check(st == 400, (st, js))
    fields = sorted(e["field"] for e in js["errors"])
    check(fields == ["routes[0].upstream", "workers.count"], js)
    check(len(a.call("GET", "/api/v1/revisions")[1]) == 1)

    # Add a server: requests reach it.
    new = h.http_backend("added")
    good = json.loads(json.dumps(conf))
    good["upstreams"]["u"]["servers"].append({"address": "127.0.0.1:%d" % new})
    st, js = a.call("PUT", "/api/v1/config?comment=add%20a%20server", good)
    check(st == 200 and js["revision"] == 2, (st, js))
    seen = set()
    wait_for("the new server to answer", lambda: seen.add(
        http_get(front, "/x").json()["server"]) or "added" in seen)

    # Drain the first server through the API: a new revision, no reload by hand.
    st, js = a.call("PUT", "/api/v1/upstreams/u/servers/127.0.0.1:%d/state" % ports[0],
                    {"drain": True})
    check(st == 200 and js["revision"] == 3, (st, js))
    time.sleep(0.3)
    servers = {http_get(front, "/y").json()["server"] for _ in range(12)}
    check("b0" not in servers, servers)
    st, js = a.call("PUT", "/api/v1/upstreams/u/servers/127.0.0.1:1/state", {"down": True})
    check(st == 404 and js["field"] == "server", (st, js))

    # Diff, then roll back to the first revision.
    st, d = a.call("GET", "/api/v1/revisions/diff?from=2&to=3")
    check(st == 200 and "+         drain: true" in d["diff"], d)
    st, js = a.call("POST", "/api/v1/revisions/1/rollback")
    check(st == 200 and js["revision"] == 4, (st, js))
    wait_for("the added server to be gone", lambda: all(
        http_get(front, "/z").json()["server"] != "added" for _ in range(8)))
    st, revs = a.call("GET", "/api/v1/revisions")
    check([r["id"] for r in revs] == [4, 3, 2, 1] and revs[0]["comment"] ==
          "rollback to revision 1", revs)
    st, r1 = a.call("GET", "/api/v1/revisions/1")
    st, r4 = a.call("GET", "/api/v1/revisions/4")
    check(r1["yaml"] == r4["yaml"])
    # The config file keel runs from holds the rolled-back text (with its
    # secrets, which the API shows masked).
    with open(h.path("keel.yaml")) as f:
        text = f.read()
    check('"%s"' % harness.METRICS_TOKEN in text and harness.METRICS_TOKEN not in r1["yaml"])
    check(text.replace('"%s"' % harness.METRICS_TOKEN, '"(secret)"') == r1["yaml"])


def test_config_export_import_round_trip(h):
    front, admin, k, _ = start(h, backends=1)
    conf = h.path("keel.yaml")
    r = h.run_keel("config", "export", "-c", conf)
    check(r.returncode == 0, r.stderr)
    exported = r.stdout
    # Re-import what was exported; then export gives the same bytes.
    h.write("exported.yaml", exported + "# a comment survives\n")
    r = h.run_keel("config", "import", h.path("exported.yaml"), "-c", conf)
    check(r.returncode == 0 and "imported as revision 2" in r.stdout, r.stdout + r.stderr)
    r2 = h.run_keel("config", "export", "-c", conf)
    check(r2.stdout == exported + "# a comment survives\n", r2.stdout)
    wait_for("the reload", lambda: http_get(admin, "/healthz").json()["config_generation"] == 2)
    # A bad file: every error with its line, nothing imported.
    h.write("bad.yaml", "workers:\n  count: -1\nroutes:\n  - { path: x }\n")
    r = h.run_keel("config", "import", h.path("bad.yaml"), "-c", conf)
    check(r.returncode == 1, r.stdout)
    check("bad.yaml:2: workers.count: must be 0..64, got -1" in r.stderr, r.stderr)
    check("bad.yaml:4: routes[0]" in r.stderr, r.stderr)
    check(h.run_keel("config", "export", "-c", conf).stdout == r2.stdout)


def test_an_apply_killed_midway_leaves_the_old_or_the_new_revision(h):
    """SIGKILL at a random moment of an apply through the API: the config
    store is never corrupt and its current revision loads; keel comes back
    with the old or the new configuration; and an apply that answered 200
    before the kill is never lost (the file and the store are synced
    before the answer). Every third round waits for the answer first, so
    that guarantee is checked whatever the timing."""
    be = h.http_backend("b0")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"u": [be]}, [{"path": "/", "upstream": "u"}])
    k = h.keel(text, wait_port=admin)
    a, _ = setup(k, admin)
    st, conf = a.call("GET", "/api/v1/config")
    rng = random.Random(7)
    outcomes = []
    prev = conf["upstreams"]["u"]["keepalive"]
    conf_path = h.path("keel.yaml")
    for i in range(12):
        conf["upstreams"]["u"]["keepalive"] = 10 + i
        answer = {}
        t = threading.Thread(target=lambda c=json.loads(json.dumps(conf)), ans=answer: _quiet(
            _put, a, "/api/v1/config?comment=loop%d" % i, c, ans))
        t.start()
        if i % 3 == 2:
            t.join(15)          # the answer first, then the kill
            check(answer.get("status") == 200, "run %d: the apply answered %r" % (i, answer))
        else:
            time.sleep(rng.uniform(0, 0.03))
        workers = k.children()
        k.signal(signal.SIGKILL)
        k.wait()
        t.join()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # The store is consistent, and its current revision loads.
        db = sqlite3.connect(h.path("state/config.db"))
        check(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
        cur = db.execute("SELECT value FROM meta WHERE key = 'current'").fetchone()[0]
        yaml = db.execute("SELECT yaml FROM revision WHERE id = ?", (cur,)).fetchone()[0]
        db.close()
        h.write("check.yaml", yaml)
        check(h.run_keel("-t", "-c", h.path("check.yaml")).returncode == 0, yaml)
        k = h.start("keel%d" % i, [harness.KEEL, "-c", conf_path],
                    ready=lambda: http_get(admin, "/healthz").status == 200)
        a = Admin(admin)
        check(a.login()[0] == 200)
        st, now = a.call("GET", "/api/v1/config")
        got = now["upstreams"]["u"]["keepalive"]
        check(got in (10 + i, prev), "run %d: keepalive %s, neither old %s nor new %s"
              % (i, got, prev, 10 + i))
        if answer.get("status") == 200:
            check(got == 10 + i, "run %d: the apply answered 200, then the kill lost it "
                  "(keepalive %s, not %s)" % (i, got, 10 + i))
        outcomes.append((answer.get("status") == 200, got == 10 + i))
        prev = got
        conf["upstreams"]["u"]["keepalive"] = got
    answered = sum(1 for ok, _ in outcomes if ok)
    check(answered >= 4, "only %d applies answered before the kill" % answered)
    print("    applies answered before the kill: %d of %d; in effect after it: %d"
          % (answered, len(outcomes), sum(1 for _, kept in outcomes if kept)))


def _put(a, path, body, answer):
    answer["status"], answer["body"] = a.call("PUT", path, body)


def _quiet(fn, *args):
    try:
        fn(*args)
    except (OSError, http.client.HTTPException):
        pass


def answers(port, tls=False):
    try:
        return http_get(port, "/healthz" if tls else "/", tls=tls).status
    except OSError:
        return 0


def current(a):
    st, revs = a.call("GET", "/api/v1/revisions")
    check(st == 200, (st, revs))
    return next(r for r in revs if r["current"])


def test_risky_changes_revert_unless_confirmed(h):
    """A new listener (or admin address) applied through the API is rolled
    back after admin.confirm_timeout unless confirmed; confirmed, it stays."""
    front, admin, k, _ = start(h)
    a, _ = setup(k, admin)
    st, cfg = a.call("GET", "/api/v1/config")
    cfg["admin"]["confirm_timeout"] = "2s"
    st, js = a.call("PUT", "/api/v1/config", cfg)
    check(st == 200 and "confirm" not in js, (st, js))     # not risky: nothing waits
    base = js["revision"]

    extra = free_port()
    cfg["listeners"].append({"address": "127.0.0.1:%d" % extra})
    st, js = a.call("PUT", "/api/v1/config?comment=new+door", cfg)
    check(st == 200 and js["confirm"]["revert_to"] == base, (st, js))
    check(answers(extra) == 200)
    st, status = a.call("GET", "/api/v1/status")
    check(status["confirm"]["revision"] == js["revision"], status)
    # Not confirmed: back to the revision before, and the port closes.
    wait_for("the revert", lambda: "not confirmed" in current(a)["comment"], timeout=6)
    wait_for("the extra listener to close", lambda: answers(extra) == 0, timeout=5)
    st, cfg2 = a.call("GET", "/api/v1/config")
    check(len(cfg2["listeners"]) == 1, cfg2["listeners"])
    check("confirm" not in a.call("GET", "/api/v1/status")[1])
    k.wait_log(r"revision %d not confirmed in time: back to %d" % (js["revision"], base))

    # Confirmed: it stays.
    st, js = a.call("PUT", "/api/v1/config?comment=new+door+again", cfg)
    check(st == 200 and "confirm" in js, (st, js))
    st, c = a.call("POST", "/api/v1/config/confirm", {})
    check(st == 200, (st, c))
    time.sleep(3)
    check(current(a)["id"] == js["revision"], current(a))
    check(answers(extra) == 200)
    st, c = a.call("POST", "/api/v1/config/confirm", {})
    check(st == 409, (st, c))                                # nothing waits now
    _, audit = a.call("GET", "/api/v1/audit")
    check(any(e["action"] == "confirmed" for e in audit), audit[:5])
    check(any(e["action"] == "reverted" for e in audit), audit[:5])


def test_admin_listen_reloads_over_https(h):
    """admin.listen changes without a restart on the HTTPS admin server:
    a new address answers, a removed one closes, one that cannot be bound
    is refused and the old addresses stay."""
    ports = [h.http_backend("b0")]
    front, admin, admin2 = free_port(), free_port(), free_port()
    text = yaml_conf(front, admin, {"u": ports}, [{"path": "/", "upstream": "u"}])
    text = text.replace("tls: { enabled: false }", "confirm_timeout: 30s")
    k = h.keel(text, wait_port=admin, admin_tls=True)
    token = k.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    st = http_get(admin, "/api/v1/setup", tls=True, method="POST",
                  body=json.dumps({"token": token, "user": "admin", "password": PASSWORD}),
                  headers={"Content-Type": "application/json"})
    check(st.status == 200, st.status)
    cookie = st.headers["set-cookie"].split(";")[0]
    csrf = json.loads(st.body)["csrf"]
    hd = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"}

    def put(cfg, port):
        r = http_get(port, "/api/v1/config", tls=True, method="PUT", body=json.dumps(cfg),
                     headers=hd)
        return r.status, json.loads(r.body)

    cfg = json.loads(http_get(admin, "/api/v1/config", tls=True, headers=hd).body)
    cfg["admin"]["listen"] = ["127.0.0.1:%d" % admin, "127.0.0.1:%d" % admin2]
    st, js = put(cfg, admin)
    check(st == 200 and "confirm" in js, (st, js))
    check(answers(admin2, tls=True) == 200)
    # Confirmed from the new address, as a browser that moved would.
    r = http_get(admin2, "/api/v1/config/confirm", tls=True, method="POST", body="{}", headers=hd)
    check(r.status == 200, (r.status, r.body))
    # An address in use elsewhere is refused; both addresses keep answering.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    cfg["admin"]["listen"] = ["127.0.0.1:%d" % admin2, "127.0.0.1:%d" % taken]
    st, js = put(cfg, admin2)
    k.wait_log(r"kept its previous settings: .*%d" % taken)
    busy.close()
    check(answers(admin, tls=True) == 200)
    check(answers(admin2, tls=True) == 200)
    # Removing the first address closes it.
    cfg["admin"]["listen"] = ["127.0.0.1:%d" % admin2]
    st, js = put(cfg, admin2)
    check(st == 200, (st, js))
    wait_for("the old admin port to close", lambda: answers(admin, tls=True) == 0)
    check(answers(admin2, tls=True) == 200)


def test_monitors_alerts_and_certificates_api(h):
    """Monitor state and history, recent alerts, the test alert to a real
    webhook, certificate upload (checked, stored, replaced with a reload)
    and the latency histogram in the status."""
    from test_monitor import receiver
    hook, out = receiver(h)
    ports = [h.http_backend("b0")]
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"u": ports}, [{"path": "/", "upstream": "u"}])
    text = text.replace("monitors: { routes: false, servers: false }",
                        "monitors: { routes: true, servers: true, interval: 1s }")
    k = h.keel(text, wait_port=admin)
    a, _ = setup(k, admin)
    st, js = a.call("POST", "/api/v1/alerts/test", {})
    check(st == 409 and js["field"] == "alerts", (st, js))
    for _ in range(20):
        http_get(front, "/x")
    st, status = a.call("GET", "/api/v1/status")
    # Every part's status provider, each under its own name.
    check({"proxy", "redis", "monitors"} <= set(status), sorted(status))
    px = status["proxy"]
    check(sum(px["routes"][0]["latency"]) >= 20, px["routes"][0])
    check(len(px["latency_bounds_ms"]) == len(px["routes"][0]["latency"]) - 1, px)
    metrics = http_get(admin, "/metrics", headers={"Authorization": "Bearer " + harness.METRICS_TOKEN}).body
    check('keel_route_duration_seconds_bucket{route="/",le="+Inf"}' in metrics, metrics[-800:])

    wait_for("3 probes of the server", lambda: any(
        m["name"] == "server u/127.0.0.1:%d" % ports[0] and m["probes"] >= 3
        for m in a.call("GET", "/api/v1/monitors")[1]["monitors"]), timeout=10)
    st, hist = a.call("GET", "/api/v1/monitors/history?name=server+u/127.0.0.1:%d&range=600" % ports[0])
    check(st == 200 and sum(p[1] for p in hist["points"]) >= 3, (st, hist))
    check(all(p[2] == 0 for p in hist["points"]), hist)     # all passed
    st, js = a.call("GET", "/api/v1/monitors/history?range=600")
    check(st == 400 and js["field"] == "name", (st, js))

    st, cfg = a.call("GET", "/api/v1/config")
    cfg["alerts"]["webhooks"] = [{"url": "http://127.0.0.1:%d/hook" % hook}]
    st, js = a.call("PUT", "/api/v1/config", cfg)
    check(st == 200, (st, js))
    st, js = a.call("POST", "/api/v1/alerts/test", {})
    check(st == 200, (st, js))
    wait_for("the test alert at the webhook", lambda: os.path.exists(out) and
             '\\"event\\":\\"test\\"' in open(out).read())
    alerts = a.call("GET", "/api/v1/monitors")[1]["alerts"]
    check(alerts[0]["event"] == "test", alerts[:2])

    # Certificates: a bad key is refused naming the field; a good pair is
    # stored 0600; replacing one in use reloads it.
    crt, key = h.path("c.crt"), h.path("c.key")
    def make(cn):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "3", "-subj", "/CN=" + cn], check=True, capture_output=True)
        return open(crt).read(), open(key).read()
    c1, k1 = make("one.test")
    st, js = a.call("POST", "/api/v1/certificates", {"name": "site", "cert": c1, "key": "x"})
    check(st == 400 and js["field"] == "key", (st, js))
    _, k_other = make("other.test")
    st, js = a.call("POST", "/api/v1/certificates", {"name": "site", "cert": c1, "key": k_other})
    check(st == 400 and js["field"] == "key" and "does not belong" in js["error"], (st, js))
    st, js = a.call("POST", "/api/v1/certificates", {"name": "../x", "cert": c1, "key": k1})
    check(st == 400 and js["field"] == "name", (st, js))
    st, js = a.call("POST", "/api/v1/certificates", {"name": "site", "cert": c1, "key": k1})
    check(st == 200 and not js["replaced"], (st, js))
    check(os.stat(js["key"]).st_mode & 0o777 == 0o600, oct(os.stat(js["key"]).st_mode))
    tls_port = free_port()
    st, cfg = a.call("GET", "/api/v1/config")
    cfg["listeners"].append({"address": "127.0.0.1:%d" % tls_port,
                             "tls": {"certificates": [{"cert": js["cert"], "key": js["key"]}]}})
    check(a.call("PUT", "/api/v1/config", cfg)[0] == 200)
    check(a.call("POST", "/api/v1/config/confirm", {})[0] == 200)
    def served_cn():
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_port],
                           input=b"", capture_output=True, timeout=10)
        return r.stdout.decode(errors="replace")
    check("CN = one.test" in served_cn() or "CN=one.test" in served_cn())
    certs = a.call("GET", "/api/v1/certificates")[1]["certificates"]
    check(any(c.get("subject") == "CN=one.test" for c in certs), certs)
    c2, k2 = make("two.test")
    st, js = a.call("POST", "/api/v1/certificates", {"name": "site", "cert": c2, "key": k2})
    check(st == 200 and js["replaced"], (st, js))
    wait_for("the new certificate served", lambda: "two.test" in served_cn())
