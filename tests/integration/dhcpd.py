"""A small DHCP server for tests, run inside a network namespace on one
veth: it offers --addr to every client, for --lease seconds (T1 half of
it, T2 seven eighths), with --dns, and no router (the test's keel runs in
the host's namespace, whose default route must stay). While the file
--mute exists it answers nothing; while --nak exists it NAKs requests.
Each message it gets or sends is a line on stdout."""

import argparse
import os
import socket
import struct


def options(msg_type, server, lease, dns):
    o = bytes([53, 1, msg_type, 54, 4]) + socket.inet_aton(server)
    if msg_type != 6:
        o += bytes([1, 4, 255, 255, 255, 0])
        o += bytes([51, 4]) + struct.pack("!I", lease)
        o += bytes([58, 4]) + struct.pack("!I", lease // 2)
        o += bytes([59, 4]) + struct.pack("!I", lease * 7 // 8)
        if dns:
            o += bytes([6, 4]) + socket.inet_aton(dns)
    return o + b"\xff"


def parse(p):
    if len(p) < 240 or p[0] != 1 or p[236:240] != b"\x63\x82\x53\x63":
        return None
    i, opts = 240, {}
    while i < len(p) and p[i] != 255:
        if p[i] == 0:
            i += 1
            continue
        opts[p[i]] = p[i + 2:i + 2 + p[i + 1]]
        i += 2 + p[i + 1]
    return opts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--lease", type=int, default=8)
    ap.add_argument("--dns", default="")
    ap.add_argument("--mute", required=True)
    ap.add_argument("--nak", required=True)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
    s.bind(("0.0.0.0", 67))
    print("dhcpd on %s" % a.iface, flush=True)
    names = {1: "DISCOVER", 3: "REQUEST", 7: "RELEASE"}
    while True:
        p, peer = s.recvfrom(1500)
        opts = parse(p)
        if opts is None or 53 not in opts:
            continue
        t = opts[53][0]
        ciaddr = socket.inet_ntoa(p[12:16])
        print("got %s from %s ciaddr %s" % (names.get(t, t), peer[0], ciaddr), flush=True)
        if os.path.exists(a.mute) or t not in (1, 3):
            continue
        answer = 2 if t == 1 else 6 if os.path.exists(a.nak) else 5
        out = bytearray(p[:236])
        out[0] = 2
        out[16:20] = socket.inet_aton(a.addr)
        out[20:24] = socket.inet_aton(a.server)
        out += b"\x63\x82\x53\x63" + options(answer, a.server, a.lease, a.dns)
        dest = peer[0] if peer[0] != "0.0.0.0" else "255.255.255.255"
        s.sendto(bytes(out), (dest, 68))
        print("sent %s to %s" % ({2: "OFFER", 5: "ACK", 6: "NAK"}[answer], dest), flush=True)


if __name__ == "__main__":
    main()
