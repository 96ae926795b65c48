"""A real WebSocket peer for tests (Debian's python3-websockets, run with
/usr/bin/python3). `wsecho.py serve PORT` echoes every message;
`wsecho.py client URL` reads lines on stdin, sends each as a message and
prints the echo, one per line, until stdin ends."""

import asyncio
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def serve(port):
    async with websockets.serve(echo, "127.0.0.1", port):
        print("listening", flush=True)
        await asyncio.Future()


async def client(url):
    async with websockets.connect(url, open_timeout=5) as ws:
        print("open", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            await ws.send(line.strip())
            print(await asyncio.wait_for(ws.recv(), 5), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[2]))
