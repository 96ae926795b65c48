"""The admin side under attack, each attack against a real keel on loopback
(real Redis where sessions are shared): sessions forged in Redis, deeply
nested JSON, secrets in YAML answers and kept secrets following a new
target, files and state directory readable by others, parallel password
guesses and lockouts from elsewhere, a password change without the current
password, bodies buffered before the session check, slowloris, and
cross-site forms on login and setup."""

import hashlib
import http.client
import json
import os
import secrets
import socket
import stat
import threading
import time

import harness
from harness import check, free_port, http_get, wait_for
import test_api
from test_api import Admin, PASSWORD, setup
from test_proxy import yaml_conf


def start(h, extra_admin="", extra="", state_dir=None, name="keel"):
    be = h.http_backend("b0")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"u": [be]}, [{"path": "/", "upstream": "u"}], extra=extra)
    if extra_admin:
        text = text.replace("  tls: { enabled: false }\n",
                            "  tls: { enabled: false }\n" + extra_admin)
    if state_dir is not None:
        text = 'state_dir: "%s"\n' % state_dir + text
    k = h.keel(text, name=name, wait_port=admin)
    return admin, k


def post_from(src, port, path, body, headers=None, timeout=15):
    """A request from the loopback address src (127.0.0.2, ...)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        hd = {"Content-Type": "application/json"}
        hd.update(headers or {})
        c.request("POST", path, body=json.dumps(body), headers=hd)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace"), r
    finally:
        c.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- 1. sessions forged through Redis ----

def redis_lines(port):
    return "redis:\n  nodes: [\"127.0.0.1:%d\"]\n" % port


def test_session_forged_in_redis_is_refused(h):
    """An app that can write to keel's Redis SETs a session record (the old,
    unsigned format, and one with a made-up signature) for the admin and
    PUBLISHes it: the cookie is refused, and keel says why."""
    r = h.redis()
    admin, k = start(h, extra=redis_lines(r))
    a, _ = setup(k, admin)
    wait_for("the real session in Redis",
             lambda: "keel:kv:session:" in harness.redis_cmd(r, "KEYS", "keel:kv:session:*"))
    check(os.stat(h.path("state/session.key")).st_mode & 0o777 == 0o600)
    for n, sig in enumerate(("", "\t" + "ab" * 32)):
        token = secrets.token_hex(32)
        key = "session:" + hashlib.sha256(token.encode()).hexdigest()
        val = "admin\t127.0.0.1\t%s\t%d%s" % ("c" * 64, int(time.time() * 1000), sig)
        check(harness.redis_cmd(r, "SET", "keel:kv:" + key, val, "PX", "3600000") == "+OK")
        harness.redis_cmd(r, "PUBLISH", "keel:kv", key)
        eve = Admin(admin)
        eve.cookie, eve.csrf = "keel_session=" + token, "c" * 64
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            st, js = eve.call("GET", "/api/v1/status")
            check(st == 401, "forged record %d gave a session: %s" % (n, st))
            st, js = eve.call("POST", "/api/v1/users", {"name": "eve", "password": "x" * 12})
            check(st == 401, "forged record %d added a user: %s %s" % (n, st, js))
            time.sleep(0.1)
    k.wait_log(r"shared session record \w+\.\.\. is not signed; refused")
    k.wait_log(r"shared session record \w+\.\.\. has a wrong signature")
    check(a.call("GET", "/api/v1/status")[0] == 200, "the real session still works")


def test_sessions_shared_by_gateways_with_one_key_and_the_same_users(h):
    """Two gateways on one Redis sharing admin.session_key_file: a session
    of A works on B once B has the same user, and not before."""
    r = h.redis()
    keyfile = h.path("shared-session.key")
    extra_admin = '  session_key_file: "%s"\n' % keyfile
    a_admin, ka = start(h, extra_admin=extra_admin, extra=redis_lines(r))
    b_admin, kb = start(h, extra_admin=extra_admin, extra=redis_lines(r),
                        state_dir=h.path("state-b"), name="keel-b")
    check(os.stat(keyfile).st_mode & 0o777 == 0o600)
    a, _ = setup(ka, a_admin)
    b = Admin(b_admin)
    b.cookie, b.csrf = a.cookie, a.csrf
    wait_for("B to refuse A's session: no such user there",
             lambda: b.call("GET", "/api/v1/status")[0] == 401 and
             "no such user here" in kb.log())
    setup(kb, b_admin)          # the same user on B
    b.cookie, b.csrf = a.cookie, a.csrf
    wait_for("A's session on B", lambda: b.call("GET", "/api/v1/status")[0] == 200, timeout=5)
    check(b.call("POST", "/api/v1/logout", {})[0] == 200)
    wait_for("the session to end on A", lambda: a.call("GET", "/api/v1/status")[0] == 401)


# ---- 2. deeply nested JSON ----

def test_deeply_nested_json_is_refused_before_parsing(h):
    admin, k = start(h)
    a, _ = setup(k, admin)
    deep = "[" * 80000 + "]" * 80000            # 160 KB: 14.6 s in libyaml
    t0 = time.monotonic()
    r = http_get(admin, "/api/v1/login", method="POST", body=deep,
                 headers={"Content-Type": "application/json"}, timeout=30)
    check(r.status == 413, (r.status, r.body[:200]))       # login takes 4 KiB at most
    small = '{"user":' * 1000 + '"x"' + "}" * 1000           # 4 KB, 1000 levels
    r = http_get(admin, "/api/v1/login", method="POST", body=small[:4000],
                 headers={"Content-Type": "application/json"}, timeout=30)
    check(r.status == 400, (r.status, r.body[:200]))
    # A logged-in admin's config body is bounded in depth too.
    st, js = a.call("PUT", "/api/v1/config", deep)
    check(st == 400 and "deeper" in js["error"], (st, js))
    st, js = a.call("PUT", "/api/v1/config/yaml", "a: " + deep,
                    headers={"Content-Type": "application/yaml"})
    check(st == 400, (st, js))
    took = time.monotonic() - t0
    check(took < 3, "the deep bodies took %.1f s" % took)
    check(http_get(admin, "/healthz").status == 200)


# ---- 3. secrets in every answer, kept secrets bound to their target ----

def test_secrets_masked_everywhere_and_kept_only_for_their_target(h):
    hook = free_port()
    admin, k = start(h)
    a, _ = setup(k, admin)
    st, cfg = a.call("GET", "/api/v1/config")
    cfg["alerts"]["webhooks"] = [{"url": "http://127.0.0.1:%d/hook" % hook,
                                  "secret": "hook-secret-4711"}]
    cfg["alerts"]["email"]["server"] = "127.0.0.1:2525"
    cfg["alerts"]["email"]["user"] = "ops"
    cfg["alerts"]["email"]["password"] = "smtp-secret-0815"
    st, js = a.call("PUT", "/api/v1/config", cfg)
    check(st == 200, (st, js))
    rev = js["revision"]
    words = ("hook-secret-4711", "smtp-secret-0815", harness.METRICS_TOKEN)
    st, yaml = a.call("GET", "/api/v1/config/yaml")
    check(st == 200 and "(secret)" in yaml, yaml)
    st, one = a.call("GET", "/api/v1/revisions/%d" % rev)
    st, diff = a.call("GET", "/api/v1/revisions/diff?from=1&to=%d" % rev)
    st, conf = a.call("GET", "/api/v1/config")
    for name, text in (("yaml", yaml), ("revision", one["yaml"]), ("diff", diff["diff"]),
                       ("json", json.dumps(conf))):
        for w in words:
            check(w not in text, "%s shows %s" % (name, w))
    # The masked YAML goes back as it is: the secrets stay.
    st, js = a.call("PUT", "/api/v1/config/yaml", yaml,
                    headers={"Content-Type": "application/yaml"})
    check(st == 200, (st, js))
    with open(h.path("keel.yaml")) as f:
        text = f.read()
    check(all(w in text for w in words), "the file keel runs from keeps the secrets")
    # A kept secret does not follow a new target.
    st, cfg = a.call("GET", "/api/v1/config")
    moved = json.loads(json.dumps(cfg))
    moved["alerts"]["webhooks"][0]["url"] = "http://127.0.0.1:%d/elsewhere" % free_port()
    st, js = a.call("PUT", "/api/v1/config", moved)
    check(st == 400 and js["field"] == "alerts.webhooks[0].secret", (st, js))
    moved = json.loads(json.dumps(cfg))
    moved["alerts"]["email"]["server"] = "127.0.0.1:%d" % free_port()
    st, js = a.call("PUT", "/api/v1/config", moved)
    check(st == 400 and js["field"] == "alerts.email.password", (st, js))
    # Reordered webhooks: the secret stays with its URL, not its position.
    two = json.loads(json.dumps(cfg))
    two["alerts"]["webhooks"].insert(0, {"url": "http://127.0.0.1:%d/new" % free_port()})
    two["alerts"]["webhooks"][1]["secret"] = "(secret)"
    st, js = a.call("PUT", "/api/v1/config", two)
    check(st == 400 and js["field"] == "alerts.webhooks[1].secret", (st, js))
    # With the secret given again, the new target is taken.
    moved["alerts"]["email"]["password"] = "another-0816"
    st, js = a.call("PUT", "/api/v1/config", moved)
    check(st == 200, (st, js))


# ---- 4. files and the state directory ----

def test_state_files_are_private_and_an_open_state_dir_is_fixed(h):
    state = h.path("state")
    os.makedirs(state)
    os.chmod(state, 0o755)
    admin, k = start(h)
    os.chmod(h.path("keel.yaml"), 0o644)
    check(stat.S_IMODE(os.stat(state).st_mode) == 0o700, oct(os.stat(state).st_mode))
    k.wait_log(r"state directory .* was open to other users \(mode 755\); made it 700")
    a, _ = setup(k, admin)
    st, cfg = a.call("GET", "/api/v1/config")
    cfg["upstreams"]["u"]["keepalive"] = 7
    check(a.call("PUT", "/api/v1/config", cfg)[0] == 200)
    for f in ("keel.yaml", "state/config.db", "state/session.key"):
        mode = stat.S_IMODE(os.stat(h.path(f)).st_mode)
        check(mode & 0o077 == 0, "%s is mode %o" % (f, mode))
    with open(h.path("keel.yaml")) as f:
        check(harness.METRICS_TOKEN in f.read())


# ---- 5. login lockout ----

def test_parallel_guesses_are_counted_before_the_hash(h):
    """16 guesses at once from one address: one is checked at a time, and
    the failures count before each hash, so at most 5 are ever checked."""
    admin, k = start(h)
    setup(k, admin)
    out = []

    def guess(i):
        try:
            st, body, _ = post_from("127.0.0.1", admin, "/api/v1/login",
                                    {"user": "admin", "password": "guess %d" % i})
            out.append(st)
        except OSError as e:
            out.append(str(e))
    for rnd in range(3):
        ts = [threading.Thread(target=guess, args=(rnd * 16 + i,)) for i in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    checked = out.count(401)
    check(all(s in (401, 429) for s in out), out)
    check(1 <= checked <= 5, "%d of %d guesses were checked: %s" % (checked, len(out), out))


def test_a_lockout_from_elsewhere_does_not_lock_out_a_known_address(h):
    admin, k = start(h)
    setup(k, admin)
    st, _, _ = post_from("127.0.0.1", admin, "/api/v1/login",
                         {"user": "admin", "password": PASSWORD})
    check(st == 200, st)
    got = [post_from("127.0.0.2", admin, "/api/v1/login",
                     {"user": "admin", "password": "wrong %d" % i})[0] for i in range(8)]
    check(got[:5] == [401] * 5 and 429 in got[5:], got)
    # The user is locked for addresses it never logged in from...
    check(post_from("127.0.0.3", admin, "/api/v1/login",
                    {"user": "admin", "password": PASSWORD})[0] == 429)
    # ...but not for the one it did.
    st, body, _ = post_from("127.0.0.1", admin, "/api/v1/login",
                            {"user": "admin", "password": PASSWORD})
    check(st == 200, (st, body))


# ---- 6. changing one's own password ----

def test_changing_the_password_needs_the_current_one(h):
    admin, k = start(h)
    a, _ = setup(k, admin)
    st, js = a.call("POST", "/api/v1/password", {"password": "a new long password"})
    check(st == 400 and js["field"] == "current", (st, js))
    st, js = a.call("POST", "/api/v1/password", {"current": "not it at all",
                                                 "password": "a new long password"})
    check(st == 403 and js["field"] == "current", (st, js))
    check(Admin(admin).login()[0] == 200, "the old password still works")
    st, js = a.call("POST", "/api/v1/password", {"current": PASSWORD,
                                                 "password": "a new long password"})
    check(st == 200, (st, js))
    check(Admin(admin).login()[0] == 401)
    check(Admin(admin).login(password="a new long password")[0] == 200)


# ---- 7. bodies refused on the head ----

def test_bodies_without_a_session_are_refused_before_they_are_read(h):
    admin, k = start(h)
    setup(k, admin)
    before = rss_kb(k.pid)
    socks = []
    chunk = b"x" * 65536
    for i in range(60):      # from 10 addresses: under admin.max_connections_per_ip
        s = socket.create_connection(("127.0.0.1", admin), timeout=5,
                                     source_address=("127.0.1.%d" % (1 + i % 10), 0))
        s.sendall(b"PUT /api/v1/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 4000000\r\n\r\n")
        socks.append(s)
    for s in socks:
        got = s.recv(4096)
        check(got.startswith(b"HTTP/1.1 401"), got[:60])
        try:
            for _ in range(64):          # 4 MB: the server must not be taking it
                s.sendall(chunk)
        except OSError:
            pass
    time.sleep(0.3)
    grew = rss_kb(k.pid) - before
    for s in socks:
        s.close()
    check(grew < 20000, "the master grew by %d kB" % grew)
    check(http_get(admin, "/healthz").status == 200)


# ---- 8. slowloris ----

def test_slow_heads_are_cut_and_one_address_cannot_take_every_connection(h):
    admin, k = start(h, extra_admin="  head_timeout: 2s\n  max_connections_per_ip: 8\n")
    drip = []
    for i in range(64):
        try:
            s = socket.create_connection(("127.0.0.1", admin), timeout=2,
                                         source_address=("127.0.0.2", 0))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            drip.append(s)
        except OSError:
            pass
    stop = time.monotonic() + 4
    t0 = time.monotonic()
    healthy = 0
    while time.monotonic() < stop:
        for s in drip:
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
        try:
            healthy += http_get(admin, "/healthz", timeout=1).status == 200
        except OSError:
            pass
        time.sleep(0.5)
    check(healthy >= 6, "/healthz answered %d times in 4 s" % healthy)
    open_now = 0
    for s in drip:
        try:
            s.settimeout(0.2)
            s.sendall(b"X-Slow: 1\r\n")
            if s.recv(1) != b"":
                open_now += 1
        except socket.timeout:
            open_now += 1
        except OSError:
            pass
        s.close()
    check(open_now == 0, "%d slow heads still open after %.1f s" % (open_now, time.monotonic() - t0))
    k.wait_log(r"127\.0\.0\.2 already holds 8 admin connections")
    k.wait_log(r"127\.0\.0\.2: request head not complete after 2000 ms; closed")


# ---- 10. content types and HSTS ----

def test_login_and_setup_take_only_json_and_https_answers_carry_hsts(h):
    admin, k = start(h)
    token = k.wait_log(r"setup\?token=([0-9a-f]{32})").group(1)
    form = "token=%s&user=eve&password=%s" % (token, "x" * 12)
    for path, body in (("/api/v1/setup", form), ("/api/v1/login", "user=admin&password=x")):
        for ctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
                      None):
            hd = {"Content-Type": ctype} if ctype else {}
            r = http_get(admin, path, method="POST", body=body, headers=hd)
            check(r.status == 415, "%s as %s: %s %s" % (path, ctype, r.status, r.body))
    check(Admin(admin).call("GET", "/api/v1/setup")[1] == {"setup": True}, "setup not done")
    check("strict-transport-security" not in http_get(admin, "/healthz").headers)

    be = h.http_backend("b1")
    front2, admin2 = free_port(), free_port()
    text = yaml_conf(front2, admin2, {"u": [be]}, [{"path": "/", "upstream": "u"}])
    text = text.replace("tls: { enabled: false }", "confirm_timeout: 30s")
    h.keel('state_dir: "%s"\n' % h.path("state2") + text, name="keel2", wait_port=admin2,
           admin_tls=True)
    for path in ("/healthz", "/", "/api/v1/setup", "/api/v1/status"):
        r = http_get(admin2, path, tls=True)
        check("max-age=" in r.headers.get("strict-transport-security", ""), (path, r.headers))
