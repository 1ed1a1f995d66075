"""Property tests: bad input never raises out of the core (``style.md`` §4)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, Role
from gateway.weblink.events import Event, ProtocolViolation
from tests.unit.weblink.frames import (
    ALERT_PQ_JOB_COMPLETED,
    CONFIG_HELLO,
    HS_REPLY,
    MAIN_HELLO,
    RAW_HELLO,
    SGD_GET,
    SGD_REPLY,
)
from tests.unit.weblink.helpers import gateway_channel, printer_channel

# Arbitrary bytes, mixed with pieces of real printer traffic so that runs get past
# the hello and into every open-channel path.
REAL = [MAIN_HELLO, RAW_HELLO, CONFIG_HELLO, ALERT_PQ_JOB_COMPLETED, SGD_REPLY, SGD_GET]
PIECES = st.sampled_from(REAL).flatmap(
    lambda message: st.integers(0, len(message)).map(lambda cut: message[cut:])
)
MESSAGE = st.one_of(
    st.binary(max_size=64), st.text(max_size=16), PIECES, st.just(HS_REPLY)
)
MESSAGES = st.lists(MESSAGE, max_size=12)


def check(channel: ChannelProtocol, messages: list[bytes | str]) -> list[Event]:
    """Deliver messages; the core must not raise and must keep its invariants."""
    events: list[Event] = []
    for message in messages:
        channel.receive_message(message)
        events.extend(channel.events_received())
        assert all(type(item) is bytes for item in channel.data_to_send())
    violations = [event for event in events if isinstance(event, ProtocolViolation)]
    assert len(violations) <= 1
    if violations:
        assert events[-1] is violations[0]
        assert channel.state is ChannelState.CLOSING
        assert channel.close_code is violations[0].close_code
    return events


@given(messages=MESSAGES, max_buffer_size=st.sampled_from([32, 1 << 20]))
@settings(max_examples=300)
def test_gateway_new_socket(messages: list[bytes | str], max_buffer_size: int) -> None:
    """A fresh gateway socket survives any message sequence."""
    check(ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size), messages)


@given(
    kind=st.sampled_from(list(ChannelKind)),
    pending=st.booleans(),
    framing=st.sampled_from(["json", "line", "frames", "idle"]),
    messages=MESSAGES,
)
def test_gateway_open_channel(
    kind: ChannelKind, pending: bool, framing: str, messages: list[bytes | str]
) -> None:
    """An identified gateway channel, with or without a pending request, never raises."""
    channel = gateway_channel(kind, max_buffer_size=256)
    if pending and kind is ChannelKind.CONFIG:
        channel.send_sgd({"a": None})
    if pending and kind is ChannelKind.RAW:
        channel.send_query(b"q", framing, 2)
    check(channel, messages)


@given(kind=st.sampled_from(list(ChannelKind)), messages=MESSAGES)
def test_printer_channel(kind: ChannelKind, messages: list[bytes | str]) -> None:
    """A printer-side channel survives any message sequence from the server."""
    check(printer_channel(kind), messages)
