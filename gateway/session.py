"""What every session on this replica has: one printer socket and the shared parts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from gateway.control import ControlMessage
from gateway.socket import PrinterSocket
from gateway.weblink import CloseCode
from gateway.weblink.events import Event, ProtocolViolation, UnsolicitedMessage

if TYPE_CHECKING:
    from gateway.bus import Bus
    from gateway.registry import Registry
    from gateway.settings import GatewaySettings


class SocketSession:
    """One printer socket on this replica, with the bus, registry and settings."""

    def __init__(
        self,
        socket: PrinterSocket,
        *,
        bus: Bus,
        registry: Registry,
        settings: GatewaySettings,
        channel: str,
    ) -> None:
        self.socket = socket
        self.bus = bus
        self.registry = registry
        self.settings = settings
        self.printer_serial = socket.printer_serial
        self.log = structlog.get_logger(type(self).__module__).bind(
            printer_serial=self.printer_serial, channel=channel
        )

    @property
    def socket_id(self) -> str:
        return self.socket.id

    @property
    def kind(self) -> str:
        return self.socket.kind.value

    @property
    def identified_at(self) -> float:
        return self.socket.identified_at

    async def close(self, code: CloseCode, reason: str) -> None:
        await self.socket.close(code, reason)

    async def handle_common(self, event: Event) -> bool:
        """Handle what every channel treats alike; return whether ``event`` was one.

        A protocol violation closes this socket with its code (the process and every
        other printer carry on); an unsolicited message is logged and ignored.
        """
        if isinstance(event, ProtocolViolation):
            self.log.warning(
                "channel.protocol_violation",
                reason=event.reason,
                close_code=int(event.close_code),
            )
            await self.socket.close(event.close_code, event.reason)
            return True
        if isinstance(event, UnsolicitedMessage):
            self.log.info("channel.unsolicited", value=str(event.value)[:200])
            return True
        return False

    def on_printer_alert(self, condition: str, state: str) -> None:
        """Hear an alert of this printer, from whichever replica holds its socket."""

    def on_channel_notice(self, message: ControlMessage) -> None:
        """Hear that a secondary socket of this printer opened or closed somewhere."""

    def on_hold(self, conditions: list[str]) -> None:
        """Hear which printer conditions hold its jobs now (empty: none)."""
