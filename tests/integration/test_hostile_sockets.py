"""Hostile sockets against a real gateway: nothing leaks, nothing crashes, printing goes on.

``test_bad_input.py`` covers single bad messages. Here a victim printer connects and
prints, then one gateway takes a barrage over real sockets: frames before the hello,
a second hello on an identified socket, hellos for other serials, a channel without
a main channel, huge, truncated and malformed frames, sockets dropped mid-handshake,
and Hypothesis' random message sequences. Afterwards every task started meanwhile
has ended, the process's memory grew by less than a loose bound, and the victim
still prints.

No socket ever sees 1011 (a crashed session). Without authentication the gateway
cannot tell a hostile channel hello from a printer's; those sockets must simply not
hurt (``docs/security.md`` says how credentials close them with 1008).

``ZEBRA_BROKER_FUZZ_SOCKET_EXAMPLES`` sets the random sequences (default 25);
``scripts/fuzz.py --sockets N`` runs more.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.typing import Subprotocol

from broker.client import BrokerClient
from broker.topology import Channel
from gateway.emulator import PrinterEmulator
from gateway.server import Gateway
from gateway.weblink import SUBPROTOCOL, encode_alert, encode_discovery_b64
from tests.support.timing import LONG, SHORT

VICTIM = "50JVICTIM0001"
HOSTILE = [f"50JHOSTILE{number:03d}" for number in range(8)]
EXAMPLES = int(os.environ.get("ZEBRA_BROKER_FUZZ_SOCKET_EXAMPLES", "25"))
#: What a hostile socket may be closed with: the peer closed (1000), superseded
#: (1001), bad input (1003, 1007, 1008, 1009) or a broken frame (1002). Never 1011.
CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009}
MAX_MESSAGE = 64 * 1024
#: A loose bound on the gateway process's growth: this is not a benchmark.
MAX_RSS_GROWTH = 200 * 1024 * 1024


# -- messages ------------------------------------------------------------------------


def discovery(serial: str) -> bytes:
    """A main channel's first message for ``serial``."""
    return json.dumps(
        {"discovery_b64": encode_discovery_b64(printer_serial=serial)}
    ).encode()


def hello(kind: str, serial: str, channel_id: str = "7") -> bytes:
    """A raw or config channel's first message."""
    return json.dumps(
        {
            "channel_name": f"v1.{kind}.zebra.com",
            "unique_id": serial,
            "channel_id": channel_id,
        }
    ).encode()


def alert(serial: str) -> bytes:
    """A head-open alert, as printers send on main."""
    return json.dumps(
        encode_alert(printer_serial=serial, condition="HEAD OPEN")
    ).encode()


# -- WebSocket clients ---------------------------------------------------------------


async def open_socket(url: str) -> ClientConnection:
    """Open a socket the way a printer does (subprotocol, no compression)."""
    return await connect(
        url,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,
        max_size=None,
        open_timeout=SHORT,
        close_timeout=SHORT,
        ping_interval=None,
    )


async def exchange(url: str, *messages: bytes | str, close: bool = True) -> int | None:
    """Send ``messages`` on a fresh socket; return the close code once it is closed.

    With ``close`` the client closes after sending (the gateway may close first);
    otherwise it waits for the gateway to close.
    """
    ws = await open_socket(url)
    try:
        for message in messages:
            await ws.send(message)
    except ConnectionClosed:
        pass
    if close:
        await ws.close()
    async with asyncio.timeout(LONG):
        await ws.wait_closed()
    code = ws.close_code
    assert code in CLOSE_CODES, f"closed with {code}: {ws.close_reason}"
    return code


# -- raw TCP clients -----------------------------------------------------------------


def upgrade_request(port: int, *, partial: bool = False) -> bytes:
    """Return a WebSocket upgrade request, or only its first half."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    ).encode()
    return request[: len(request) // 2] if partial else request


def client_frame(
    payload: bytes,
    *,
    opcode: int = 0x2,
    fin: bool = True,
    masked: bool = True,
    declared: int | None = None,
) -> bytes:
    """Encode one client frame; ``declared`` may claim more bytes than sent."""
    length = len(payload) if declared is None else declared
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_close_code(data: bytes) -> int | None:
    """Return the code of the first close frame the server sent, if any."""
    index = 0
    while index + 2 <= len(data):
        opcode, length = data[index] & 0x0F, data[index + 1] & 0x7F
        index += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[index : index + 2])
            index += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[index : index + 8])
            index += 8
        if opcode == 0x8:
            return int.from_bytes(data[index : index + 2], "big") if length else 1005
        index += length
    return None


async def raw_tcp(
    port: int,
    send: bytes,
    *,
    upgrade: bool = True,
    half_close: bool = False,
    abort: bool = False,
) -> bytes:
    """Talk raw TCP: optionally upgrade, send bytes, then read until the gateway hangs up.

    With ``abort`` the connection is dropped right after sending, without reading.
    Returns what the gateway sent after the 101 (or everything, without upgrade).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if upgrade:
            writer.write(upgrade_request(port))
            response = await reader.readuntil(b"\r\n\r\n")
            assert response.startswith(b"HTTP/1.1 101"), response
        writer.write(send)
        await writer.drain()
        if abort:
            return b""
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(LONG):
            return await reader.read()
    finally:
        writer.close()
        # Reset by the gateway: what some of these tests provoke.
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# -- scenarios -----------------------------------------------------------------------


async def frames_before_the_hello(url: str) -> None:
    """Anything but a discovery or channel hello first closes the socket."""
    assert await exchange(url, alert(HOSTILE[0]), close=False) == 1008
    assert await exchange(url, b"^XA^FDraw before hello^XZ", close=False) == 1007
    assert await exchange(url, "text first", close=False) == 1003
    assert await exchange(url, b'{"open":"v1.raw.zebra.com"}', close=False) == 1008
    assert await exchange(url, b"", b"  ", b"[1, 2", b"]", close=False) == 1008
    assert await exchange(url, b'{"channel_name":', b"\x00\xff}", close=False) == 1007


async def second_hellos(url: str) -> None:
    """A second discovery or hello on an identified socket changes nothing."""
    first, second, third = HOSTILE[1], HOSTILE[2], HOSTILE[3]
    code = await exchange(
        url, discovery(first), discovery(second), hello("raw", third), alert(second)
    )
    assert code == 1000
    code = await exchange(url, hello("raw", first), hello("raw", second), b"data")
    assert code == 1000


async def hellos_for_other_serials(url: str) -> None:
    """Channel hellos for another printer, or with no main anywhere, do no harm."""
    assert await exchange(url, hello("config", VICTIM), b"{}") in (1000, 1008)
    assert await exchange(url, hello("raw", HOSTILE[4]), b"^XA^XZ") in (1000, 1008)
    assert await exchange(url, hello("config", HOSTILE[5]), b"{}{}") in (1000, 1008)


async def huge_messages(url: str) -> None:
    """Oversized messages and values close with 1009."""
    assert await exchange(url, b"{" + b" " * (MAX_MESSAGE + 1), close=False) == 1009
    assert await exchange(url, b"[" * (MAX_MESSAGE + 1), close=False) == 1009
    growing = [b'{"a":"'] + [b"x" * (MAX_MESSAGE // 2)] * 4
    assert await exchange(url, discovery(HOSTILE[6]), *growing, close=False) == 1009
    assert await exchange(url, *growing, close=False) == 1009


async def broken_frames(port: int) -> None:
    """Truncated, oversized, unmasked and reserved frames end their connection."""
    # A frame cut short, then EOF: the gateway drops the connection.
    await raw_tcp(port, client_frame(b"0123456789", declared=1000), half_close=True)
    # A frame cut short, then silence: the identify timeout ends it.
    await raw_tcp(port, client_frame(b'{"discovery_b64":', declared=5000))
    # A header claiming 2**62 bytes: refused at once as too big.
    data = await raw_tcp(port, client_frame(b"", declared=1 << 62))
    assert server_close_code(data) == 1009
    # Protocol errors: unmasked, reserved opcode, fragmented ping.
    for frame in (
        client_frame(b"{}", masked=False),
        client_frame(b"{}", opcode=0x3),
        client_frame(b"ping", opcode=0x9, fin=False),
    ):
        data = await raw_tcp(port, frame)
        assert server_close_code(data) == 1002


async def dropped_handshakes(port: int, count: int) -> None:
    """Many connections dropped at every point of the handshake."""

    async def one(number: int) -> None:
        variant = number % 5
        if variant == 0:  # connect and leave
            await raw_tcp(port, b"", upgrade=False, abort=True)
        elif variant == 1:  # half a request, then leave
            await raw_tcp(
                port, upgrade_request(port, partial=True), upgrade=False, abort=True
            )
        elif variant == 2:  # a whole request, gone before the answer
            await raw_tcp(port, upgrade_request(port), upgrade=False, abort=True)
        elif variant == 3:  # half a request, then silence until the timeout
            await raw_tcp(port, upgrade_request(port, partial=True), upgrade=False)
        else:  # not HTTP at all: refused (a 4xx, or just closed)
            data = await raw_tcp(port, b"\x16\x03\x01 hello?\r\n\r\n", upgrade=False)
            assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:40]

    await asyncio.gather(*(one(number) for number in range(count)))


# -- random sequences ----------------------------------------------------------------

REAL = [
    discovery(HOSTILE[7]),
    hello("raw", HOSTILE[7]),
    hello("config", HOSTILE[7]),
    hello("config", VICTIM),
    alert(HOSTILE[7]),
    b'{}{"device.friendly_name":null}',
    b"^XA^FO50,50^FDfuzz^FS^XZ",
]
RANDOM_MESSAGE = st.one_of(
    st.binary(max_size=256),
    st.text(max_size=32),
    st.sampled_from(REAL).flatmap(
        lambda message: st.integers(0, len(message)).map(lambda cut: message[:cut])
    ),
    st.sampled_from(REAL),
)
RANDOM_SEQUENCE = st.lists(RANDOM_MESSAGE, min_size=1, max_size=8)


# -- checks --------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process (the gateway runs in it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def serves_open_resource(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` works for a WebSocket or AMQP channel that is still open.

    Such tasks may outlive the hostile sockets: the victim's sockets take a new
    receive task per message, and the gateway opens AMQP channels on first use.
    """
    frame = getattr(task.get_coro(), "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    if isinstance(owner, Connection):
        return owner.state is State.OPEN
    if isinstance(owner, aiormq.Channel):
        return not owner.is_closed
    return False


async def wait_for_tasks_to_end(
    baseline: set[asyncio.Task[Any]],
) -> set[asyncio.Task[Any]]:
    """Wait until every task created since ``baseline`` has ended, except those
    serving a socket or AMQP channel that is still open; return the latter."""
    current = asyncio.current_task()

    def new_tasks() -> set[asyncio.Task[Any]]:
        return {
            task
            for task in asyncio.all_tasks()
            if task not in baseline and task is not current
        }

    try:
        async with asyncio.timeout(LONG):
            while True:
                ending = {t for t in new_tasks() if not serves_open_resource(t)}
                if not ending:
                    return new_tasks()
                await asyncio.wait(ending)
    except TimeoutError:
        leaked = [f"{task.get_name()}: {task.get_coro()!r}" for task in new_tasks()]
        pytest.fail(f"tasks still running after the hostile sockets: {leaked}")


async def queue_exists(amqp_url: str, name: str) -> bool:
    """Whether queue ``name`` exists (a passive declaration)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return False
    return True


# -- the tests -----------------------------------------------------------------------


@dataclass
class Target:
    """A gateway with limits set low, a victim printer and a client that prints."""

    gateway: Gateway
    url: str
    printer: PrinterEmulator
    client: BrokerClient
    labels: int = 0

    async def victim_prints(self) -> None:
        """Print one more label on the victim and wait until it comes out."""
        outcome = await self.client.print(
            VICTIM, b"^XA^FDstill printing^FS^XZ", timeout=SHORT
        )
        assert outcome.status.value == "delivered"
        self.labels += 1
        assert await self.printer.wait_for_labels(self.labels, timeout=SHORT)


@pytest.fixture
async def target(harness) -> Target:
    """Start the gateway and the victim, and print once to warm everything up."""
    harness.serials.update(HOSTILE)  # their queues are deleted after the test
    gateway = await harness.gateway(
        identify_timeout=1.0,
        ws_close_timeout=1.0,
        ws_max_message_size=MAX_MESSAGE,
        ws_max_buffer_size=MAX_MESSAGE,
    )
    url = harness.url(gateway)
    printer = await harness.printer(url, VICTIM)
    target = Target(gateway, url, printer, await harness.client())
    await target.victim_prints()
    return target


async def test_hostile_sockets_leave_no_trace(harness, target):
    """After a barrage of hostile sockets no task leaks, memory is bounded, and a
    printer still prints."""
    gateway, url = target.gateway, target.url
    assert gateway.server is not None
    sessions_before = len(gateway.registry.all_sessions())
    connections_before = len(gateway.server.connections)
    baseline = set(asyncio.all_tasks())
    rss_before = rss_bytes()

    scenarios: list[Callable[[], Awaitable[None]]] = [
        lambda: frames_before_the_hello(url),
        lambda: second_hellos(url),
        lambda: hellos_for_other_serials(url),
        lambda: huge_messages(url),
        lambda: broken_frames(gateway.port),
        lambda: dropped_handshakes(gateway.port, 100),
    ]
    for scenario in scenarios:
        await scenario()

    lasting = await wait_for_tasks_to_end(baseline)
    # What may remain serves the victim's two sockets or a pool of AMQP channels
    # (8 declare channels): a leak would grow with the ~130 hostile sockets.
    assert len(lasting) <= 16, lasting
    assert len(asyncio.all_tasks()) <= len(baseline) + len(lasting)
    assert len(gateway.registry.all_sessions()) == sessions_before
    assert len(gateway.server.connections) == connections_before
    growth = rss_bytes() - rss_before
    assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.0f} MiB"

    # The second discovery and the hello on an identified main claimed nothing.
    topology = harness.topology
    assert await queue_exists(
        harness.amqp_url, topology.printer_queue(HOSTILE[1], Channel.RAW)
    )
    for serial in (HOSTILE[2], HOSTILE[3]):
        for kind in Channel:
            name = topology.printer_queue(serial, kind)
            assert not await queue_exists(harness.amqp_url, name), name

    await target.victim_prints()


async def test_raw_hello_for_another_printer(target):
    """A raw hello with the victim's serial, once gone, leaves the victim printing."""
    # Without credentials the gateway takes it for the victim's newer raw channel
    # (docs/security.md); with them, a credential not covering the serial gets 1008.
    code = await exchange(target.url, hello("raw", VICTIM), b"~HS")
    assert code in (1000, 1008)
    await target.victim_prints()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    # One gateway serves every example: that is the point.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=RANDOM_SEQUENCE)
async def test_random_sequences_over_real_sockets(target, messages):
    """Random message sequences on real sockets end cleanly, leak no task, and the
    victim prints after each."""
    baseline = set(asyncio.all_tasks())
    # The client closes: a sequence that happens to be a valid printer would
    # otherwise stay connected.
    await exchange(target.url, *messages)
    lasting = await wait_for_tasks_to_end(baseline)
    assert len(lasting) <= 16, lasting
    await target.victim_prints()


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        pytest.param((alert(VICTIM),), 1008, id="alert-before-discovery"),
        pytest.param((b"\x00" * 100,), 1007, id="binary-before-hello"),
        pytest.param((b"[]",), 1008, id="array-hello"),
        pytest.param((b'{"channel_name":"v1.raw.zebra.com"}',), 1008, id="no-serial"),
        pytest.param(
            (hello("raw", "x" * 65),), 1008, id="serial-too-long-for-a-queue-name"
        ),
    ],
)
async def test_hello_checks_close_only_that_socket(harness, messages, code):
    """Each malformed first message closes its socket with the fitting code."""
    gateway = await harness.gateway()
    assert await exchange(harness.url(gateway), *messages, close=False) == code


async def test_identify_timeout_leaves_no_stray_exception(harness):
    """A silent socket closed by the identify timeout leaves no unretrieved task
    exception behind."""
    loop = asyncio.get_running_loop()
    stray: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: stray.append(context))
    try:
        gateway = await harness.gateway(identify_timeout=0.2, ws_close_timeout=0.2)
        baseline = set(asyncio.all_tasks())
        # Upgrades, then neither sends nor answers the gateway's close frame.
        await raw_tcp(gateway.port, b"")
        await wait_for_tasks_to_end(baseline)
        gc.collect()  # an unretrieved exception is reported when its task is freed
    finally:
        loop.set_exception_handler(previous)
    assert [context.get("message") for context in stray] == []
