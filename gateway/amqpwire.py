"""AMQP 0-9-1 frames of the gateway's printer-traffic connection, without I/O.

Every label and query of the fleet reaches the gateway as a delivery on a printer
queue, and leaves it as an outcome, a reply and an event. aiormq reads each frame
with three awaits, hands it to a channel task through a queue and starts one more
task per delivery, and writes through a queue to a writer task; this core turns
bytes from RabbitMQ into whole deliveries and method frames in one call, and
methods and messages into bytes. :mod:`gateway.amqpconn` drives a socket with it
(fixes 17 and 18 in docs/performance.md). pamqp (aiormq's own codec) encodes and
decodes methods and properties; body frames are only sliced.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pamqp import commands, frame, header
from pamqp.base import Frame

from broker.errors import BrokerUnavailable

#: What a client sends first: "AMQP" 0 0 9 1.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_HEADER = struct.Struct(">BHI")
_METHOD_INDEX = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: basic.deliver (class 60, method 60): decoded here, three times faster than pamqp.
_DELIVER = 0x003C003C
#: A whole basic.ack frame: type, channel, size, class 60, method 80, tag, bits, end.
_ACK = struct.Struct(">BHIHHQBB")
_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8
_FRAME_END = 0xCE
_HEADER_SIZE = _FRAME_HEADER.size


class WireError(BrokerUnavailable):
    """RabbitMQ sent bytes that are not the AMQP this connection expects.

    The connection is dropped (and the bus reconnects): nothing after such bytes can
    be trusted.
    """


@dataclass(slots=True)
class Incoming:
    """A whole delivery: the basic.deliver method, its properties and its body."""

    channel: int
    deliver: commands.Basic.Deliver
    properties: commands.Basic.Properties
    body: bytes


@dataclass(slots=True)
class Method:
    """A method frame other than basic.deliver."""

    channel: int
    method: Frame


@dataclass(slots=True)
class _Content:
    deliver: commands.Basic.Deliver
    properties: commands.Basic.Properties | None = None
    size: int = 0
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


class Wire:
    """Frames in, events out; methods in, bytes out."""

    def __init__(self, frame_max: int = 131072) -> None:
        self.frame_max = frame_max
        self._buffer = bytearray()
        self._content: dict[int, _Content] = {}

    def receive(self, data: bytes) -> list[Incoming | Method]:
        """Take bytes from the socket; return what they completed, in order.

        Raises:
            WireError: a frame is malformed, too large or out of sequence.
        """
        buffer = self._buffer
        buffer += data
        events: list[Incoming | Method] = []
        offset = 0
        available = len(buffer)
        while available - offset >= _HEADER_SIZE:
            kind, channel, size = _FRAME_HEADER.unpack_from(buffer, offset)
            if size > self.frame_max:
                raise WireError(f"frame of {size} bytes (frame_max {self.frame_max})")
            end = offset + _HEADER_SIZE + size
            if end >= available:
                break
            if buffer[end] != _FRAME_END:
                raise WireError(f"frame end {buffer[end]:#x} instead of 0xce")
            payload = bytes(buffer[offset + _HEADER_SIZE : end])
            offset = end + 1
            if kind == _BODY:
                self._body(channel, payload, events)
            elif kind == _METHOD:
                self._method(channel, payload, events)
            elif kind == _HEADER:
                self._header(channel, payload, events)
            elif kind != _HEARTBEAT:
                raise WireError(f"unknown frame type {kind}")
        del buffer[:offset]
        return events

    def _method(
        self, channel: int, payload: bytes, events: list[Incoming | Method]
    ) -> None:
        if channel in self._content:
            raise WireError(f"method frame inside content on channel {channel}")
        (index,) = _METHOD_INDEX.unpack_from(payload)
        if index == _DELIVER:
            self._content[channel] = _Content(_deliver(payload))
            return
        kind = commands.INDEX_MAPPING.get(index)
        if kind is None:
            raise WireError(f"unknown method {index:#x}")
        method = kind()
        try:
            method.unmarshal(payload[4:])
        except (struct.error, ValueError) as exc:
            raise WireError(f"malformed {method.name}: {exc}") from exc
        events.append(Method(channel, method))

    def _header(
        self, channel: int, payload: bytes, events: list[Incoming | Method]
    ) -> None:
        content = self._content.get(channel)
        if content is None or content.properties is not None:
            raise WireError(f"unexpected content header on channel {channel}")
        parsed = header.ContentHeader()
        try:
            parsed.unmarshal(payload)
        except (struct.error, ValueError) as exc:
            raise WireError(f"malformed content header: {exc}") from exc
        content.properties = parsed.properties
        content.size = parsed.body_size
        if content.size == 0:
            del self._content[channel]
            events.append(Incoming(channel, content.deliver, parsed.properties, b""))

    def _body(
        self, channel: int, payload: bytes, events: list[Incoming | Method]
    ) -> None:
        content = self._content.get(channel)
        if content is None or content.properties is None:
            raise WireError(f"unexpected content body on channel {channel}")
        content.received += len(payload)
        if content.received > content.size:
            raise WireError(f"body longer than its header's {content.size} bytes")
        if content.received < content.size:
            content.parts.append(payload)
            return
        del self._content[channel]
        if content.parts:
            content.parts.append(payload)
            payload = b"".join(content.parts)
        events.append(Incoming(channel, content.deliver, content.properties, payload))

    @staticmethod
    def method(channel: int, method: Frame) -> bytes:
        """The bytes of one method frame."""
        return frame.marshal(method, channel)

    def publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: commands.Basic.Properties,
    ) -> bytes:
        """The bytes of basic.publish (never mandatory), its header and its body."""
        parts = [
            frame.marshal(
                commands.Basic.Publish(exchange=exchange, routing_key=routing_key),
                channel,
            ),
            frame.marshal(header.ContentHeader(0, len(body), properties), channel),
        ]
        step = self.frame_max - 8  # a frame's header and end octet
        for start in range(0, len(body), step):
            chunk = body[start : start + step]
            parts.append(
                _FRAME_HEADER.pack(_BODY, channel, len(chunk)) + chunk + b"\xce"
            )
        return b"".join(parts)

    @staticmethod
    def ack(channel: int, delivery_tag: int) -> bytes:
        """The bytes of basic.ack (packed directly: one per label)."""
        return _ACK.pack(_METHOD, channel, 13, 60, 80, delivery_tag, 0, _FRAME_END)


def _deliver(payload: bytes) -> commands.Basic.Deliver:
    """basic.deliver's arguments: consumer tag, delivery tag, redelivered, exchange,
    routing key (after the four bytes of the method index)."""
    try:
        offset = 4
        size = payload[offset]
        consumer_tag = payload[offset + 1 : offset + 1 + size].decode()
        offset += 1 + size
        (delivery_tag,) = _U64.unpack_from(payload, offset)
        offset += 8
        redelivered = bool(payload[offset] & 1)
        offset += 1
        size = payload[offset]
        exchange = payload[offset + 1 : offset + 1 + size].decode()
        offset += 1 + size
        size = payload[offset]
        routing_key = payload[offset + 1 : offset + 1 + size].decode()
        if offset + 1 + size != len(payload):
            raise ValueError(f"{len(payload) - offset - 1 - size} bytes left over")
        return commands.Basic.Deliver(
            consumer_tag=consumer_tag,
            delivery_tag=delivery_tag,
            redelivered=redelivered,
            exchange=exchange,
            routing_key=routing_key,
        )
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"malformed basic.deliver: {exc}") from exc
