"""All WebLink sockets of one emulated printer, and their life cycle.

``weblink-protocol.md`` §0, §3, §7: the printer keeps one main socket up, dialling it
again ``retry_interval`` seconds after a loss; on ``open`` it dials a new socket to the
same URL and sends a hello; when main is lost its channels go too. This module does
that and nothing else: what the printer does with the messages is the
``handle_events`` callback's business (``printer.py``).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog
from websockets.exceptions import ConnectionClosed

from gateway.emulator.changes import StateChanges
from gateway.emulator.connection import PrinterSocket, dial
from gateway.emulator.errors import ConnectFailed
from gateway.emulator.options import EmulatorOptions
from gateway.weblink import ChannelKind, CloseCode
from gateway.weblink.events import Event

logger = structlog.get_logger(__name__)

_MAIN = ChannelKind.MAIN

EventHandler = Callable[[PrinterSocket, list[Event]], Awaitable[None]]


class PrinterLink:
    """The sockets of one printer on one WebLink connection (``conn1``).

    Args:
        url: the WebLink location.
        printer_serial: the printer's serial.
        discovery_b64: the main socket's first message.
        options: connection knobs (URLs, retry, caps, splitting, …).
        changes: notified on every socket change.
        handle_events: called with each socket's events, in order, from its reader.
        ssl: TLS context for ``wss://``.
    """

    def __init__(
        self,
        url: str,
        printer_serial: str,
        *,
        discovery_b64: str,
        options: EmulatorOptions,
        changes: StateChanges,
        handle_events: EventHandler,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.printer_serial = printer_serial
        self.options = options
        self._discovery_b64 = discovery_b64
        self._changes = changes
        self._handle_events = handle_events
        self._ssl = ssl
        self._log = logger.bind(printer_serial=printer_serial)
        #: Sockets dialled and not yet closed, oldest first.
        self.sockets: list[PrinterSocket] = []
        #: One ``(kind, code)`` per closed socket (the server's close code or None).
        self.close_codes: list[tuple[str, int | None]] = []
        #: Main sockets opened so far.
        self.connections_made = 0
        #: Close codes of main sockets the printer did not close itself, in order.
        self.main_closes: list[int | None] = []
        #: Set by :meth:`close`: no more dialling.
        self.is_closing = False
        self._reserved = 0  # channel sockets being dialled (for max_connections)
        self._next_channel_id = 1
        self._session = 0  # bumped on every fresh main connection
        self._run_task: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Task[None]] = set()

    # -- queries --------------------------------------------------------------------

    def main(self) -> PrinterSocket | None:
        """Return the newest open main socket (newest main wins, §4.2)."""
        return self.newest(_MAIN)

    def newest(self, kind: ChannelKind) -> PrinterSocket | None:
        """Return the newest open socket of ``kind``, if any."""
        for sock in reversed(self.sockets):
            if sock.kind is kind and sock.is_open:
                return sock
        return None

    def open_count(self) -> int:
        """Count the open sockets (``weblink.ip.conn1.num_connections``)."""
        return sum(1 for sock in self.sockets if sock.is_open)

    # -- life cycle -----------------------------------------------------------------

    async def start(self, *, fail_fast: bool) -> None:
        """Start keeping main up.

        Args:
            fail_fast: return once main is connected, and raise (and stop) if the
                first attempt fails. Otherwise return at once and keep trying.

        Raises:
            ConnectFailed: with ``fail_fast``, the first attempt failed.
        """
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(
            self._run(first, fail_fast=fail_fast),
            name=f"emulator-{self.printer_serial}-link",
        )
        if not fail_fast:
            return
        await asyncio.wait([first, self._run_task], return_when=asyncio.FIRST_COMPLETED)
        if not first.done():
            self._run_task.result()  # _run can only end early by crashing
        first.result()

    async def close(self) -> None:
        """Stop dialling and close every socket with 1000, channels before main."""
        self.is_closing = True
        tasks = [task for task in (self._run_task, *self._helpers) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for kinds in ((ChannelKind.RAW, ChannelKind.CONFIG), (_MAIN,)):
            await asyncio.gather(
                *(
                    sock.close(CloseCode.NORMAL, "printer shutting down")
                    for sock in list(self.sockets)
                    if sock.kind in kinds
                )
            )
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def drop(self) -> None:
        """Abort every socket without a close frame and wait until all are gone."""
        sockets = list(self.sockets)
        self._log.info("printer.dropped", sockets=len(sockets))
        for sock in sockets:
            sock.abort()
        await self._changes.wait_for(lambda: all(sock.is_closed for sock in sockets))

    def request_channel(self, kind: ChannelKind) -> None:
        """Answer ``open`` from the server: dial the channel unless refused (§3).

        Args:
            kind: raw or config.
        """
        if self.is_closing:
            return
        if str(kind) in self.options.refuse_channels:
            self._log.info("channel.refused", requested=str(kind), reason="refused")
            return
        if len(self.sockets) + self._reserved >= self.options.max_connections:
            # §3: at the connection cap the printer simply does not open it.
            self._log.warning(
                "channel.refused",
                requested=str(kind),
                reason="maximum_simultaneous_connections",
                max_connections=self.options.max_connections,
            )
            return
        self._reserved += 1
        self._start(self._open_channel(kind), self._helpers, f"open-{kind}")

    async def open_socket(
        self, kind: ChannelKind, *, reserved: bool = False
    ) -> PrinterSocket:
        """Dial one socket, start its reader and send its first message.

        Args:
            kind: main (sends discovery) or a channel (sends a hello).
            reserved: the socket was counted in advance by :meth:`request_channel`.

        Returns:
            The open socket.

        Raises:
            ConnectFailed: dialling failed or the socket closed at once.
        """
        url = self.options.channel_urls.get(str(kind), self.url)
        channel_id = str(self._next_channel_id)
        self._next_channel_id += 1
        try:
            connection = await dial(
                url,
                printer_serial=self.printer_serial,
                options=self.options,
                ssl=self._ssl,
            )
        finally:
            if reserved:
                self._reserved -= 1
        sock = PrinterSocket(
            kind,
            connection,
            printer_serial=self.printer_serial,
            channel_id=channel_id,
            split_size=self.options.split_replies,
        )
        self.sockets.append(sock)
        self._start(self._read(sock), self._readers, f"{kind}-{channel_id}")
        if kind is _MAIN:
            discovery, pretty = self._discovery_b64, self.options.pretty_json
            sent = await sock.send(
                lambda protocol: protocol.send_discovery(discovery, pretty=pretty)
            )
        else:
            sent = await sock.send(lambda protocol: protocol.send_hello(channel_id))
        if not sent or sock.is_closed:
            raise ConnectFailed(
                self.printer_serial, url, "the socket closed before its first message"
            )
        sock.is_open = True
        if kind is _MAIN:
            self.connections_made += 1
        sock.log.info(
            "printer.connected" if kind is _MAIN else "channel.opened", url=url
        )
        self._changes.notify()
        return sock

    # -- internals ------------------------------------------------------------------

    async def _run(self, first: asyncio.Future[None], *, fail_fast: bool) -> None:
        """Keep one main connection up: dial, wait for its loss, retry (§7)."""
        while True:
            self._next_channel_id = 1
            self._session += 1
            try:
                await self.open_socket(_MAIN)
            except ConnectFailed as exc:
                self._log.warning(
                    "printer.connect_failed",
                    url=exc.url,
                    reason=exc.reason,
                    retry_interval=self.options.retry_interval,
                )
                if fail_fast and not first.done():
                    first.set_exception(exc)
                    return
            else:
                if not first.done():
                    first.set_result(None)
                await self._changes.wait_for(lambda: self.main() is None)
                # Zebra's servlet drops a printer's channels with its main (§7); the
                # printer does the same, and the server re-issues "open" later.
                await asyncio.gather(
                    *(
                        sock.close(CloseCode.GOING_AWAY, "main channel lost")
                        for sock in list(self.sockets)
                        if sock.kind is not _MAIN
                    )
                )
            if self.is_closing or not self.options.reconnect:
                return
            self._log.info(
                "printer.reconnecting", retry_interval=self.options.retry_interval
            )
            # Printer behaviour (weblink.ip.conn1.retry_interval), not synchronisation.
            await asyncio.sleep(self.options.retry_interval)

    async def _open_channel(self, kind: ChannelKind) -> None:
        """Open a requested channel; close it again if main went away meanwhile."""
        session = self._session
        try:
            sock = await self.open_socket(kind, reserved=True)
        except ConnectFailed as exc:
            self._log.warning(
                "channel.connect_failed", channel=str(kind), reason=exc.reason
            )
            self._changes.notify()  # the reservation is gone
            return
        if self.is_closing or session != self._session or self.main() is None:
            await sock.close(CloseCode.GOING_AWAY, "main channel lost")

    async def _read(self, sock: PrinterSocket) -> None:
        """Feed one socket's messages to its protocol until it closes."""
        try:
            async for message in sock.connection:
                sock.messages_received += 1
                sock.bytes_received += len(message)
                if isinstance(message, str):
                    # §2: WebLink is binary only; fail loudly.
                    sock.log.error("weblink.text_frame_received", size=len(message))
                    await sock.close(
                        CloseCode.UNSUPPORTED_DATA,
                        "text frames are not supported; WebLink uses binary frames",
                    )
                    break
                sock.protocol.receive_message(message)
                await self._handle_events(sock, sock.protocol.events_received())
        except ConnectionClosed:
            pass
        except Exception:
            # Task boundary: log the bug and turn it into a close code.
            sock.log.exception("emulator.internal_error")
            await sock.close(CloseCode.INTERNAL_ERROR, "emulator error")
        finally:
            self._forget(sock)

    def _forget(self, sock: PrinterSocket) -> None:
        """Record a closed socket and drop it (a channel is simply forgotten)."""
        sock.protocol.receive_closed()
        sock.is_open = False
        sock.is_closed = True
        if sock in self.sockets:
            self.sockets.remove(sock)
        code = sock.close_code
        self.close_codes.append((str(sock.kind), code))
        if sock.kind is _MAIN and not sock.closed_by_printer:
            self.main_closes.append(code)
        sock.log.info(
            "channel.closed",
            close_code=code,
            closed_by_printer=sock.closed_by_printer,
            messages_received=sock.messages_received,
            bytes_received=sock.bytes_received,
            messages_sent=sock.messages_sent,
            bytes_sent=sock.bytes_sent,
        )
        self._changes.notify()

    def _start(
        self,
        coroutine: Coroutine[Any, Any, None],
        tasks: set[asyncio.Task[None]],
        name: str,
    ) -> None:
        task = asyncio.create_task(
            coroutine, name=f"emulator-{self.printer_serial}-{name}"
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
