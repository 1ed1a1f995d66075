"""Fleet mode: its pure parts, and whole printers against an in-memory gateway.

No sockets: :class:`MemoryGateway` plays the server side with websockets' sans-I/O
``ServerProtocol`` and our ``ChannelProtocol`` in the gateway role, and is plugged in
through the fleet's ``open_connection`` seam. Waits are the fleet's own event-driven
ones, bounded by ``SHORT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from broker.errors import ConfigurationError
from gateway.emulator import EmulatorOptions
from gateway.emulator.cli import build_parser, fleet_options
from gateway.emulator.cli import main as emulator_main
from gateway.emulator.fleet import (
    Counter,
    Fleet,
    FleetOptions,
    LabelCounter,
    Ramp,
    fleet_serials,
)
from gateway.weblink import (
    SUBPROTOCOL,
    AlertReceived,
    ChannelKind,
    ChannelProtocol,
    PrinterIdentified,
    Role,
    SgdReplyReceived,
)
from tests.support.timing import SHORT

# -- pure parts -----------------------------------------------------------------------


class TestSerials:
    def test_prefix_and_padded_counter(self) -> None:
        assert fleet_serials("50J", 3, first=9, width=4) == [
            "50J0009",
            "50J0010",
            "50J0011",
        ]

    def test_counter_grows_past_its_width(self) -> None:
        assert fleet_serials("P", 2, first=99, width=2) == ["P99", "P100"]

    @pytest.mark.parametrize(("prefix", "count"), [("bad prefix", 1), ("P", -1)])
    def test_invalid(self, prefix: str, count: int) -> None:
        with pytest.raises(ConfigurationError):
            fleet_serials(prefix, count)


class TestLabelCounter:
    def test_counts_formats_cut_anywhere(self) -> None:
        counter = LabelCounter()
        data = b"^XA^FDone^FS^XZ^XA^FDtwo^FS^XZ"
        found = [counter.feed(data[index : index + 1]) for index in range(len(data))]
        assert sum(found) == 2

    def test_any_case_and_no_double_count(self) -> None:
        counter = LabelCounter()
        assert counter.feed(b"^xa^xz") == 1
        assert counter.feed(b"Z") == 0  # the tail kept after a match is not reused
        assert counter.feed(b"^X") == 0
        assert counter.feed(b"Z^XZ") == 2


class TestRamp:
    def test_spaces_events_at_the_rate(self) -> None:
        ramp = Ramp(10.0)
        assert ramp.delay(100.0) == 0.0
        ramp.take(100.0)
        assert ramp.delay(100.0) == pytest.approx(0.1)
        ramp.take(100.1)
        assert ramp.delay(100.15) == pytest.approx(0.05)

    def test_late_events_do_not_build_credit(self) -> None:
        ramp = Ramp(10.0)
        ramp.take(100.0)
        ramp.take(105.0)
        assert ramp.delay(105.0) == pytest.approx(0.1)

    def test_no_limit(self) -> None:
        ramp = Ramp(None)
        ramp.take(1.0)
        assert ramp.delay(1.0) == 0.0

    def test_invalid(self) -> None:
        with pytest.raises(ConfigurationError):
            Ramp(0.0)


class TestCounter:
    async def test_waiters_wake_at_their_targets(self) -> None:
        counter = Counter()
        low = asyncio.ensure_future(counter.wait_for(2))
        high = asyncio.ensure_future(counter.wait_for(5))
        # Runs after both tasks' first steps (FIFO), i.e. once they are waiting.
        asyncio.get_running_loop().call_soon(counter.add, 3)
        await asyncio.wait_for(low, SHORT)
        assert not high.done()
        counter.add(2)
        await asyncio.wait_for(high, SHORT)

    async def test_wait_down(self) -> None:
        counter = Counter(3)
        waiter = asyncio.ensure_future(counter.wait_down_to(0))
        stepped = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_soon(counter.add, -2)  # after the waiter registered (FIFO)
        loop.call_soon(stepped.set)
        await stepped.wait()
        assert not waiter.done()
        counter.add(-1)
        await asyncio.wait_for(waiter, SHORT)

    async def test_reached_already_and_timeout(self) -> None:
        counter = Counter(4)
        await counter.wait_for(4, timeout=0)
        with pytest.raises(TimeoutError):
            await counter.wait_for(5, timeout=0.01)


class TestOptions:
    @pytest.mark.parametrize(
        "values",
        [
            {"max_dialing": 0},
            {"ramp_rate": 0},
            {"retry_interval": -1},
            {"ping_interval": 0},
        ],
    )
    def test_invalid(self, values: dict[str, Any]) -> None:
        with pytest.raises(ConfigurationError):
            FleetOptions(**values)

    def test_bad_url(self) -> None:
        with pytest.raises(ConfigurationError):
            Fleet("http://127.0.0.1/", 1)


class TestCommandLine:
    """``zebra-printer-emulator --fleet``: flags map onto the fleet's options."""

    def test_serial_gives_prefix_and_counter(self) -> None:
        args = build_parser().parse_args(
            [
                "--url",
                "ws://127.0.0.1:1/",
                "--serial",
                "50J000000009",
                "--count",
                "3",
                "--fleet",
                "--ramp-rate",
                "0",
                "--retry-interval",
                "2",
            ]
        )
        options = fleet_options(args, EmulatorOptions())
        assert fleet_serials(
            options.prefix, 3, first=options.first, width=options.width
        ) == ["50J000000009", "50J000000010", "50J000000011"]
        assert options.ramp_rate is None
        assert options.retry_interval == 2.0

    @pytest.mark.parametrize(
        "extra",
        [["--split-replies", "8"], ["--label-print-time", "1"], ["--serial", "ABC"]],
    )
    def test_what_the_fleet_does_not_do_exits_2(
        self, extra: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        argv = ["--url", "ws://x/", "--serial", "50J1", "--fleet", *extra]
        with pytest.raises(SystemExit) as exit_info:
            emulator_main(argv)
        assert exit_info.value.code == 2
        assert "fleet" in capsys.readouterr().err


# -- an in-memory gateway -------------------------------------------------------------


class MemoryTransport(asyncio.Transport):
    """The client end of one in-memory connection to :class:`MemoryGateway`."""

    def __init__(self, link: MemoryLink) -> None:
        super().__init__()
        self.link = link
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.link.from_client(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.link.client_eof()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        self.link.disconnect()


class MemoryLink:
    """One connection: the fleet's protocol on one side, a sans-I/O server on the other."""

    def __init__(self, gateway: MemoryGateway, client: asyncio.Protocol) -> None:
        self.gateway = gateway
        self.client = client
        self.server = ServerProtocol(subprotocols=[Subprotocol(SUBPROTOCOL)])
        self.channel = ChannelProtocol(Role.GATEWAY)
        self.transport = MemoryTransport(self)
        self.identified: PrinterIdentified | None = None

    def from_client(self, data: bytes) -> None:
        self.server.receive_data(data)
        for event in self.server.events_received():
            if isinstance(event, Request):
                self.server.send_response(self.server.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                self.channel.receive_message(bytes(event.data))
                self.gateway.handle(self, self.channel.events_received())
            elif isinstance(event, Frame) and event.opcode is Opcode.PING:
                self.gateway.pings += 1
                self.gateway.changed.set()
        self.flush()

    def client_eof(self) -> None:
        self.server.receive_eof()
        self.flush()

    def send(self, data: bytes) -> None:
        """Send one binary message to the printer."""
        self.server.send_binary(data)
        self.flush()

    def send_protocol_output(self) -> None:
        for message in self.channel.data_to_send():
            self.server.send_binary(message)
        self.flush()

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        for data in self.server.data_to_send():
            if data:
                loop.call_soon(self._deliver, data)
            else:
                loop.call_soon(self.disconnect)

    def _deliver(self, data: bytes) -> None:
        if not self.transport.closed:
            self.client.data_received(data)

    def close(self) -> None:
        """Close the WebSocket from the server side (1001), like a draining replica."""
        self.server.send_close(1001, "going away")
        self.flush()

    def disconnect(self) -> None:
        """Drop the connection (both ends see it gone)."""
        if not self.transport.closed:
            self.transport.closed = True
            self.gateway.links.discard(self)
            asyncio.get_running_loop().call_soon(self.client.connection_lost, None)


class MemoryGateway:
    """What a gateway does with printer sockets, minus RabbitMQ."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.links: set[MemoryLink] = set()
        self.alerts: list[str] = []
        self.sgd_replies: list[dict[str, Any]] = []
        self.pings = 0
        self.changed = asyncio.Event()

    def link(self, serial: str, kind: ChannelKind) -> MemoryLink:
        for link in self.links:
            identified = link.identified
            if (
                identified
                and identified.printer_serial == serial
                and identified.kind is kind
            ):
                return link
        raise LookupError(f"{self.name}: no {kind} socket of {serial}")

    def handle(self, link: MemoryLink, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, PrinterIdentified):
                link.identified = event
                if event.kind is ChannelKind.MAIN:
                    link.channel.request_channel(ChannelKind.RAW)
                    link.channel.configure_alerts()
                    link.send_protocol_output()
            elif isinstance(event, AlertReceived):
                self.alerts.append(event.alert.condition)
            elif isinstance(event, SgdReplyReceived):
                self.sgd_replies.append(event.reply)
        self.changed.set()

    async def wait_until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(SHORT):
            while not check():
                self.changed.clear()
                await self.changed.wait()


def memory_network(
    gateways: dict[int, MemoryGateway],
) -> Callable[..., Any]:
    """An ``open_connection`` for the fleet: port number to in-memory gateway."""

    async def open_connection(
        factory: Callable[[], asyncio.Protocol], host: str, port: int, ssl: Any
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        gateway = gateways.get(port)
        if gateway is None:
            raise ConnectionRefusedError(f"nothing listens on {host}:{port}")
        client = factory()
        link = MemoryLink(gateway, client)
        gateway.links.add(link)
        client.connection_made(link.transport)
        return link.transport, client

    return open_connection


OPTIONS = FleetOptions(prefix="MEM", ramp_rate=None, ping_interval=None)


class TestFleetInMemory:
    async def test_printers_connect_and_open_raw(self) -> None:
        gateway = MemoryGateway("a")
        network = memory_network({8001: gateway})
        async with Fleet("ws://gw:8001/", 3, OPTIONS, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            stats = fleet.stats()
            assert (stats.connected, stats.ready, stats.sockets) == (3, 3, 6)
            assert stats.handshakes == 6
            for serial in fleet.serials:
                assert fleet.is_ready(serial)
                gateway.link(serial, ChannelKind.RAW)
        assert fleet.stats().sockets == 0

    async def test_labels_counted_with_times_and_alerts(self) -> None:
        gateway = MemoryGateway("a")
        network = memory_network({8001: gateway})
        options = FleetOptions(
            prefix="MEM", ramp_rate=None, ping_interval=None, job_completed_alerts=True
        )
        async with Fleet("ws://gw:8001/", 1, options, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            serial = fleet.serials[0]
            raw = gateway.link(serial, ChannelKind.RAW)
            raw.send(b"^XA^FDone^FS^")
            raw.send(b"XZ^XA^FDtwo^FS^XZ")
            await fleet.wait_labels(2, timeout=SHORT)
            assert fleet.label_count(serial) == 2
            assert len(fleet.label_times(serial)) == 2
            await gateway.wait_until(lambda: len(gateway.alerts) == 2)
            assert gateway.alerts == ["pq_job_completed", "pq_job_completed"]

    async def test_config_channel_answers_sgd(self) -> None:
        gateway = MemoryGateway("a")
        network = memory_network({8001: gateway})
        async with Fleet("ws://gw:8001/", 1, OPTIONS, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            serial = fleet.serials[0]
            main = gateway.link(serial, ChannelKind.MAIN)
            main.channel.request_channel(ChannelKind.CONFIG)
            main.send_protocol_output()

            def config_open() -> bool:
                try:
                    gateway.link(serial, ChannelKind.CONFIG)
                except LookupError:
                    return False
                return True

            await gateway.wait_until(config_open)
            config = gateway.link(serial, ChannelKind.CONFIG)
            config.channel.send_sgd({"device.friendly_name": None})
            config.send_protocol_output()
            await gateway.wait_until(lambda: bool(gateway.sgd_replies))
            assert gateway.sgd_replies == [{"device.friendly_name": serial}]
            assert fleet.stats().sgd_answered == 1

    async def test_reconnects_to_the_next_url(self) -> None:
        first, second = MemoryGateway("a"), MemoryGateway("b")
        network = memory_network({8001: first, 8002: second})
        options = FleetOptions(
            prefix="MEM", ramp_rate=None, ping_interval=None, retry_interval=0.0
        )
        urls = ["ws://gw:8001/", "ws://gw:8002/"]
        async with Fleet(urls, 2, options, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            assert fleet.count_on(urls[0]) == 2
            for link in list(first.links):
                if link.identified and link.identified.kind is ChannelKind.MAIN:
                    link.close()
            await fleet.ready_total.wait_for(4, timeout=SHORT)
            await fleet.wait_ready(timeout=SHORT)
            assert fleet.count_on(urls[1]) == 2
            assert fleet.stats().mains_lost == 2
            # The printers dropped their raw sockets on A along with main.
            await first.wait_until(lambda: not first.links)

    async def test_every_socket_pings(self) -> None:
        gateway = MemoryGateway("a")
        network = memory_network({8001: gateway})
        options = FleetOptions(prefix="MEM", ramp_rate=None, ping_interval=0.01)
        async with Fleet("ws://gw:8001/", 1, options, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            # Main and raw each ping, again and again.
            await gateway.wait_until(lambda: gateway.pings >= 4)

    async def test_refused_dials_retry_elsewhere(self) -> None:
        second = MemoryGateway("b")
        network = memory_network({8002: second})
        options = FleetOptions(
            prefix="MEM", ramp_rate=None, ping_interval=None, retry_interval=0.0
        )
        urls = ["ws://gw:8001/", "ws://gw:8002/"]
        async with Fleet(urls, 2, options, open_connection=network) as fleet:
            await fleet.wait_ready(timeout=SHORT)
            assert fleet.stats().dial_failures == 2
            assert fleet.count_on(urls[1]) == 2
