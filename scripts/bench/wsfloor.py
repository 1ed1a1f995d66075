"""The WebSocket floors, against the floor server (``floor_server.py``).

- echo: a websockets client sends a small message and waits for it back;
- send: the server sends 1 KiB stamped with ``time.monotonic()``; the client notes
  when it arrived (one way, across processes).

Same options as the gateway's sockets (no compression).
"""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from gateway.weblink import SUBPROTOCOL
from scripts.bench.floor_server import SIZE, STAMP

SAMPLE_TIMEOUT = 10.0
PROTOCOLS = [Subprotocol(SUBPROTOCOL)]


async def echo_round_trips(
    url: str, samples: int, size: int = 64, warmup: int = 20
) -> list[float]:
    """Time ``samples`` sequential echo round trips of ``size`` bytes, in seconds."""
    message = b"x" * size
    times: list[float] = []
    async with connect(
        url + "echo", compression=None, subprotocols=PROTOCOLS
    ) as connection:
        for index in range(warmup + samples):
            start = time.perf_counter()
            await connection.send(message)
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                await connection.recv()
            if index >= warmup:
                times.append(time.perf_counter() - start)
    return times


async def one_way_sends(
    url: str, samples: int, size: int = 1024, warmup: int = 20
) -> list[float]:
    """Time ``samples`` one-way sends of ``size`` bytes from the server, in seconds."""
    request = SIZE.pack(size)
    times: list[float] = []
    async with connect(
        url + "send", compression=None, subprotocols=PROTOCOLS
    ) as connection:
        for index in range(warmup + samples):
            await connection.send(request)
            async with asyncio.timeout(SAMPLE_TIMEOUT):
                data = await connection.recv(decode=False)
            arrived = time.monotonic()
            (sent,) = STAMP.unpack_from(data)
            if index >= warmup:
                times.append(arrived - sent)
    return times
