"""keel as a process: the command line, config checking, startup errors,
reload on SIGHUP, shutdown on SIGTERM, and the admin server's limits."""

import os
import re
import signal
import socket
import subprocess
import time

import harness
from harness import (check, free_port, have_ipv6_loopback, http_get,
                     raw_request, wait_for, HERE)

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def conf(port, node="it", level="info", extra_admin=""):
    return ("node: %s\nlog:\n  level: %s\nadmin:\n  listen: [\"127.0.0.1:%d\"]\n"
            "  tls: { enabled: false }\n%s"
            % (node, level, port, extra_admin))


def test_binary_is_static_and_version_names_every_library(h):
    if not harness.SANITIZED:   # ASan needs glibc's dynamic runtime
        out = subprocess.run(["file", "-L", harness.KEEL],
                             capture_output=True, text=True).stdout
        check("statically linked" in out or "static-pie linked" in out, out)
    v = h.run_keel("--version")
    check(v.returncode == 0, v.stderr)
    for lib in ("mbedtls 3.6", "hiredis 1.2", "libnfs 5.0", "sqlite 3.46",
                "libmicrohttpd 1.0", "libyaml 0.2"):
        check(lib in v.stdout, "%r missing from --version:\n%s" % (lib, v.stdout))


def test_check_mode_accepts_the_embedded_default(h):
    r = h.run_keel("-t")
    check(r.returncode == 0, r.stderr)
    check("configuration <embedded default> is ok" in r.stdout, r.stdout)


def test_check_mode_lists_every_error_with_file_and_line(h):
    path = h.write("bad.yaml",
                   "node: gw1\n"
                   "log:\n"
                   "  level: loud\n"
                   "admin:\n"
                   "  listen: [\"127.0.0.1:99999\"]\n"
                   "  idle_timeout: 30\n"
                   "  colour: blue\n")
    r = h.run_keel("-t", "-c", path)
    check(r.returncode == 1, "exit %d" % r.returncode)
    want = [
        "bad.yaml:3: log.level: must be one of error, warn, info, debug; got 'loud'",
        "bad.yaml:5: admin.listen[0]: port must be 1..65535, got '127.0.0.1:99999'",
        "bad.yaml:6: admin.idle_timeout: needs a unit: ms, s, m, h or d, got '30'",
        "bad.yaml:7: admin.colour: unknown setting",
        "has 4 errors",
    ]
    for w in want:
        check(w in r.stderr, "missing %r in:\n%s" % (w, r.stderr))


def test_check_mode_accepts_a_good_file(h):
    path = h.write("good.yaml", conf(8080, extra_admin="  idle_timeout: 5s\n"))
    r = h.run_keel("-t", "-c", path)
    check(r.returncode == 0 and "is ok" in r.stdout, r.stdout + r.stderr)


def test_unknown_flag_and_stray_argument_are_usage_errors(h):
    r = h.run_keel("--bogus")
    check(r.returncode == 2 and "usage:" in r.stderr, r.stderr)
    r = h.run_keel("keel.yaml")
    check(r.returncode == 2 and "unexpected argument 'keel.yaml'" in r.stderr, r.stderr)


def test_refuses_to_start_with_a_bad_config_and_names_the_error(h):
    path = h.write("bad.yaml", "admin:\n  max_connections: 0\n")
    r = h.run_keel("-c", path, timeout=10)
    check(r.returncode == 1, "exit %d" % r.returncode)
    check("bad.yaml:2: admin.max_connections: must be 1..10000, got 0" in r.stderr, r.stderr)


def test_serves_healthz_on_every_listen_address(h):
    p4 = free_port()
    listen = ["127.0.0.1:%d" % p4]
    p6 = None
    if have_ipv6_loopback():
        p6 = free_port(socket.AF_INET6, "::1")
        listen.append("[::1]:%d" % p6)
    text = "node: gw-1\nadmin:\n  tls: { enabled: false }\n  listen: [%s]\n" % ", ".join('"%s"' % a for a in listen)
    k = h.keel(text, wait_port=p4)
    r = http_get(p4, "/healthz").json()
    check(r["status"] == "ok" and r["node"] == "gw-1", r)
    check(r["config_generation"] == 1, r)
    if p6 is not None:
        r6 = http_get(p6, "/healthz", host="::1")
        check(r6.status == 200 and r6.json()["node"] == "gw-1", r6.body)
    k.wait_log(r"admin server listening on 127\.0\.0\.1:%d" % p4)


def test_healthz_refuses_other_methods_and_other_paths_need_a_login(h):
    port = free_port()
    h.keel(conf(port), wait_port=port)
    r = http_get(port, "/healthz", method="POST")
    check(r.status == 405 and r.headers.get("allow") == "GET, HEAD", (r.status, r.headers))
    r = http_get(port, "/healthz", method="HEAD")
    check(r.status == 200 and r.body == "", (r.status, r.body))
    r = http_get(port, "/admin")
    check(r.status == 401, r.status)     # unknown or not, nothing shows without a login


def test_reload_applies_a_good_config_and_keeps_running_on_a_bad_one(h):
    port = free_port()
    k = h.keel(conf(port, node="before"), wait_port=port)
    path = h.path("keel.yaml")

    h.write("keel.yaml", conf(port, node="after"))
    k.signal(signal.SIGHUP)
    wait_for("generation 2", lambda: http_get(port, "/healthz").json()["config_generation"] == 2)
    check(http_get(port, "/healthz").json()["node"] == "after")

    h.write("keel.yaml", conf(port, node="broken", level="chatty"))
    k.signal(signal.SIGHUP)
    k.wait_log(r"reload refused \(1 error\); keeping generation 2")
    check("%s:3: log.level: must be one of" % path in k.log(), k.log())
    r = http_get(port, "/healthz").json()
    check(r["node"] == "after" and r["config_generation"] == 2, r)
    check(k.alive())


def test_reload_keeps_restart_only_settings_and_says_which(h):
    port, other = free_port(), free_port()
    k = h.keel(conf(port), wait_port=port)
    h.write("keel.yaml", conf(other, node="moved"))
    k.signal(signal.SIGHUP)
    k.wait_log(r"admin\.listen: changing it needs a restart when admin\.tls is off; "
               r"the running addresses stay")
    wait_for("generation 2", lambda: http_get(port, "/healthz").json()["config_generation"] == 2)
    check(http_get(port, "/healthz").json()["node"] == "moved")
    try:
        http_get(other, "/healthz", timeout=1)
        check(False, "keel started listening on the new port without a restart")
    except ConnectionRefusedError:
        pass


def test_reload_changes_the_log_level(h):
    port = free_port()
    k = h.keel(conf(port), wait_port=port)
    h.write("keel.yaml", conf(port, level="warn"))
    k.signal(signal.SIGHUP)
    wait_for("generation 2", lambda: http_get(port, "/healthz").json()["config_generation"] == 2)
    h.write("keel.yaml", conf(port, level="warn", node="x", extra_admin="  bogus: 1\n"))
    k.signal(signal.SIGHUP)
    k.wait_log(r"reload refused")
    # The info line for generation 3 must not exist: warn level holds.
    check("generation 3" not in k.log(), k.log())


def test_sigterm_stops_cleanly_with_status_zero(h):
    port = free_port()
    k = h.keel(conf(port), wait_port=port)
    k.signal(signal.SIGTERM)
    check(k.wait(10) == 0, "exit status %s" % k.popen.returncode)
    check("SIGTERM received: draining" in k.log() and "main: stopped" in k.log(), k.log())


def test_a_port_in_use_is_reported_with_its_address(h):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        # Its own state_dir: a config that starts is recorded in its store.
        path = h.write("keel.yaml", 'state_dir: "%s"\n' % h.path("state") + conf(port))
        r = h.run_keel("-c", path, timeout=10)
    check(r.returncode == 1, "exit %d" % r.returncode)
    # musl says "Address in use", glibc (the sanitizer build) "Address already in use".
    check(re.search(r"web: cannot start: cannot listen on 127\.0\.0\.1:%d: Address (already )?in use"
                    % port, r.stdout + r.stderr), r.stdout + r.stderr)


def test_oversized_request_headers_are_refused(h):
    port = free_port()
    h.keel(conf(port, extra_admin="  request_memory: 4k\n"), wait_port=port)
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    out = raw_request(port, big)
    check(out.startswith(b"HTTP/1.1 431"), out[:100])
    check(http_get(port, "/healthz").status == 200)


def test_idle_connections_are_closed_after_idle_timeout(h):
    port = free_port()
    h.keel(conf(port, extra_admin="  idle_timeout: 1s\n"), wait_port=port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.monotonic()
        s.settimeout(10)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")   # and then nothing
        data = s.recv(4096)
        waited = time.monotonic() - t0
    check(data in (b"",) or data.startswith(b"HTTP/1.1 408"), data[:80])
    check(0.5 < waited < 5, "closed after %.1fs" % waited)


def test_connections_past_max_connections_wait_for_a_free_slot(h):
    port = free_port()
    h.keel(conf(port, extra_admin="  max_connections: 2\n"), wait_port=port)
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")  # unfinished: slots stay taken
        with socket.create_connection(("127.0.0.1", port)) as third:
            third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            third.settimeout(0.5)
            try:
                early = third.recv(4096)
            except socket.timeout:
                early = None
            check(early is None, "served past max_connections: %r" % early)
            held.pop().close()
            third.settimeout(5)
            data = third.recv(4096)
            check(data.startswith(b"HTTP/1.1 200"), data[:80])
    finally:
        for s in held:
            s.close()


def test_configuration_reference_in_docs_is_current(h):
    r = h.run_keel("--config-reference")
    with open(os.path.join(ROOT, "docs", "CONFIGURATION.md")) as f:
        doc = f.read()
    check(r.stdout == doc, "docs/CONFIGURATION.md is stale: run `make docs`")


def test_default_config_printed_is_the_embedded_one(h):
    r = h.run_keel("--default-config")
    with open(os.path.join(ROOT, "core", "default.yaml")) as f:
        check(r.stdout == f.read(), r.stdout)
