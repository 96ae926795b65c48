"""TLS with real clients (curl, openssl s_client, Python's ssl, testssl.sh):
HTTPS listeners with SNI among several certificates, TLS 1.2 and 1.3 only
with modern suites, ALPN, session resumption across workers, bodies both
ways, HTTP -> HTTPS redirects and HSTS, certificates replaced by a reload
without dropping connections, and the admin server's self-signed HTTPS."""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time

from harness import check, free_port, http_get, raw_request, wait_for
from test_proxy import yaml_conf


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "openssl %s: %s" % (" ".join(args), r.stderr[-500:]))
    return r.stdout


def make_ca(h):
    """A test CA, so clients verify keel's certificates for real."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=keel test CA",
            cwd=h.dir)
    return h.path("ca.crt")


def make_cert(h, name, sans, rsa=False, tag=""):
    """A certificate for sans signed by the test CA; returns (cert, key)."""
    base = name + tag
    key = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt",
                                               "ec_paramgen_curve:P-256"]
    openssl("req", *key, "-nodes", "-keyout", base + ".key", "-out", base + ".csr",
            "-subj", "/CN=" + name, cwd=h.dir)
    h.write(base + ".ext", "subjectAltName=" + ",".join(s if s.startswith("IP:") else "DNS:" + s
                                                        for s in sans) + "\n")
    openssl("x509", "-req", "-in", base + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", base + ".ext", "-out", base + ".crt",
            cwd=h.dir)
    return h.path(base + ".crt"), h.path(base + ".key")


def tls_listener(front, pairs, extra=""):
    certs = "".join("\n        - { cert: %s, key: %s }" % p for p in pairs)
    return ("  - address: \"127.0.0.1:%d\"\n    tls:\n      certificates:%s\n%s"
            % (front, certs, extra))


def start_https(h, pairs, routes=None, workers=1, extra=""):
    """keel with a plain listener and an HTTPS one in front of one backend."""
    be = h.http_backend("be")
    plain, front, admin = free_port(), free_port(), free_port()
    text = yaml_conf(plain, admin, {"u": [be]}, routes or [{"path": "/", "upstream": "u"}])
    text = text.replace("listeners:\n", "listeners:\n" + tls_listener(front, pairs), 1)
    text = text.replace("workers: { count: 1 }", "workers: { count: %d }" % workers)
    k = h.keel(text + extra, wait_port=admin)
    return plain, front, admin, k, text + extra


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True,
                          timeout=timeout)


def s_client(port, *args, name=None):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-brief"]
    if name:
        argv += ["-servername", name]
    return subprocess.run(argv + list(args), input="", capture_output=True, text=True,
                          timeout=20)


def peer_subject(port, name):
    r = s_client(port, name=name)
    m = re.search(r"Peer certificate: (.*)", r.stdout + r.stderr)
    check(m, "no peer certificate from s_client:\n" + r.stderr[-800:])
    return m.group(1)


def test_https_listener_picks_the_certificate_by_sni(h):
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    b = make_cert(h, "b.test", ["b.test", "*.b.test"], rsa=True)
    plain, front, admin, k, _ = start_https(h, [a, b])
    for host in ("a.test", "b.test", "x.b.test"):
        r = curl("--cacert", ca, "--resolve", "%s:%d:127.0.0.1" % (host, front),
                 "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                 "https://%s:%d/" % (host, front))
        check(r.stdout == "200 0", "%s: %s %s" % (host, r.stdout, r.stderr))
    check("CN = a.test" in peer_subject(front, "a.test") or
          "CN=a.test" in peer_subject(front, "a.test"))
    check("b.test" in peer_subject(front, "x.b.test"))
    # No SNI, or a name no certificate has: the first certificate.
    check("a.test" in peer_subject(front, None))
    check("a.test" in peer_subject(front, "y.x.b.test"))
    # The plain listener next to it still speaks plain HTTP.
    check(http_get(plain, "/").status == 200)


def test_tls12_and_13_with_alpn_and_forwarded_proto(h):
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    plain, front, admin, k, _ = start_https(h, [a])
    url = "https://a.test:%d/" % front
    res = ["--cacert", ca, "--resolve", "a.test:%d:127.0.0.1" % front]
    for ver, flags in (("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
                       ("TLSv1.3", ["--tlsv1.3"])):
        r = curl(*res, *flags, "-v", url)
        check("SSL connection using %s" % ver in r.stderr, r.stderr[-1500:])
        check("ALPN: server accepted http/1.1" in r.stderr, r.stderr[-1500:])
        info = json.loads(r.stdout)
        headers = {k.lower(): v for k, v in info["headers"]}
        check(headers["x-forwarded-proto"] == "https", headers)
    # A client that offers only h2 still gets HTTP/1.1 or a clean refusal,
    # never a hang.
    r = curl(*res, "--http2-prior-knowledge", "-m", "5", url)
    check(r.returncode in (0, 16, 35, 56, 92), (r.returncode, r.stderr))


def test_old_protocols_and_weak_ciphers_are_refused(h):
    make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    b = make_cert(h, "b.test", ["b.test"], rsa=True)
    plain, front, admin, k, _ = start_https(h, [a, b])
    check(s_client(front, "-tls1_2").returncode == 0)
    for args in (["-tls1_1"], ["-tls1"],
                 ["-tls1_2", "-cipher", "AES128-SHA"],               # no forward secrecy
                 ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256"],  # CBC
                 ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA"],
                 ["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256"]):
        r = s_client(front, *args, name="b.test")
        check(r.returncode != 0, "accepted %s:\n%s" % (args, r.stdout[-500:]))
    k.wait_log(r"TLS: handshake")
    # Plain HTTP on the HTTPS port: a readable 400, then the close.
    r = raw_request(front, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 400 "), r[:100])
    # Garbage instead of a ClientHello: closed, and keel goes on.
    s = socket.create_connection(("127.0.0.1", front), timeout=5)
    s.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(200))
    closed = False
    try:
        while not closed:
            closed = s.recv(4096) == b""     # an alert may come first
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass
    s.close()
    check(closed, "keel kept a connection open after a garbage ClientHello")
    check(s_client(front, "-tls1_3").returncode == 0)


def test_sessions_resume_on_any_worker(h):
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    plain, front, admin, k, _ = start_https(h, [a], workers=2)
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.maximum_version = version
        session, reused, peers = None, 0, set()
        for i in range(12):
            raw = socket.create_connection(("127.0.0.1", front), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="a.test", session=session)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            check(b" 200 " in data.split(b"\r\n")[0], data[:200])
            reused += s.session_reused
            session = s.session
            s.close()
        check(reused == 11, "%s: %d of 11 reconnects resumed" % (version, reused))


def test_a_connection_closed_after_a_response_ends_with_close_notify(h):
    """A TLS client takes an end without close_notify for truncation (Python
    raises with suppress_ragged_eofs off; OpenSSL then will not resume):
    keel sends it when a response ends the connection and when an idle
    keep-alive connection times out."""
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    plain, front, admin, k, _ = start_https(
        h, [a], routes=[{"path": "/", "upstream": "u", "idle_timeout": "1s"}])
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        for close in (True, False):
            ctx = ssl.create_default_context(cafile=ca)
            ctx.maximum_version = version
            raw = socket.create_connection(("127.0.0.1", front), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="a.test", suppress_ragged_eofs=False)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n%s\r\n"
                      % (b"Connection: close\r\n" if close else b""))
            data = b""
            try:
                while True:        # keep-alive: until the 1 s idle timeout
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ssl.SSLEOFError as e:
                check(False, "%s, %s: the connection ended without close_notify (%s)"
                      % (version, "close" if close else "idle timeout", e))
            check(b" 200 " in data.split(b"\r\n")[0], data[:200])
            s.close()


def test_big_bodies_both_ways_over_tls(h):
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    plain, front, admin, k, _ = start_https(h, [a], routes=[
        {"path": "/", "upstream": "u", "max_body": "10m"}])
    res = ["--cacert", ca, "--resolve", "a.test:%d:127.0.0.1" % front]
    size = 20 * 1000 * 1000
    r = subprocess.run(["curl", "-sS", *res, "https://a.test:%d/_big/%d" % (front, size)],
                       capture_output=True, timeout=60)
    check(r.returncode == 0 and r.stdout == b"x" * size, "got %d bytes" % len(r.stdout))
    # Slowly read: backpressure through TLS.
    r = subprocess.run(["curl", "-sS", *res, "--limit-rate", "4M",
                        "https://a.test:%d/_big/%d" % (front, 8 * 1000 * 1000)],
                       capture_output=True, timeout=60)
    check(len(r.stdout) == 8 * 1000 * 1000)
    body = os.urandom(5 * 1000 * 1000)
    path = h.path("upload.bin")
    with open(path, "wb") as f:
        f.write(body)
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        r = curl(*res, "--data-binary", "@" + path, *extra, "https://a.test:%d/up" % front)
        info = json.loads(r.stdout)
        check(info["body_len"] == len(body), info["body_len"])
    # Pipelined requests in one TLS record come back in order.
    ctx = ssl.create_default_context(cafile=ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", front), timeout=5),
                        server_hostname="a.test")
    s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(5)))
    data = b""
    while data.count(b"HTTP/1.1 200") < 5:
        chunk = s.recv(65536)
        check(chunk, "connection closed after %r" % data[-200:])
        data += chunk
    order = [int(m) for m in re.findall(rb'"target": "/p(\d)"', data)]
    check(order == [0, 1, 2, 3, 4], order)
    s.close()


def test_https_redirect_and_hsts(h):
    ca = make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    be = h.http_backend("be")
    plain, front, admin = free_port(), free_port(), free_port()
    text = yaml_conf(plain, admin, {"u": [be]},
                     [{"path": "/", "upstream": "u", "https_redirect": True,
                       "https_port": front, "hsts": "365d"}])
    text = text.replace("listeners:\n", "listeners:\n" + tls_listener(front, [a]), 1)
    h.keel(text, wait_port=admin)
    r = http_get(plain, "/app/x?y=1", headers={"Host": "a.test:%d" % plain})
    check(r.status == 301, r.status)
    check(r.headers["location"] == "https://a.test:%d/app/x?y=1" % front, r.headers)
    r = http_get(plain, "/form", method="POST", headers={"Host": "a.test"}, body=b"k=v")
    check(r.status == 308 and r.headers["location"] == "https://a.test:%d/form" % front,
          (r.status, r.headers))
    ctx = ssl.create_default_context(cafile=ca)
    r = http_get(front, "/", host="127.0.0.1", headers={"Host": "a.test"},
                 tls=ctx_for(ctx))
    check(r.status == 200, r.status)
    check(r.headers.get("strict-transport-security") == "max-age=31536000", r.headers)


def ctx_for(ctx):
    """Python checks the name against the connect host (127.0.0.1): keep
    the CA check, skip only the name, which other tests cover with curl."""
    ctx.check_hostname = False
    return ctx


def fingerprint(port, name):
    r = subprocess.run("openssl s_client -connect 127.0.0.1:%d -servername %s </dev/null "
                       "2>/dev/null | openssl x509 -noout -fingerprint -sha256" % (port, name),
                       shell=True, capture_output=True, text=True, timeout=20)
    return r.stdout.strip()


def test_certificates_are_replaced_by_reload_without_dropping_connections(h):
    ca = make_ca(h)
    crt, key = make_cert(h, "a.test", ["a.test"])
    plain, front, admin, k, text = start_https(h, [(crt, key)])
    before = fingerprint(front, "a.test")
    ctx = ctx_for(ssl.create_default_context(cafile=ca))
    c = http.client.HTTPSConnection("127.0.0.1", front, context=ctx, timeout=10)
    c.request("GET", "/one", headers={"Host": "a.test"})
    check(c.getresponse().read() and True)

    # New files in place, then a reload.
    new_crt, new_key = make_cert(h, "a.test", ["a.test"], tag="-new")
    shutil.copy(new_crt, crt)
    shutil.copy(new_key, key)
    k.signal(signal.SIGHUP)
    wait_for("generation 2",
             lambda: http_get(admin, "/healthz").json()["config_generation"] == 2)
    # The open connection still works (and is told to close afterwards).
    c.request("GET", "/two", headers={"Host": "a.test"})
    r = c.getresponse()
    check(r.status == 200 and json.loads(r.read())["target"] == "/two")
    c.close()
    wait_for("new certificate", lambda: fingerprint(front, "a.test") not in ("", before))

    # A broken certificate is refused and the running one stays.
    with open(crt, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    served = fingerprint(front, "a.test")
    k.signal(signal.SIGHUP)
    k.wait_log(r"listeners\[0\]\.tls\.certificates\[0\]: certificate .*a\.test\.crt")
    time.sleep(0.5)
    check(http_get(admin, "/healthz").json()["config_generation"] == 2)
    check(fingerprint(front, "a.test") == served)


def test_admin_server_makes_a_self_signed_certificate(h):
    port = free_port()
    conf = "node: box-1\nadmin:\n  listen: [\"127.0.0.1:%d\"]\n" % port
    k = h.keel(conf, wait_port=port, admin_tls=True)
    logged = k.wait_log(r"admin certificate .*admin\.crt, SHA-256 fingerprint ([0-9A-F:]{95})"
                        ).group(1)
    crt, key = h.path("state/admin.crt"), h.path("state/admin.key")
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, oct(os.stat(key).st_mode))
    served = fingerprint(port, "box-1")
    check(served.endswith(logged), "%s vs %s" % (served, logged))
    text = openssl("x509", "-in", crt, "-noout", "-text", cwd=h.dir)
    check("ASN1 OID: prime256v1" in text and "DNS:box-1" in text, text[:1500])
    check(http_get(port, "/healthz", tls=True).json()["node"] == "box-1")
    # Plain HTTP on the admin port gets no admin page.
    try:
        r = http_get(port, "/healthz", timeout=3)
        check(False, "plain HTTP answered %s" % r.status)
    except (OSError, http.client.HTTPException):
        pass
    # A restart keeps the same certificate.
    k.signal(signal.SIGTERM)
    k.wait()
    k = h.keel(conf, wait_port=port, admin_tls=True, name="keel2")
    check(fingerprint(port, "box-1") == served)


def test_testssl_finds_no_weak_protocol_or_cipher(h):
    tool = shutil.which("testssl") or shutil.which("testssl.sh")
    check(tool, "testssl.sh is not installed (tests/setup.sh installs it)")
    make_ca(h)
    a = make_cert(h, "a.test", ["a.test"])
    b = make_cert(h, "b.test", ["b.test"], rsa=True)
    plain, front, admin, k, _ = start_https(h, [a, b])
    out = h.path("testssl.json")
    r = subprocess.run([tool, "--quiet", "--color", "0", "--warnings", "off", "--ip", "one",
                        "--nodns", "min", "-p", "-s", "-f", "-U", "--jsonfile", out,
                        "127.0.0.1:%d" % front], capture_output=True, text=True, timeout=600)
    check(os.path.exists(out), "testssl.sh wrote nothing:\n" + r.stdout[-2000:])
    with open(out) as f:
        findings = json.load(f)
    bad = [x for x in findings if x.get("severity") in ("LOW", "MEDIUM", "HIGH", "CRITICAL")]
    check(not bad, "testssl.sh findings:\n" + "\n".join(
        "%s %s: %s" % (x["severity"], x["id"], x["finding"]) for x in bad))
    ids = {x["id"]: x["finding"] for x in findings}
    check("not offered" in ids.get("TLS1_1", "") and "offered" in ids.get("TLS1_3", ""), ids)


def tls_backend(h, name, cert, key):
    port = free_port()
    h.start(name, ["python3", os.path.join(os.path.dirname(__file__), "backend.py"), "--port",
                   str(port), "--name", name, "--tls", cert, key],
            ready=lambda: http_get(port, "/", tls=True).status == 200)
    return port


def test_https_to_upstreams_with_verification(h):
    """HTTPS from keel to the servers: the chain checked against ca_file and
    the name against server_name (or the IP address), connections reused,
    health checks over HTTPS; a server whose certificate is refused is a
    failed try with the reason, and verify: false accepts it."""
    ca = make_ca(h)
    cert, key = make_cert(h, "app.internal", ["app.internal", "IP:127.0.0.1"])
    good = tls_backend(h, "good", cert, key)
    # Another CA signs this one: not trusted.
    other = h.path("other")
    os.mkdir(other)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "o.key", "-out", "o.crt", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", cwd=other)
    rogue = tls_backend(h, "rogue", os.path.join(other, "o.crt"), os.path.join(other, "o.key"))
    front, admin = free_port(), free_port()
    ups = {
        "byip": ["tls: { enabled: true, ca_file: %s }" % ca,
                 "health: { type: http, path: /, interval: 200ms }", good],
        "byname": ["tls: { enabled: true, ca_file: %s, server_name: app.internal }" % ca, good],
        "wrongname": ["tls: { enabled: true, ca_file: %s, server_name: other.internal }" % ca, good],
        "rogue": ["tls: { enabled: true, ca_file: %s }" % ca, rogue],
        # The same server under active checks (apart, so a DOWN verdict
        # cannot turn the 502 above into a 503).
        "roguehc": ["tls: { enabled: true, ca_file: %s }" % ca,
                    "health: { type: http, path: /, interval: 200ms }", rogue],
        "noverify": ["tls: { enabled: true, verify: false }", rogue],
    }
    routes = [{"path": "/%s/" % n, "upstream": n, "upstream_header": True} for n in ups]
    k = h.keel(yaml_conf(front, admin, ups, routes), wait_port=admin)

    ports = set()
    for _ in range(4):
        r = http_get(front, "/byip/x")
        check(r.status == 200 and r.json()["server"] == "good", (r.status, r.body[:200]))
        ports.add(r.json()["peer_port"])
    check(len(ports) == 1, "connections to the server were not reused: %s" % ports)
    r = http_get(front, "/byname/x")
    check(r.status == 200 and r.json()["server"] == "good", (r.status, r.body[:200]))
    r = http_get(front, "/noverify/x")
    check(r.status == 200 and r.json()["server"] == "rogue", (r.status, r.body[:200]))
    for path in ("/wrongname/x", "/rogue/x"):
        r = http_get(front, path)
        check(r.status == 502, (path, r.status, r.body[:200]))
    k.wait_log(r"upstream wrongname.*TLS: certificate refused: .*(CN|name)")
    k.wait_log(r"upstream rogue.*TLS: certificate refused: .*not correctly signed")
    # Health checks speak HTTPS too: the good server is UP, the rogue one DOWN.
    k.wait_log(r"roguehc/127\.0\.0\.1:%d DOWN after 2 failed checks: TLS: certificate refused" % rogue)
    r = http_get(admin, "/metrics")
    check('keel_server_up{upstream="byip",server="127.0.0.1:%d"} 1' % good in r.body,
          r.body[-1500:])
    # A CA file that does not load refuses the reload, naming the upstream.
    conf = h.path("keel.yaml")
    text = open(conf).read().replace("ca_file: %s }" % ca, "ca_file: /nonexistent.pem }", 1)
    h.write("keel.yaml", text)
    k.signal(signal.SIGHUP)
    k.wait_log(r"upstreams\.byip\.tls: CA file /nonexistent\.pem")
    check(http_get(front, "/byip/x").status == 200)
