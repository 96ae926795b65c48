"""A real HTTP/1.1 app server for tests. By default it answers with JSON
saying who it is and what it received (method, path, headers, body size,
the client port, so tests can tell reused connections from new ones).
Each request's first line goes to stdout (the test's NAME.log) as it
arrives, before its body is read, so a test can wait for a request to be
at the backend. Special paths:
  /_status/CODE         answer with that status
  /_sleep/MS            wait, then answer
  /_big/BYTES           a body of that many bytes, with Content-Length
  /_chunked/N/SIZE      N chunks of SIZE bytes, chunked
  /_close               answer without a length, then close (body until EOF)
  /_cl_list             a 2-byte body framed by "Content-Length: 2, 2"
  /_upgrade             101 to the "echo" protocol, then echo every byte
"""

import argparse
import json
import socketserver
import sys
import time


class Handler(socketserver.StreamRequestHandler):
    def read_head(self):
        line = self.rfile.readline(65537)
        if not line:
            return None
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            h = self.rfile.readline(65537).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            name, _, value = h.partition(":")
            headers.append((name.strip(), value.strip()))
        return method, target, version, headers

    def read_body(self, headers):
        hmap = {k.lower(): v for k, v in headers}
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total, True
                total += len(self.rfile.read(size))
                self.rfile.readline()
        n = int(hmap.get("content-length", "0") or 0)
        return len(self.rfile.read(n)) if n else 0, False

    def send(self, status, body, headers=(), close=False):
        out = ["HTTP/1.1 %d %s" % (status, "OK" if status < 400 else "Error"),
               "Content-Length: %d" % len(body), "X-Backend: " + self.server.name]
        out += list(headers)
        if close:
            out.append("Connection: close")
        self.wfile.write(("\r\n".join(out) + "\r\n\r\n").encode() + body)
        self.wfile.flush()

    def handle(self):
        while True:
            try:
                head = self.read_head()
            except (ValueError, ConnectionError):
                return
            if head is None:
                return
            method, target, version, headers = head
            sys.stdout.write("%s %s %s\n" % (method, target, version))
            sys.stdout.flush()
            body_len, chunked = self.read_body(headers)
            hmap = {k.lower(): v for k, v in headers}
            close = hmap.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            # Special paths may sit under a route's prefix: /app/_status/503.
            special = target[target.find("/_"):] if "/_" in target else target
            parts = special.split("?")[0].split("/")

            if special.startswith("/_upgrade"):
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                                 b"Connection: Upgrade\r\n\r\n")
                self.wfile.flush()
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    self.request.sendall(data)
            if special.startswith("/_status/"):
                self.send(int(parts[2]), b"status\n", close=close)
            elif special.startswith("/_sleep/"):
                time.sleep(int(parts[2]) / 1000.0)
                self.send(200, b"slept\n", close=close)
            elif special.startswith("/_big/"):
                self.send(200, b"x" * int(parts[2]), close=close)
            elif special.startswith("/_chunked/"):
                n, size = int(parts[2]), int(parts[3])
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                 b"X-Backend: " + self.server.name.encode() + b"\r\n\r\n")
                for _ in range(n):
                    self.wfile.write(b"%x\r\n" % size + b"c" * size + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            elif special.startswith("/_cl_list"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok")
                self.wfile.flush()
            elif special.startswith("/_close"):
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Backend: " + self.server.name.encode()
                                 + b"\r\n\r\nuntil-eof body\n")
                self.wfile.flush()
                return
            else:
                info = {"server": self.server.name, "method": method, "target": target,
                        "version": version, "headers": headers, "body_len": body_len,
                        "chunked": chunked, "peer_port": self.client_address[1]}
                self.send(200, (json.dumps(info) + "\n").encode(),
                          ["Content-Type: application/json", "Connection: X-Secret",
                           "X-Secret: hop", "Keep-Alive: timeout=5"], close=close)
            if close:
                return


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="backend")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler)
    srv.name = args.name
    if args.tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*args.tls)
        # The handshake runs in the handler's thread, on its first read.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
    sys.stdout.write("listening on %d\n" % args.port)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
