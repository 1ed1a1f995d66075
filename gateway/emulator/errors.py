"""Errors the printer emulator raises, under ``broker.errors.GatewayError``::

GatewayError
└── EmulatorError                       base for the emulator
    ├── ConnectFailed (+ ConnectionError)  a socket could not be opened or was refused
    └── NotConnected                     a knob needs a socket the printer lacks
"""

from __future__ import annotations

from broker.errors import GatewayError


class EmulatorError(GatewayError):
    """Base class of the printer emulator's errors."""


class ConnectFailed(EmulatorError, ConnectionError):
    """The printer could not open a WebLink socket, or refused the handshake."""

    def __init__(self, printer_serial: str, url: str, reason: str) -> None:
        self.printer_serial = printer_serial
        self.url = url
        self.reason = reason
        super().__init__(
            f"printer {printer_serial} could not connect to {url}: {reason}; check "
            "that a WebLink gateway listens there"
        )


class NotConnected(EmulatorError):
    """A fault knob needs a socket (main or raw) the printer does not have now."""

    def __init__(self, printer_serial: str, channel: str) -> None:
        self.printer_serial = printer_serial
        self.channel = channel
        super().__init__(
            f"printer {printer_serial} has no open {channel} socket; wait for it "
            f"(wait_connected / wait_channel) first"
        )
