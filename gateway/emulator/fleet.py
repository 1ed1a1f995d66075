"""Fleet mode: hundreds to thousands of emulated printers from one process, cheaply.

:class:`~gateway.emulator.PrinterEmulator` is the faithful printer: every quirk and
fault knob, a task and a lock per socket, a bound logger and a settings table per
printer. That is right for tests and wrong for a benchmark, where the emulator must
cost far less than the gateway it loads (``docs/performance.md`` has the numbers). A
:class:`Fleet` keeps only the common path of a printer and spends as little as possible
on it:

- one :class:`asyncio.Protocol` per socket, driven by websockets' sans-I/O
  ``ClientProtocol`` (no compression offered, as printers do) and our
  :class:`~gateway.weblink.ChannelProtocol` in the printer role: no task, no lock and
  no logger per socket;
- main sends the discovery packet; raw and config sockets are dialled when the gateway
  asks (``open``) and send their hello; JSON SGD requests are answered from a settings
  table made on first use; labels (``^XA…^XZ`` formats, ``^PQ`` ignored) are counted,
  with their receive times if asked; ``PQ JOB COMPLETED`` alerts are optional; every
  socket pings every ``ping_interval`` like a printer (about 60 s);
- when main is lost the printer closes its channels and dials again after
  ``retry_interval``, to the next URL of its list: a load balancer sending it to a
  surviving replica. Raw queries (``~HS``), faults and the other quirks are the full
  emulator's business.

Serials are a prefix and a zero-padded counter (``50J000000001``). One dialler bounds
the handshakes in flight (``max_dialing``) and spaces first connections at
``ramp_rate`` per second; channel sockets go first, reconnects next, first connections
last. Times are ``time.monotonic()`` seconds (``CLOCK_MONOTONIC``, shared by every
process on the machine).

Waits are event driven (:class:`Counter`), never polled; each takes a timeout in
seconds and raises ``TimeoutError``.
"""

# ASYNC109: the wait_* helpers take a timeout on purpose (see printer.py).

from __future__ import annotations

import asyncio
import heapq
import itertools
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from broker.errors import ConfigurationError, InvalidChannelState
from broker.topology import check_serial
from gateway.emulator.alerts import PQ_JOB_COMPLETED
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.sgd import answer_sgd, default_settings
from gateway.weblink import (
    SUBPROTOCOL,
    ChannelKind,
    ChannelProtocol,
    CloseCode,
    Role,
    encode_alert,
)
from gateway.weblink.discovery import encode_discovery_b64
from gateway.weblink.events import (
    AlertsConfigured,
    ChannelOpenRequested,
    ProtocolViolation,
    SgdRequestReceived,
)

logger = structlog.get_logger(__name__)

_MAIN, _RAW, _CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG
_OPEN = State.OPEN
_DATA = (Opcode.BINARY, Opcode.TEXT, Opcode.CONT)

#: Dial priorities: lower goes first.
_PRIORITY_CHANNEL, _PRIORITY_RECONNECT, _PRIORITY_FIRST = 0, 1, 2


# -- pure helpers ---------------------------------------------------------------------


def fleet_serials(
    prefix: str, count: int, *, first: int = 1, width: int = 9
) -> list[str]:
    """Return ``count`` serials: ``prefix`` and a zero-padded counter from ``first``.

    Args:
        prefix: e.g. ``50J``.
        count: how many serials.
        first: the first counter value.
        width: digits of the counter (more digits are used if needed).

    Returns:
        e.g. ``["50J000000001", "50J000000002"]``.

    Raises:
        ConfigurationError: a negative count or first value, or a serial that is not
            ``[A-Za-z0-9_-]{1,64}``.
    """
    if count < 0 or first < 0:
        raise ConfigurationError(
            f"count and first must not be negative ({count}, {first})"
        )
    serials = [f"{prefix}{first + index:0{width}d}" for index in range(count)]
    for serial in serials[:1] + serials[-1:]:
        try:
            check_serial(serial)
        except ValueError as exc:
            raise ConfigurationError(f"fleet serial: {exc}") from exc
    return serials


class Counter:
    """An integer others can wait on: ``await counter.wait_for(n)``.

    Waiters sit in heaps by target, so a change costs nothing while no target is
    reached, whatever the number of waiters.
    """

    def __init__(self, value: int = 0) -> None:
        self.value = value
        self._seq = itertools.count()
        self._above: list[tuple[int, int, asyncio.Future[None]]] = []
        self._below: list[tuple[int, int, asyncio.Future[None]]] = []

    def add(self, amount: int = 1) -> None:
        """Change the value and wake the waiters whose target it reached."""
        self.value += amount
        value = self.value
        above, below = self._above, self._below
        while above and above[0][0] <= value:
            _wake(heapq.heappop(above)[2])
        while below and -below[0][0] >= value:
            _wake(heapq.heappop(below)[2])

    async def wait_for(self, target: int, timeout: float | None = None) -> None:
        """Wait until the value is at least ``target``.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        if self.value < target:
            await self._wait(self._above, target, target, timeout)

    async def wait_down_to(self, target: int, timeout: float | None = None) -> None:
        """Wait until the value is at most ``target``.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
        """
        if self.value > target:
            await self._wait(self._below, -target, target, timeout)

    async def _wait(
        self,
        heap: list[tuple[int, int, asyncio.Future[None]]],
        key: int,
        target: int,
        timeout: float | None,
    ) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(heap, (key, next(self._seq), future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            raise TimeoutError(
                f"counter at {self.value}, waited for {target} for {timeout:g} s"
            ) from None
        finally:
            future.cancel()  # a no-op once woken; the heap drops it when reached


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class LabelCounter:
    """Count the ``^XZ`` (end of format) marks in a byte stream cut anywhere."""

    __slots__ = ("_tail",)

    _END = b"^XZ"

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> int:
        """Return how many formats end in ``data`` (with what came before), any case."""
        buffer = (self._tail + data).upper() if self._tail else data.upper()
        found = buffer.count(self._END)
        if found:
            end = buffer.rfind(self._END) + len(self._END)
            self._tail = buffer[max(end, len(buffer) - 2) :]
        else:
            self._tail = buffer[-2:]
        return found


class Ramp:
    """Space events at most ``rate`` per second (``None``: no limit); pure arithmetic."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ConfigurationError(f"ramp rate must be positive or None, not {rate}")
        self.rate = rate
        self._next: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before the next event may happen."""
        if self.rate is None or self._next is None:
            return 0.0
        return max(0.0, self._next - now)

    def take(self, now: float) -> None:
        """Record that an event happens at ``now`` (after waiting :meth:`delay`)."""
        if self.rate is not None:
            start = now if self._next is None else max(now, self._next)
            self._next = start + 1.0 / self.rate


# -- options and statistics -----------------------------------------------------------


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet behaves. Durations are float seconds.

    Raises:
        ConfigurationError: from the constructor when a value is out of range.
    """

    #: Serials are ``prefix`` and a ``width``-digit counter starting at ``first``.
    prefix: str = "50J"
    first: int = 1
    width: int = 9
    #: First connections per second; ``None`` dials as fast as ``max_dialing`` allows.
    ramp_rate: float | None = 200.0
    #: Handshakes (TCP + WebSocket) in flight at once, all kinds together.
    max_dialing: int = 64
    #: Seconds between losing main (or failing to dial it) and the next attempt.
    retry_interval: float = 10.0
    #: Reconnect at all after a loss.
    reconnect: bool = True
    #: Seconds for the TCP and WebSocket handshakes of one socket.
    open_timeout: float = 10.0
    #: Seconds to wait for the server to finish a close before dropping the socket.
    close_timeout: float = 5.0
    #: Seconds between the pings every socket sends (printers: ~60 s); ``None``: none.
    ping_interval: float | None = 60.0
    #: Pretty-print JSON the printers' way (two-space indent, CRLF).
    pretty_json: bool = True
    #: Answer JSON SGD on config (from a per-printer table made on first use).
    answer_sgd: bool = True
    #: One ``PQ JOB COMPLETED`` alert on main per format received, once the gateway
    #: configured alerts.
    job_completed_alerts: bool = False
    #: Keep each label's receive time (``Fleet.label_times``).
    record_label_times: bool = True
    #: Largest message accepted, in bytes (``None``: no limit).
    max_message_size: int | None = 64 * 2**20
    #: Identity in the discovery packet and the SGD table.
    emulator: EmulatorOptions = field(default_factory=EmulatorOptions)

    def __post_init__(self) -> None:
        """Check ranges once, at construction."""
        if self.max_dialing < 1:
            raise ConfigurationError(
                f"max_dialing must be at least 1, not {self.max_dialing}"
            )
        if self.ramp_rate is not None and self.ramp_rate <= 0:
            raise ConfigurationError(
                f"ramp_rate must be positive or None, not {self.ramp_rate}"
            )
        for name in ("retry_interval", "open_timeout", "close_timeout"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        if self.ping_interval is not None and self.ping_interval <= 0:
            raise ConfigurationError("ping_interval must be positive or None")


@dataclass(frozen=True)
class FleetStats:
    """A snapshot of a fleet's counters."""

    printers: int
    #: Printers whose main socket is open (discovery sent).
    connected: int
    #: Printers with main and raw open: they can print.
    ready: int
    #: Times a printer became ready (first connections and reconnects).
    ready_total: int
    #: Formats received on raw, all printers together.
    labels: int
    #: Sockets open now, and WebSocket handshakes completed so far.
    sockets: int
    handshakes: int
    #: Dials that failed (refused, timed out, handshake rejected).
    dial_failures: int
    #: Main sockets lost while the fleet ran (closed by the server or the network).
    mains_lost: int
    #: JSON SGD requests answered and alerts sent.
    sgd_answered: int
    alerts_sent: int


OpenConnection = Callable[
    [Callable[[], asyncio.Protocol], str, int, ssl_module.SSLContext | None],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]],
]


async def _open_tcp(
    factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    ssl: ssl_module.SSLContext | None,
) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
    loop = asyncio.get_running_loop()
    if ssl is None:
        return await loop.create_connection(factory, host, port)
    return await loop.create_connection(
        factory, host, port, ssl=ssl, server_hostname=host
    )


# -- one socket -----------------------------------------------------------------------


class _Socket(asyncio.Protocol):
    """One WebSocket of a fleet printer: the sans-I/O protocols, bridged to asyncio."""

    def __init__(
        self, fleet: Fleet, printer: _Printer, kind: ChannelKind, url_index: int
    ) -> None:
        self.fleet = fleet
        self.printer = printer
        self.kind = kind
        #: Which of the fleet's URLs this socket dialled.
        self.url_index = url_index
        self.ws = ClientProtocol(
            fleet.uris[url_index],
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            max_size=fleet.options.max_message_size,
        )
        self.channel = ChannelProtocol(
            Role.PRINTER, kind=kind, printer_serial=printer.serial
        )
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = fleet.loop.create_future()
        self.is_open = False
        self.lost = False
        self._fragments: list[bytes] | None = None
        #: The ping timer, or once closing, the timer that drops a stuck close.
        self._timer: asyncio.TimerHandle | None = None
        self._close_armed = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.fleet._socket_made(self)
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response):
                self._handshake_done()
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost: {exc}"))
            self.opened.exception()  # retrieved: the dialler may already have given up
        self.channel.receive_closed()
        self.fleet._socket_lost(self)

    # WebSocket

    def _handshake_done(self) -> None:
        if self.ws.handshake_exc is not None:
            if not self.opened.done():
                self.opened.set_exception(self.ws.handshake_exc)
            return
        if self.ws.subprotocol != SUBPROTOCOL:
            if not self.opened.done():
                self.opened.set_exception(
                    ConnectionError(f"the server did not select {SUBPROTOCOL}")
                )
            self.abort()
            return
        self.is_open = True
        if not self.opened.done():
            self.opened.set_result(None)
        self._arm_ping()
        self.fleet._socket_opened(self)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode not in _DATA:
            return  # pings are answered by the protocol; close is handled there too
        data = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
        if opcode is not Opcode.CONT:
            if frame.fin:
                self.fleet._message(self, data)
            else:
                self._fragments = [data]
        elif self._fragments is not None:
            self._fragments.append(data)
            if frame.fin:
                message, self._fragments = b"".join(self._fragments), None
                self.fleet._message(self, message)

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.close_expected() and not self._close_armed:
            # The server closes TCP after the close handshake; drop it if it does not.
            self._close_armed = True
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.fleet.loop.call_later(
                self.fleet.options.close_timeout, self.abort
            )

    def _arm_ping(self) -> None:
        interval = self.fleet.options.ping_interval
        if interval is not None:
            self._timer = self.fleet.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._timer = None
        if self.ws.state is _OPEN:
            self.ws.send_ping(b"")
            self._flush()
            if not self._close_armed:
                self._arm_ping()

    def send_outgoing(self) -> None:
        """Send what the WebLink protocol queued, one binary message each."""
        ws = self.ws
        for message in self.channel.data_to_send():
            if ws.state is _OPEN:
                ws.send_binary(message)
        self._flush()

    def close(self, code: CloseCode, reason: str = "") -> None:
        """Start the closing handshake (the server then closes TCP)."""
        if self.ws.state is _OPEN:
            self.channel.close(code, reason)
            self.ws.send_close(int(code), reason)
            self._flush()
        elif not self.lost and self.ws.state is State.CONNECTING:
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self.transport is not None and not self.lost:
            self.transport.abort()


# -- one printer ----------------------------------------------------------------------


class _Printer:
    """The state of one fleet printer."""

    __slots__ = (
        "alerts",
        "dialing",
        "discovery_b64",
        "index",
        "label_times",
        "labels",
        "main",
        "next_channel_id",
        "ready_at",
        "serial",
        "settings",
        "sockets",
        "tail",
        "url_index",
    )

    def __init__(self, serial: str, index: int) -> None:
        self.serial = serial
        self.index = index
        self.url_index = 0
        self.discovery_b64: str | None = None
        self.main: _Socket | None = None
        #: Open raw and config sockets, by kind (the newest wins).
        self.sockets: dict[ChannelKind, _Socket] = {}
        self.dialing: set[ChannelKind] = set()
        self.next_channel_id = 1
        self.alerts = False
        self.labels = 0
        self.label_times: list[float] = []
        self.tail = LabelCounter()
        self.settings: dict[str, str] | None = None
        #: ``time.monotonic()`` when it last became ready (main and raw open).
        self.ready_at: float | None = None

    @property
    def is_ready(self) -> bool:
        return self.main is not None and _RAW in self.sockets


# -- the fleet ------------------------------------------------------------------------


class Fleet:
    """``count`` printers dialling ``urls`` from this process.

    ::

        async with Fleet("ws://127.0.0.1:8080/", 1000) as fleet:
            await fleet.wait_ready(1000, timeout=60)
            print(fleet.stats())

    Args:
        urls: the WebLink location, or several: after a loss a printer dials the next
            one (a load balancer moving it to a surviving replica).
        count: how many printers.
        options: behaviour; defaults to :class:`FleetOptions`.
        ssl: TLS context for ``wss://`` URLs.
        open_connection: how to open a transport (tests pass an in-memory one);
            defaults to ``loop.create_connection``.

    Raises:
        ConfigurationError: bad URLs, count or serials.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        count: int,
        options: FleetOptions | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        open_connection: OpenConnection | None = None,
    ) -> None:
        self.options = options if options is not None else FleetOptions()
        url_list = [urls] if isinstance(urls, str) else list(urls)
        if not url_list:
            raise ConfigurationError("a fleet needs at least one URL")
        try:
            self.uris = [parse_uri(url) for url in url_list]
        except (ValueError, InvalidURI) as exc:
            raise ConfigurationError(f"fleet URL: {exc}") from exc
        self.urls = url_list
        opts = self.options
        self.serials = fleet_serials(
            opts.prefix, count, first=opts.first, width=opts.width
        )
        self.printers = [
            _Printer(serial, index) for index, serial in enumerate(self.serials)
        ]
        self._by_serial = {printer.serial: printer for printer in self.printers}
        self._ssl = ssl
        self._open_connection = open_connection or _open_tcp
        self.connected = Counter()
        self.ready = Counter()
        self.ready_total = Counter()
        self.labels = Counter()
        self.sockets = Counter()
        self.handshakes = 0
        self.dial_failures = 0
        self.mains_lost = 0
        self.sgd_answered = 0
        self.alerts_sent = 0
        self._jobs: asyncio.PriorityQueue[tuple[int, int, int, ChannelKind]] | None = (
            None
        )
        self._seq = itertools.count()
        self._ramp = Ramp(opts.ramp_rate)
        self._slots: asyncio.Semaphore | None = None
        self._dialler: asyncio.Task[None] | None = None
        self._dials: set[asyncio.Task[None]] = set()
        self._retries: set[asyncio.TimerHandle] = set()
        self._open: set[_Socket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._closed = False
        self._time_stamp = (0, "")

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the fleet is not started"
        return self._loop

    # -- life cycle -------------------------------------------------------------------

    async def __aenter__(self) -> Fleet:
        """Start dialling (see :meth:`start`)."""
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close every socket (see :meth:`close`)."""
        await self.close()

    def start(self) -> None:
        """Queue every printer's first dial; they connect at ``ramp_rate``."""
        if self._loop is not None:
            raise RuntimeError("the fleet is already started")
        self._loop = asyncio.get_running_loop()
        self._jobs = asyncio.PriorityQueue()
        self._slots = asyncio.Semaphore(self.options.max_dialing)
        for printer in self.printers:
            self._enqueue(printer, _MAIN, _PRIORITY_FIRST)
        self._dialler = self._loop.create_task(self._dial_loop(), name="fleet-dialler")
        logger.info(
            "fleet.started",
            printers=len(self.printers),
            urls=self.urls,
            ramp_rate=self.options.ramp_rate,
        )

    async def close(self, timeout: float | None = None, *, abort: bool = False) -> None:
        """Stop dialling, close every socket and wait until all are gone; idempotent.

        Args:
            timeout: seconds the server has to finish closing (default
                ``close_timeout``); sockets still open then are dropped.
            abort: drop every socket at once without a close frame, like a power
                cut (the server sees 1006), instead of closing with 1000.
        """
        await self._stop_dialling()
        limit = self.options.close_timeout if timeout is None else timeout
        for sock in list(self._open):
            if abort:
                sock.abort()
            else:
                sock.close(CloseCode.NORMAL, "printer shutting down")
        try:
            await self.sockets.wait_down_to(0, limit)
        except TimeoutError:
            for sock in list(self._open):
                sock.abort()
            await self.sockets.wait_down_to(0, limit)
        if not self._closed:
            self._closed = True
            logger.info("fleet.closed", **_stats_fields(self.stats()))

    async def _stop_dialling(self) -> None:
        self._closing = True
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        tasks = [task for task in (self._dialler, *self._dials) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- observation ------------------------------------------------------------------

    def stats(self) -> FleetStats:
        """Return the counters now."""
        return FleetStats(
            printers=len(self.printers),
            connected=self.connected.value,
            ready=self.ready.value,
            ready_total=self.ready_total.value,
            labels=self.labels.value,
            sockets=self.sockets.value,
            handshakes=self.handshakes,
            dial_failures=self.dial_failures,
            mains_lost=self.mains_lost,
            sgd_answered=self.sgd_answered,
            alerts_sent=self.alerts_sent,
        )

    def label_times(self, serial: str) -> list[float]:
        """Receive times of one printer's labels, in order (``record_label_times``)."""
        return self._by_serial[serial].label_times

    def label_count(self, serial: str) -> int:
        """Formats one printer received."""
        return self._by_serial[serial].labels

    def ready_times(self) -> list[float | None]:
        """When each printer last became ready (``None``: never), in serial order."""
        return [printer.ready_at for printer in self.printers]

    def count_on(self, url: str) -> int:
        """How many printers have their main socket open to ``url`` now."""
        index = self.urls.index(url)
        return sum(
            1
            for printer in self.printers
            if printer.main is not None and printer.main.url_index == index
        )

    def is_ready(self, serial: str) -> bool:
        """Whether that printer has main and raw open now."""
        return self._by_serial[serial].is_ready

    async def wait_ready(
        self, count: int | None = None, timeout: float | None = None
    ) -> None:
        """Wait until ``count`` printers (default: all) are ready at once."""
        await self.ready.wait_for(
            len(self.printers) if count is None else count, timeout
        )

    async def wait_labels(self, count: int, timeout: float | None = None) -> None:
        """Wait until the fleet received ``count`` formats in all."""
        await self.labels.wait_for(count, timeout)

    # -- dialling ---------------------------------------------------------------------

    def _enqueue(self, printer: _Printer, kind: ChannelKind, priority: int) -> None:
        assert self._jobs is not None
        printer.dialing.add(kind)
        self._jobs.put_nowait((priority, next(self._seq), printer.index, kind))

    async def _dial_loop(self) -> None:
        assert self._jobs is not None
        assert self._slots is not None
        loop = self.loop
        while True:
            await self._slots.acquire()
            priority, _, index, kind = await self._jobs.get()
            if priority == _PRIORITY_FIRST:
                delay = self._ramp.delay(loop.time())
                if delay > 0:
                    # Rate control of the ramp, not synchronisation.
                    await asyncio.sleep(delay)
                self._ramp.take(loop.time())
            task = loop.create_task(self._dial(self.printers[index], kind))
            self._dials.add(task)
            task.add_done_callback(self._dials.discard)

    async def _dial(self, printer: _Printer, kind: ChannelKind) -> None:
        assert self._slots is not None
        uri = self.uris[printer.url_index]
        sock: _Socket | None = None
        try:
            if kind is not _MAIN and printer.main is None:
                return  # main went away while this waited
            sock = _Socket(self, printer, kind, printer.url_index)
            made = sock
            async with asyncio.timeout(self.options.open_timeout):
                await self._open_connection(lambda: made, uri.host, uri.port, self._ssl)
                await sock.opened
        except Exception as exc:  # refused, timed out, handshake rejected: retry later
            self.dial_failures += 1
            if sock is not None:
                sock.abort()
            self._dial_failed(printer, kind, exc)
        finally:
            printer.dialing.discard(kind)
            self._slots.release()

    def _dial_failed(
        self, printer: _Printer, kind: ChannelKind, exc: BaseException
    ) -> None:
        logger.debug(
            "fleet.dial_failed",
            printer_serial=printer.serial,
            channel=str(kind),
            error=f"{type(exc).__name__}: {exc}",
        )
        if kind is _MAIN:
            self._schedule_reconnect(printer)
        # A channel the printer failed to open is asked for again by the gateway.

    def _schedule_reconnect(self, printer: _Printer) -> None:
        if self._closing or not self.options.reconnect:
            return
        printer.url_index = (printer.url_index + 1) % len(self.uris)
        printer.dialing.add(_MAIN)
        handle: asyncio.TimerHandle | None = None

        def due() -> None:
            assert handle is not None
            self._retries.discard(handle)
            if not self._closing:
                self._enqueue(printer, _MAIN, _PRIORITY_RECONNECT)

        handle = self.loop.call_later(self.options.retry_interval, due)
        self._retries.add(handle)

    # -- socket events ----------------------------------------------------------------

    def _socket_made(self, sock: _Socket) -> None:
        self._open.add(sock)
        self.sockets.add(1)

    def _socket_opened(self, sock: _Socket) -> None:
        self.handshakes += 1
        printer = sock.printer
        channel = sock.channel
        if self._closing:
            sock.close(CloseCode.NORMAL, "printer shutting down")
            return
        if sock.kind is _MAIN:
            if printer.discovery_b64 is None:
                printer.discovery_b64 = self._discovery(printer.serial)
            old = printer.main
            printer.main = sock
            printer.alerts = False
            if old is None:
                self.connected.add(1)
            else:
                old.close(CloseCode.GOING_AWAY, "a newer main connection")
            channel.send_discovery(
                printer.discovery_b64, pretty=self.options.pretty_json
            )
            sock.send_outgoing()
            return
        if printer.main is None:
            sock.close(CloseCode.GOING_AWAY, "main channel lost")
            return
        channel.send_hello(str(printer.next_channel_id))
        printer.next_channel_id += 1
        was_ready = printer.is_ready
        old_channel = printer.sockets.get(sock.kind)
        printer.sockets[sock.kind] = sock
        sock.send_outgoing()
        if old_channel is not None:
            old_channel.close(CloseCode.GOING_AWAY, "a newer channel")
        if not was_ready and printer.is_ready:
            self._became_ready(printer)

    def _became_ready(self, printer: _Printer) -> None:
        printer.ready_at = time.monotonic()
        self.ready.add(1)
        self.ready_total.add(1)
        if self.ready.value == len(self.printers):
            logger.info("fleet.all_ready", **_stats_fields(self.stats()))

    def _socket_lost(self, sock: _Socket) -> None:
        if sock in self._open:
            self._open.discard(sock)
            self.sockets.add(-1)
        if not sock.is_open:
            return
        printer = sock.printer
        if sock.kind is _MAIN:
            if printer.main is not sock:
                return
            if printer.is_ready:
                self.ready.add(-1)
            printer.main = None
            self.connected.add(-1)
            if not self._closing:
                self.mains_lost += 1
            # §7: the printer's channels go with main; it dials main again later.
            for channel in list(printer.sockets.values()):
                channel.close(CloseCode.GOING_AWAY, "main channel lost")
            printer.sockets.clear()
            self._schedule_reconnect(printer)
            return
        if printer.sockets.get(sock.kind) is sock:
            if sock.kind is _RAW and printer.is_ready:
                self.ready.add(-1)
            del printer.sockets[sock.kind]

    def _message(self, sock: _Socket, data: bytes) -> None:
        if sock.kind is _RAW:
            self._raw(sock.printer, data)
            return
        channel = sock.channel
        channel.receive_message(data)
        for event in channel.events_received():
            if isinstance(event, ChannelOpenRequested):
                self._channel_requested(sock.printer, event.kind)
            elif isinstance(event, SgdRequestReceived):
                self._answer_sgd(sock, event.request)
            elif isinstance(event, AlertsConfigured):
                sock.printer.alerts = True
            elif isinstance(event, ProtocolViolation):
                sock.close(event.close_code, event.reason[:120])

    def _channel_requested(self, printer: _Printer, kind: ChannelKind) -> None:
        if self._closing or kind in printer.dialing or kind in printer.sockets:
            return
        self._enqueue(printer, kind, _PRIORITY_CHANNEL)

    def _raw(self, printer: _Printer, data: bytes) -> None:
        found = printer.tail.feed(data)
        if not found:
            return
        printer.labels += found
        if self.options.record_label_times:
            now = time.monotonic()
            printer.label_times.extend(itertools.repeat(now, found))
        self.labels.add(found)
        main = printer.main
        if self.options.job_completed_alerts and printer.alerts and main is not None:
            alert = encode_alert(
                printer_serial=printer.serial,
                condition=PQ_JOB_COMPLETED,
                time_stamp=self._printer_time(),
            )
            pretty = self.options.pretty_json
            try:
                for _ in range(found):
                    main.channel.send_alert(alert, pretty=pretty)
            except InvalidChannelState:
                return
            main.send_outgoing()
            self.alerts_sent += found

    def _answer_sgd(self, sock: _Socket, request: dict[str, Any]) -> None:
        if not self.options.answer_sgd:
            return
        printer = sock.printer
        if printer.settings is None:
            printer.settings = default_settings(
                printer_serial=printer.serial,
                url=self.urls[printer.url_index],
                options=self.options.emulator,
            )
        reply = answer_sgd(printer.settings, request)
        try:
            sock.channel.send_json(reply, pretty=self.options.pretty_json)
        except InvalidChannelState:
            return
        sock.send_outgoing()
        self.sgd_answered += 1

    def _discovery(self, serial: str) -> str:
        opts = self.options.emulator
        return encode_discovery_b64(
            printer_serial=serial,
            product_name=opts.product_name,
            firmware=opts.firmware,
            system_name=opts.system_name,
            mac=opts.mac,
            ip=opts.ip,
            legacy=opts.legacy_discovery,
        )

    def _printer_time(self) -> str:
        """The printer's local time as alerts carry it, formatted once a second."""
        second = int(time.time())
        if self._time_stamp[0] != second:
            text = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            self._time_stamp = (second, text)
        return self._time_stamp[1]


def _stats_fields(stats: FleetStats) -> dict[str, int]:
    return {name: getattr(stats, name) for name in FleetStats.__dataclass_fields__}


__all__ = [
    "Counter",
    "Fleet",
    "FleetOptions",
    "FleetStats",
    "LabelCounter",
    "Ramp",
    "fleet_serials",
]
