"""The consume connection's AMQP codec, without sockets (gateway/amqpwire.py).

Frames are built with pamqp, the codec aiormq uses, so the bytes are what RabbitMQ
sends; the parser must give the same deliveries however TCP splits them.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pamqp import body, commands, frame, header

from gateway.amqpwire import HEARTBEAT, Incoming, Method, Wire, WireError


def deliver_frames(
    channel: int, tag: int, payload: bytes, frame_max: int = 131072
) -> bytes:
    deliver = commands.Basic.Deliver(
        consumer_tag="printer raw", delivery_tag=tag, routing_key="printer.X.raw"
    )
    properties = commands.Basic.Properties(
        message_id=f"job-{tag}", headers={"x-zebra-attempt": 1}, delivery_mode=2
    )
    chunks = [
        frame.marshal(deliver, channel),
        frame.marshal(header.ContentHeader(0, len(payload), properties), channel),
    ]
    step = frame_max - 8
    for start in range(0, len(payload), step):
        chunks.append(
            frame.marshal(body.ContentBody(payload[start : start + step]), channel)
        )
    return b"".join(chunks)


def test_a_delivery_comes_out_whole_with_its_properties() -> None:
    wire = Wire()
    events = wire.receive(deliver_frames(3, 7, b"^XA^FDhello^FS^XZ"))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Incoming)
    assert (event.channel, event.deliver.delivery_tag, event.body) == (
        3,
        7,
        b"^XA^FDhello^FS^XZ",
    )
    assert event.deliver.consumer_tag == "printer raw"
    assert event.properties.message_id == "job-7"
    assert event.properties.headers == {"x-zebra-attempt": 1}


def test_an_empty_body_is_a_delivery_too() -> None:
    events = Wire().receive(deliver_frames(1, 1, b""))
    assert [
        (e.deliver.delivery_tag, e.body) for e in events if isinstance(e, Incoming)
    ] == [(1, b"")]


def test_a_body_over_several_frames_is_joined() -> None:
    payload = bytes(range(256)) * 40  # 10 KiB over 1 KiB frames
    wire = Wire(frame_max=1024)
    (event,) = wire.receive(deliver_frames(2, 9, payload, frame_max=1024))
    assert isinstance(event, Incoming)
    assert event.body == payload


def test_methods_and_heartbeats() -> None:
    wire = Wire()
    data = (
        HEARTBEAT
        + frame.marshal(commands.Basic.ConsumeOk(consumer_tag="t"), 4)
        + frame.marshal(
            commands.Channel.Close(
                reply_code=404, reply_text="NOT_FOUND", class_id=60, method_id=20
            ),
            4,
        )
    )
    events = wire.receive(data)
    assert [type(e.method) for e in events if isinstance(e, Method)] == [
        commands.Basic.ConsumeOk,
        commands.Channel.Close,
    ]
    assert all(e.channel == 4 for e in events)


@given(
    bodies=st.lists(st.binary(max_size=3000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=500), max_size=40),
)
def test_any_split_of_the_stream_gives_the_same_deliveries(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(
        deliver_frames(1 + index % 3, index + 1, payload, frame_max=1024)
        for index, payload in enumerate(bodies)
    )
    wire = Wire(frame_max=1024)
    events: list[Incoming | Method] = []
    position = 0
    for cut in cuts:
        events += wire.receive(stream[position : position + cut])
        position += cut
    events += wire.receive(stream[position:])
    assert [
        (e.deliver.delivery_tag, e.body) for e in events if isinstance(e, Incoming)
    ] == [(index + 1, payload) for index, payload in enumerate(bodies)]


def test_ack_bytes_are_pamqps_basic_ack() -> None:
    assert Wire.ack(5, 123456789) == frame.marshal(
        commands.Basic.Ack(delivery_tag=123456789), 5
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x50\x00", "frame end"),
        (b"\x05\x00\x01\x00\x00\x00\x00\xce", "unknown frame type"),
        (b"\x01\x00\x01\x00\x10\x00\x00", "frame of"),
        (frame.marshal(body.ContentBody(b"stray"), 1), "unexpected content body"),
        (b"\x01\x00\x01\x00\x00\x00\x04\x7f\x7f\x7f\x7f\xce", "unknown method"),
    ],
)
def test_malformed_input_is_a_wire_error(data: bytes, reason: str) -> None:
    wire = Wire(frame_max=4096)
    with pytest.raises(WireError, match=reason):
        wire.receive(data)


def test_a_method_inside_a_delivery_is_a_wire_error() -> None:
    deliver = commands.Basic.Deliver(consumer_tag="t", delivery_tag=1, routing_key="k")
    data = frame.marshal(deliver, 1) + frame.marshal(commands.Basic.QosOk(), 1)
    with pytest.raises(WireError, match="inside content"):
        Wire().receive(data)


def test_a_body_longer_than_announced_is_a_wire_error() -> None:
    deliver = commands.Basic.Deliver(consumer_tag="t", delivery_tag=1, routing_key="k")
    data = (
        frame.marshal(deliver, 1)
        + frame.marshal(header.ContentHeader(0, 3, commands.Basic.Properties()), 1)
        + frame.marshal(body.ContentBody(b"four"), 1)
    )
    with pytest.raises(WireError, match="longer"):
        Wire().receive(data)


def test_publish_bytes_are_pamqps_frames_split_at_frame_max() -> None:
    payload = bytes(range(256)) * 10  # 2,560 bytes over 1 KiB frames
    properties = commands.Basic.Properties(correlation_id="job-1", delivery_mode=2)
    data = Wire(frame_max=1024).publish(7, "zebra.events", "job.X", payload, properties)
    frames = []
    while data:
        used, channel, parsed = frame.unmarshal(data)
        assert channel == 7
        frames.append(parsed)
        data = data[used:]
    publish, content, *parts = frames
    assert isinstance(publish, commands.Basic.Publish)
    assert (publish.exchange, publish.routing_key, publish.mandatory) == (
        "zebra.events",
        "job.X",
        False,
    )
    assert isinstance(content, header.ContentHeader)
    assert content.body_size == len(payload)
    assert content.properties.correlation_id == "job-1"
    chunks = [part.value for part in parts if isinstance(part, body.ContentBody)]
    assert [len(chunk) for chunk in chunks] == [1016, 1016, 528]
    assert b"".join(chunks) == payload


_short = st.text(max_size=60).filter(lambda text: len(text.encode()) < 256)


@given(
    consumer_tag=_short,
    delivery_tag=st.integers(min_value=0, max_value=2**63 - 1),  # pamqp: signed
    redelivered=st.booleans(),
    exchange=st.from_regex(r"[A-Za-z0-9_.:-]{0,60}", fullmatch=True),
    routing_key=_short,
)
def test_basic_deliver_decodes_as_pamqp_encodes_it(
    consumer_tag: str,
    delivery_tag: int,
    redelivered: bool,
    exchange: str,
    routing_key: str,
) -> None:
    deliver = commands.Basic.Deliver(
        consumer_tag=consumer_tag,
        delivery_tag=delivery_tag,
        redelivered=redelivered,
        exchange=exchange,
        routing_key=routing_key,
    )
    data = frame.marshal(deliver, 2) + frame.marshal(
        header.ContentHeader(0, 0, commands.Basic.Properties()), 2
    )
    (event,) = Wire().receive(data)
    assert isinstance(event, Incoming)
    got = event.deliver
    assert (
        got.consumer_tag,
        got.delivery_tag,
        got.redelivered,
        got.exchange,
        got.routing_key,
    ) == (consumer_tag, delivery_tag, redelivered, exchange, routing_key)


def test_a_truncated_basic_deliver_is_a_wire_error() -> None:
    deliver = commands.Basic.Deliver(consumer_tag="t", delivery_tag=1, routing_key="k")
    payload = frame.marshal(deliver, 1)[7:-1][:-3]  # routing key cut short
    data = b"\x01\x00\x01" + len(payload).to_bytes(4, "big") + payload + b"\xce"
    with pytest.raises(WireError, match=r"malformed basic\.deliver"):
        Wire().receive(data)
