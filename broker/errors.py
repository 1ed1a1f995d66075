"""One exception tree for the whole project.

Everything the project raises on purpose derives from :class:`PrintBrokerError`::

    PrintBrokerError                              base for everything we raise
    ├── ConfigurationError (+ ValueError)         bad settings; the message names the env var or flag
    ├── SchemaError (+ ValueError)                a message failed validation
    ├── BrokerUnavailable (+ ConnectionError)     AMQP unreachable or lost
    ├── PublishError                              the broker nacked or returned a message
    │   ├── UnroutableMessage                     no queue for that printer (312 NO_ROUTE)
    │   └── QueueFull                             the printer's queue is at its length limit
    ├── RequestTimeout (+ TimeoutError)           no outcome before the caller's deadline
    ├── PrinterError                              the gateway reported a non-success outcome
    └── GatewayError                              raised inside gateway/
        ├── WebLinkProtocolError                  malformed or unexpected printer message
        ├── InvalidChannelState (+ AssertionError) a command in the wrong state: a bug
        └── ChannelClosed                         the printer channel went away while in use

Only ``broker/amqp.py`` and ``gateway/bus.py`` catch aio-pika/aiormq exceptions; they
translate them into these classes with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any


class PrintBrokerError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(PrintBrokerError, ValueError):
    """A setting is missing or invalid; the message names the flag or variable."""


class SchemaError(PrintBrokerError, ValueError):
    """A message failed validation against the contract."""


class BrokerUnavailable(PrintBrokerError, ConnectionError):
    """RabbitMQ cannot be reached, or the connection was lost."""


class PublishError(PrintBrokerError):
    """RabbitMQ refused a published message."""


class UnroutableMessage(PublishError):
    """A mandatory publish came back: no queue exists for that printer."""

    def __init__(self, printer_serial: str, routing_key: str) -> None:
        self.printer_serial = printer_serial
        self.routing_key = routing_key
        super().__init__(
            f"printer {printer_serial!r} is unknown: nothing is bound to routing key "
            f"{routing_key!r}; connect the printer once or run "
            f"'zebra-broker provision {printer_serial}'"
        )


class QueueFull(PublishError):
    """The printer's queue is at its length limit and refused the request."""

    def __init__(self, printer_serial: str, queue: str) -> None:
        self.printer_serial = printer_serial
        self.queue = queue
        super().__init__(
            f"printer {printer_serial!r} has a full queue ({queue}): RabbitMQ refused "
            "the request; wait for the printer to drain it or raise the length limit"
        )


class RequestTimeout(PrintBrokerError, TimeoutError):
    """No outcome arrived before the caller's deadline."""

    def __init__(self, job_id: str, timeout: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        super().__init__(
            f"no outcome for job {job_id} within {timeout:g} s; it may still be queued "
            "or in progress (watch 'job.<serial>.*' events to follow it)"
        )


class PrinterError(PrintBrokerError):
    """The gateway reported an outcome that is not a success."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        super().__init__(
            f"job {outcome.job_id} on printer {outcome.printer_serial}: "
            f"{outcome.status} ({outcome.error or 'no reason given'})"
        )


class GatewayError(PrintBrokerError):
    """Base class of errors raised inside the gateway."""


class WebLinkProtocolError(GatewayError):
    """A printer sent something the WebLink protocol does not allow."""


class InvalidChannelState(GatewayError, AssertionError):
    """A command was issued in a state that does not allow it (a bug)."""


class ChannelClosed(GatewayError):
    """The printer channel went away while a request was using it."""
