"""The WebSocket floor: websockets alone, configured as the gateway configures it.

Run as ``python -m scripts.bench.floor_server --port 0``; it prints one JSON line,
``{"event": "floor.listening", "port": N}``, and serves until SIGTERM or SIGINT:

- ``/echo``: sends every message back (the echo round trip);
- ``/send``: answers each message, whose first four bytes are a size, with a
  message of that size starting with ``time.monotonic()`` packed as a double just
  before sending (a one-way send, timed across processes: ``CLOCK_MONOTONIC``);
- any other path: the least a WebLink server does: a socket whose first message is
  a discovery packet is asked for its raw channel, the same bytes the gateway
  sends; then every socket is held open and whatever arrives is read and dropped.

Same server options as the gateway: no compression, the same pings and size limit.
Nothing here touches RabbitMQ: this is what holding the sockets costs by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
import time

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.weblink import SUBPROTOCOL, encode_json

#: What the gateway sends on main once it has declared a printer's queues.
OPEN_RAW = encode_json({"open": "v1.raw.zebra.com"})
SIZE = struct.Struct("!I")
STAMP = struct.Struct("!d")


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def _send(connection: ServerConnection) -> None:
    async for message in connection:
        data = message.encode() if isinstance(message, str) else message
        (size,) = SIZE.unpack_from(data)
        padding = b"x" * max(0, size - STAMP.size)
        await connection.send(STAMP.pack(time.monotonic()) + padding)


async def _hold(connection: ServerConnection) -> None:
    first = True
    async for message in connection:
        if first and isinstance(message, bytes) and b"discovery_b64" in message:
            await connection.send(OPEN_RAW)
        first = False


async def _handle(connection: ServerConnection) -> None:
    path = connection.request.path if connection.request is not None else "/"
    try:
        if path == "/echo":
            await _echo(connection)
        elif path == "/send":
            await _send(connection)
        else:
            await _hold(connection)
    except ConnectionClosed:
        pass


async def run(host: str, port: int, ping_interval: float, max_size: int) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        _handle,
        host,
        port,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        max_size=max_size,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "floor.listening", "port": bound}), flush=True)
        await stop.wait()
        server.close(close_connections=False)
        for connection in list(server.connections):
            connection.transport.abort()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve."""
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.floor_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--max-size", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    return asyncio.run(run(args.host, args.port, args.ping_interval, args.max_size))


if __name__ == "__main__":
    sys.exit(main())
