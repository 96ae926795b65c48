"""A small SNTP server for tests: answers every request on 127.0.0.1:PORT
with this machine's time plus --offset seconds, stratum 2; --kiss answers
with a kiss-o'-death (stratum 0) instead."""

import argparse
import socket
import struct
import time

DELTA = 2208988800


def ntp(t):
    sec = int(t)
    return (sec + DELTA) << 32 | int((t - sec) * (1 << 32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--offset", type=float, default=0.0)
    ap.add_argument("--kiss", action="store_true")
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", a.port))
    print("sntpd on %d, offset %+.0f s" % (a.port, a.offset), flush=True)
    while True:
        data, peer = s.recvfrom(512)
        if len(data) < 48:
            continue
        rx = ntp(time.time() + a.offset)
        origin = data[40:48]
        out = struct.pack("!BBbbII4s", 4 << 3 | 4, 0 if a.kiss else 2, 4, -20, 0, 0, b"TEST")
        out += struct.pack("!Q", rx) + origin + struct.pack("!QQ", rx, ntp(time.time() + a.offset))
        s.sendto(out, peer)
        print("answered %s:%d" % peer, flush=True)


if __name__ == "__main__":
    main()
