"""The HTTP proxy with real backends: routing, rewriting, forwarding
headers, balancing, failover, passive health, strict parsing, limits,
timeouts, keep-alive and pooling, streaming bodies and upgrades."""

import json
import os
import re
import signal
import socket
import time

import harness
from harness import check, free_port, http_get, raw_request, wait_for


def yaml_conf(front, admin, upstreams, routes, proxy="", extra=""):
    """upstreams: {name: [port | (port, "k: v, k2: v2")]}; routes: [dict]."""
    out = ["workers: { count: 1 }",
           "monitors: { routes: false, servers: false }",
           "admin:", "  listen: [\"127.0.0.1:%d\"]" % admin, "  tls: { enabled: false }",
           "  metrics_token: \"%s\"" % harness.METRICS_TOKEN,
           "listeners:", "  - address: \"127.0.0.1:%d\"" % front, "upstreams:"]
    for name, servers in upstreams.items():
        out.append("  %s:" % name)
        opts = [s for s in servers if isinstance(s, str)]
        for o in opts:
            out.append("    " + o)
        out.append("    servers:")
        for s in servers:
            if isinstance(s, str):
                continue
            port, more = (s, "") if isinstance(s, int) else s
            out.append("      - { address: \"127.0.0.1:%d\"%s }" % (port, ", " + more if more else ""))
    out.append("routes:")
    for r in routes:
        out.append("  - " + ", ".join("%s: %s" % (k, json.dumps(v)) for k, v in r.items()))
        out[-1] = "  - {" + out[-1][4:] + "}"
    if proxy:
        out.append("proxy:")
        out += ["  " + line for line in proxy.strip().splitlines()]
    return "\n".join(out) + "\n" + extra


def start(h, upstreams, routes, proxy="", backends=None):
    """Starts the named backends and keel; returns (front port, admin port, keel)."""
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, upstreams, routes, proxy), wait_port=admin)
    return front, admin, k


def get(port, path, host="test.local", method="GET", headers=None, timeout=5):
    hdrs = {"Host": host}
    hdrs.update(headers or {})
    return http_get(port, path, method=method, headers=hdrs, timeout=timeout)


def test_routes_by_host_and_longest_prefix(h):
    a, b, c, d = (h.http_backend(n) for n in ("a", "b", "c", "d"))
    front, _, _ = start(h, {"ua": [a], "ub": [b], "uc": [c], "ud": [d]}, [
        {"path": "/", "upstream": "ua"},
        {"path": "/app/", "upstream": "ub"},
        {"path": "/app/deep/", "upstream": "uc"},
        {"hosts": ["*.example.com"], "path": "/", "upstream": "ud"},
        {"hosts": ["exact.example.com"], "path": "/app/", "upstream": "uc"},
    ])
    check(get(front, "/x").json()["server"] == "a")
    check(get(front, "/app/x").json()["server"] == "b")
    check(get(front, "/app/deep/x?q=1").json()["server"] == "c")
    check(get(front, "/app/x", host="w.example.com").json()["server"] == "d")
    check(get(front, "/app/x", host="W.Example.COM:8080").json()["server"] == "d")
    check(get(front, "/app/x", host="exact.example.com").json()["server"] == "c")
    check(get(front, "/x", host="exact.example.com").json()["server"] == "d")
    check(get(front, "/x", host="example.com").json()["server"] == "a")


def test_prefix_rewrite_keep_strip_replace(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [
        {"path": "/keep/", "upstream": "ua"},
        {"path": "/strip/", "upstream": "ua", "rewrite": "strip"},
        {"path": "/old/", "upstream": "ua", "rewrite": "/new/v2/"},
    ])
    check(get(front, "/keep/x?y=1").json()["target"] == "/keep/x?y=1")
    check(get(front, "/strip/x?y=1").json()["target"] == "/x?y=1")
    check(get(front, "/strip/").json()["target"] == "/")
    check(get(front, "/old/x").json()["target"] == "/new/v2/x")


def test_missing_trailing_slash_redirects_and_unknown_path_is_404(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/app_a/", "upstream": "ua"}])
    r = get(front, "/app_a?x=1")
    check(r.status == 301 and r.headers["location"] == "/app_a/?x=1", (r.status, r.headers))
    check(get(front, "/other").status == 404)


def test_forwarding_headers_and_hop_by_hop_removal(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    r = get(front, "/h", host="app.example.com", headers={
        "X-Forwarded-For": "10.1.1.1",
        "X-Real-IP": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "Connection": "keep-alive, X-Drop-Me",
        "X-Drop-Me": "secret",
        "Keep-Alive": "timeout=5",
        "X-Keep-Me": "yes",
    })
    hdrs = {}
    for k, v in r.json()["headers"]:
        hdrs.setdefault(k.lower(), []).append(v)
    check(hdrs["host"] == ["app.example.com"], hdrs)
    check(hdrs["x-forwarded-for"] == ["10.1.1.1, 127.0.0.1"], hdrs)
    check(hdrs["x-real-ip"] == ["127.0.0.1"], hdrs)
    check(hdrs["x-forwarded-proto"] == ["http"], hdrs)
    check(hdrs["x-forwarded-host"] == ["app.example.com"], hdrs)
    check(hdrs["x-keep-me"] == ["yes"], hdrs)
    for hop in ("x-drop-me", "keep-alive", "connection"):
        check(hop not in hdrs, "%s reached the server: %s" % (hop, hdrs))
    # ...and the server's hop-by-hop headers do not reach the client.
    check("x-secret" not in r.headers and "keep-alive" not in r.headers, r.headers)
    check("x-keel-upstream" not in r.headers, "upstream header must be off by default")


def test_upstream_header_names_the_server_when_enabled(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua", "upstream_header": True}])
    check(get(front, "/").headers["x-keel-upstream"] == "127.0.0.1:%d" % a)


def test_weighted_round_robin_is_smooth(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, _, _ = start(h, {"ua": [(a, "weight: 2"), b]}, [{"path": "/", "upstream": "ua"}])
    seq = "".join(get(front, "/").json()["server"] for _ in range(9))
    check(seq == "abaabaaba", seq)


def test_least_conn_ip_hash_and_p2c_pick_live_servers(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, _, _ = start(h, {
        "lc": ["balance: least_conn", a, b],
        "ih": ["balance: ip_hash", a, b],
        "p2": ["balance: p2c", a, b],
    }, [{"path": "/lc/", "upstream": "lc"}, {"path": "/ih/", "upstream": "ih"},
        {"path": "/p2/", "upstream": "p2"}])
    ih = {get(front, "/ih/").json()["server"] for _ in range(6)}
    check(len(ih) == 1, "ip_hash moved one client: %s" % ih)
    lc = {get(front, "/lc/").json()["server"] for _ in range(6)}
    check(lc == {"a", "b"}, lc)
    p2 = [get(front, "/p2/").json()["server"] for _ in range(20)]
    check(set(p2) <= {"a", "b"}, p2)


def test_failover_to_the_next_server_when_one_is_dead(h):
    a = h.http_backend("a")
    dead = free_port()    # nothing listens here
    front, _, k = start(h, {"ua": [dead, a]}, [{"path": "/", "upstream": "ua"}])
    for _ in range(6):
        r = get(front, "/")
        check(r.status == 200 and r.json()["server"] == "a", r.status)
    k.wait_log(r"server 127\.0\.0\.1:%d out of service for 10000 ms after 1 failure" % dead)


def test_all_servers_down_gives_503_and_says_why(h):
    d1, d2 = free_port(), free_port()
    front, _, k = start(h, {"ua": [d1, d2]}, [{"path": "/", "upstream": "ua"}])
    r = get(front, "/")
    check(r.status == 502, r.status)        # tried both, both refused
    r = get(front, "/")
    check(r.status == 503 and "503 Service Unavailable" in r.body, (r.status, r.body))
    k.wait_log(r"upstream ua: no server available: 127\.0\.0\.1:%d: out for \d+ ms more "
               r"\(Connection refused\)" % d1)


def test_backup_is_used_only_when_primaries_are_out(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    dead = free_port()
    front, _, _ = start(h, {"ua": [a, (b, "backup: true")],
                            "ub": [dead, (b, "backup: true")]},
                        [{"path": "/a/", "upstream": "ua"}, {"path": "/b/", "upstream": "ub"}])
    check({get(front, "/a/").json()["server"] for _ in range(4)} == {"a"})
    check(get(front, "/b/").json()["server"] == "b")


def test_max_fails_and_fail_timeout_follow_nginx(h):
    a = h.http_backend("a")
    dead = free_port()
    front, _, k = start(h, {"ua": [(dead, "max_fails: 3, fail_timeout: 2s"), a]},
                        [{"path": "/", "upstream": "ua", "tries": 1}])
    # With one try per request, the dead server fails requests until it is out.
    codes = [get(front, "/").status for _ in range(8)]
    check(codes.count(502) == 3, codes)
    k.wait_log(r"out of service for 2000 ms after 3 failures")
    check(all(get(front, "/").status == 200 for _ in range(4)))


def test_ambiguous_requests_get_400_and_the_connection_closes(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    cases = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ]
    for req in cases:
        out = raw_request(front, req + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400 "), (req, out[:60]))
        check(out.count(b"HTTP/1.1") == 1, "connection stayed open after 400: %r" % out)


def test_a_content_length_list_is_refused_and_never_reaches_the_server(h):
    """Content-Length must be one plain decimal number: a list, even of
    equal values, and a repeated header get 400 and a closed connection,
    and the server never sees them (RFC 9112 6.3). A server's response
    framed that way is a 502."""
    a = h.http_backend("a")
    front, _, k = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    cases = [
        b"POST /cl1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10, 10\r\n\r\n0123456789",
        b"POST /cl2 HTTP/1.1\r\nHost: a\r\nContent-Length: 10,10\r\n\r\n0123456789",
        b"POST /cl3 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n0123456789",
        b"POST /cl4 HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 10\r\n\r\n0123456789",
        b"POST /cl5 HTTP/1.1\r\nHost: a\r\nContent-Length: +10\r\n\r\n0123456789",
    ]
    for req in cases:
        # A request that smuggles a second one in its body, then a good one.
        out = raw_request(front, req + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        check(out.startswith(b"HTTP/1.1 400 "), (req, out[:60]))
        check(out.count(b"HTTP/1.1") == 1, "connection stayed open after 400: %r" % out)
    # The server saw none of them (and nothing after them), but it is
    # there: a plain request reaches it.
    check(get(front, "/plain", method="POST", headers={"Content-Length": "0"}).status == 200)
    wait_for("the plain request at the server", lambda: "POST /plain" in open(h.path("a.log")).read())
    seen = open(h.path("a.log")).read()
    check(not re.search(r"/cl\d|/after", seen), "the server saw: %r" % seen)
    # The response side: a server's list is a 502, not passed on.
    r = get(front, "/_cl_list")
    check(r.status == 502, (r.status, r.body))
    k.wait_log(r"Content-Length")


def test_bad_chunked_body_is_refused(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    out = raw_request(front, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"zz\r\nhello\r\n0\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 400 "), out[:80])


def test_head_limits_give_414_and_431_and_body_limit_413(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua", "max_body": "1k"}],
                        proxy="max_request_line: 512\nmax_header_bytes: 2k\nmax_headers: 10\n")
    out = raw_request(front, b"GET /" + b"a" * 600 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 414 "), out[:60])
    out = raw_request(front, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 3000 + b"\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 431 "), out[:60])
    many = b"".join(b"X-%d: v\r\n" % i for i in range(12))
    out = raw_request(front, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    check(out.startswith(b"HTTP/1.1 431 "), out[:60])
    out = raw_request(front, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 413 "), out[:60])
    body = b"800\r\n" + b"z" * 0x800 + b"\r\n0\r\n\r\n"
    out = raw_request(front, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    check(out.startswith(b"HTTP/1.1 413 "), out[:60])


def test_slow_request_head_gets_408(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}],
                        proxy="header_timeout: 500ms\n")
    with socket.create_connection(("127.0.0.1", front)) as s:
        s.settimeout(5)
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")     # never finished
        data = s.recv(4096)
        check(data.startswith(b"HTTP/1.1 408 "), data[:60])
        check(0.3 < time.monotonic() - t0 < 3, time.monotonic() - t0)


def test_keepalive_to_clients_and_pooled_upstream_connections(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", front, timeout=5)
    ports = set()
    for i in range(5):
        c.request("GET", "/k%d" % i, headers={"Host": "a"})
        r = c.getresponse()
        ports.add(json.loads(r.read())["peer_port"])
        check(r.status == 200)
    c.close()
    check(len(ports) == 1, "keel opened %d server connections for 5 requests" % len(ports))


def test_pipelined_requests_are_answered_in_order(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(3))
    out = raw_request(front, reqs + b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    check(out.count(b"HTTP/1.1 200") == 4, out)
    order = [out.find(b'"/p0"'), out.find(b'"/p1"'), out.find(b'"/p2"'), out.find(b'"/last"')]
    check(all(x >= 0 for x in order) and order == sorted(order), order)


def test_request_bodies_stream_with_length_and_chunked(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua", "max_body": "10M"}])
    body = b"q" * 3_000_000
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", front, timeout=20)
    c.request("POST", "/up", body=body, headers={"Host": "a"})   # with Content-Length
    info = json.loads(c.getresponse().read())
    hdrs = dict((k.lower(), v) for k, v in info["headers"])
    check(hdrs.get("content-length") == str(len(body)), hdrs)
    check(info["body_len"] == len(body) and not info["chunked"], info["body_len"])

    def chunks():
        for _ in range(50):
            yield b"w" * 10000
    c.request("POST", "/upc", body=chunks(), headers={"Host": "a"}, encode_chunked=True)
    info = json.loads(c.getresponse().read())
    check(info["body_len"] == 500000 and info["chunked"], info)
    c.close()


def test_response_bodies_stream_chunked_length_and_until_close(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    r = get(front, "/_chunked/100/1000")
    check(r.status == 200 and len(r.body) == 100000 and set(r.body) == {"c"}, len(r.body))
    r = get(front, "/_big/5000000", timeout=20)
    check(len(r.body) == 5000000, len(r.body))
    out = raw_request(front, b"GET /_close HTTP/1.1\r\nHost: a\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"until-eof body\n"), out)
    check(b"Connection: close" in out, out)
    out = raw_request(front, b"HEAD /_big/100 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    check(out.endswith(b"\r\n\r\n") and b"Content-Length: 100" in out, out)


def test_slow_client_does_not_make_keel_buffer_the_response(h):
    a = h.http_backend("a")
    front, _, k = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}],
                        proxy="buffer_size: 64k\n")
    def rss():
        total = 0
        for pid in [k.pid] + k.children():
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total
    base = rss()
    s = socket.create_connection(("127.0.0.1", front))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /_big/50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    s.recv(1000)
    time.sleep(1.0)   # let the server push as much as keel would take
    grown = rss() - base
    s.close()
    check(grown < 4096, "keel's RSS grew by %d KiB for one slow client" % grown)


def test_http10_clients_get_answers_and_close(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    out = raw_request(front, b"GET /ten HTTP/1.0\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 200"), out[:60])
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    check(body["version"] == "HTTP/1.0", body)


def test_read_timeout_retries_a_get_on_the_other_server(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, _, k = start(h, {"ua": [a, b]}, [{"path": "/", "upstream": "ua", "read_timeout": "500ms"}])
    slow = [p for p in h.procs if p.name == "a"][0]
    slow.signal(signal.SIGSTOP)
    try:
        for _ in range(3):
            r = get(front, "/t", timeout=10)
            check(r.status == 200 and r.json()["server"] == "b", r.status)
    finally:
        slow.signal(signal.SIGCONT)
    k.wait_log(r"server 127\.0\.0\.1:%d: timed out" % a)


def test_post_is_not_retried_after_it_was_sent(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, _, _ = start(h, {"ua": [a, b]}, [{"path": "/", "upstream": "ua", "read_timeout": "500ms"}])
    slow = [p for p in h.procs if p.name == "a"][0]
    slow.signal(signal.SIGSTOP)
    try:
        codes = [get(front, "/p", method="POST", headers={"Content-Length": "0"}).status
                 for _ in range(2)]
    finally:
        slow.signal(signal.SIGCONT)
    check(504 in codes, codes)


def test_upgrade_becomes_a_tunnel(h):
    a = h.http_backend("a")
    front, _, _ = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    with socket.create_connection(("127.0.0.1", front)) as s:
        s.settimeout(5)
        s.sendall(b"GET /_upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        check(head.startswith(b"HTTP/1.1 101"), head)
        check(b"Upgrade: echo" in head, head)
        for msg in (b"ping", b"x" * 100000):
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                got += s.recv(65536)
            check(got == msg, len(got))


def test_reload_changes_routes_and_keeps_running_on_a_bad_file(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin = free_port(), free_port()
    k = h.keel(yaml_conf(front, admin, {"ua": [a], "ub": [b]}, [{"path": "/", "upstream": "ua"}]),
               wait_port=admin)
    check(get(front, "/").json()["server"] == "a")
    h.write("keel.yaml", yaml_conf(front, admin, {"ua": [a], "ub": [b]}, [{"path": "/", "upstream": "ub"}]))
    k.signal(signal.SIGHUP)
    wait_for("the new route", lambda: get(front, "/").json()["server"] == "b")
    h.write("keel.yaml", yaml_conf(front, admin, {"ua": [a]}, [{"path": "/", "upstream": "ub"}]))
    k.signal(signal.SIGHUP)
    k.wait_log(r'routes\[0\]\.upstream: no upstream named "ub"')
    check(get(front, "/").json()["server"] == "b")


def test_unknown_upstream_in_a_route_is_a_config_error(h):
    path = h.write("bad.yaml", yaml_conf(8000, 8001, {"ua": [9000]},
                                         [{"path": "/", "upstream": "nope"}]))
    r = h.run_keel("-t", "-c", path)
    check(r.returncode == 1 and 'routes[0].upstream: no upstream named "nope"' in r.stderr, r.stderr)


def test_access_log_combined_line_has_every_field(h):
    a = h.http_backend("a")
    front, _, k = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}])
    get(front, "/logged?x=1", host="app.example.com",
        headers={"User-Agent": 'evil"\xe9agent', "Referer": "http://r/"})
    get(front, "/missing", host="nohost")    # served: route "/" catches all
    line = k.wait_log(r'127\.0\.0\.1 - - \[[^]]+\] "GET /logged\?x=1 HTTP/1\.1" 200 \d+ .*').group(0)
    check('"http://r/" "evil\\"\\xe9agent"' in line, line)
    check('host="app.example.com" upstream=127.0.0.1:%d upstream_time=0.' % a in line, line)
    check("request_time=0." in line, line)


def test_access_log_json_escapes_and_logs_refusals(h):
    a = h.http_backend("a")
    front, admin = free_port(), free_port()
    log = h.path("access.json")
    k = h.keel(yaml_conf(front, admin, {"ua": [a]}, [{"path": "/app/", "upstream": "ua"}],
                         extra='access_log: { format: json, path: "%s" }\n' % log), wait_port=admin)
    get(front, "/app/x", headers={"User-Agent": "a\"b\\c"})
    get(front, "/nowhere")
    raw_request(front, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")

    def lines():
        if not os.path.exists(log):
            return None
        with open(log) as f:
            got = [json.loads(x) for x in f.read().splitlines()]
        return got if len(got) >= 3 else None
    got = wait_for("three JSON log lines", lines, timeout=5)
    check(got[0]["path"] == "/app/x" and got[0]["status"] == 200 and
          got[0]["upstream"] == "127.0.0.1:%d" % a and got[0]["agent"] == 'a"b\\c', got[0])
    check(got[1]["path"] == "/nowhere" and got[1]["status"] == 404 and
          got[1]["upstream"] == "-", got[1])
    check(got[2]["status"] == 400 and got[2]["method"] == "-", got[2])
    check(all(isinstance(g["time_ms"], int) for g in got), got)


def test_metrics_count_routes_servers_and_health(h):
    a = h.http_backend("a")
    dead = free_port()
    front, admin, _ = start(h, {"ua": [a, (dead, "max_fails: 1, fail_timeout: 60s")]},
                            [{"path": "/app/", "upstream": "ua"}])
    for _ in range(5):
        check(get(front, "/app/x").status == 200)
    check(get(front, "/app/_status/503").status == 503)
    raw_request(front, b"GET / HTTP/1.1\r\n\r\n")      # no Host: 400
    r = http_get(admin, "/metrics")
    check(r.status == 200 and r.headers["content-type"].startswith("text/plain"), r.headers)
    m = r.body
    def val(series):
        for line in m.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        raise AssertionError("no %s in:\n%s" % (series, m))
    check(val('keel_route_requests_total{route="/app/",upstream="ua"}') == 6, m)
    check(val('keel_route_responses_total{route="/app/",code="2xx"}') == 5, m)
    check(val('keel_route_responses_total{route="/app/",code="5xx"}') == 1, m)
    check(val('keel_server_up{upstream="ua",server="127.0.0.1:%d"}' % dead) == 0, m)
    check(val('keel_server_up{upstream="ua",server="127.0.0.1:%d"}' % a) == 1, m)
    check(val('keel_server_failures_total{upstream="ua",server="127.0.0.1:%d"}' % dead) >= 1, m)
    check(val("keel_proxy_bad_requests_total") == 1, m)
    check(val("keel_proxy_connections_total") >= 7, m)


def test_cookie_affinity_pins_and_repins_without_error(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, {"ua": ["balance: cookie", a, b]}, [{"path": "/", "upstream": "ua"}])
    r = get(front, "/")
    m = re.match(r"KEELID=([A-Za-z0-9_-]{22}); Path=/; HttpOnly; SameSite=Lax$", r.headers["set-cookie"])
    check(m, r.headers)
    cookie, first = m.group(1), r.json()["server"]
    check("127.0.0.1" not in cookie)
    for _ in range(6):     # round-robin would alternate; the cookie holds
        r = get(front, "/", headers={"Cookie": "other=1; KEELID=%s" % cookie})
        check(r.json()["server"] == first and "set-cookie" not in r.headers, (r.json()["server"], r.headers))

    forged = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    r = get(front, "/", headers={"Cookie": "KEELID=" + forged})
    check(r.status == 200 and "set-cookie" in r.headers, r.headers)

    victim = [p for p in h.procs if p.name == first][0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.popen.wait(5)
    r = get(front, "/", headers={"Cookie": "KEELID=" + cookie})
    check(r.status == 200 and r.json()["server"] != first, (r.status, r.body))
    check(r.headers["set-cookie"].split(";")[0] != "KEELID=" + cookie, r.headers)

    key = h.path("state/install.key")
    check(os.stat(key).st_mode & 0o777 == 0o600, oct(os.stat(key).st_mode))


def test_cookie_values_survive_a_restart(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, k = start(h, {"ua": ["balance: cookie", a, b]}, [{"path": "/", "upstream": "ua"}])
    r = get(front, "/")
    cookie, server = r.headers["set-cookie"].split(";")[0], r.json()["server"]
    k.signal(signal.SIGTERM)
    k.wait(10)
    k2 = h.start("keel2", [k.argv[0], "-c", h.path("keel.yaml")],
                 ready=lambda: http_get(admin, "/healthz").status == 200)
    r = get(front, "/", headers={"Cookie": cookie})
    check(r.json()["server"] == server and "set-cookie" not in r.headers, r.headers)


def test_retry_5xx_is_opt_in_for_idempotent_requests(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin, _ = start(h, {"ua": [a, b]}, [
        {"path": "/plain/", "upstream": "ua"},
        {"path": "/retry/", "upstream": "ua", "retry_5xx": True},
    ])
    # Without the option a 5xx goes to the client as it is.
    check(get(front, "/plain/_status/503").status == 503)
    # With it, a GET that gets 5xx everywhere tries both servers, then the
    # client gets the last server's own answer (as nginx does).
    r = get(front, "/retry/_status/500")
    check(r.status == 500 and r.body == "status\n", (r.status, r.body))
    m = http_get(admin, "/metrics").body
    counts = []
    for port in (a, b):
        series = 'keel_server_responses_total{upstream="ua",server="127.0.0.1:%d",code="5xx"} ' % port
        counts.append(int(re.search(re.escape(series) + r"(\d+)", m).group(1)))
    # One 5xx from /plain/, then both servers for the retried GET.
    check(min(counts) >= 1 and sum(counts) == 3, counts)
    # POST is never retried on 5xx.
    check(get(front, "/retry/_status/503", method="POST",
              headers={"Content-Length": "0"}).status == 503)


def test_ipv6_listener(h):
    if not harness.have_ipv6_loopback():
        harness.skip("this machine has no IPv6 loopback (::1)")
    a = h.http_backend("a")
    front6, admin = free_port(socket.AF_INET6, "::1"), free_port()
    text = yaml_conf(8, admin, {"ua": [a]}, [{"path": "/", "upstream": "ua"}]).replace(
        'address: "127.0.0.1:8"', 'address: "[::1]:%d"' % front6)
    h.keel(text, wait_port=admin)
    r = http_get(front6, "/six", host="::1", headers={"Host": "v6.test"})
    check(r.status == 200 and r.json()["target"] == "/six", r.body)
    hdrs = dict((k.lower(), v) for k, v in r.json()["headers"])
    check(hdrs["x-forwarded-for"] == "::1", hdrs)


def test_accepting_pauses_at_max_connections_and_resumes(h):
    a = h.http_backend("a")
    front, _, k = start(h, {"ua": [a]}, [{"path": "/", "upstream": "ua"}],
                        proxy="max_connections: 3\n")
    held = [socket.create_connection(("127.0.0.1", front)) for _ in range(3)]
    k.wait_log(r"3 connections, the limit: accepting paused", timeout=5)
    with socket.create_connection(("127.0.0.1", front)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = None
        check(early is None, "served past max_connections: %r" % early)
        held.pop().close()
        s.settimeout(5)
        check(s.recv(100).startswith(b"HTTP/1.1 200"))
    for x in held:
        x.close()


def test_a_draining_server_keeps_its_pinned_clients_only(h):
    a, b = h.http_backend("a"), h.http_backend("b")
    front, admin = free_port(), free_port()
    text = yaml_conf(front, admin, {"ua": ["balance: cookie", a, b]}, [{"path": "/", "upstream": "ua"}])
    k = h.keel(text, wait_port=admin)
    pinned = {}
    while len(pinned) < 2:       # a client for each server
        r = get(front, "/")
        pinned.setdefault(r.json()["server"], r.headers["set-cookie"].split(";")[0])
    h.write("keel.yaml", text.replace('"127.0.0.1:%d" }' % a, '"127.0.0.1:%d", drain: true }' % a))
    k.signal(signal.SIGHUP)
    k.wait_log(r"generation 2 loaded")
    # New clients all go to b; a's client stays on a.
    check({get(front, "/").json()["server"] for _ in range(6)} == {"b"})
    r = get(front, "/", headers={"Cookie": pinned["a"]})
    check(r.json()["server"] == "a" and "set-cookie" not in r.headers, r.headers)
