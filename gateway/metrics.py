"""Prometheus metrics of one gateway replica, served as ``GET /metrics``.

One :class:`Metrics` per :class:`~gateway.server.Gateway`, each with its own
``CollectorRegistry``: tests and several gateways in one process never share or
collide on a series. The server calls one method per event (``socket_opened``,
``request_finished``…) and answers ``/metrics`` with :meth:`Metrics.render`. This
module imports neither websockets nor aio-pika.

Label values are closed sets, so a misbehaving printer cannot grow the number of
series: channels are ``main``/``raw``/``config``, request types ``print``/``query``/
``sgd``/``unknown``, statuses those of :class:`broker.schemas.JobStatus`, close codes
1000-4999 (anything else is ``other``, no code at all is ``none``). Every combination
is created at zero up front, so ``rate()`` and ``increase()`` see the first event.

The series, their meaning and the alerts built on them are described in
``docs/operations.md``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from broker.schemas import JobStatus, RequestType
from gateway.weblink.constants import ChannelKind

#: The text exposition format every Prometheus version reads (generate_latest's).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Prefix of every series of this module.
PREFIX = "zebra_gateway"

CHANNELS: tuple[str, ...] = tuple(kind.value for kind in ChannelKind)
#: Channels whose sockets consume a printer queue.
QUEUE_CHANNELS: tuple[str, ...] = (ChannelKind.RAW.value, ChannelKind.CONFIG.value)
REQUEST_TYPES: tuple[str, ...] = (
    *(kind.value.removeprefix("zebra.") for kind in RequestType),
    "unknown",
)
STATUSES: tuple[str, ...] = tuple(status.value for status in JobStatus)
OTHER = "other"

#: Publish to outcome: 1 ms (a query answered at once) to 60 s (a printed
#: confirmation, a slow SGD reply); longer waits in a queue land in +Inf.
REQUEST_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)
#: A durable declare costs about 3 ms on an idle broker and grows under a
#: reconnect storm; seconds mean RabbitMQ is struggling.
DECLARE_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Header RabbitMQ's message-timestamp interceptor adds (milliseconds since epoch).
TIMESTAMP_MS_HEADER = "timestamp_in_ms"


def _version() -> str:
    try:
        return importlib.metadata.version("zebra-weblink-broker")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def channel_label(channel: str) -> str:
    """Return the ``channel`` label value for a channel name (``other`` if unknown)."""
    value = str(channel)
    return value if value in CHANNELS else OTHER


def type_label(request_type: str | None) -> str:
    """Return the ``type`` label: ``print``, ``query``, ``sgd`` or ``unknown``.

    Accepts a :class:`~broker.schemas.RequestType` (``zebra.print``), its short name
    (``print``) or ``None`` (a request rejected before its type was known).
    """
    if request_type is None:
        return "unknown"
    value = str(request_type).removeprefix("zebra.")
    return value if value in REQUEST_TYPES else "unknown"


def status_label(status: str) -> str:
    """Return the ``status`` label for a :class:`~broker.schemas.JobStatus` value."""
    value = str(status)
    return value if value in STATUSES else OTHER


def code_label(code: int | None) -> str:
    """Return the ``code`` label of a WebSocket close code.

    ``none`` when the socket ended without a close frame code, ``other`` outside
    1000-4999 (RFC 6455 §7.4), so the label stays a small closed set.
    """
    if code is None:
        return "none"
    return str(code) if 1000 <= code <= 4999 else OTHER


def publish_time(
    *,
    received_at: float,
    headers: Mapping[str, Any] | None = None,
    timestamp: datetime | None = None,
) -> float:
    """Estimate when a request was published, in seconds since the epoch.

    Args:
        received_at: when the gateway took the delivery (``time.time()``).
        headers: the message headers; RabbitMQ's timestamp interceptor (3.12+,
            ``message_interceptors.incoming.set_header_timestamp``) puts the
            broker's arrival time in ``timestamp_in_ms``, which is used first.
        timestamp: the AMQP ``timestamp`` property, set by the producer (the
            ``broker`` client sets it). It has whole-second resolution, so it is
            used only when it is more than a second older than ``received_at``
            (the request waited in its queue); otherwise ``received_at`` is the
            better estimate.

    Returns:
        The estimate; never later than ``received_at``.
    """
    milliseconds = (headers or {}).get(TIMESTAMP_MS_HEADER)
    if isinstance(milliseconds, int) and not isinstance(milliseconds, bool):
        return min(milliseconds / 1000.0, received_at)
    if timestamp is not None:
        published = timestamp.timestamp()
        if published < received_at - 1.0:
            return published
    return received_at


class Metrics:
    """The metrics of one gateway replica, in a registry of its own.

    Args:
        replica: the replica's name, exported as a label of ``zebra_gateway_info``.
        process_metrics: also export the process (``process_resident_memory_bytes``,
            ``process_open_fds``…), Python platform and garbage collector series.

    Gauges are kept as plain counts and clamped at zero, so an unmatched
    ``*_stopped``/``*_closed`` call cannot drive a gauge negative.
    """

    def __init__(self, replica: str = "", *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        if process_metrics:
            # The default collectors registered again, on this registry only.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        info = Gauge(
            f"{PREFIX}_info",
            "Always 1; the replica's name and the package version as labels.",
            ["replica", "version"],
            registry=registry,
        )
        info.labels(replica=replica, version=_version()).set(1)

        self._printers_connected = Gauge(
            f"{PREFIX}_printers_connected",
            "Printers whose main socket is on this replica (identified and online).",
            registry=registry,
        )
        self._sockets_open = Gauge(
            f"{PREFIX}_sockets_open",
            "Identified printer WebSockets open on this replica, by channel.",
            ["channel"],
            registry=registry,
        )
        self._handshakes = Counter(
            f"{PREFIX}_handshakes",
            "WebSocket opening handshakes on the printer path, by result.",
            ["result"],
            registry=registry,
        )
        self._socket_closes = Counter(
            f"{PREFIX}_socket_closes",
            "Identified printer WebSockets closed, by channel and close code.",
            ["channel", "code"],
            registry=registry,
        )
        self._requests = Counter(
            f"{PREFIX}_requests",
            "Request outcomes published by this replica, by request type and status.",
            ["type", "status"],
            registry=registry,
        )
        self._request_children: dict[tuple[str | None, str], tuple[Any, Any]] = {}
        self._request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Seconds from a request's publication to its outcome, by request type.",
            ["type"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._declare_seconds = Histogram(
            f"{PREFIX}_queue_declare_duration_seconds",
            "Seconds to declare and bind one printer queue.",
            buckets=DECLARE_BUCKETS,
            registry=registry,
        )
        self._amqp_reconnects = Counter(
            f"{PREFIX}_amqp_reconnects",
            "Times this replica reconnected to RabbitMQ after losing the connection.",
            registry=registry,
        )
        self._consumers = Gauge(
            f"{PREFIX}_consumers",
            "Printer-queue consumers this replica holds, by channel.",
            ["channel"],
            registry=registry,
        )

        self._printer_count = 0
        self._socket_counts = dict.fromkeys((*CHANNELS, OTHER), 0)
        self._consumer_counts = dict.fromkeys((*QUEUE_CHANNELS, OTHER), 0)
        for channel in CHANNELS:
            self._sockets_open.labels(channel=channel).set(0)
        for channel in QUEUE_CHANNELS:
            self._consumers.labels(channel=channel).set(0)
        for result in ("accepted", "rejected"):
            self._handshakes.labels(result=result)
        for request_type in REQUEST_TYPES:
            self._request_seconds.labels(type=request_type)
            for status in STATUSES:
                self._requests.labels(type=request_type, status=status)

    # -- printers and sockets ----------------------------------------------------

    def handshake(self, accepted: bool) -> None:
        """A printer's opening handshake was answered (101 or a refusal)."""
        self._handshakes.labels(result="accepted" if accepted else "rejected").inc()

    def socket_opened(self, channel: str) -> None:
        """A printer socket identified itself as ``main``, ``raw`` or ``config``."""
        label = channel_label(channel)
        self._socket_counts[label] += 1
        self._sockets_open.labels(channel=label).set(self._socket_counts[label])

    def socket_closed(self, channel: str, code: int | None) -> None:
        """An identified printer socket closed with ``code`` (``None``: no code)."""
        label = channel_label(channel)
        self._socket_counts[label] = max(0, self._socket_counts[label] - 1)
        self._sockets_open.labels(channel=label).set(self._socket_counts[label])
        self._socket_closes.labels(channel=label, code=code_label(code)).inc()

    def printer_online(self) -> None:
        """A printer's main socket was claimed here and its queues declared."""
        self._printer_count += 1
        self._printers_connected.set(self._printer_count)

    def printer_offline(self) -> None:
        """A printer counted by :meth:`printer_online` lost its main socket here."""
        self._printer_count = max(0, self._printer_count - 1)
        self._printers_connected.set(self._printer_count)

    # -- requests ----------------------------------------------------------------

    def request_finished(
        self, request_type: str | None, status: str, seconds: float | None
    ) -> None:
        """An outcome was published.

        Args:
            request_type: a :class:`~broker.schemas.RequestType` (or ``None`` when
                the request was rejected before its type was known).
            status: the outcome's :class:`~broker.schemas.JobStatus`.
            seconds: from publication to outcome (see :func:`publish_time`), or
                ``None`` to count the outcome without timing it.
        """
        key = (request_type, status)
        children = self._request_children.get(key)
        if children is None:
            # prometheus_client's labels() costs more than the count: once per pair.
            type_value = type_label(request_type)
            children = self._request_children[key] = (
                self._requests.labels(type=type_value, status=status_label(status)),
                self._request_seconds.labels(type=type_value),
            )
        children[0].inc()
        if seconds is not None:
            children[1].observe(max(0.0, seconds))

    # -- RabbitMQ ----------------------------------------------------------------

    def queue_declared(self, seconds: float) -> None:
        """A printer queue was declared and bound in ``seconds``."""
        self._declare_seconds.observe(max(0.0, seconds))

    def amqp_reconnected(self) -> None:
        """The replica got its RabbitMQ connection back after losing it."""
        self._amqp_reconnects.inc()

    def consumer_started(self, channel: str) -> None:
        """A ``raw`` or ``config`` session started consuming its printer's queue."""
        label = channel_label(channel)
        label = label if label in QUEUE_CHANNELS else OTHER
        self._consumer_counts[label] += 1
        self._consumers.labels(channel=label).set(self._consumer_counts[label])

    def consumer_stopped(self, channel: str) -> None:
        """A consumer counted by :meth:`consumer_started` was cancelled or lost."""
        label = channel_label(channel)
        label = label if label in QUEUE_CHANNELS else OTHER
        self._consumer_counts[label] = max(0, self._consumer_counts[label] - 1)
        self._consumers.labels(channel=label).set(self._consumer_counts[label])

    # -- reading -----------------------------------------------------------------

    @property
    def printers_connected(self) -> int:
        """Printers online on this replica."""
        return self._printer_count

    def sockets_open(self, channel: str) -> int:
        """Identified sockets of ``channel`` open on this replica."""
        return self._socket_counts.get(channel_label(channel), 0)

    def consumers_held(self, channel: str) -> int:
        """Consumers of ``channel`` queues held by this replica."""
        return self._consumer_counts.get(channel_label(channel), 0)

    def render(self) -> tuple[bytes, str]:
        """Return the body and ``Content-Type`` of a ``GET /metrics`` answer."""
        return generate_latest(self.registry), CONTENT_TYPE


__all__ = [
    "CONTENT_TYPE",
    "DECLARE_BUCKETS",
    "REQUEST_BUCKETS",
    "Metrics",
    "code_label",
    "publish_time",
    "status_label",
    "type_label",
]
