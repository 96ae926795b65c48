"""The integration harness: starts the real keel and real peers (HTTP
backends, redis-server, ...) on free loopback ports, waits for each to be
ready by probing it (never by sleeping), and stops every process it started,
by PID, whatever happens to the test."""

import http.client
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
KEEL = os.environ.get("KEEL_BIN", os.path.join(HERE, "..", "..", "build", "keel"))
SANITIZED = os.environ.get("KEEL_SAN") == "1"   # KEEL is an ASan+UBSan build


class TestFailure(AssertionError):
    pass


class TestSkipped(Exception):
    """Raised by skip(): the test could not run here. The runner counts it
    on its own, never as a pass."""


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port the kernel just handed out and released: free for a moment."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_for(what, probe, timeout=10.0, interval=0.02):
    """Calls probe() until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = probe()
            if got:
                return got
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(interval)
    raise TestFailure("timed out after %.1fs waiting for %s%s"
                      % (timeout, what, " (last: %s)" % last if last else ""))


class Proc:
    def __init__(self, name, argv, log_path, popen):
        self.name, self.argv, self.log_path, self.popen = name, argv, log_path, popen

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def mark(self):
        """Where the log ends now: wait_log(..., after=mark) sees only what follows."""
        return len(self.log())

    def wait_log(self, pattern, timeout=10.0, after=0):
        rx = re.compile(pattern)
        return wait_for("log line /%s/ from %s" % (pattern, self.name),
                        lambda: rx.search(self.log(), after), timeout)

    def signal(self, sig):
        self.popen.send_signal(sig)

    def children(self):
        """PIDs of this process's children: keel's workers (not its
        password-hashing helper, named keel-hash)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            return []
        out = []
        for pid in pids:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "keel-hash":
                        continue
            except OSError:
                continue
            out.append(pid)
        return out

    def wait(self, timeout=10.0):
        return self.popen.wait(timeout)


class Harness:
    """One per test: a scratch directory and the processes started in it."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="keel-it-%s-" % name)
        self.procs = []
        self.stopped = []
        self.cleanups = []

    # ---- processes ----

    def start(self, name, argv, ready=None, timeout=10.0, env=None):
        log_path = os.path.join(self.dir, name + ".log")
        log = open(log_path, "wb")
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=self.dir,
                                 start_new_session=True, env=env)
        log.close()
        p = Proc(name, argv, log_path, popen)
        self.procs.append(p)
        if ready is not None:
            def probe():
                if not p.alive():
                    raise TestFailure("%s exited with %s before it was ready:\n%s"
                                      % (name, p.popen.returncode, p.log()[-2000:]))
                return ready()
            wait_for("%s to be ready" % name, probe, timeout)
        return p

    def stop_all(self):
        """SIGTERM every process group we started, then SIGKILL stragglers."""
        for p in self.procs:
            if p.alive():
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.stopped += self.procs
        self.procs = []
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception as e:  # a cleanup must not hide the test's result
                print("    cleanup failed: %s" % e)

    def defer(self, fn):
        """fn() runs after the test's processes are stopped (last first)."""
        self.cleanups.append(fn)

    def sanitizer_reports(self):
        """Sanitizer reports in the logs of every keel this test ran (a qemu
        guest's console holds its keel's)."""
        found = []
        for p in self.stopped + self.procs:
            if p.argv and (p.argv[0] == KEEL or getattr(p, "runs_keel", False)):
                text = p.log()
                if "Sanitizer" in text or "runtime error:" in text:
                    found.append((p.name, text[-3000:]))
        return found

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    # ---- keel ----

    def keel(self, conf_text, name="keel", wait_port=None, admin_tls=False, args=()):
        """Starts build/keel with conf_text; ready when /healthz answers."""
        if "pid_file:" not in conf_text:
            conf_text = 'pid_file: "%s"\n' % self.path(name + ".pid") + conf_text
        if "state_dir:" not in conf_text:
            conf_text = 'state_dir: "%s"\n' % self.path("state") + conf_text
        conf = self.write(name + ".yaml", conf_text)
        ready = None
        if wait_port is not None:
            ready = lambda: http_get(wait_port, "/healthz", tls=admin_tls).status == 200
        return self.start(name, [KEEL, *args, "-c", conf], ready=ready)

    def run_keel(self, *args, timeout=30, env=None, sanitizer_ok=False):
        """keel ARGS to the end; a sanitizer report fails the test unless
        the caller checks the output itself (sanitizer_ok)."""
        r = subprocess.run([KEEL, *args], capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir, env=env)
        if not sanitizer_ok and ("Sanitizer" in r.stderr or "runtime error:" in r.stderr):
            raise TestFailure("sanitizer report from keel %s:\n%s"
                              % (" ".join(args), r.stderr[-3000:]))
        return r

    # ---- peers ----

    def http_backend(self, name="backend"):
        port = free_port()
        self.start(name, ["python3", os.path.join(HERE, "backend.py"),
                          "--port", str(port), "--name", name],
                   ready=lambda: http_get(port, "/").status == 200)
        return port

    def nginx_backend(self, name="nginx"):
        """A fast real backend for load tests: nginx answering its name."""
        port = free_port()
        conf = self.write(name + ".conf", """worker_processes 1; daemon off;
pid %s/%s.pid; error_log %s/%s.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:%d backlog=4096;
  location / { return 200 "%s\\n"; } } }
""" % (self.dir, name, self.dir, name, port, name))
        self.start(name, ["nginx", "-c", conf],
                   ready=lambda: http_get(port, "/").status == 200)
        return port

    def redis(self, name="redis"):
        port = free_port()
        self.start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no",
                          "--dir", self.dir],
                   ready=lambda: redis_cmd(port, "PING") == "+PONG")
        return port


# ---- clients ----

class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        import json
        return json.loads(self.body)


# The tests' admin servers accept this for /metrics (admin.metrics_token).
METRICS_TOKEN = "test-metrics-token-0123456789"


def http_get(port, path, method="GET", host="127.0.0.1", headers=None, timeout=5,
             tls=False, body=None):
    if path.startswith("/metrics") and not headers:
        headers = {"Authorization": "Bearer " + METRICS_TOKEN}
    if tls:  # keel's own self-signed admin certificate, or a test one
        ctx = tls if isinstance(tls, ssl.SSLContext) else ssl._create_unverified_context()
        c = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()},
                     r.read().decode(errors="replace"))
    finally:
        c.close()


def raw_request(port, data, host="127.0.0.1", timeout=5):
    """Sends raw bytes, returns everything the server sent until it closed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


class RespError(Exception):
    """A Redis error reply, returned (not raised) by Resp.read."""


class Resp:
    """A small RESP2 client: one connection, replies parsed as Python values
    (bytes, str for status lines, int, None, list, RespError)."""

    def __init__(self, port, timeout=3.0, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(args))

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad reply line %r" % line)

    def close(self):
        self.sock.close()


def redis_cmd(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        req = "*%d\r\n" % len(args) + "".join(
            "$%d\r\n%s\r\n" % (len(a), a) for a in args)
        s.sendall(req.encode())
        return s.recv(4096).decode().strip()


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def skip(why):
    """Ends the test as skipped: what it checks cannot be checked here."""
    raise TestSkipped(why)
