"""Domain assertions and factories for ChannelProtocol tests (``style.md`` §11)."""

from __future__ import annotations

from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, CloseCode, Role
from gateway.weblink.events import Event, PrinterIdentified, ProtocolViolation
from tests.unit.weblink.frames import CONFIG_HELLO, MAIN_HELLO, RAW_HELLO, SERIAL

HELLOS = {
    ChannelKind.MAIN: MAIN_HELLO,
    ChannelKind.RAW: RAW_HELLO,
    ChannelKind.CONFIG: CONFIG_HELLO,
}


def gateway_channel(
    kind: ChannelKind, *, max_buffer_size: int = 1 << 20
) -> ChannelProtocol:
    """Return a gateway-side channel already identified as ``kind``, events drained."""
    channel = ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size)
    channel.receive_message(HELLOS[kind])
    [event] = channel.events_received()
    assert isinstance(event, PrinterIdentified)
    assert event.kind is kind
    return channel


def printer_channel(kind: ChannelKind) -> ChannelProtocol:
    """Return a printer-side channel of ``kind`` for the canned serial."""
    return ChannelProtocol(Role.PRINTER, kind=kind, printer_serial=SERIAL)


def receive(channel: ChannelProtocol, *messages: bytes | str) -> list[Event]:
    """Deliver messages one by one and return the events they produced."""
    for message in messages:
        channel.receive_message(message)
    return channel.events_received()


def relay(source: ChannelProtocol, target: ChannelProtocol) -> list[Event]:
    """Deliver everything ``source`` wants to send to ``target``; return its events."""
    return receive(target, *source.data_to_send())


def assert_violation(
    channel: ChannelProtocol, events: list[Event], code: CloseCode, reason: str
) -> None:
    """Assert that ``events`` end with one violation and the channel is closing."""
    assert events, "expected a ProtocolViolation event"
    violation = events[-1]
    assert isinstance(violation, ProtocolViolation), events
    assert violation.close_code is code, violation
    assert reason in violation.reason, violation.reason
    assert not any(isinstance(event, ProtocolViolation) for event in events[:-1])
    assert channel.state is ChannelState.CLOSING
    assert channel.close_code is code
    assert channel.close_reason == violation.reason
    assert channel.data_to_send() == []


def assert_sent(channel: ChannelProtocol, *messages: bytes) -> None:
    """Assert that ``channel`` queued exactly ``messages``, each a bytes object."""
    sent = channel.data_to_send()
    assert all(type(message) is bytes for message in sent)
    assert sent == list(messages)
