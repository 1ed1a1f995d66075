"""``PrinterEmulator``: a Zebra Link-OS printer on the WebLink client side.

It dials the gateway like a printer (``weblink-protocol.md`` §0, §9): a main socket
that sends the discovery packet, a new socket to the same URL for every ``open`` the
server sends, JSON SGD answers on config, ZPL and status answers on raw, alerts on main,
and a reconnect after ``retry_interval`` when main is lost. The protocol itself is the
sans-I/O :class:`~gateway.weblink.ChannelProtocol` in the printer role; this class only
moves bytes and keeps the printer's state.

Everything a test may want to observe is an attribute, and every ``wait_*`` method
waits on state changes (never by polling or sleeping) inside its own timeout.
"""

# ASYNC109: wait methods take a timeout on purpose; it is their documented API, and
# each applies it with asyncio.timeout() inside.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import structlog
from websockets.exceptions import ConnectionClosed

from broker.errors import ConfigurationError
from gateway.emulator.alerts import FAULT_CONDITIONS, PQ_JOB_COMPLETED
from gateway.emulator.changes import StateChanges
from gateway.emulator.connection import PrinterSocket, dial
from gateway.emulator.engine import PrintEngine
from gateway.emulator.errors import ConnectFailed, EmulatorError, NotConnected
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.sgd import answer_sgd, default_settings, get_setting, set_setting
from gateway.emulator.zpl import (
    GetVar,
    HostIdentificationQuery,
    HostStatusQuery,
    JsonSgd,
    LabelFormat,
    SetVar,
    getvar_answer,
    host_identification_answer,
    host_status_answer,
)
from gateway.weblink import ChannelKind, CloseCode, encode_alert, encode_json
from gateway.weblink.discovery import encode_discovery_b64
from gateway.weblink.events import (
    AlertsConfigured,
    ChannelOpenRequested,
    Event,
    ProtocolViolation,
    RawDataReceived,
    SgdRequestReceived,
    UnsolicitedMessage,
)

logger = structlog.get_logger(__name__)

_MAIN = ChannelKind.MAIN


class PrinterEmulator:
    """One emulated printer, connected out to a WebLink gateway.

    Use it as an async context manager, which connects on entry and closes every
    socket with 1000 on exit::

        async with PrinterEmulator("ws://127.0.0.1:8080/", "50J000000001") as printer:
            labels = await printer.wait_for_labels(1, timeout=5)

    Args:
        url: the WebLink location (``weblink.ip.conn1.location``), ``ws://`` or
            ``wss://``.
        serial: the printer's serial number (its WebLink ``unique_id``).
        options: behaviour knobs; defaults to a healthy current printer.
        ssl: TLS context for ``wss://`` URLs (trusted CA, client certificate).

    Raises:
        ConfigurationError: the identity does not fit the discovery packet (e.g. a
            serial over 10 characters with ``legacy_discovery``).
    """

    def __init__(
        self,
        url: str,
        serial: str,
        options: EmulatorOptions | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.printer_serial = serial
        self.options = options if options is not None else EmulatorOptions()
        self._ssl = ssl
        self._log = logger.bind(printer_serial=serial)
        try:
            self._discovery_b64 = encode_discovery_b64(
                printer_serial=serial,
                product_name=self.options.product_name,
                firmware=self.options.firmware,
                system_name=self.options.system_name,
                mac=self.options.mac,
                ip=self.options.ip,
                legacy=self.options.legacy_discovery,
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"printer {serial}: cannot build its discovery packet: {exc}"
            ) from exc

        #: The live SGD table: read it, or seed it before a test.
        self.settings: dict[str, str] = default_settings(
            printer_serial=serial, url=url, options=self.options
        )
        #: Every byte received on raw channels, in order.
        self.raw_received = bytearray()
        #: Alert objects sent on main, in order.
        self.alerts_sent: list[dict[str, Any]] = []
        #: One ``(kind, code)`` per closed socket: the close code the server sent,
        #: ``None`` if no close frame arrived (drop, network loss).
        self.close_codes: list[tuple[str, int | None]] = []
        #: Main sockets opened so far (reconnects and extra mains included).
        self.connections_made = 0
        #: JSON SGD requests received (config channel, and ``{}{...}`` on raw).
        self.sgd_requests: list[dict[str, Any]] = []
        #: ``configure_alert`` specs received on main, in order.
        self.configured_alerts: list[str] = []

        self._changes = StateChanges()
        self._engine = PrintEngine(
            self._changes, label_print_time=self.options.label_print_time
        )
        self._sockets: list[PrinterSocket] = []
        self._reserved = 0  # channel sockets being dialled (for max_connections)
        self._next_channel_id = 1
        self._session = 0  # bumped on every fresh main connection
        self._main_closes: list[int | None] = []
        self._main_closes_returned = 0
        self._run_task: asyncio.Task[None] | None = None
        self._print_task: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Task[None]] = set()
        self._started = False
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect (see :meth:`start`) and return the printer."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close every socket with 1000 (see :meth:`close`)."""
        await self.close()

    async def start(self, *, wait: bool = True) -> None:
        """Start the printer: dial main, send discovery, then follow the server.

        Args:
            wait: return once main is connected and discovery sent, and raise if the
                first attempt fails (then the printer stops). With ``False``, return
                at once and keep dialling every ``retry_interval`` like a real
                printer whose gateway is down.

        Raises:
            ConnectFailed: with ``wait``, the first connection attempt failed.
            EmulatorError: the printer was already started.
        """
        if self._started:
            raise EmulatorError(f"printer {self.printer_serial} is already started")
        self._started = True
        self._print_task = asyncio.create_task(
            self._engine.run(self._label_printed),
            name=f"emulator-{self.printer_serial}-print",
        )
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(
            self._run(first, fail_fast=wait), name=f"emulator-{self.printer_serial}"
        )
        if wait:
            try:
                await asyncio.wait(
                    [first, self._run_task], return_when=asyncio.FIRST_COMPLETED
                )
                if not first.done():
                    # _run ended without connecting: it can only have crashed.
                    self._run_task.result()
                    raise EmulatorError(f"printer {self.printer_serial} stopped")
                first.result()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Stop dialling and close every socket with 1000; idempotent."""
        if self._closing:
            return
        self._closing = True
        for task in (self._run_task, *self._helpers):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(task for task in (self._run_task, *self._helpers) if task is not None),
            return_exceptions=True,
        )
        # Channels first, then main, as a printer shutting down would.
        for kinds in ((ChannelKind.RAW, ChannelKind.CONFIG), (_MAIN,)):
            await asyncio.gather(
                *(
                    sock.close(CloseCode.NORMAL, "printer shutting down")
                    for sock in list(self._sockets)
                    if sock.kind in kinds
                )
            )
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._print_task is not None:
            self._print_task.cancel()
            await asyncio.gather(self._print_task, return_exceptions=True)
        self._log.info("printer.closed", labels=len(self.labels))
        self._notify()

    async def drop(self) -> None:
        """Cut every socket without a close frame, like a power loss (server: 1006).

        The printer then dials main again after ``retry_interval`` (if ``reconnect``
        and not closed). Returns once every socket is gone.
        """
        sockets = list(self._sockets)
        self._log.info("printer.dropped", sockets=len(sockets))
        for sock in sockets:
            sock.abort()
        await self._changes.wait_for(lambda: all(sock.is_closed for sock in sockets))

    # -- fault knobs ----------------------------------------------------------------

    @property
    def labels(self) -> list[bytes]:
        """Every complete ``^XA…^XZ`` format received on raw, verbatim, in order."""
        return self._engine.labels

    @property
    def labels_printed(self) -> int:
        """Labels printed so far (each format prints its ``^PQ`` count)."""
        return self._engine.labels_printed

    @property
    def faults(self) -> frozenset[str]:
        """Active faults: ``head open``, ``paper out``, ``ribbon out``, ``printer paused``."""
        return frozenset(self._engine.faults)

    async def set_fault(self, condition: str, active: bool) -> None:
        """Raise or clear a fault: it sends the alert, stops printing and ``~HS``.

        While any fault is active no label prints. Head open, paper out and ribbon out
        also silence ``~HS`` (§6) unless ``host_status_when_faulted``. The alert
        (e.g. ``HEAD OPEN`` SET or CLEAR) goes out on main if the server asked for it.
        Setting a fault to the state it is already in does nothing.

        Args:
            condition: ``head open``, ``paper out``, ``ribbon out`` or
                ``printer paused`` (any case).
            active: True to raise the fault, False to clear it.

        Raises:
            ValueError: unknown fault name.
        """
        name = condition.strip().lower()
        if not self._engine.set_fault(name, active):
            return
        faults = self._engine.faults
        self.settings["head.latch"] = "open" if "head open" in faults else "ok"
        self.settings["media.status"] = "out" if "paper out" in faults else "ok"
        self._log.info("printer.fault", fault=name, active=active)
        self._notify()
        await self._raise_alert(FAULT_CONDITIONS[name], "SET" if active else "CLEAR")

    async def send_alert(
        self, condition: str, state: str = "SET", **fields: str
    ) -> None:
        """Send an alert on main now, whether or not the server asked for it.

        Args:
            condition: e.g. ``SGD SET`` or ``PAPER OUT``.
            state: ``SET`` or ``CLEAR``.
            **fields: ``time_stamp``, ``setting_name``, ``setting_value``.

        Raises:
            NotConnected: no main socket is open, or it closed while sending.
        """
        main = self._main()
        if main is None or not await self._send_alert(main, condition, state, fields):
            raise NotConnected(self.printer_serial, "main")

    async def send_unsolicited_raw(self, data: bytes) -> None:
        """Send bytes nobody asked for on the newest raw socket.

        Args:
            data: the bytes, split per ``split_replies``.

        Raises:
            NotConnected: no raw socket is open, or it closed while sending.
        """
        raw = self._newest(ChannelKind.RAW)
        if raw is None or not await raw.send(lambda protocol: protocol.send_raw(data)):
            raise NotConnected(self.printer_serial, "raw")

    async def open_extra_main(self) -> None:
        """Dial one more main socket and send discovery on it (§4.2, §8.1).

        The newest main is the one alerts use. When the server closes the older one
        (newest wins), the printer carries on with the extra one; it reconnects only
        once no main socket is left. ``max_connections`` is not checked here.

        Raises:
            ConnectFailed: the socket could not be opened.
        """
        await self._open_socket(_MAIN)

    # -- observation ----------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Whether a main socket is open and has sent discovery."""
        return self._main() is not None

    def channel_open(self, kind: str) -> bool:
        """Tell whether a socket of that kind is open (its hello sent).

        Args:
            kind: ``main``, ``raw`` or ``config``.

        Returns:
            True if at least one such socket is open.
        """
        channel = ChannelKind(kind)
        return any(sock.kind is channel and sock.is_open for sock in self._sockets)

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float | None = None
    ) -> None:
        """Wait until ``predicate()`` holds, re-checked on every state change.

        Every attribute documented above changes only with a notification, e.g.
        ``await printer.wait_until(lambda: bool(printer.configured_alerts), 5)``.

        Args:
            predicate: checked now and after every change.
            timeout: seconds; ``None`` waits forever.

        Raises:
            TimeoutError: the predicate stayed false for ``timeout`` seconds.
        """
        await self._changes.wait_for(predicate, timeout)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until main is connected and discovery sent.

        Args:
            timeout: seconds; ``None`` waits forever.

        Raises:
            TimeoutError: not connected in time.
        """
        await self._changes.wait_for(lambda: self.is_connected, timeout)

    async def wait_channel(self, kind: str, timeout: float | None = None) -> None:
        """Wait until a socket of that kind is open and its hello sent.

        Args:
            kind: ``main``, ``raw`` or ``config``.
            timeout: seconds; ``None`` waits forever.

        Raises:
            TimeoutError: not open in time.
        """
        ChannelKind(kind)  # fail fast on a typo
        await self._changes.wait_for(lambda: self.channel_open(kind), timeout)

    async def wait_channel_closed(
        self, kind: str, timeout: float | None = None
    ) -> None:
        """Wait until every socket of that kind open now has closed.

        Returns at once if none is open, so it is safe to call after the close.

        Args:
            kind: ``main``, ``raw`` or ``config``.
            timeout: seconds; ``None`` waits forever.

        Raises:
            TimeoutError: still open after ``timeout``.
        """
        channel = ChannelKind(kind)
        sockets = [sock for sock in self._sockets if sock.kind is channel]
        await self._changes.wait_for(
            lambda: all(sock.is_closed for sock in sockets), timeout
        )

    async def wait_main_closed(self, timeout: float | None = None) -> int | None:
        """Wait for the next main socket close the printer did not cause.

        Each close by the server or the network is returned once, in order, so a
        close that happened before the call (even if the printer has reconnected
        since) is not missed. Closes the printer makes itself (``close``, ``drop``,
        text-frame rejection) are not counted.

        Args:
            timeout: seconds; ``None`` waits forever.

        Returns:
            The close code the server sent, or ``None`` without a close frame.

        Raises:
            TimeoutError: no such close in time.
        """
        await self._changes.wait_for(
            lambda: len(self._main_closes) > self._main_closes_returned, timeout
        )
        code = self._main_closes[self._main_closes_returned]
        self._main_closes_returned += 1
        return code

    async def wait_for_labels(
        self, count: int, timeout: float | None = None
    ) -> list[bytes]:
        """Wait until at least ``count`` formats arrived on raw.

        Args:
            count: formats (``^XA…^XZ``) to wait for, counted since the start.
            timeout: seconds; ``None`` waits forever.

        Returns:
            A copy of :attr:`labels`.

        Raises:
            TimeoutError: fewer formats arrived in time.
        """
        await self._changes.wait_for(lambda: len(self.labels) >= count, timeout)
        return list(self.labels)

    async def wait_for_printed(self, count: int, timeout: float | None = None) -> None:
        """Wait until at least ``count`` labels have printed.

        Args:
            count: labels, counted since the start.
            timeout: seconds; ``None`` waits forever.

        Raises:
            TimeoutError: fewer labels printed in time.
        """
        await self._changes.wait_for(lambda: self.labels_printed >= count, timeout)

    async def wait_for_alerts(
        self, count: int, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` alerts were sent on main.

        Args:
            count: alerts, counted since the start.
            timeout: seconds; ``None`` waits forever.

        Returns:
            A copy of :attr:`alerts_sent`.

        Raises:
            TimeoutError: fewer alerts were sent in time.
        """
        await self._changes.wait_for(lambda: len(self.alerts_sent) >= count, timeout)
        return list(self.alerts_sent)

    # -- connections ----------------------------------------------------------------

    async def _run(self, first: asyncio.Future[None], *, fail_fast: bool) -> None:
        """Keep one main connection up: dial, wait for its loss, retry (§7)."""
        while True:
            self._next_channel_id = 1
            self._session += 1
            try:
                await self._open_socket(_MAIN)
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
                await self._changes.wait_for(lambda: self._main() is None)
                # Zebra's servlet drops a printer's channels with its main (§7); the
                # printer side does the same so the server can re-issue "open".
                await self._close_channels(CloseCode.GOING_AWAY, "main channel lost")
            if self._closing or not self.options.reconnect:
                return
            self._log.info(
                "printer.reconnecting", retry_interval=self.options.retry_interval
            )
            # Printer behaviour (weblink.ip.conn1.retry_interval), not synchronisation.
            await asyncio.sleep(self.options.retry_interval)

    async def _open_socket(
        self, kind: ChannelKind, *, reserved: bool = False
    ) -> PrinterSocket:
        """Dial one socket, start its reader and send its first message."""
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
        self._sockets.append(sock)
        self._start(self._read(sock), self._readers, f"{kind}-{channel_id}")
        if kind is _MAIN:
            discovery = self._discovery_b64
            pretty = self.options.pretty_json
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
        self._notify()
        return sock

    async def _open_channel(self, kind: ChannelKind) -> None:
        """Answer ``open``: a new socket to the same URL with a hello (§3)."""
        session = self._session
        try:
            sock = await self._open_socket(kind, reserved=True)
        except ConnectFailed as exc:
            self._log.warning(
                "channel.connect_failed", channel=str(kind), reason=exc.reason
            )
            return
        if self._closing or session != self._session or self._main() is None:
            await sock.close(CloseCode.GOING_AWAY, "main channel lost")

    async def _close_channels(self, code: CloseCode, reason: str) -> None:
        await asyncio.gather(
            *(
                sock.close(code, reason)
                for sock in list(self._sockets)
                if sock.kind is not _MAIN
            )
        )

    async def _read(self, sock: PrinterSocket) -> None:
        """Feed one socket's messages to its protocol until it closes."""
        try:
            async for message in sock.connection:
                sock.messages_received += 1
                sock.bytes_received += len(message)
                if isinstance(message, str):
                    # §2: WebLink is binary only; fail loudly, like firmware.
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
            # Task boundary: log, and turn the bug into a close code.
            sock.log.exception("emulator.internal_error")
            await sock.close(CloseCode.INTERNAL_ERROR, "emulator error")
        finally:
            self._forget(sock)

    def _forget(self, sock: PrinterSocket) -> None:
        sock.protocol.receive_closed()
        sock.is_open = False
        sock.is_closed = True
        if sock in self._sockets:
            self._sockets.remove(sock)
        code = sock.close_code
        self.close_codes.append((str(sock.kind), code))
        if sock.kind is _MAIN and not sock.closed_by_printer:
            self._main_closes.append(code)
        sock.log.info(
            "channel.closed",
            close_code=code,
            closed_by_printer=sock.closed_by_printer,
            messages_received=sock.messages_received,
            bytes_received=sock.bytes_received,
            messages_sent=sock.messages_sent,
            bytes_sent=sock.bytes_sent,
        )
        self._notify()

    async def _handle_events(self, sock: PrinterSocket, events: list[Event]) -> None:
        for event in events:
            match event:
                case ChannelOpenRequested(kind=kind):
                    self._request_channel(sock, kind)
                case AlertsConfigured(spec=spec):
                    sock.subscription.add(spec)
                    self.configured_alerts.append(spec)
                    sock.log.info("alerts.configured", spec=spec)
                    self._notify()
                case SgdRequestReceived(request=request):
                    await self._answer_config(sock, request)
                case RawDataReceived(data=data):
                    await self._receive_raw(sock, data)
                case UnsolicitedMessage(value=value):
                    sock.log.info("message.unsolicited", type=type(value).__name__)
                case ProtocolViolation(reason=reason, close_code=close_code):
                    sock.log.error("weblink.protocol_violation", reason=reason)
                    await sock.close(close_code, reason[:120])
                case _:
                    sock.log.debug("event.ignored", event=type(event).__name__)

    def _request_channel(self, main: PrinterSocket, kind: ChannelKind) -> None:
        if self._closing:
            return
        if str(kind) in self.options.refuse_channels:
            main.log.info("channel.refused", requested=str(kind), reason="refused")
            return
        if len(self._sockets) + self._reserved >= self.options.max_connections:
            # §3: at the connection cap the printer simply does not open it.
            main.log.warning(
                "channel.refused",
                requested=str(kind),
                reason="maximum_simultaneous_connections",
                max_connections=self.options.max_connections,
            )
            return
        self._reserved += 1
        self._start(self._open_channel(kind), self._helpers, f"open-{kind}")

    # -- config channel (§5) --------------------------------------------------------

    async def _answer_config(
        self, sock: PrinterSocket, request: dict[str, Any]
    ) -> None:
        self.sgd_requests.append(request)
        reply = answer_sgd(self.settings, request)
        self._notify()
        pretty = self.options.pretty_json
        sent = await sock.send(
            lambda protocol: protocol.send_json(reply, pretty=pretty)
        )
        sock.log.info("sgd.replied", settings=len(reply), sent=sent)
        if sent and self.options.close_config_after_reply:
            # §5, §8.2: some firmware closes config with 1000 after each reply.
            await sock.close(CloseCode.NORMAL, "")

    # -- raw channel (§6) -----------------------------------------------------------

    async def _receive_raw(self, sock: PrinterSocket, data: bytes) -> None:
        self.raw_received += data
        for command in sock.zpl.feed(data):
            match command:
                case LabelFormat():
                    self._queue_format(sock, command)
                case HostStatusQuery():
                    await self._answer_host_status(sock)
                case HostIdentificationQuery():
                    answer = host_identification_answer(
                        self.settings.get("device.product_name", ""),
                        self.settings.get("appl.name", ""),
                    )
                    await self._send_raw(sock, answer)
                case GetVar(name=name) if self.options.answer_getvar:
                    answer = getvar_answer(get_setting(self.settings, name))
                    await self._send_raw(
                        sock, answer + self.options.getvar_line_end.encode()
                    )
                case SetVar(name=name, value=value):
                    set_setting(self.settings, name, value)
                case JsonSgd(request=request):
                    self.sgd_requests.append(request)
                    reply = answer_sgd(self.settings, request)
                    if self.options.answer_getvar:
                        pretty = self.options.pretty_json
                        await self._send_raw(sock, encode_json(reply, pretty=pretty))
                case _:
                    pass
        self._notify()

    def _queue_format(self, sock: PrinterSocket, label_format: LabelFormat) -> None:
        count = label_format.label_count
        self._engine.add(label_format)
        sock.log.info(
            "label.received",
            size=len(label_format.data),
            labels=count,
            formats_received=len(self.labels),
        )
        self._notify()

    async def _answer_host_status(self, sock: PrinterSocket) -> None:
        status = self._engine.status(partial_format=sock.zpl.in_format)
        if not self.options.answer_host_status:
            return
        if status.is_faulted and not self.options.host_status_when_faulted:
            # §6: no ~HS answer while head open / paper out / ribbon out.
            sock.log.info("host_status.withheld", faults=sorted(self._engine.faults))
            return
        await self._send_raw(sock, host_status_answer(status))

    async def _send_raw(self, sock: PrinterSocket, data: bytes) -> None:
        await sock.send(lambda protocol: protocol.send_raw(data))

    async def _label_printed(self) -> None:
        """Count a printed label and send its ``PQ JOB COMPLETED`` alert."""
        self.settings["odometer.total_label_count"] = str(self.labels_printed)
        self._log.debug("label.printed", labels_printed=self.labels_printed)
        if self.options.job_completed_alerts:
            await self._raise_alert(PQ_JOB_COMPLETED)

    # -- alerts (§4.3) --------------------------------------------------------------

    async def _raise_alert(self, condition: str, state: str = "SET") -> None:
        """Send an alert on the newest main if the server asked for it."""
        main = self._main()
        if main is None:
            self._log.info("alert.dropped", condition=condition, reason="no main")
            return
        wanted = main.subscription.wants(condition, state)
        if self.options.alerts_only_when_configured and not wanted:
            main.log.debug("alert.not_configured", condition=condition, state=state)
            return
        await self._send_alert(main, condition, state, {})

    async def _send_alert(
        self, main: PrinterSocket, condition: str, state: str, fields: dict[str, str]
    ) -> bool:
        time_stamp = fields.pop("time_stamp", None) or _printer_time()
        alert = encode_alert(
            printer_serial=self.printer_serial,
            condition=condition,
            state=state,
            time_stamp=time_stamp,
            **fields,
        )
        pretty = self.options.pretty_json
        sent = await main.send(
            lambda protocol: protocol.send_alert(alert, pretty=pretty)
        )
        if sent:
            self.alerts_sent.append(alert)
            main.log.info("alert.sent", condition=condition, state=state)
            self._notify()
        return sent

    # -- helpers --------------------------------------------------------------------

    def _main(self) -> PrinterSocket | None:
        """The newest open main socket (newest main wins, §4.2)."""
        return self._newest(_MAIN)

    def _newest(self, kind: ChannelKind) -> PrinterSocket | None:
        for sock in reversed(self._sockets):
            if sock.kind is kind and sock.is_open:
                return sock
        return None

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

    def _notify(self) -> None:
        open_sockets = sum(1 for sock in self._sockets if sock.is_open)
        self.settings["weblink.ip.conn1.num_connections"] = str(open_sockets)
        self._changes.notify()


def _printer_time() -> str:
    """The printer's local time as alerts carry it, ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
