"""Keep-alive that pings only the printers that have gone quiet.

A half-open socket (the printer lost power, a NAT forgot the flow) is only found by
sending on it. websockets' own keep-alive pings every socket every ``ping_interval``
with a task per socket; but printers ping the server themselves about every 60 s, and
a socket that just carried a ping, a label or an alert is not half-open. So the
gateway turns websockets' keep-alive off, each connection notes when it last received
anything (:class:`PrinterConnection`), and one sweep (:class:`QuietPinger`) pings the
sockets silent for ``ping_interval`` and closes those still silent ``ping_timeout``
later: a half-open socket is found within ``ping_interval + ping_timeout`` plus two
sweep periods (5 s each at most), and a printer that pings on its own is never
pinged. Idle
CPU and a task per socket go (docs/performance.md, fix 15).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConcurrencyError, ConnectionClosed
from websockets.protocol import State

log = structlog.get_logger(__name__)

#: Sweeps per ``ping_timeout`` (and at least one every ``MAX_PERIOD`` seconds).
SWEEPS_PER_TIMEOUT = 4
MAX_PERIOD = 5.0


class PrinterConnection(ServerConnection):
    """websockets' server connection, noting when its printer was last heard."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Loop time of the last bytes received (any frame: data, ping, pong).
        self.heard = self.loop.time()
        #: Loop time of the keep-alive ping sent since then, if one was.
        self.pinged_at: float | None = None

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        self.pinged_at = None
        super().data_received(data)


class QuietPinger:
    """Ping the connections silent for ``interval``; close them after ``timeout``."""

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.period = min(MAX_PERIOD, timeout / SWEEPS_PER_TIMEOUT)
        self._closing: set[asyncio.Task[None]] = set()
        #: Keep-alive pings sent so far.
        self.pings_sent = 0

    async def run(self, connections: Callable[[], Iterable[ServerConnection]]) -> None:
        """Sweep ``connections()`` every :attr:`period` seconds until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.period)
                await self.sweep(connections())
        finally:
            for task in self._closing:
                task.cancel()

    async def sweep(
        self, connections: Iterable[ServerConnection]
    ) -> list[Awaitable[float]]:
        """One pass: ping the quiet, close the silent; return the pongs awaited."""
        pongs: list[Awaitable[float]] = []
        now = asyncio.get_running_loop().time()
        for connection in connections:
            if not isinstance(connection, PrinterConnection):
                continue
            if connection.state is not State.OPEN:
                continue
            if connection.pinged_at is not None:
                if now - connection.pinged_at >= self.timeout:
                    self._close(connection, now - connection.heard)
            elif now - connection.heard >= self.interval:
                connection.pinged_at = now
                self.pings_sent += 1
                # Closed meanwhile or a ping already waiting: nothing to do.
                with contextlib.suppress(ConnectionClosed, ConcurrencyError):
                    pongs.append(await connection.ping())
        return pongs

    def _close(self, connection: PrinterConnection, silent: float) -> None:
        log.info(
            "socket.keepalive_timeout",
            silent_s=round(silent, 1),
            address=str(connection.remote_address),
        )
        task = asyncio.get_running_loop().create_task(
            connection.close(1011, "keepalive ping timeout")
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
