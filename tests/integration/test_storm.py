"""A reconnect storm: the replica holding 500 printers dies, the survivor takes them all."""

from __future__ import annotations

import asyncio
import signal
import time

from broker.schemas import PrinterOnline
from tests.support.events import EventLog
from tests.support.processes import GatewayProcess
from tests.support.tcp_proxy import TcpProxy

PRINTERS = 500
#: How long the whole fleet may take to come back (a bound, not a speed target:
#: the figure itself is printed, and benchmarked in scripts/bench).
BOUND = 120.0


async def test_500_printers_come_back_online_after_their_replica_dies(harness):
    """Kill the replica of 500 printers: all are online on the survivor within a bound."""
    # Every printer here dials from 127.0.0.1, like a fleet behind one NAT address:
    # the per-address connection rate limit must allow for it.
    limit = {"max_connections_per_second_per_address": 100_000}
    a = GatewayProcess(harness.amqp_url, harness.namespace, "storm-a", **limit)
    b = GatewayProcess(harness.amqp_url, harness.namespace, "storm-b", **limit)
    await a.start()
    await b.start()
    balancer = await TcpProxy("127.0.0.1", a.port).start()
    try:
        url = f"ws://127.0.0.1:{balancer.port}/"
        serials = [f"50J9{n:08d}" for n in range(PRINTERS)]
        gate = asyncio.Semaphore(50)

        async def connect(serial: str) -> None:
            async with gate:
                await harness.printer(
                    url, serial, retry_interval=1.0, ping_interval=None
                )

        started = time.monotonic()
        async with asyncio.timeout(BOUND):
            await asyncio.gather(*(connect(serial) for serial in serials))
        print(f"{PRINTERS} printers connected in {time.monotonic() - started:.1f} s")

        client = await harness.client()
        log = EventLog()
        async with client.events("printer.*.online") as subscription:
            feeding = asyncio.create_task(log.feed(subscription))
            back: set[str] = set()
            read = 0

            def all_back() -> bool:
                nonlocal read
                for event in log.events[read:]:
                    if isinstance(event, PrinterOnline) and event.replica == "storm-b":
                        back.add(event.printer)
                read = len(log.events)
                return len(back) == PRINTERS

            balancer.target = ("127.0.0.1", b.port)
            died = time.monotonic()
            assert await a.stop(signal.SIGKILL) == -signal.SIGKILL
            async with asyncio.timeout(BOUND), log.changed:
                await log.changed.wait_for(all_back)
            took = time.monotonic() - died
            feeding.cancel()
        print(
            f"reconnect storm: {PRINTERS} printers back online on the survivor in {took:.1f} s"
        )
        assert back == set(serials)
    finally:
        await balancer.close()
        await a.stop(signal.SIGKILL)
        await b.stop()
