"""A Zebra Link-OS printer emulator that speaks WebLink to a gateway.

A product feature, not a mock: users test against it without hardware, and the
integration tests drive it over real WebSockets (``style.md`` §11). Run it with
``zebra-printer-emulator --url ws://127.0.0.1:8080/ --serial 50J000000001``.
"""

from __future__ import annotations

from gateway.emulator.errors import ConnectFailed, EmulatorError, NotConnected
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.printer import PrinterEmulator

__all__ = [
    "ConnectFailed",
    "EmulatorError",
    "EmulatorOptions",
    "NotConnected",
    "PrinterEmulator",
]
