"""A tiny WebLink server for the emulator's component tests.

This is a **test double, not the gateway**. It does none of what the gateway does: no
RabbitMQ, no queues, no sessions or registry, no routing between replicas, no duplicate
handling, no keep-alive policy, no shutdown order. It only accepts WebSockets on
``127.0.0.1`` the way the gateway must (subprotocol ``v1.weblink.zebra.com`` and
``Content-Length: 0`` on the 101, ``weblink-protocol.md`` §1.4), identifies each socket
with the real core in the gateway role (``ChannelProtocol(Role.GATEWAY)``), records
what arrives, and lets a test send frames and close sockets by hand.
"""

# ASYNC109: the wait helpers take a timeout on purpose and apply it with
# asyncio.timeout() inside, so every test wait is bounded in one place.

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from gateway.weblink import (
    SUBPROTOCOL,
    Alert,
    AlertReceived,
    ChannelKind,
    ChannelProtocol,
    CloseCode,
    PrinterIdentified,
    ProtocolViolation,
    QueryAnswered,
    RawDataReceived,
    Role,
    SgdReplyReceived,
    UnsolicitedMessage,
)


@dataclass(eq=False)
class ServerSocket:
    """One accepted printer socket and everything it carried."""

    connection: ServerConnection
    server: WebLinkTestServer
    protocol: ChannelProtocol = field(
        default_factory=lambda: ChannelProtocol(Role.GATEWAY)
    )
    #: The socket's first message, once it identified the printer and channel.
    identified: PrinterIdentified | None = None
    #: Every binary message as received (to check splitting).
    messages: list[bytes] = field(default_factory=list)
    #: Raw channel: the bytes after the hello.
    raw: bytearray = field(default_factory=bytearray)
    alerts: list[Alert] = field(default_factory=list)
    sgd_replies: list[dict[str, Any]] = field(default_factory=list)
    unsolicited: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: The code of the printer's close frame (``None`` without one).
    close_code: int | None = None
    is_closed: bool = False

    @property
    def kind(self) -> ChannelKind | None:
        """Main, raw or config, once identified."""
        return None if self.identified is None else self.identified.kind

    async def flush(self) -> None:
        """Send whatever the core queued, one binary message each."""
        for message in self.protocol.data_to_send():
            await self.connection.send(message)

    async def request_channel(self, kind: ChannelKind) -> None:
        """Send ``{"open": ...}`` on this main socket."""
        self.protocol.request_channel(kind)
        await self.flush()

    async def configure_alerts(self, spec: str = "ALL MESSAGES,SDK,Y,Y,,,N") -> None:
        """Send ``{"configure_alert": spec}`` on this main socket."""
        self.protocol.configure_alerts(spec)
        await self.flush()

    async def send_raw(self, data: bytes) -> None:
        """Send bytes on this raw socket."""
        self.protocol.send_raw(data)
        await self.flush()

    async def send_sgd(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one JSON SGD request on this config socket and wait for the reply."""
        replies = len(self.sgd_replies)
        self.protocol.send_sgd(request)
        await self.flush()
        await self.server.wait_for(lambda: len(self.sgd_replies) > replies, timeout)
        return self.sgd_replies[replies]

    async def send_text(self, text: str) -> None:
        """Send a text frame, which WebLink forbids (§2)."""
        await self.connection.send(text)

    async def close(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Close this socket with a close frame."""
        await self.connection.close(code)


class WebLinkTestServer:
    """Accept printer sockets and let a test drive them (see the module docstring).

    Args:
        content_length: add ``Content-Length: 0`` to the 101, as the gateway must.
        subprotocol: select ``v1.weblink.zebra.com`` when the printer offers it.
    """

    def __init__(self, *, content_length: bool = True, subprotocol: bool = True):
        self.content_length = content_length
        self.subprotocol = subprotocol
        #: Every socket accepted, in order.
        self.sockets: list[ServerSocket] = []
        self._server: Server | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/zebra/weblink/``."""
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/zebra/weblink/"

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(SUBPROTOCOL)] if self.subprotocol else None,
            process_response=self._process_response,
            compression=None,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        # websockets >= 14 has no extra_headers: add the header here (§1.4).
        if self.content_length and response.status_code == 101:
            response.headers["Content-Length"] = "0"

    # -- waiting --------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, re-checked on every received event."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    def identified(
        self, kind: ChannelKind, *, printer_serial: str | None = None
    ) -> list[ServerSocket]:
        """Return the sockets identified as ``kind`` (optionally for one printer)."""
        return [
            sock
            for sock in self.sockets
            if sock.identified is not None
            and sock.identified.kind is kind
            and (
                printer_serial is None
                or sock.identified.printer_serial == printer_serial
            )
        ]

    async def wait_socket(
        self,
        kind: ChannelKind,
        timeout: float,
        *,
        number: int = 1,
        printer_serial: str | None = None,
    ) -> ServerSocket:
        """Wait for the ``number``-th socket identified as ``kind`` and return it."""
        await self.wait_for(
            lambda: len(self.identified(kind, printer_serial=printer_serial)) >= number,
            timeout,
        )
        return self.identified(kind, printer_serial=printer_serial)[number - 1]

    async def wait_closed(self, sock: ServerSocket, timeout: float) -> int | None:
        """Wait until ``sock`` is closed and return the printer's close code."""
        await self.wait_for(lambda: sock.is_closed, timeout)
        return sock.close_code

    # -- handler --------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        sock = ServerSocket(connection, self)
        self.sockets.append(sock)
        self._notify()
        try:
            async for message in connection:
                if isinstance(message, bytes):
                    sock.messages.append(message)
                sock.protocol.receive_message(message)
                for event in sock.protocol.events_received():
                    self._record(sock, event)
                self._notify()
                if sock.protocol.close_code is not None:
                    await connection.close(sock.protocol.close_code)
        except ConnectionClosed:
            pass
        finally:
            sock.protocol.receive_closed()
            frame = connection.protocol.close_rcvd
            sock.close_code = None if frame is None else frame.code
            sock.is_closed = True
            self._notify()

    @staticmethod
    def _record(sock: ServerSocket, event: object) -> None:
        match event:
            case PrinterIdentified():
                sock.identified = event
            case AlertReceived(alert=alert):
                sock.alerts.append(alert)
            case SgdReplyReceived(reply=reply):
                sock.sgd_replies.append(reply)
            case RawDataReceived(data=data) | QueryAnswered(data=data):
                sock.raw += data
            case UnsolicitedMessage(value=value):
                sock.unsolicited.append(value)
            case ProtocolViolation(reason=reason):
                sock.violations.append(reason)
