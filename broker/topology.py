"""Every exchange, queue and routing key of the system, in one place.

Nothing here does I/O: these functions and specs are the single source of names, and
``broker/amqp.py`` and ``gateway/bus.py`` turn them into AMQP declarations. All names
start with a namespace (default ``zebra``) so tests and deployments can share a vhost.

Public (the contract, ``docs/contract.md``):

- ``<ns>.requests``  direct exchange; routing key ``<serial>.raw`` or ``<serial>.config``
- ``<ns>.printer.<serial>.raw`` / ``.config``  per-printer queues
- ``<ns>.events``    topic exchange for events and job outcomes
- ``<ns>.dlx``       dead-letter exchange of the printer queues (fanout)
- ``<ns>.replicas``  an always-empty queue; its consumer count is the number of live
  gateway replicas (used by the presence query)
- ``<ns>.presence``  fanout exchange; a presence query sent here reaches every replica

Internal (between gateway replicas; not part of the contract):

- ``<ns>.control``   direct exchange; routing key ``<serial>``, bound to the control queue
  of every replica that holds one of that printer's sockets
- ``<ns>.dead-letters``  the queue behind ``<ns>.dlx``, drained by any replica
- ``<ns>.gateway.<replica>``  one exclusive control queue per replica
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_NAMESPACE = "zebra"

#: What a printer serial may look like, checked at every edge (contract §1).
SERIAL_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: What a namespace may look like: dots would collide with our own separators.
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Channel(StrEnum):
    """The printer channels that carry requests."""

    RAW = "raw"
    CONFIG = "config"


def is_valid_serial(value: str) -> bool:
    """Return whether ``value`` is an acceptable printer serial."""
    return SERIAL_PATTERN.fullmatch(value) is not None


def check_serial(value: str) -> str:
    """Return ``value`` if it is a valid serial, else raise ``ValueError``."""
    if not is_valid_serial(value):
        raise ValueError(
            f"invalid printer serial {value[:80]!r}: only [A-Za-z0-9_-]{{1,64}} is allowed"
        )
    return value


@dataclass(frozen=True)
class ExchangeSpec:
    """An exchange to declare: every declaration must match the gateway's exactly."""

    name: str
    kind: str
    durable: bool = True


@dataclass(frozen=True)
class QueueSpec:
    """A queue to declare, with its arguments."""

    name: str
    durable: bool = True
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    """Names of one namespace's exchanges and queues.

    Args:
        namespace: prefix of every name.
        queue_max_length: ``x-max-length`` of each printer queue.
        queue_type: ``classic`` or ``quorum``.
    """

    namespace: str = DEFAULT_NAMESPACE
    queue_max_length: int = 10_000
    queue_type: str = "classic"

    # exchanges
    @property
    def requests_exchange(self) -> str:
        return f"{self.namespace}.requests"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def control_exchange(self) -> str:
        return f"{self.namespace}.control"

    @property
    def presence_exchange(self) -> str:
        return f"{self.namespace}.presence"

    def public_exchanges(self) -> tuple[ExchangeSpec, ...]:
        """The exchanges of the public contract (``docs/contract.md`` §1-3).

        - ``<ns>.requests``: direct; routing key ``<serial>.<raw|config>``.
        - ``<ns>.events``: topic; consumers bind their own queues.
        - ``<ns>.dlx``: fanout; the dead-letter exchange of every printer queue
          (fanout, because a dead-lettered message keeps its original routing key
          and the gateway's dead-letter queue must take them all).
        """
        return (
            ExchangeSpec(self.requests_exchange, "direct"),
            ExchangeSpec(self.events_exchange, "topic"),
            ExchangeSpec(self.dead_letter_exchange, "fanout"),
        )

    def gateway_exchanges(self) -> tuple[ExchangeSpec, ...]:
        """The public exchanges plus the gateway's own (control and presence)."""
        return (
            *self.public_exchanges(),
            ExchangeSpec(self.control_exchange, "direct"),
            ExchangeSpec(self.presence_exchange, "fanout"),
        )

    # shared queues
    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.dead-letters"

    @property
    def replicas_queue(self) -> str:
        return f"{self.namespace}.replicas"

    def control_queue(self, replica: str) -> str:
        """Name the control queue of one gateway replica."""
        return f"{self.namespace}.gateway.{replica}"

    # per printer
    def request_key(self, printer_serial: str, channel: Channel) -> str:
        """Routing key of requests for one printer channel (``<serial>.raw``)."""
        return f"{check_serial(printer_serial)}.{channel.value}"

    def printer_queue(self, printer_serial: str, channel: Channel) -> str:
        """Name of one printer channel's request queue."""
        return (
            f"{self.namespace}.printer.{check_serial(printer_serial)}.{channel.value}"
        )

    def printer_queue_spec(self, printer_serial: str, channel: Channel) -> QueueSpec:
        """Describe a printer queue with the arguments of contract §1.

        - ``x-dead-letter-exchange``: expired requests reach the gateway, which
          publishes their ``expired`` outcome.
        - ``x-max-length`` with ``x-overflow: reject-publish``: a full queue nacks the
          producer's publish instead of growing without bound or dropping old jobs.
        - ``x-single-active-consumer``: at most one gateway connection drains a
          printer's queue, whatever races happen during a reconnect.
        """
        return QueueSpec(
            name=self.printer_queue(printer_serial, channel),
            arguments={
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-max-length": self.queue_max_length,
                "x-overflow": "reject-publish",
                "x-single-active-consumer": True,
                "x-queue-type": self.queue_type,
            },
        )

    def printer_queue_of(self, queue_name: str) -> tuple[str, Channel] | None:
        """Return (serial, channel) for a printer queue name of this namespace."""
        prefix = f"{self.namespace}.printer."
        if not queue_name.startswith(prefix):
            return None
        serial, _, channel = queue_name[len(prefix) :].rpartition(".")
        if not is_valid_serial(serial) or channel not in Channel._value2member_map_:
            return None
        return serial, Channel(channel)

    def parse_request_key(self, routing_key: str) -> tuple[str, Channel] | None:
        """Return (serial, channel) for a request routing key, or ``None``."""
        serial, _, channel = routing_key.rpartition(".")
        if not is_valid_serial(serial) or channel not in Channel._value2member_map_:
            return None
        return serial, Channel(channel)

    # events
    def online_key(self, printer_serial: str) -> str:
        return f"printer.{printer_serial}.online"

    def offline_key(self, printer_serial: str) -> str:
        return f"printer.{printer_serial}.offline"

    def channel_key(self, printer_serial: str, channel: Channel, what: str) -> str:
        return f"printer.{printer_serial}.channel.{channel.value}.{what}"

    def alert_key(self, printer_serial: str, condition: str) -> str:
        return f"printer.{printer_serial}.alert.{condition}"

    def hold_key(self, printer_serial: str) -> str:
        return f"printer.{printer_serial}.hold"

    def data_key(self, printer_serial: str) -> str:
        return f"printer.{printer_serial}.data"

    def job_key(self, printer_serial: str, status: str) -> str:
        return f"job.{printer_serial}.{status}"
