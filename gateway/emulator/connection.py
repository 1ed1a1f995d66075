"""One WebSocket of the emulated printer: dialling it, sending on it, closing it.

Only this module and ``link.py`` touch websockets. Everything the printer sends
passes through :meth:`PrinterSocket.send`, which drains the socket's
:class:`~gateway.weblink.ChannelProtocol` under a lock, so split messages from
concurrent tasks never interleave.
"""

from __future__ import annotations

import asyncio
import base64
import ssl as ssl_module
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.protocol import State
from websockets.typing import Subprotocol

from broker.errors import InvalidChannelState
from gateway.emulator.alerts import AlertSubscription
from gateway.emulator.errors import ConnectFailed
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.zpl import ZplStream
from gateway.weblink import SUBPROTOCOL, ChannelKind, ChannelProtocol, CloseCode, Role


async def dial(
    url: str,
    *,
    printer_serial: str,
    options: EmulatorOptions,
    ssl: ssl_module.SSLContext | None = None,
) -> ClientConnection:
    """Open one WebLink socket the way a printer does (§1.3, §1.4).

    The request carries only the RFC 6455 headers and the subprotocol (no
    User-Agent, no compression offer). The 101 must select ``v1.weblink.zebra.com``
    and, if ``options.require_content_length``, carry ``Content-Length: 0``;
    otherwise the printer drops the TCP connection, as some firmware does.

    Args:
        url: the ``ws://`` or ``wss://`` URL.
        printer_serial: for error messages.
        options: timeouts, keep-alive, size limit, proxy and handshake strictness.
        ssl: TLS context for ``wss://`` (custom CA, client certificate).

    Returns:
        The open connection.

    Raises:
        ConnectFailed: the socket could not be opened or the handshake was refused.
    """
    extra: dict[str, Any] = {} if ssl is None else {"ssl": ssl}

    async def dial(headers: dict[str, str] | None) -> ClientConnection:
        return await connect(
            url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            user_agent_header=None,
            proxy=options.proxy,
            open_timeout=options.open_timeout,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            max_size=options.max_message_size,
            additional_headers=headers,
            **extra,
        )

    try:
        try:
            connection = await dial(None)
        except InvalidStatus as exc:
            # §1.3: a printer sends credentials only after a 401 challenge, and only
            # when `weblink.ip.conn1.authentication.add` has some for this server.
            challenged = exc.response.status_code == 401 and exc.response.headers.get(
                "WWW-Authenticate", ""
            ).lower().startswith("basic")
            if not (challenged and options.username is not None):
                raise
            token = f"{options.username}:{options.password or ''}".encode()
            authorization = "Basic " + base64.b64encode(token).decode()
            connection = await dial({"Authorization": authorization})
    except (OSError, TimeoutError, WebSocketException) as exc:
        failure = f"{type(exc).__name__}: {exc}"
        raise ConnectFailed(printer_serial, url, failure) from exc
    reason: str | None = None
    if connection.subprotocol != SUBPROTOCOL:
        reason = f"the 101 response did not select subprotocol {SUBPROTOCOL}"
    elif options.require_content_length:
        assert connection.response is not None  # set once the handshake succeeded
        if connection.response.headers.get("Content-Length") != "0":
            reason = (
                "the 101 response lacks 'Content-Length: 0', which some firmware "
                "requires (weblink-protocol.md §1.4)"
            )
    if reason is not None:
        connection.transport.abort()
        await connection.wait_closed()
        raise ConnectFailed(printer_serial, url, reason)
    return connection


def split_message(message: bytes, size: int | None) -> Iterator[bytes]:
    """Cut one outgoing message into messages of at most ``size`` bytes (§8.3).

    Args:
        message: the message.
        size: the largest piece; ``None`` keeps the message whole.

    Yields:
        The pieces, in order.
    """
    if size is None or len(message) <= size:
        yield message
        return
    for start in range(0, len(message), size):
        yield message[start : start + size]


class PrinterSocket:
    """One open WebLink socket of the printer (main, raw or config).

    Args:
        kind: which channel this socket is.
        connection: the open websockets connection.
        printer_serial: the printer's serial.
        channel_id: the ``channel_id`` sent in the hello (``"1"`` for main).
        split_size: see ``EmulatorOptions.split_replies``.
    """

    def __init__(
        self,
        kind: ChannelKind,
        connection: ClientConnection,
        *,
        printer_serial: str,
        channel_id: str,
        split_size: int | None,
    ) -> None:
        self.kind = kind
        self.connection = connection
        self.protocol = ChannelProtocol(
            Role.PRINTER, kind=kind, printer_serial=printer_serial
        )
        self.channel_id = channel_id
        self.split_size = split_size
        self.log = structlog.get_logger(__name__).bind(
            printer_serial=printer_serial, channel=str(kind), channel_id=channel_id
        )
        #: The discovery or hello went out and the socket is not closed.
        self.is_open = False
        #: The reader finished: the socket is gone.
        self.is_closed = False
        #: The printer closed or aborted this socket itself (not the server).
        self.closed_by_printer = False
        #: Alerts the server asked for on this socket (main only).
        self.subscription = AlertSubscription()
        #: Raw channel: the stream parser for this socket's bytes.
        self.zpl = ZplStream()
        self.messages_received = 0
        self.bytes_received = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self._lock = asyncio.Lock()

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the server sent, if any."""
        frame = self.connection.protocol.close_rcvd
        return None if frame is None else frame.code

    async def send(self, command: Callable[[ChannelProtocol], None]) -> bool:
        """Run a protocol command and send what it produced, split as configured.

        Args:
            command: called with the socket's protocol, e.g.
                ``lambda protocol: protocol.send_raw(data)``.

        Returns:
            False if the socket closed (or was not open) before everything went out.
        """
        async with self._lock:
            try:
                command(self.protocol)
            except InvalidChannelState as exc:
                self.log.warning("message.not_sent", reason=str(exc))
                return False
            try:
                for message in self.protocol.data_to_send():
                    for piece in split_message(message, self.split_size):
                        await self.connection.send(piece)
                        self.messages_sent += 1
                        self.bytes_sent += len(piece)
            except ConnectionClosed as exc:
                self.log.warning("message.not_sent", reason=str(exc))
                return False
        return True

    async def close(self, code: CloseCode, reason: str = "") -> None:
        """Close the socket with a close frame and wait for the handshake.

        Data the server sent before it saw our close frame still arrives during the
        handshake and is still acted on (printed), as an RFC 6455 peer may do; the
        core is told only once the handshake is over. Whether real firmware prints
        what arrives while it closes a channel is unverified.

        Args:
            code: the close code.
            reason: the close reason.
        """
        if self.connection.state is State.OPEN:
            self.closed_by_printer = True
        await self.connection.close(code, reason)
        self.protocol.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, like a power cut (1006)."""
        if self.connection.state is not State.CLOSED:
            self.closed_by_printer = True
        self.connection.transport.abort()
