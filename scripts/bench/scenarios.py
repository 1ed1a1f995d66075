"""The benchmark's scenarios: each product figure and its floor, in the same run.

Every scenario starts its own gateway process(es) in the run's namespace, drives
them with a :class:`~gateway.emulator.fleet.Fleet` in this process, and deletes the
printers' queues once the gateway is gone. Waits are bounded by counts and timeouts
(``Sizes.connect_timeout`` and ``REQUEST_TIMEOUT``); the only sleeps are the
measurement windows themselves (idle cost) and a short settle before them.

Each window records the CPU of the processes involved and of the whole machine: the
machine is shared, and ``others_cores`` says how much of it something else used
while we measured.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import resource
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.client import BrokerClient, JobHandle
from broker.topology import Channel, Topology
from gateway.emulator.fleet import Fleet, FleetOptions, fleet_serials
from scripts.bench import amqp, wsfloor
from scripts.bench.config import Sizes
from scripts.bench.machine import Machine, Usage, rabbitmq_pid, rss_kib
from scripts.bench.processes import FloorProcess, GatewayProcess, ServiceProcess
from scripts.bench.profile import Profiler, find_py_spy
from scripts.bench.stats import paired_sum, rate, summary

LABEL_SIZE = 1024
#: A serial for floor queues that are printer-shaped but belong to no printer.
FLOOR_SERIAL = "BFHOP0000001"
WARMUP = 10
#: Seconds one request may take before the run is declared broken.
REQUEST_TIMEOUT = 15.0
#: Descriptors kept free beyond the printers' sockets.
SPARE_FILES = 1000
#: The idle window is measured in this many slices too.
IDLE_SLICES = 6


def make_label(index: int, size: int = LABEL_SIZE) -> bytes:
    """One ZPL format of exactly ``size`` bytes (a comment pads it)."""
    head = f"^XA^FO50,50^A0N,30,30^FDbench label {index}^FS^FX".encode()
    tail = b"^FS^XZ"
    return head + b"." * max(0, size - len(head) - len(tail)) + tail


class Window:
    """CPU and memory of named processes and of the whole machine over one window."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.usages = {name: Usage(pid) for name, pid in pids.items() if pid}
        self.machine = Machine()

    def start(self) -> Window:
        for usage in self.usages.values():
            usage.start()
        self.machine.start()
        return self

    def stop(self) -> Window:
        self.machine.stop()
        for usage in self.usages.values():
            usage.stop()
        return self

    def core_percent(self, name: str) -> float | None:
        usage = self.usages.get(name)
        return round(100 * usage.core_share, 2) if usage else None

    def as_dict(self) -> dict[str, Any]:
        ours = sum(usage.core_share for usage in self.usages.values())
        result: dict[str, Any] = {
            name: usage.as_dict() for name, usage in self.usages.items()
        }
        result["machine_busy_cores"] = round(self.machine.busy_cores, 2)
        result["others_cores"] = round(max(0.0, self.machine.busy_cores - ours), 2)
        return result


@dataclass
class Run:
    """One benchmark run: its settings, its namespace and what it measured."""

    sizes: Sizes
    amqp_url: str
    out: Path
    log_level: str = "info"
    profile: bool = False
    uvloop: bool = False
    namespace: str = field(default_factory=lambda: "bench" + uuid.uuid4().hex[:8])
    results: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    connection: amqp.AbstractConnection | None = None
    #: Printers whose queues go once the gateways using them are gone.
    serials: list[str] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(namespace=self.namespace)

    @property
    def bus(self) -> amqp.AbstractConnection:
        assert self.connection is not None, "connect first"
        return self.connection

    def gateway(self, name: str) -> GatewayProcess:
        return GatewayProcess(
            amqp_url=self.amqp_url,
            namespace=self.namespace,
            replica=f"{self.namespace}-{name}",
            log_path=self.out / f"gateway-{name}.log",
            log_level=self.log_level,
            uvloop=self.uvloop,
        )

    def floor(self, name: str) -> FloorProcess:
        return FloorProcess(log_path=self.out / f"floor-{name}.log")

    def client(self) -> BrokerClient:
        return BrokerClient(
            amqp_url=self.amqp_url,
            namespace=self.namespace,
            connection_name=f"{self.namespace} producer",
        )

    def fleet(
        self, urls: str | list[str], count: int, prefix: str, **options: Any
    ) -> Fleet:
        """A fleet of ``count`` printers; their queues are deleted after the gateway.

        Prefixes starting with ``BF`` are floor fleets: no queues to delete.
        """
        options.setdefault("ramp_rate", None)
        options.setdefault("max_dialing", self.sizes.max_dialing)
        fleet = Fleet(urls, count, FleetOptions(prefix=prefix, **options))
        if not prefix.startswith("BF"):
            self.serials += fleet.serials
        return fleet

    @contextlib.asynccontextmanager
    async def running(self, *processes: ServiceProcess) -> AsyncIterator[None]:
        """Start processes for the block; SIGKILL them after and clean up behind."""
        started: list[ServiceProcess] = []
        try:
            for process in processes:
                await process.start()
                started.append(process)
            yield
        finally:
            for process in started:
                await process.kill()
                if isinstance(process, GatewayProcess):
                    self.logs[process.log_path.stem] = process.log_summary()
            if any(isinstance(process, GatewayProcess) for process in started):
                await self.forget()

    @contextlib.asynccontextmanager
    async def profiling(
        self, pid: int, name: str, *, enabled: bool = True
    ) -> AsyncIterator[None]:
        """Sample ``pid`` with py-spy for the block when ``--profile`` is on."""
        executable = find_py_spy() if self.profile and enabled else None
        if self.profile and enabled and executable is None:
            self.notes.append("--profile: py-spy not found; pip install py-spy")
        if executable is None:
            yield
            return
        profiler = await Profiler(
            executable, pid, self.out / f"profile-{name}.txt"
        ).start()
        try:
            yield
        finally:
            self.profiles[name] = await profiler.stop()

    async def probe(self, fleet: Fleet, limit: float) -> float:
        """Send every printer of ``fleet`` one label; return seconds until all arrived.

        A label reaches a printer only once the replica consumes its raw queue, so
        this is when the whole fleet can print, as the gateway sees it; the
        printers' sockets alone come up earlier. ``limit`` bounds the wait (s).
        """
        started = time.monotonic()
        target = fleet.labels.value + len(fleet.serials)
        await amqp.publish_many(
            self.bus,
            self.topology.requests_exchange,
            [
                self.topology.request_key(serial, Channel.RAW)
                for serial in fleet.serials
            ],
            make_label(0),
        )
        await fleet.wait_labels(target, timeout=limit)
        return time.monotonic() - started

    async def start_printable(self, fleet: Fleet, limit: float) -> tuple[float, float]:
        """Start new printers; return seconds until their sockets, and all, can print.

        The fleet is started here and left running (the caller closes it).

        A producer may publish to a new printer once its ``online`` event says its
        queues exist (its sockets may be up a moment earlier); then each printer
        gets a probe label (:meth:`probe`).
        """
        async with (
            self.client() as client,
            client.events("printer.*.online") as events,
        ):
            started = time.monotonic()
            fleet.start()
            await fleet.wait_ready(timeout=limit)
            sockets_s = time.monotonic() - started
            waiting = set(fleet.serials)
            async with asyncio.timeout(limit):
                async for event in events:
                    waiting.discard(getattr(event, "printer", ""))
                    if not waiting:
                        break
            await self.probe(fleet, limit)
        return sockets_s, time.monotonic() - started

    async def forget(self) -> None:
        """Delete the queues of the printers used so far (gateways leave them)."""
        serials, self.serials = self.serials, []
        await amqp.delete_queues(self.bus, amqp.printer_queues(self.topology, serials))


# -- floors ---------------------------------------------------------------------------


async def measure_floors(run: Run) -> None:
    """The RabbitMQ and WebSocket floors of the latency and throughput figures."""
    sizes = run.sizes
    ns = run.namespace
    rpc = await amqp.rpc_round_trips(run.bus, f"{ns}.floor.rpc", sizes.floor_samples)
    hops = await amqp.publish_consume_hops(
        run.bus, f"{ns}.floor.hop", sizes.floor_samples, size=LABEL_SIZE
    )
    # Not the floor of the goal: the same hop with the durability a print request
    # has (printer queue arguments, persistent, mandatory, publisher confirm).
    durable_hops = await amqp.publish_consume_hops(
        run.bus,
        f"{ns}.floor.durable-hop",
        sizes.floor_samples,
        size=LABEL_SIZE,
        durable_arguments=dict(
            run.topology.printer_queue_spec(FLOOR_SERIAL, Channel.RAW).arguments
        ),
    )
    total = sizes.throughput_printers * sizes.labels_per_printer
    window = Window({"bench": os.getpid(), "rabbitmq": rabbitmq_pid()}).start()
    consume = await amqp.consume_rate(run.bus, f"{ns}.floor.consume", total)
    consume["window"] = window.stop().as_dict()
    floor = run.floor("latency")
    async with run.running(floor):
        echo = await wsfloor.echo_round_trips(floor.url, sizes.floor_samples)
        sends = await wsfloor.one_way_sends(
            floor.url, sizes.floor_samples, size=LABEL_SIZE
        )
    run.results["floors"] = {
        "amqp_rpc_ms": summary(rpc, 1000),
        "ws_echo_ms": summary(echo, 1000),
        "sgd_floor_ms": summary(paired_sum(rpc, echo), 1000),
        "amqp_hop_ms": summary(hops, 1000),
        "ws_send_ms": summary(sends, 1000),
        "print_floor_ms": summary(paired_sum(hops, sends), 1000),
        "amqp_durable_hop_ms": summary(durable_hops, 1000),
        "print_floor_durable_ms": summary(paired_sum(durable_hops, sends), 1000),
        "consume_ack": consume,
    }


# -- latency and throughput -----------------------------------------------------------


async def measure_latency_and_throughput(run: Run) -> None:
    """SGD round trips and print latencies (one printer), then throughput."""
    sizes = run.sizes
    gateway = run.gateway("main")
    async with run.running(gateway):
        fleet = run.fleet(gateway.url, 1, "BLAT")
        try:
            await run.start_printable(fleet, REQUEST_TIMEOUT)
            async with run.client() as client:
                serial = fleet.serials[0]
                window = Window({"gateway": gateway.pid}).start()
                async with run.profiling(gateway.pid, "latency"):
                    sgd: list[float] = []
                    for index in range(WARMUP + sizes.latency_samples):
                        start = time.perf_counter()
                        await client.sgd_get(
                            serial, "device.friendly_name", timeout=REQUEST_TIMEOUT
                        )
                        if index >= WARMUP:
                            sgd.append(time.perf_counter() - start)
                    prints: list[float] = []
                    for index in range(WARMUP + sizes.latency_samples):
                        target = fleet.labels.value + 1
                        start = time.monotonic()
                        handle = await client.submit(serial, make_label(index))
                        await fleet.wait_labels(target, timeout=REQUEST_TIMEOUT)
                        arrived = fleet.label_times(serial)[-1]
                        await handle.outcome(timeout=REQUEST_TIMEOUT)
                        if index >= WARMUP:
                            prints.append(arrived - start)
                window.stop()
        finally:
            await fleet.close()
        run.results["sgd_ms"] = summary(sgd, 1000)
        run.results["print_latency_ms"] = summary(prints, 1000)
        run.results["latency_window"] = window.as_dict()
        run.results["throughput"] = await _throughput(run, gateway, "BTPA", alerts=True)
        run.results["throughput_no_alerts"] = await _throughput(
            run, gateway, "BTPN", alerts=False
        )


async def _throughput(
    run: Run, gateway: GatewayProcess, prefix: str, *, alerts: bool
) -> dict[str, Any]:
    """Queue 1 KiB labels for N printers, connect them, time the drain.

    The queues are provisioned and filled before the printers connect, so the
    producer's publishing is not part of the window: what is measured is the
    replica taking labels from RabbitMQ, writing them to the printers and
    publishing their outcomes (and, with ``alerts``, each label's completion alert
    as the printers send them once the gateway configured alerts).
    """
    sizes = run.sizes
    printers, per_printer = sizes.throughput_printers, sizes.labels_per_printer
    total = printers * per_printer
    serials = fleet_serials(prefix, printers)
    labels = [make_label(index) for index in range(per_printer)]
    async with run.client() as client:
        for serial in serials:
            await client.provision(serial)
        handles: list[JobHandle] = []
        for label in labels:
            handles += await asyncio.gather(
                *(client.submit(serial, label) for serial in serials)
            )
        fleet = run.fleet(gateway.url, printers, prefix, job_completed_alerts=alerts)
        name = "throughput" if alerts else "throughput-no-alerts"
        window = Window(
            {"gateway": gateway.pid, "bench": os.getpid(), "rabbitmq": rabbitmq_pid()}
        )
        async with run.profiling(gateway.pid, name):
            window.start()
            started = time.monotonic()
            async with fleet:
                await fleet.wait_labels(total, timeout=sizes.connect_timeout(total))
                outcomes = await asyncio.gather(
                    *(handle.outcome(timeout=REQUEST_TIMEOUT) for handle in handles)
                )
                done = time.monotonic()
                window.stop()
                stamps = [t for serial in serials for t in fleet.label_times(serial)]
                stats = fleet.stats()
    first, last = min(stamps), max(stamps)
    statuses = collections.Counter(outcome.status.value for outcome in outcomes)
    return {
        "printers": printers,
        "labels": total,
        "label_size": LABEL_SIZE,
        "completion_alerts": alerts,
        "alerts_sent": stats.alerts_sent,
        "per_s": rate(total, done - first),
        "labels_per_s": rate(total - 1, last - first),
        "first_label_s": round(first - started, 3),
        "drain_s": round(done - first, 3),
        "outcomes": dict(statuses),
        "window": window.as_dict(),
    }


# -- idle -----------------------------------------------------------------------------


@dataclass
class _Held:
    """One server holding a fleet: what connecting it cost and what it weighs."""

    server: ServiceProcess
    fleet: Fleet
    base_kib: int
    own_base_kib: int
    connect: Window
    connect_s: float = 0.0
    #: Until every printer had main and raw open (before they could all print).
    sockets_s: float = 0.0
    rss_kib: int = 0
    #: Printers still ready at the end of the idle window.
    ready_at_end: int = 0


async def _connect(run: Run, server: ServiceProcess, prefix: str) -> _Held:
    """Connect ``idle_printers`` printers to ``server`` as fast as the fleet dials.

    On a gateway, connected means printable: each printer got a probe label.
    """
    count = run.sizes.idle_printers
    base, own_base = rss_kib(server.pid), rss_kib()
    fleet = run.fleet(server.url, count, prefix)
    held = _Held(server, fleet, base, own_base, Window({"server": server.pid}))
    timeout = run.sizes.connect_timeout(count)
    if not isinstance(server, GatewayProcess):
        started = time.monotonic()
        held.connect.start()
        fleet.start()
        await fleet.wait_ready(timeout=timeout)
        held.sockets_s = held.connect_s = time.monotonic() - started
        held.connect.stop()
        return held
    held.connect.start()
    held.sockets_s, held.connect_s = await run.start_printable(fleet, timeout)
    held.connect.stop()
    return held


def _held_result(
    held: _Held, idle: Window, count: int, slices: dict[str, list[float | None]]
) -> dict[str, Any]:
    name = f"server-{held.server.pid}"
    return {
        "idle_slices_core_percent": slices.get(name, []),
        "connect_s": round(held.connect_s, 3),
        "sockets_s": round(held.sockets_s, 3),
        "printers_per_s": rate(count, held.connect_s),
        "handshakes_per_s": rate(2 * count, held.connect_s),
        "connect_core_percent": held.connect.core_percent("server"),
        "rss_base_kib": held.base_kib,
        "rss_kib": held.rss_kib,
        "kib_per_printer": round((held.rss_kib - held.base_kib) / count, 2),
        "idle": idle.usages[name].as_dict(),
        "ready_at_end": held.ready_at_end,
    }


async def measure_idle(run: Run) -> None:
    """Memory and CPU of N idle printers on one replica, and on websockets alone.

    When this process may hold both fleets' sockets (four per printer), the gateway
    and the floor server hold their printers at the same time and share one idle
    window; otherwise one after the other.
    """
    sizes = run.sizes
    count = sizes.idle_printers
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    concurrent = 4 * count + SPARE_FILES <= soft_limit
    rabbit = rabbitmq_pid()
    rabbit_base = rss_kib(rabbit) if rabbit else 0
    gateway, floor = run.gateway("idle"), run.floor("idle")
    own_base = rss_kib()
    helds: list[_Held] = []
    windows: list[Window] = []
    fleet_kib: float = 0.0
    rabbit_rss = 0
    slices: dict[str, list[float | None]] = {}

    async def settle_and_measure(group: list[_Held]) -> Window:
        # Measurement design, not synchronisation: let the last events drain.
        await asyncio.sleep(sizes.idle_settle)
        for held in group:
            held.rss_kib = rss_kib(held.server.pid)
        pids: dict[str, int | None] = {
            f"server-{held.server.pid}": held.server.pid for held in group
        }
        window = Window({**pids, "bench": os.getpid(), "rabbitmq": rabbit}).start()
        gateway_first = isinstance(group[0].server, GatewayProcess)
        async with run.profiling(group[0].server.pid, "idle", enabled=gateway_first):
            # The idle window itself, in slices: a falling series means the server
            # was still catching up when the window began.
            for _ in range(IDLE_SLICES):
                piece = Window(pids).start()
                await asyncio.sleep(sizes.idle_window / IDLE_SLICES)
                piece.stop()
                for name in pids:
                    slices.setdefault(name, []).append(piece.core_percent(name))
        window.stop()
        for held in group:
            held.ready_at_end = held.fleet.ready.value
        return window

    try:
        if concurrent:
            async with run.running(gateway, floor):
                helds.append(await _connect(run, gateway, "BIDL"))
                rabbit_rss = rss_kib(rabbit) if rabbit else 0
                helds.append(await _connect(run, floor, "BFLR"))
                window = await settle_and_measure(helds)
                windows = [window, window]
                fleet_kib = (rss_kib() - own_base) / (2 * count)
                for held in helds:
                    await held.fleet.close(timeout=30, abort=True)
        else:
            for server, prefix in ((gateway, "BIDL"), (floor, "BFLR")):
                async with run.running(server):
                    held = await _connect(run, server, prefix)
                    helds.append(held)
                    if server is gateway:
                        rabbit_rss = rss_kib(rabbit) if rabbit else 0
                    windows.append(await settle_and_measure([held]))
                    fleet_kib = max(fleet_kib, (rss_kib() - own_base) / count)
                    await held.fleet.close(timeout=30, abort=True)
    finally:
        for held in helds:
            await held.fleet.close(timeout=30, abort=True)
    result: dict[str, Any] = {
        "printers": count,
        "concurrent_windows": concurrent,
        "gateway": _held_result(helds[0], windows[0], count, slices),
        "floor": _held_result(helds[1], windows[1], count, slices),
        "window": windows[0].as_dict(),
        "fleet_kib_per_printer": round(fleet_kib, 2),
        "fleet_idle_core_percent": windows[0].core_percent("bench"),
    }
    if rabbit:
        result["rabbitmq"] = {
            "rss_base_kib": rabbit_base,
            "rss_kib": rabbit_rss,
            "kib_per_printer": round((rabbit_rss - rabbit_base) / count, 2),
            "kib_per_queue": round((rabbit_rss - rabbit_base) / (2 * count), 2),
        }
    run.results["idle"] = result


# -- reconnect storm ------------------------------------------------------------------


async def measure_storm(run: Run) -> None:
    """N printers on replica A; A dies (SIGKILL); time until all print again on B.

    Each printer gets one probe label queued at the moment A dies; a printer is
    back once its probe arrived (its raw queue is consumed again, on B). When its
    sockets alone were back is reported too.
    """
    sizes = run.sizes
    count = sizes.storm_printers
    timeout = sizes.connect_timeout(count)
    first, survivor = run.gateway("storm-a"), run.gateway("storm-b")
    async with run.running(first, survivor):
        # Every printer dials A first, and B after losing A, at once.
        fleet = run.fleet([first.url, survivor.url], count, "BSTM", retry_interval=0.0)
        try:
            cold = Window({"gateway": first.pid, "rabbitmq": rabbitmq_pid()}).start()
            cold_sockets_s, cold_s = await run.start_printable(fleet, timeout)
            cold.stop()
            await asyncio.sleep(sizes.settle)  # let A finish its last events
            before = fleet.ready_total.value
            # Printers whose first dial to A failed went to B already.
            on_first = fleet.count_on(first.url)
            window = Window(
                {
                    "gateway": survivor.pid,
                    "bench": os.getpid(),
                    "rabbitmq": rabbitmq_pid(),
                }
            )
            async with run.profiling(survivor.pid, "storm"):
                window.start()
                killed = time.monotonic()
                await first.kill()
                await run.probe(fleet, timeout)
                await fleet.ready_total.wait_for(before + on_first, timeout=timeout)
                window.stop()
            printable = [
                fleet.label_times(serial)[-1] - killed for serial in fleet.serials
            ]
            sockets = [
                ready - killed
                for ready in fleet.ready_times()
                if ready is not None and ready >= killed
            ]
            stats = fleet.stats()
        finally:
            await fleet.close(timeout=30, abort=True)
    floor = run.floor("storm")
    async with run.running(floor):
        baseline = run.fleet(floor.url, count, "BFST")
        try:
            started = time.monotonic()
            floor_window = Window({"server": floor.pid}).start()
            baseline.start()
            await baseline.wait_ready(timeout=timeout)
            floor_s = time.monotonic() - started
            floor_window.stop()
        finally:
            await baseline.close(timeout=30, abort=True)
    back_s = max(printable)
    run.results["storm"] = {
        "printers": count,
        "printers_on_dead_replica": on_first,
        "cold_connect_s": round(cold_s, 3),
        "cold_sockets_s": round(cold_sockets_s, 3),
        "cold_printers_per_s": rate(count, cold_s),
        "cold_window": cold.as_dict(),
        "back_online_s": round(back_s, 3),
        "printable_ms": summary(printable, 1000),
        "sockets_back_s": round(max(sockets), 3) if sockets else None,
        "sockets_ms": summary(sockets, 1000),
        "printers_per_s": rate(count, back_s),
        "ready_after": stats.ready,
        "dial_failures": stats.dial_failures,
        "window": window.as_dict(),
        "floor": {
            "connect_s": round(floor_s, 3),
            "handshakes_per_s": rate(2 * count, floor_s),
            "window": floor_window.as_dict(),
        },
    }
