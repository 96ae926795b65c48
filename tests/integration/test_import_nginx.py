"""keel import-nginx: the configs of the usual guides and a few larger
shapes, each run by a real nginx and then by keel with the imported config,
in front of the same recording backends. The same requests (hosts, paths,
methods) go through both; status, the upstream that answered, the URI it
got and a redirect's target must agree for at least 99% of them. Writes
build/import-nginx.json. Also: bad input refused with file:line and nothing
written; certificates copied into keel's store and their keys never shown."""

import http.client
import json
import os
import re
import shutil
import subprocess

import harness
from harness import check, free_port, http_get, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "nginx")
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "build", "import-nginx.json")


def render(h, name):
    """Copies fixture NAME into the test dir with a port for every {{x}}:
    backends named "upstream.N", and {{listen}}. Returns (conf, ports)."""
    src = os.path.join(FIXTURES, name)
    dst = h.path("nginx-" + name)
    shutil.copytree(src, dst)
    ports = {}
    for dirpath, _, files in os.walk(dst):
        for fn in files:
            p = os.path.join(dirpath, fn)
            text = open(p).read()
            for key in re.findall(r"\{\{([\w.]+)\}\}", text):
                ports.setdefault(key, free_port())
            text = re.sub(r"\{\{([\w.]+)\}\}", lambda m: str(ports[m.group(1)]), text)
            open(p, "w").write(text)
    return os.path.join(dst, "nginx.conf"), ports


def corpus(conf):
    """Requests for a config: every location's path and its neighbours,
    under every server name (and an unknown one), by three methods."""
    text = ""
    for dirpath, _, files in os.walk(os.path.dirname(conf)):
        for fn in files:
            text += open(os.path.join(dirpath, fn)).read() + "\n"
    hosts = {"unknown.test", "127.0.0.1"}
    for names in re.findall(r"server_name\s+([^;]+);", text):
        for n in names.split():
            if n == "_":
                continue
            if n.startswith("*."):
                hosts.update({"a" + n[1:], "b.c" + n[1:]})
            elif n.startswith("."):
                hosts.update({n[1:], "www" + n})
            else:
                hosts.add(n)
    paths = {"/nothing/here", "/favicon.ico"}
    for mod, p in re.findall(r"location\s+(\^~|=|~\*?)?\s*([^\s{]+)\s*\{", text):
        if mod and mod.startswith("~"):
            p = p.lstrip("^")
        if p == "/":
            paths.update({"/", "/index.html", "/a/b/c?x=1"})
            continue
        paths.update({p, p + "x", p + "sub/page.html?q=1&r=2", p + "deep/er/"})
        if p.endswith("/"):
            paths.add(p.rstrip("/"))
        else:
            paths.add(p + "/sub")
    return [(m, host, path) for host in sorted(hosts) for path in sorted(paths)
            for m in ("GET", "POST", "DELETE")]


def send(port, method, host, path):
    """One request on its own connection: (status, upstream, uri, location)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = b"k=v" if method == "POST" else None
        c.request(method, path, body=body, headers={"Host": host})
        r = c.getresponse()
        data = r.read()
        backend = r.getheader("X-Backend") or ""
        uri = ""
        if backend and data.startswith(b"{"):
            uri = json.loads(data).get("target", "")
        loc = r.getheader("Location") or ""
        # nginx makes a relative redirect absolute: compare what it names
        loc = re.sub(r"^http://(127\.0\.0\.1|%s)(:%d)?/" % (re.escape(host), port), "/", loc)
        return [r.status, backend.split(".")[0], uri, loc]
    except (OSError, http.client.HTTPException) as e:
        return ["error: %s" % e.__class__.__name__, "", "", ""]
    finally:
        c.close()


def closed(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def run_nginx(h, conf, port, name):
    p = h.start(name, ["nginx", "-c", conf, "-p", os.path.dirname(conf) + "/",
                       "-e", h.path(name + ".err"),
                       "-g", "daemon off; pid %s;" % h.path(name + ".pid")],
                ready=lambda: http_get(port, "/", timeout=1).status > 0)
    return p


def base_conf(h, admin):
    return h.write("base.yaml", """node: importer
pid_file: "%s"
state_dir: "%s"
workers: { count: 1 }
monitors: { routes: false, servers: false }
admin:
  listen: ["127.0.0.1:%d"]
  tls: { enabled: false }
""" % (h.path("keel.pid"), h.path("state"), admin))


def differential(h, name):
    conf, ports = render(h, name)
    os.chmod(h.dir, 0o711)      # nginx's workers run as nobody (or the conf's user)
    backends = sorted(k for k in ports if k != "listen")
    for b in backends:
        h.start(b, ["python3", os.path.join(HERE, "backend.py"), "--port", str(ports[b]),
                    "--name", b], ready=lambda p=ports[b]: http_get(p, "/").status == 200)
    listen = ports["listen"]
    reqs = corpus(conf)

    ng = run_nginx(h, conf, listen, "nginx-" + name)
    want = [send(listen, *q) for q in reqs]
    ng.signal(15)
    ng.wait()
    wait_for("nginx to let go of its port", lambda: closed(listen))

    admin = free_port()
    base = base_conf(h, admin)
    out = h.path("keel-%s.yaml" % name)
    r = h.run_keel("import-nginx", conf, "-c", base, "-o", out)
    check(r.returncode == 0, "import of %s failed: %s" % (name, r.stderr[-2000:]))
    report = r.stderr
    for line in report.splitlines()[:-1]:
        check(re.match(r"^\S+:\d+: (mapped|approximated|not supported): ", line),
              "report line without file:line and verdict: %r" % line)
    kp = h.start("keel-" + name, [harness.KEEL, "-c", out],
                 ready=lambda: http_get(listen, "/", timeout=1).status > 0)
    got = [send(listen, *q) for q in reqs]
    kp.signal(15)
    kp.wait()
    wait_for("keel to let go of its port", lambda: closed(listen), timeout=40)

    dis = []
    for q, w, g in zip(reqs, want, got):
        if w != g:
            dis.append({"config": name, "method": q[0], "host": q[1], "path": q[2],
                        "nginx": w, "keel": g})
    # the requests reached real upstreams through both (not all 404s)
    check(sum(1 for w in want if w[1]) > len(want) // 3,
          "%s: too few requests reached a backend through nginx: %s" % (name, want[:5]))
    return len(reqs), len(reqs) - len(dis), dis


def test_differential_against_nginx(h):
    total = agree = 0
    disagreements = []
    per = {}
    for name in sorted(os.listdir(FIXTURES)):
        n, a, d = differential(h, name)
        per[name] = {"requests": n, "agree": a}
        total += n
        agree += a
        disagreements += d
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"requests": total, "agree": agree, "disagreements": disagreements}, f,
                  indent=1)
    print("per configuration: %s" % json.dumps(per))
    check(total >= 1000, "only %d requests in the corpus" % total)
    check(agree >= 0.99 * total, "keel agrees with nginx on %d of %d requests (%.2f%%); "
          "first: %s" % (agree, total, 100.0 * agree / total,
                         json.dumps(disagreements[:3])))


test_differential_against_nginx.timeout = 300


def test_bad_input_is_refused_with_file_and_line(h):
    base = base_conf(h, free_port())
    os.makedirs(h.path("bad"), exist_ok=True)
    cases = {
        "syntax.conf": ("http {\n  server {\n    listen 80;\n    location / { proxy_pass "
                        "http://127.0.0.1:1; \n  }\n",
                        r"syntax\.conf:6: unexpected end of file, expecting \"\}\""),
        "unknown.conf": ("http {\n  server {\n    listen 80;\n    proxy_pas http://x;\n  }\n}\n",
                         r"unknown\.conf:4: unknown directive \"proxy_pas\""),
        "missing.conf": ("http {\n  include conf.d/none.conf;\n}\n",
                         r"missing\.conf:2: include \".*conf\.d/none\.conf\": No such file"),
        "loop.conf": ("events {}\nhttp {\n  include loop2.conf;\n}\n",
                      r"loop2\.conf:1: include loop: .*loop2\.conf"),
        "quote.conf": ("http {\n  server {\n    server_name \"a\"b;\n  }\n}\n",
                       r"quote\.conf:3: unexpected \"b\" after a quoted string"),
        "noupstream.conf": ("http {\n  server {\n    listen 80;\n    location / {\n"
                            "      proxy_pass http://nowhere.invalid;\n    }\n  }\n}\n",
                            r"noupstream\.conf:5: host \"nowhere\.invalid\" not found"),
    }
    with open(h.path("bad/loop2.conf"), "w") as f:
        f.write("include loop2.conf;\n")
    for fn, (text, want) in cases.items():
        p = h.path("bad/" + fn)
        with open(p, "w") as f:
            f.write(text)
        out = h.path("bad/" + fn + ".yaml")
        r = h.run_keel("import-nginx", p, "-c", base, "-o", out)
        check(r.returncode == 1, "%s: exit %d, want 1: %s" % (fn, r.returncode, r.stderr))
        check(re.search(want, r.stderr), "%s: want /%s/ in: %s" % (fn, want, r.stderr))
        check("nothing written" in r.stderr, "%s: %s" % (fn, r.stderr))
        check(not os.path.exists(out), "%s: output written for a bad config" % fn)
        check(r.stdout == "", "%s: printed a config: %s" % (fn, r.stdout[:200]))


def test_certificates_copied_keys_never_shown(h):
    admin = free_port()
    base = base_conf(h, admin)
    d = h.path("tls")
    os.makedirs(d)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=app.example.com", "-keyout", d + "/app.key", "-out", d + "/app.crt"],
                   check=True, capture_output=True)
    key = open(d + "/app.key").read()
    port, plain, up = free_port(), free_port(), h.http_backend("app")
    conf = h.write("tls/nginx.conf", """events {}
http {
    server {
        listen 127.0.0.1:%d;
        server_name app.example.com;
        return 301 https://$host$request_uri;
    }
    server {
        listen 127.0.0.1:%d ssl;
        server_name app.example.com;
        ssl_certificate %s/app.crt;
        ssl_certificate_key %s/app.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        add_header Strict-Transport-Security "max-age=31536000" always;
        location / { proxy_pass http://127.0.0.1:%d; proxy_set_header Host $host; }
    }
}
""" % (plain, port, d, d, up))
    out = h.path("tls.yaml")
    r = h.run_keel("import-nginx", conf, "-c", base, "-o", out)
    check(r.returncode == 0, r.stderr)
    body = key.split("-----")[2].strip().splitlines()[0]
    for text in (r.stdout, r.stderr, open(out).read()):
        check(body not in text, "the private key was shown")
    state = h.path("state") + "/certs"
    check(os.path.exists(state + "/nginx-app.key"), os.listdir(state))
    check(os.stat(state + "/nginx-app.key").st_mode & 0o077 == 0, "key readable by others")
    check(open(state + "/nginx-app.key").read() == key, "key copied wrongly")
    y = open(out).read()
    check("https_redirect: true" in y and "hsts: 365d" in y, y)
    h.start("keel", [harness.KEEL, "-c", out],
            ready=lambda: http_get(port, "/", tls=True, timeout=1).status > 0)
    rr = http_get(plain, "/x?y=1", headers={"Host": "app.example.com"})
    check(rr.status == 301 and rr.headers.get("location", "").startswith("https://app.example.com"),
          "plain HTTP not redirected: %d %s" % (rr.status, rr.headers))
    rr = http_get(port, "/x", headers={"Host": "app.example.com"}, tls=True)
    check(rr.status == 200 and rr.json()["target"] == "/x", "HTTPS not proxied: %d" % rr.status)
    check("max-age=31536000" in rr.headers.get("strict-transport-security", ""), rr.headers)


def test_upload_through_the_api_reports_and_applies_as_a_revision(h):
    """POST /api/v1/import/nginx (the UI's upload): the report, the keel
    configuration it becomes with secrets masked, nothing applied; then PUT
    /api/v1/config/yaml applies it as a revision and the routes work. A
    bad upload gets 400 with every error as nginx.conf:LINE."""
    import test_api
    front, admin, k, _ = test_api.start(h, backends=1)
    a, _ = test_api.setup(k, admin)
    a1, a2 = h.http_backend("app_a.1"), h.http_backend("app_a.2")
    before = test_api.current(a)["id"]
    conf = """include mime.types;
http {
    upstream app_a {
        server 127.0.0.1:%d max_fails=30 fail_timeout=20s;
        server 127.0.0.1:%d max_fails=30 fail_timeout=20s;
    }
    server {
        listen 127.0.0.1:%d;
        gzip on;
        location ^~ /app_a/ { proxy_pass http://app_a/; proxy_set_header Host $host; }
        location = /ping { return 200 "pong"; }
    }
}
""" % (a1, a2, front)
    octet = {"Content-Type": "application/octet-stream"}
    st, js = a.call("POST", "/api/v1/import/nginx", conf, headers=octet)
    check(st == 200, (st, js))
    verdicts = {(e["line"], e["directive"].split()[0]): e["verdict"] for e in js["report"]}
    check(verdicts[(1, "include")] == "not supported", js["report"][:3])
    check(verdicts[(9, "gzip")] == "not supported", verdicts)
    check(verdicts[(10, "location")] == "mapped", verdicts)
    check(all(e["file"] == "nginx.conf" for e in js["report"]), js["report"][:2])
    y = js["config"]
    check("app_a:" in y and 'rewrite: "strip"' in y and 'return_body: "pong"' in y, y)
    check('metrics_token: "(secret)"' in y, y)                          # masked
    check(test_api.current(a)["id"] == before, "the upload applied something")
    _, audit = a.call("GET", "/api/v1/audit")
    check(any(e["action"] == "command" and "config.import-nginx: 200" in e["detail"]
              for e in audit), audit[:3])

    st, r = a.call("PUT", "/api/v1/config/yaml?comment=from+nginx", y,
                   headers={"Content-Type": "application/yaml"})
    check(st == 200, (st, r))
    if "confirm" in r:
        a.call("POST", "/api/v1/config/confirm", {})
    check(test_api.current(a)["comment"] == "from nginx", test_api.current(a))
    rr = wait_for("the imported route", lambda: (lambda x: x if x.status == 200 else None)(
        http_get(front, "/app_a/x?q=1")))
    check(rr.json()["target"] == "/x?q=1" and rr.json()["server"].startswith("app_a"), rr.body)
    rr = http_get(front, "/ping")
    check(rr.status == 200 and rr.body == "pong", (rr.status, rr.body))

    bad = "http {\n  server {\n    listen 80;\n    proxy_pas http://x;\n  }\n}\n"
    st, js = a.call("POST", "/api/v1/import/nginx", bad, headers=octet)
    check(st == 400 and js["errors"] == ['nginx.conf:4: unknown directive "proxy_pas"'], (st, js))
    st, js = a.call("POST", "/api/v1/import/nginx", "", headers=octet)
    check(st == 400, (st, js))
    check(test_api.current(a)["comment"] == "from nginx", "a bad upload applied something")
