"""A replica across a lost broker connection, half-open printers and moving sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from broker.schemas import (
    ChannelClosed,
    JobStatus,
    PrinterOffline,
    PrinterOnline,
    RequestType,
)
from tests.support.consumers import ConsumerWatch
from tests.support.events import watching
from tests.support.tcp_proxy import TcpProxy
from tests.support.timing import LONG, SHORT

SERIAL = "50J000000001"


def through(proxy: TcpProxy, amqp_url: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def readyz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.asynccontextmanager
async def cut_off_replica(harness):
    """A replica reaching RabbitMQ through a proxy, one printer that printed job 1,
    then the proxy cut: yields (proxy, gateway, printer, client) with the replica
    disconnected and the proxy refusing new connections until ``accept_again``."""
    parts = urlsplit(harness.amqp_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672).start()
    try:
        gateway = await harness.gateway(amqp_url=through(proxy, harness.amqp_url))
        printer = await harness.printer(harness.url(gateway), SERIAL)
        client = await harness.client()
        first = await client.print(SERIAL, b"^XA^FD1^XZ", timeout=SHORT)
        assert first.status is JobStatus.DELIVERED

        await proxy.stop_accepting()
        proxy.disconnect_all()
        async with asyncio.timeout(SHORT):
            await gateway.bus.connection_lost.wait()
        yield proxy, gateway, printer, client
    finally:
        await proxy.close()


async def test_replica_recovers_from_a_lost_broker_connection(harness):
    """Broker connection cut: printers stay, readiness drops, queued jobs go out after."""
    async with cut_off_replica(harness) as (proxy, gateway, printer, client):
        status, body = await asyncio.to_thread(readyz, gateway.port)
        assert status == 503
        assert "no RabbitMQ connection" in body
        # Published while the replica cannot reach RabbitMQ: it waits in the queue.
        handle = await client.submit(SERIAL, b"^XA^FD2^XZ")

        await proxy.accept_again()
        outcome = await handle.outcome(timeout=LONG)
        assert outcome.status is JobStatus.DELIVERED
        await printer.wait_until(lambda: b"^XA^FD2^XZ" in printer.labels, timeout=SHORT)
        labels = list(printer.labels)
        # Job 1 may print twice: if the cut caught its ack on the wire, RabbitMQ
        # redelivers it (at least once). Job 2 prints exactly once, after job 1.
        assert labels[-1] == b"^XA^FD2^XZ"
        assert labels.count(b"^XA^FD2^XZ") == 1
        assert set(labels[:-1]) == {b"^XA^FD1^XZ"}
        assert len(labels) in (2, 3)
        # The printer never noticed, and config (control bindings) works again.
        assert printer.connections_made == 1
        values = await client.sgd_get(SERIAL, "device.friendly_name")
        assert values == {"device.friendly_name": SERIAL}
        assert await asyncio.to_thread(readyz, gateway.port) == (200, "ready\n")
        assert gateway.bus.reconnects == 1


async def test_sgd_request_published_while_the_broker_is_cut_off_is_answered(harness):
    """A request for a closed config channel, published while the replica's wake-up
    binding is gone with its connection, still opens the channel once it is back."""
    async with cut_off_replica(harness) as (proxy, _gateway, printer, client):
        handle = await client.submit(
            SERIAL, b'{"device.friendly_name":null}', type=RequestType.SGD
        )
        await proxy.accept_again()
        outcome = await handle.outcome(timeout=LONG)
        assert outcome.status is JobStatus.OK
        assert json.loads(outcome.body) == {"device.friendly_name": SERIAL}
        assert printer.connections_made == 1


async def test_newest_main_wins_over_a_half_open_one_on_another_replica(harness):
    """A printer back on replica B gets its half-open sockets on A closed with 1001."""
    a = await harness.gateway()
    b = await harness.gateway()
    proxy = await TcpProxy("127.0.0.1", a.port).start()
    try:
        url = f"ws://127.0.0.1:{proxy.port}/"
        printer = await harness.printer(url, SERIAL, retry_interval=0.1)
        client = await harness.client()
        assert (
            await client.print(SERIAL, b"^XA^FD0^XZ", timeout=SHORT)
        ).status.value == ("delivered")
        async with watching(client, f"printer.{SERIAL}.#") as log:
            # The network path to A dies silently; the printer redials, and lands on B.
            proxy.freeze()
            proxy.target = ("127.0.0.1", b.port)
            await printer.drop()
            online = await log.wait_for(
                lambda e: (
                    isinstance(e, PrinterOnline) and e.replica == b.settings.replica
                )
            )
            seen_online = time.monotonic()
            offline = await log.wait_for(
                lambda e: (
                    isinstance(e, PrinterOffline) and e.replica == a.settings.replica
                )
            )
            old_raw = await log.wait_for(
                lambda e: (
                    isinstance(e, ChannelClosed)
                    and e.channel == "raw"
                    and e.replica == a.settings.replica
                )
            )
            took = time.monotonic() - seen_online
        print(
            f"old sockets on A closed {took * 1000:.0f} ms after the printer was online on B"
        )
        assert online.printer == SERIAL
        assert offline.close_code == 1001
        assert old_raw.close_code == 1001
        bodies = [b"^XA^FD%d^XZ" % n for n in range(1, 6)]
        handles = [await client.submit(SERIAL, body) for body in bodies]
        for handle in handles:
            assert (await handle.outcome(timeout=SHORT)).status is JobStatus.DELIVERED
        labels = await printer.wait_for_labels(6, timeout=SHORT)
        assert labels == [b"^XA^FD0^XZ", *bodies]
    finally:
        await proxy.close()


async def test_no_two_connections_ever_drain_one_printer_queue(harness):
    """Main moving between replicas under a stream of jobs: never two raw consumers."""
    a = await harness.gateway()
    b = await harness.gateway()
    proxy = await TcpProxy("127.0.0.1", a.port).start()
    raw_queue = f"{harness.namespace}.printer.{SERIAL}.raw"
    try:
        async with ConsumerWatch(harness.amqp_url, f"{harness.namespace}.") as watch:
            url = f"ws://127.0.0.1:{proxy.port}/"
            printer = await harness.printer(url, SERIAL, retry_interval=0.1)
            client = await harness.client()
            bodies: list[bytes] = []
            handles = []
            for round_ in range(6):
                for n in range(5):
                    body = b"^XA^FD%d-%d^XZ" % (round_, n)
                    bodies.append(body)
                    handles.append(await client.submit(SERIAL, body))
                # An extra main socket on the other replica: newest main wins.
                target = b if round_ % 2 == 0 else a
                proxy.target = ("127.0.0.1", target.port)
                await printer.open_extra_main()
            for handle in handles:
                assert (
                    await handle.outcome(timeout=LONG)
                ).status is JobStatus.DELIVERED
            labels = await printer.wait_for_labels(len(bodies), timeout=LONG)
            assert sorted(labels) == sorted(bodies)  # every job exactly once
            assert labels == bodies  # and in order
            assert watch.highest[raw_queue] == 1
    finally:
        await proxy.close()
