"""Fuzzing the WebLink core: no input can raise, grow memory or misclose a channel.

Hypothesis drives :class:`ChannelProtocol` in both roles with arbitrary messages,
arbitrary splits of valid streams, valid streams followed by garbage, and huge
values. The invariants, checked after every message:

* nothing escapes ``receive_message``; every output is a ``bytes`` message;
* at most one :class:`ProtocolViolation`, the last event, with a close code in
  {1003, 1007, 1008, 1009}; the channel is then ``CLOSING`` and ignores input;
* bytes held for an incomplete value (or a raw query's answer) never exceed
  ``max_buffer_size`` plus the message just received;
* an identified serial is always a valid one (``[A-Za-z0-9_-]{1,64}``);
* splitting a valid stream anywhere yields the same events as sending it whole.

``ZEBRA_BROKER_FUZZ_EXAMPLES`` sets the examples per property (default 200, for CI);
``scripts/fuzz.py --examples 100000`` runs a long session.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.topology import is_valid_serial
from gateway.weblink.channel import ChannelProtocol
from gateway.weblink.constants import ChannelKind, ChannelState, CloseCode, Role
from gateway.weblink.events import (
    Event,
    PrinterIdentified,
    ProtocolViolation,
    QueryAnswered,
    RawDataReceived,
)
from gateway.weblink.sgd import encode_sgd_request
from tests.unit.weblink.frames import (
    ALERT_HEAD_OPEN_CLEAR,
    ALERT_PQ_JOB_COMPLETED,
    ALERT_SGD_SET,
    CONFIG_HELLO,
    CONFIGURE_ALERT,
    GETVAR_REPLY,
    HS_REPLY,
    MAIN_HELLO,
    OPEN_CONFIG,
    OPEN_RAW,
    RAW_HELLO,
    SERIAL,
    SGD_GET,
    SGD_REPLY,
    ZPL,
)

EXAMPLES = int(os.environ.get("ZEBRA_BROKER_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: The close codes a peer's bad input may cause (RFC 6455 §7.4.1).
CLOSE_CODES = {
    CloseCode.UNSUPPORTED_DATA,
    CloseCode.INVALID_DATA,
    CloseCode.POLICY_VIOLATION,
    CloseCode.MESSAGE_TOO_BIG,
}
HELLOS = {
    ChannelKind.MAIN: MAIN_HELLO,
    ChannelKind.RAW: RAW_HELLO,
    ChannelKind.CONFIG: CONFIG_HELLO,
}
KINDS = st.sampled_from(list(ChannelKind))
BUFFER_SIZES = st.sampled_from([16, 64, 256, 4096, 1 << 20])
FRAMINGS = st.sampled_from(["json", "line", "frames", "idle"])

# -- messages ------------------------------------------------------------------------

REAL = [
    MAIN_HELLO,
    RAW_HELLO,
    CONFIG_HELLO,
    ALERT_PQ_JOB_COMPLETED,
    ALERT_SGD_SET,
    ALERT_HEAD_OPEN_CLEAR,
    SGD_REPLY,
    SGD_GET,
    OPEN_RAW,
    OPEN_CONFIG,
    CONFIGURE_ALERT,
    HS_REPLY,
    GETVAR_REPLY,
    ZPL,
]
#: Any slice of real traffic, so that runs get past hellos into every path.
PIECES = st.sampled_from(REAL).flatmap(
    lambda message: st.tuples(
        st.integers(0, len(message)), st.integers(0, len(message))
    ).map(lambda cut: message[min(cut) : max(cut)])
)
#: Bytes that matter to the JSON scanner, to build near-valid values.
STRUCTURAL = st.lists(
    st.sampled_from([b"{", b"}", b"[", b"]", b'"', b"\\", b" ", b"\r\n", b":", b","]),
    max_size=40,
).map(b"".join)
#: Big messages: filler, unterminated values, deep nesting.
HUGE = st.tuples(
    st.sampled_from([b"{", b"[", b'{"a":"', b"[" * 64, b"", b"\x00"]),
    st.integers(1, 1 << 16),
    st.sampled_from([b" ", b"x", b"[", b"{", b"\xff"]),
).map(lambda parts: parts[0] + parts[2] * parts[1])
MESSAGE = st.one_of(
    st.binary(max_size=96),
    st.text(max_size=24),
    PIECES,
    STRUCTURAL,
    HUGE,
)
MESSAGES = st.lists(MESSAGE, max_size=16)

# -- valid JSON streams --------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
#: Top-level WebLink values are objects or arrays.
TOP_LEVEL = st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5) | st.lists(
    JSON_VALUES, max_size=5
)


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> bytes:
    """Encode ``value`` compactly, or pretty-printed with CRLF like a printer."""
    ensure_ascii = draw(st.booleans())
    if draw(st.booleans()):
        return json.dumps(value, ensure_ascii=ensure_ascii).encode()
    text = json.dumps(
        value, ensure_ascii=ensure_ascii, indent=2, separators=(",", " : ")
    )
    return text.replace("\n", "\r\n").encode()


VALUE_STREAM = st.lists(TOP_LEVEL.flatmap(encoded), max_size=6)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (taken modulo its length, sorted)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


CUTS = st.lists(st.integers(min_value=0), max_size=24)

# -- invariants ----------------------------------------------------------------------


def buffered(channel: ChannelProtocol) -> list[int]:
    """Return the sizes the core holds for incomplete input."""
    sizes = [channel._stream.pending_size]
    query = channel._query
    if query is not None:
        sizes += [len(query.collected), query._json.pending_size]
    return sizes


def deliver(channel: ChannelProtocol, messages: Sequence[bytes | str]) -> list[Event]:
    """Deliver messages one by one, checking every invariant after each."""
    events: list[Event] = []
    largest = 0
    for message in messages:
        largest = max(largest, len(message))
        closing_before = channel.state is not ChannelState.AWAITING_HELLO and (
            channel.state is not ChannelState.OPEN
        )
        channel.receive_message(message)
        new = channel.events_received()
        if closing_before:
            assert new == [], "a closing channel must ignore input"
        events.extend(new)
        assert all(type(item) is bytes for item in channel.data_to_send())
        # A failed stream keeps what it held until the socket closes: the limit
        # plus the message that broke it.
        limit = channel.max_buffer_size + largest
        assert all(size <= limit for size in buffered(channel)), buffered(channel)
    check_events(channel, events)
    return events


def check_events(channel: ChannelProtocol, events: list[Event]) -> None:
    """At most one violation, last, with a fitting code; identified serials valid."""
    violations = [event for event in events if isinstance(event, ProtocolViolation)]
    assert len(violations) <= 1, violations
    if violations:
        assert events[-1] is violations[0]
        assert violations[0].close_code in CLOSE_CODES
        assert channel.state is ChannelState.CLOSING
        assert channel.close_code is violations[0].close_code
    for event in events:
        if isinstance(event, PrinterIdentified):
            assert is_valid_serial(event.printer_serial)
        if isinstance(event, QueryAnswered):
            assert len(event.data) <= 2 * channel.max_buffer_size + (1 << 16)


def close_and_check(channel: ChannelProtocol) -> None:
    """Closing never raises, and input after it is ignored."""
    channel.receive_closed()
    assert channel.state is ChannelState.CLOSED
    channel.receive_message(b"{}")
    channel.receive_message("text")
    assert channel.events_received() == []
    assert buffered(channel)[0] == 0


def gateway_channel(
    kind: ChannelKind | None, max_buffer_size: int, *, pending: bool, framing: str
) -> ChannelProtocol:
    """A gateway channel, fresh or identified as ``kind``, maybe with a request."""
    channel = ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size)
    if kind is None:
        return channel
    channel.receive_message(HELLOS[kind])
    [event] = channel.events_received()
    assert isinstance(event, PrinterIdentified)
    if pending and kind is ChannelKind.CONFIG:
        channel.send_sgd({"device.friendly_name": None})
    if pending and kind is ChannelKind.RAW:
        channel.send_query(b"~HS", framing, 3)
    channel.data_to_send()
    return channel


def printer_channel(kind: ChannelKind, max_buffer_size: int) -> ChannelProtocol:
    """A printer-side channel of ``kind``."""
    return ChannelProtocol(
        Role.PRINTER, kind=kind, printer_serial=SERIAL, max_buffer_size=max_buffer_size
    )


def same_events(kind: ChannelKind, left: list[Event], right: list[Event]) -> None:
    """Assert equal events; raw data only has to be equal once concatenated."""
    if kind is not ChannelKind.RAW:
        assert left == right
        return

    def normal(events: list[Event]) -> tuple[list[object], bytes]:
        others: list[object] = [e for e in events if not isinstance(e, RawDataReceived)]
        data = b"".join(e.data for e in events if isinstance(e, RawDataReceived))
        return others, data

    assert normal(left) == normal(right)


# -- properties ----------------------------------------------------------------------


class TestArbitraryInput:
    """Arbitrary message sequences, any role, any state."""

    @FUZZ
    @given(
        kind=st.none() | KINDS,
        pending=st.booleans(),
        framing=FRAMINGS,
        max_buffer_size=BUFFER_SIZES,
        messages=MESSAGES,
    )
    def test_gateway(self, kind, pending, framing, max_buffer_size, messages):
        """A gateway channel, fresh or identified, survives any message sequence."""
        channel = gateway_channel(
            kind, max_buffer_size, pending=pending, framing=framing
        )
        deliver(channel, messages)
        close_and_check(channel)

    @FUZZ
    @given(kind=KINDS, max_buffer_size=BUFFER_SIZES, messages=MESSAGES)
    def test_printer(self, kind, max_buffer_size, messages):
        """A printer-side channel survives any message sequence from a server."""
        channel = printer_channel(kind, max_buffer_size)
        deliver(channel, messages)
        close_and_check(channel)

    @FUZZ
    @given(max_buffer_size=BUFFER_SIZES, data=st.binary(max_size=512), cuts=CUTS)
    def test_gateway_hello_split_anywhere(self, max_buffer_size, data, cuts):
        """A socket's first bytes, split anywhere, never break the core."""
        channel = ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size)
        deliver(channel, list(split(data, cuts)))


class TestSplitInvariance:
    """Message boundaries carry no meaning (``weblink-protocol.md`` §2)."""

    @FUZZ
    @given(kind=KINDS, values=VALUE_STREAM, cuts=CUTS)
    def test_gateway(self, kind, values, cuts):
        """A valid stream split anywhere gives the events of the whole stream."""
        stream = HELLOS[kind] + b"".join(values)
        whole = gateway_channel(None, 1 << 20, pending=False, framing="idle")
        pieces = gateway_channel(None, 1 << 20, pending=False, framing="idle")
        whole_events = deliver(whole, [stream])
        piece_events = deliver(pieces, list(split(stream, cuts)))
        same_events(kind, whole_events, piece_events)
        assert not any(isinstance(e, ProtocolViolation) for e in whole_events)
        assert isinstance(whole_events[0], PrinterIdentified)
        if kind is not ChannelKind.RAW:
            assert len(whole_events) == 1 + len(values)

    @FUZZ
    @given(
        kind=st.sampled_from([ChannelKind.MAIN, ChannelKind.CONFIG]),
        values=VALUE_STREAM,
        cuts=CUTS,
    )
    def test_printer(self, kind, values, cuts):
        """A printer hears the same server messages however they are split."""
        if kind is ChannelKind.CONFIG:
            values = [encode_sgd_request({"device.friendly_name": None}), *values]
        stream = b"".join(values)
        whole = deliver(printer_channel(kind, 1 << 20), [stream] if stream else [])
        pieces = deliver(printer_channel(kind, 1 << 20), list(split(stream, cuts)))
        assert whole == pieces
        assert not any(isinstance(e, ProtocolViolation) for e in whole)

    @FUZZ
    @given(framing=FRAMINGS, answer=st.binary(max_size=300), cuts=CUTS)
    def test_raw_answer_loses_no_byte(self, framing, answer, cuts):
        """However a raw answer is split, its bytes come out once each, in order."""
        data = HS_REPLY + answer
        for messages in ([data], split(data, cuts)):
            events = run_query(framing, messages)
            assert sum(isinstance(e, QueryAnswered) for e in events) == 1
            assert isinstance(events[0], QueryAnswered)
            assert b"".join(raw_bytes(e) for e in events) == data

    @FUZZ
    @given(
        framing=st.sampled_from(["line", "idle", "json"]),
        value=TOP_LEVEL.flatmap(encoded),
        tail=st.binary(max_size=100),
        cuts=CUTS,
    )
    def test_raw_answer_split_anywhere(self, framing, value, tail, cuts):
        """Line, idle and (valid) JSON answers end at the same byte however split."""
        data = value + b"\n" + tail
        same_events(
            ChannelKind.RAW,
            run_query(framing, [data]),
            run_query(framing, split(data, cuts)),
        )


def run_query(framing: str, messages: Sequence[bytes]) -> list[Event]:
    """Answer a pending raw query with ``messages``; finish it if still open."""
    channel = gateway_channel(ChannelKind.RAW, 1 << 20, pending=True, framing=framing)
    events = deliver(channel, messages)
    if channel.has_pending_query:
        # While a query is pending every byte goes to it: no raw data came before.
        events.append(QueryAnswered(channel.finish_query()))
    return events


def raw_bytes(event: Event) -> bytes:
    """The bytes an answer or raw-data event carries."""
    assert isinstance(event, QueryAnswered | RawDataReceived), event
    return event.data


class TestValidThenGarbage:
    """Garbage after valid traffic never changes what came before."""

    @FUZZ
    @given(
        kind=KINDS,
        values=VALUE_STREAM,
        cuts=CUTS,
        garbage=MESSAGES,
        max_buffer_size=BUFFER_SIZES,
    )
    def test_gateway(self, kind, values, cuts, garbage, max_buffer_size):
        """Events of the valid prefix stay first and unchanged; then at most a close."""
        prefix = list(split(HELLOS[kind] + b"".join(values), cuts))
        clean = ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size)
        dirty = ChannelProtocol(Role.GATEWAY, max_buffer_size=max_buffer_size)
        clean_events = deliver(clean, list(prefix))
        dirty_events = deliver(dirty, [*prefix, *garbage])
        assert dirty_events[: len(clean_events)] == clean_events
        close_and_check(dirty)


class TestHugeInput:
    """Oversized input closes with 1009 (or 1007) and memory stays bounded."""

    @FUZZ
    @given(
        kind=st.none() | st.sampled_from([ChannelKind.MAIN, ChannelKind.CONFIG]),
        max_buffer_size=st.sampled_from([16, 1024, 4096]),
        chunk=st.integers(1, 1 << 15),
        total=st.integers(1, 1 << 17),
        opener=st.sampled_from([b"{", b"[", b'{"a":"', b'["\\']),
    )
    def test_incomplete_value_grows_past_the_limit(
        self, kind, max_buffer_size, chunk, total, opener
    ):
        """An endless incomplete value closes with 1009 once past the limit."""
        channel = gateway_channel(kind, max_buffer_size, pending=False, framing="idle")
        data = opener + b"x" * total
        events = deliver(channel, split(data, list(range(chunk, len(data), chunk))))
        if len(data) > max_buffer_size:
            assert isinstance(events[-1], ProtocolViolation)
            assert events[-1].close_code is CloseCode.MESSAGE_TOO_BIG
        else:
            assert events == []

    def test_one_huge_message(self):
        """A single 8 MiB incomplete value is refused without holding it twice."""
        channel = gateway_channel(
            ChannelKind.CONFIG, 1 << 20, pending=False, framing="idle"
        )
        message = b"[" + b"0," * (4 << 20)
        [violation] = deliver(channel, [message])
        assert isinstance(violation, ProtocolViolation)
        assert violation.close_code is CloseCode.MESSAGE_TOO_BIG

    def test_deep_nesting(self):
        """A balanced value nested 100,000 deep closes with 1007, not RecursionError."""
        depth = 100_000
        data = b"[" * depth + b"]" * depth
        channel = gateway_channel(
            ChannelKind.MAIN, 1 << 20, pending=False, framing="idle"
        )
        events = deliver(channel, split(data, list(range(0, len(data), 4093))))
        assert isinstance(events[-1], ProtocolViolation)
        assert events[-1].close_code is CloseCode.INVALID_DATA

    def test_raw_answer_is_bounded(self):
        """A raw answer that never ends completes at the limit instead of growing."""
        channel = gateway_channel(ChannelKind.RAW, 4096, pending=True, framing="line")
        events = deliver(channel, [b"x" * 1000] * 10)
        answered = [e for e in events if isinstance(e, QueryAnswered)]
        assert len(answered) == 1
        assert 4096 < len(answered[0].data) <= 4096 + 1000
        assert not channel.has_pending_query
