"""One printer WebSocket as the sessions see it: a transport plus the WebLink core.

The sessions never touch ``websockets``: ``server.py`` adapts a websockets connection to
the small :class:`Transport` protocol below, which raises our own ``ChannelClosed``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

from broker.errors import ChannelClosed
from gateway.weblink import ChannelKind, ChannelProtocol, CloseCode
from gateway.weblink.events import Event


class Transport(Protocol):
    """What a session needs from a WebSocket."""

    async def recv(self) -> bytes | str:
        """Return the next message; raise ``ChannelClosed`` once the socket closed."""
        ...

    async def send(self, data: bytes) -> None:
        """Send one binary message; raise ``ChannelClosed`` if the socket is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with a code and reason."""
        ...

    @property
    def close_code(self) -> int | None:
        """The close code received from or sent to the peer, once closed."""
        ...

    @property
    def remote_address(self) -> str: ...


class PrinterSocket:
    """A transport and its ``ChannelProtocol``; one per printer WebSocket."""

    def __init__(self, transport: Transport, protocol: ChannelProtocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.id = uuid.uuid4().hex[:12]
        #: Wall-clock time of identification (compared across replicas).
        self.identified_at = time.time()
        self.messages_received = 0
        self.messages_sent = 0

    @property
    def kind(self) -> ChannelKind:
        assert self.protocol.kind is not None
        return self.protocol.kind

    @property
    def printer_serial(self) -> str:
        assert self.protocol.printer_serial is not None
        return self.protocol.printer_serial

    async def flush(self) -> None:
        """Send whatever the core queued, one binary message per item."""
        for data in self.protocol.data_to_send():
            await self.transport.send(data)
            self.messages_sent += 1

    async def send_chunked(self, data: bytes, chunk_size: int) -> None:
        """Send raw bytes in messages of at most ``chunk_size`` bytes."""
        for start in range(0, len(data), chunk_size):
            self.protocol.send_raw(data[start : start + chunk_size])
            await self.flush()

    async def events(self) -> AsyncIterator[list[Event]]:
        """Yield the core's events for each received message until the socket closes."""
        while True:
            try:
                message = await self.transport.recv()
            except ChannelClosed:
                self.protocol.receive_closed()
                return
            self.messages_received += 1
            self.protocol.receive_message(message)
            events = self.protocol.events_received()
            if events:
                yield events

    async def close(self, code: CloseCode | int, reason: str) -> None:
        """Close the socket (idempotent); the first code and reason are kept."""
        self.protocol.close(CloseCode(int(code)), reason)
        await self.transport.close(int(code), reason)

    @property
    def close_code(self) -> int | None:
        """The code this socket closed with: ours if we closed it, else the peer's."""
        if self.protocol.close_code is not None:
            return int(self.protocol.close_code)
        return self.transport.close_code
