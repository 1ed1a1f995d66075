"""``PrinterEmulator``: a Zebra Link-OS printer on the WebLink client side.

It behaves like a printer (``weblink-protocol.md`` §0, §9): a main socket that sends
the discovery packet, a new socket to the same URL for every ``open``, JSON SGD answers
on config, ZPL and status answers on raw, alerts on main, and a reconnect after
``retry_interval`` when main is lost. The wire protocol is the sans-I/O
:class:`~gateway.weblink.ChannelProtocol` in the printer role; sockets live in
:class:`~gateway.emulator.link.PrinterLink` and printing in
:class:`~gateway.emulator.engine.PrintEngine`. This class decides what the printer does
with each message and offers the knobs and observations tests use.

Every ``wait_*`` method waits on state changes (never by polling or sleeping) inside
its own timeout, in seconds (``None`` waits forever), and raises ``TimeoutError``.
"""

# ASYNC109: wait methods take a timeout on purpose; it is their documented API, and
# each applies it with asyncio.timeout() inside.

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import structlog

from broker.errors import ConfigurationError
from gateway.emulator.alerts import FAULT_CONDITIONS, PQ_JOB_COMPLETED
from gateway.emulator.changes import StateChanges
from gateway.emulator.connection import PrinterSocket
from gateway.emulator.engine import PrintEngine
from gateway.emulator.errors import EmulatorError, NotConnected
from gateway.emulator.link import PrinterLink
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


class PrinterEmulator:
    """One emulated printer, connected out to a WebLink gateway.

    As an async context manager it connects on entry and closes every socket with
    1000 on exit::

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
        self._log = logger.bind(printer_serial=serial)
        try:
            discovery_b64 = encode_discovery_b64(
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
        #: JSON SGD requests received (config channel, and ``{}{...}`` on raw).
        self.sgd_requests: list[dict[str, Any]] = []
        #: ``configure_alert`` specs received on main, in order.
        self.configured_alerts: list[str] = []
        self._changes = StateChanges(on_change=self._refresh_settings)
        self._engine = PrintEngine(
            self._changes, label_print_time=self.options.label_print_time
        )
        self._link = PrinterLink(
            url,
            serial,
            discovery_b64=discovery_b64,
            options=self.options,
            changes=self._changes,
            handle_events=self._handle_events,
            ssl=ssl,
        )
        self._main_closes_returned = 0
        self._print_task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    # -- life cycle -----------------------------------------------------------------

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
                first attempt fails (the printer then stops). With ``False``, return
                at once and keep dialling every ``retry_interval``, like a printer
                whose gateway is down.

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
        try:
            await self._link.start(fail_fast=wait)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop dialling and close every socket with 1000; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._link.close()
        if self._print_task is not None:
            self._print_task.cancel()
            await asyncio.gather(self._print_task, return_exceptions=True)
        self._log.info("printer.closed", labels=len(self.labels))

    async def drop(self) -> None:
        """Cut every socket without a close frame, like a power loss (server: 1006).

        Returns once every socket is gone; the printer dials main again after
        ``retry_interval`` (if ``reconnect`` and not closed).
        """
        await self._link.drop()

    # -- fault knobs ----------------------------------------------------------------

    async def set_fault(self, condition: str, active: bool) -> None:
        """Raise or clear a fault, send its alert, and hold printing while active.

        Head open, paper out and ribbon out also silence ``~HS`` (§6) unless
        ``host_status_when_faulted``. The alert (e.g. ``HEAD OPEN`` SET or CLEAR)
        goes out on main if the server asked for it. No change, no alert.

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
        self._log.info("printer.fault", fault=name, active=active)
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
        main = self._link.main()
        if main is None or not await self._send_alert(main, condition, state, fields):
            raise NotConnected(self.printer_serial, "main")

    async def send_unsolicited_raw(self, data: bytes) -> None:
        """Send bytes nobody asked for on the newest raw socket.

        Args:
            data: the bytes, split per ``split_replies``.

        Raises:
            NotConnected: no raw socket is open, or it closed while sending.
        """
        raw = self._link.newest(ChannelKind.RAW)
        if raw is None or not await raw.send(lambda protocol: protocol.send_raw(data)):
            raise NotConnected(self.printer_serial, "raw")

    async def open_extra_main(self) -> None:
        """Dial one more main socket and send discovery on it (§4.2, §8.1).

        The newest main takes alerts. When the server closes the older one (newest
        wins), the printer carries on with the extra one; it reconnects only once no
        main is left. ``max_connections`` is not checked here.

        Raises:
            ConnectFailed: the socket could not be opened.
        """
        await self._link.open_socket(ChannelKind.MAIN)

    # -- observation ----------------------------------------------------------------

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
        """Active faults, e.g. ``{"head open"}``."""
        return frozenset(self._engine.faults)

    @property
    def close_codes(self) -> list[tuple[str, int | None]]:
        """One ``(kind, code)`` per closed socket: the code the server sent, or
        ``None`` without a close frame (drop, network loss)."""
        return self._link.close_codes

    @property
    def connections_made(self) -> int:
        """Main sockets opened so far (reconnects and extra mains included)."""
        return self._link.connections_made

    @property
    def is_connected(self) -> bool:
        """Whether a main socket is open and has sent discovery."""
        return self._link.main() is not None

    def channel_open(self, kind: str) -> bool:
        """Tell whether a ``main``, ``raw`` or ``config`` socket is open (hello sent).

        Args:
            kind: the channel kind.

        Returns:
            True if at least one such socket is open.
        """
        return self._link.newest(ChannelKind(kind)) is not None

    async def wait_until(
        self, predicate: Callable[[], bool], timeout: float | None = None
    ) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every state change.

        Example: ``await printer.wait_until(lambda: bool(printer.configured_alerts))``.

        Args:
            predicate: a check on this printer's attributes.
            timeout: seconds.
        """
        await self._changes.wait_for(predicate, timeout)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until main is connected and discovery sent.

        Args:
            timeout: seconds.
        """
        await self._changes.wait_for(lambda: self.is_connected, timeout)

    async def wait_channel(self, kind: str, timeout: float | None = None) -> None:
        """Wait until a ``main``, ``raw`` or ``config`` socket is open (hello sent).

        Args:
            kind: the channel kind.
            timeout: seconds.
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
            timeout: seconds.
        """
        channel = ChannelKind(kind)
        sockets = [
            sock for sock in self._link.sockets if sock.kind is channel and sock.is_open
        ]
        await self._changes.wait_for(
            lambda: all(sock.is_closed for sock in sockets), timeout
        )

    async def wait_main_closed(self, timeout: float | None = None) -> int | None:
        """Wait for the next main-socket close the printer did not cause.

        Each close by the server or the network is returned once, in order, so one
        that happened before the call (even if the printer has reconnected since)
        is not missed. Closes the printer makes itself (``close``, ``drop``, a
        rejected text frame) do not count.

        Args:
            timeout: seconds.

        Returns:
            The close code the server sent, or ``None`` without a close frame.
        """
        closes = self._link.main_closes
        await self._changes.wait_for(
            lambda: len(closes) > self._main_closes_returned, timeout
        )
        self._main_closes_returned += 1
        return closes[self._main_closes_returned - 1]

    async def wait_for_labels(
        self, count: int, timeout: float | None = None
    ) -> list[bytes]:
        """Wait until at least ``count`` formats arrived on raw since the start.

        Args:
            count: formats (``^XA…^XZ``).
            timeout: seconds.

        Returns:
            A copy of :attr:`labels`.
        """
        await self._changes.wait_for(lambda: len(self.labels) >= count, timeout)
        return list(self.labels)

    async def wait_for_printed(self, count: int, timeout: float | None = None) -> None:
        """Wait until at least ``count`` labels have printed since the start.

        Args:
            count: labels.
            timeout: seconds.
        """
        await self._changes.wait_for(lambda: self.labels_printed >= count, timeout)

    async def wait_for_alerts(
        self, count: int, timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` alerts were sent on main since the start.

        Args:
            count: alerts.
            timeout: seconds.

        Returns:
            A copy of :attr:`alerts_sent`.
        """
        await self._changes.wait_for(lambda: len(self.alerts_sent) >= count, timeout)
        return list(self.alerts_sent)

    # -- what the printer does with messages ----------------------------------------

    async def _handle_events(self, sock: PrinterSocket, events: list[Event]) -> None:
        for event in events:
            match event:
                case ChannelOpenRequested(kind=kind):
                    self._link.request_channel(kind)
                case AlertsConfigured(spec=spec):
                    sock.subscription.add(spec)
                    self.configured_alerts.append(spec)
                    sock.log.info("alerts.configured", spec=spec)
                    self._changes.notify()
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
                    sock.log.debug("event.ignored", kind=type(event).__name__)

    async def _answer_config(
        self, sock: PrinterSocket, request: dict[str, Any]
    ) -> None:
        """Answer one JSON SGD request on config (§5)."""
        if (
            self.options.abort_on
            and self.options.abort_on in json.dumps(request).encode()
        ):
            sock.log.info("socket.aborted", reason="abort_on matched")
            sock.abort()
            return
        self.sgd_requests.append(request)
        self._changes.notify()
        if not self.options.answer_sgd:
            sock.log.info("sgd.ignored", settings=len(request))
            return
        reply = answer_sgd(self.settings, request)
        pretty = self.options.pretty_json
        sent = await sock.send(
            lambda protocol: protocol.send_json(reply, pretty=pretty)
        )
        sock.log.info("sgd.replied", settings=len(reply), sent=sent)
        if sent and self.options.close_config_after_reply:
            # §5, §8.2: some firmware closes config with 1000 after each reply.
            await sock.close(CloseCode.NORMAL, "")

    async def _receive_raw(self, sock: PrinterSocket, data: bytes) -> None:
        """Record raw bytes and act on every command they complete (§6)."""
        if self.options.abort_on and self.options.abort_on in data:
            sock.log.info("socket.aborted", reason="abort_on matched")
            sock.abort()
            return
        self.raw_received += data
        for command in sock.zpl.feed(data):
            match command:
                case LabelFormat():
                    self._engine.add(command)
                    sock.log.info(
                        "label.received",
                        size=len(command.data),
                        labels=command.label_count,
                        formats_received=len(self.labels),
                    )
                case HostStatusQuery():
                    await self._answer_host_status(sock)
                case HostIdentificationQuery():
                    answer = host_identification_answer(
                        self.settings.get("device.product_name", ""),
                        self.settings.get("appl.name", ""),
                    )
                    await _send_raw(sock, answer)
                case GetVar(name=name) if self.options.answer_getvar:
                    answer = getvar_answer(get_setting(self.settings, name))
                    line_end = self.options.getvar_line_end.encode()
                    await _send_raw(sock, answer + line_end)
                case SetVar(name=name, value=value):
                    set_setting(self.settings, name, value)
                case JsonSgd(request=request):
                    self.sgd_requests.append(request)
                    reply = answer_sgd(self.settings, request)
                    if self.options.answer_getvar:
                        pretty = self.options.pretty_json
                        await _send_raw(sock, encode_json(reply, pretty=pretty))
                case _:
                    pass
        self._changes.notify()

    async def _answer_host_status(self, sock: PrinterSocket) -> None:
        if not self.options.answer_host_status:
            return
        status = self._engine.status(partial_format=sock.zpl.in_format)
        if status.is_faulted and not self.options.host_status_when_faulted:
            # §6: no ~HS answer while head open / paper out / ribbon out.
            sock.log.info("host_status.withheld", faults=sorted(self._engine.faults))
            return
        await _send_raw(sock, host_status_answer(status))

    async def _label_printed(self) -> None:
        """Count a printed label and send its ``PQ JOB COMPLETED`` alert."""
        self._log.debug("label.printed", labels_printed=self.labels_printed)
        if self.options.job_completed_alerts:
            await self._raise_alert(PQ_JOB_COMPLETED)

    async def _raise_alert(self, condition: str, state: str = "SET") -> None:
        """Send an alert on the newest main if the server asked for it (§4.3)."""
        main = self._link.main()
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
            self._changes.notify()
        return sent

    def _refresh_settings(self) -> None:
        """Keep the dynamic SGD settings in step with the printer's state.

        Called on every state change; nothing notifies before ``__init__`` is done.
        """
        faults = self._engine.faults
        self.settings["head.latch"] = "open" if "head open" in faults else "ok"
        self.settings["media.status"] = "out" if "paper out" in faults else "ok"
        self.settings["odometer.total_label_count"] = str(self.labels_printed)
        self.settings["weblink.ip.conn1.num_connections"] = str(self._link.open_count())


async def _send_raw(sock: PrinterSocket, data: bytes) -> None:
    await sock.send(lambda protocol: protocol.send_raw(data))


def _printer_time() -> str:
    """Return the printer's local time as alerts carry it, ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
