"""Keep-alive pings only for quiet sockets, over real WebSockets on localhost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from gateway.keepalive import PrinterConnection, QuietPinger

TIMEOUT = 10.0


@dataclass
class Pair:
    server: Server
    accepted: PrinterConnection
    client: ClientConnection


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """A websockets server with the gateway's connection class, and one client."""
    accepted: asyncio.Future[PrinterConnection] = (
        asyncio.get_running_loop().create_future()
    )

    async def handler(connection: ServerConnection) -> None:
        assert isinstance(connection, PrinterConnection)
        accepted.set_result(connection)
        await connection.wait_closed()

    async with serve(
        handler,
        "127.0.0.1",
        0,
        create_connection=PrinterConnection,
        ping_interval=None,
        close_timeout=0.5,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", ping_interval=None, close_timeout=0.5
        ) as client:
            connection = await asyncio.wait_for(accepted, TIMEOUT)
            yield Pair(server, connection, client)


def _silent_for(connection: PrinterConnection, seconds: float) -> None:
    connection.heard = connection.loop.time() - seconds


async def test_a_socket_heard_from_lately_is_not_pinged(pair: Pair) -> None:
    await pair.client.send("alert")
    await pair.accepted.recv()
    pinger = QuietPinger(interval=60, timeout=20)
    assert await pinger.sweep(pair.server.connections) == []
    assert pinger.pings_sent == 0
    assert pair.accepted.pinged_at is None


async def test_a_quiet_socket_is_pinged_and_its_pong_counts_as_heard(
    pair: Pair,
) -> None:
    _silent_for(pair.accepted, 61)
    pinger = QuietPinger(interval=60, timeout=20)
    pongs = await pinger.sweep(pair.server.connections)
    assert pinger.pings_sent == 1
    assert len(pongs) == 1
    await asyncio.wait_for(pongs[0], TIMEOUT)
    assert pair.accepted.pinged_at is None
    assert pair.accepted.loop.time() - pair.accepted.heard < 60
    # Answered: the next sweep leaves it alone.
    assert await pinger.sweep(pair.server.connections) == []


async def test_a_socket_that_does_not_answer_is_closed_with_1011(pair: Pair) -> None:
    assert pair.client.transport is not None
    pair.client.transport.pause_reading()  # a half-open peer: nothing comes back
    _silent_for(pair.accepted, 61)
    pinger = QuietPinger(interval=60, timeout=20)
    await pinger.sweep(pair.server.connections)
    assert pair.accepted.pinged_at is not None
    # The pong timeout elapses (without waiting 20 s for it).
    pair.accepted.pinged_at -= 21
    await pinger.sweep(pair.server.connections)
    await asyncio.wait_for(pair.accepted.wait_closed(), TIMEOUT)
    # Sent 1011; nothing came back, so the connection itself ended abnormally.
    sent = pair.accepted.protocol.close_sent
    assert sent is not None
    assert (sent.code, sent.reason) == (1011, "keepalive ping timeout")
    assert pair.accepted.close_code == 1006


def test_the_sweep_period_fits_the_timeout() -> None:
    assert QuietPinger(interval=60, timeout=20).period == 5.0
    assert QuietPinger(interval=1, timeout=0.4).period == pytest.approx(0.1)
