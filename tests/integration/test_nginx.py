"""The shipped nginx config (deploy/nginx/weblink.conf) in front of three gateway
processes, with printers dialling wss:// through it as real printers do."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from broker.schemas import JobStatus
from gateway.emulator import EmulatorOptions, PrinterEmulator
from gateway.weblink import SUBPROTOCOL
from tests.support.harness import Harness
from tests.support.nginx import NginxProxy, nginx_binary
from tests.support.processes import GatewayProcess
from tests.support.timing import LONG, SHORT
from tests.support.tls import TestCertificates, make_test_certificates

REPLICAS = ("replica-a", "replica-b", "replica-c")
SERIALS = [f"50J{number:09d}" for number in range(201, 207)]


@pytest.fixture
def certificates(tmp_path: Path) -> TestCertificates:
    """A throwaway CA and a certificate for localhost/127.0.0.1 that nginx serves."""
    return make_test_certificates(tmp_path)


@pytest.fixture
async def gateways(harness: Harness) -> AsyncIterator[list[GatewayProcess]]:
    """Three gateway processes sharing the test's namespace; each must exit 0."""
    nginx_binary()  # skip (or fail under CI) before starting anything
    started: list[GatewayProcess] = []
    try:
        for replica in REPLICAS:
            process = GatewayProcess(harness.amqp_url, harness.namespace, replica)
            started.append(await process.start())
        yield started
    finally:
        codes = [await process.stop() for process in started]
        assert codes == [0] * len(started)


@pytest.fixture
async def proxy(
    gateways: list[GatewayProcess], certificates: TestCertificates
) -> AsyncIterator[NginxProxy]:
    """nginx with the shipped weblink.conf, balancing over the three gateways."""
    upstreams = [f"127.0.0.1:{process.port}" for process in gateways]
    async with NginxProxy(upstreams, certificates) as proxy:
        yield proxy


async def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[str, str]:
    """GET ``path`` over TLS from the proxy; return the status line and the body."""
    async with asyncio.timeout(SHORT):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            response = (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    head, _, body = response.partition("\r\n\r\n")
    return head.split("\r\n", 1)[0], body


async def test_101_through_nginx_keeps_subprotocol_and_content_length(
    proxy: NginxProxy, certificates: TestCertificates
) -> None:
    """The 101 a printer gets through nginx selects v1.weblink.zebra.com and has Content-Length: 0."""
    async with (
        asyncio.timeout(SHORT),
        connect(
            proxy.url(),
            ssl=certificates.client_context(),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
        ) as websocket,
    ):
        assert websocket.response is not None
        assert websocket.response.status_code == 101
        headers = websocket.response.headers
        assert headers["Sec-WebSocket-Protocol"] == SUBPROTOCOL
        assert headers["Content-Length"] == "0"
        assert websocket.subprotocol == SUBPROTOCOL


async def test_healthz_passes_through_and_other_paths_do_not(
    proxy: NginxProxy, certificates: TestCertificates
) -> None:
    """https://<proxy>/healthz answers a gateway's 200; paths other than WebLink's get 404."""
    context = certificates.client_context()
    status, body = await https_get(proxy.port, "/healthz", context)
    assert status == "HTTP/1.1 200 OK"
    assert body == "ok\n"
    status, _ = await https_get(proxy.port, "/readyz", context)
    assert status == "HTTP/1.1 404 Not Found"


async def test_printers_behind_nginx_work_whichever_replica_they_reach(
    harness: Harness,
    gateways: list[GatewayProcess],
    proxy: NginxProxy,
    certificates: TestCertificates,
) -> None:
    """Six printers on wss:// through nginx print, answer ~HS and read a setting, spread over the replicas."""
    context = certificates.client_context()
    harness.serials.update(SERIALS)
    async with contextlib.AsyncExitStack() as stack:
        printers: list[PrinterEmulator] = []
        for serial in SERIALS:
            printer = PrinterEmulator(
                proxy.url(), serial, EmulatorOptions(retry_interval=0.2), ssl=context
            )
            printers.append(await stack.enter_async_context(printer))
        async with asyncio.timeout(LONG):
            await asyncio.gather(*(p.wait_channel("raw") for p in printers))
        client = await harness.client()

        async def use(printer: PrinterEmulator) -> None:
            serial = printer.printer_serial
            label = f"^XA^FO50,50^FD{serial}^FS^XZ".encode()
            outcome = await client.print(serial, label, timeout=LONG)
            assert outcome.status is JobStatus.DELIVERED
            assert await printer.wait_for_labels(1, timeout=SHORT) == [label]
            status = await client.query(
                serial, b"~HS", response="frames:3", timeout=LONG
            )
            assert status.count(b"\x02") == 3
            assert status.count(b"\x03") == 3
            names = await client.sgd_get(serial, "device.friendly_name", timeout=LONG)
            assert names == {"device.friendly_name": serial}

        await asyncio.gather(*(use(printer) for printer in printers))
    # Every socket is closed now (1000), so nginx's graceful stop is immediate.
    holders: dict[str, set[str]] = {}
    for process in gateways:
        for line in process.lines:
            if line.get("event") in ("printer.online", "channel.opened"):
                holders.setdefault(process.replica, set()).add(line["printer_serial"])
    assert set().union(*holders.values()) == set(SERIALS)
    assert len(holders) > 1, f"every socket landed on one replica: {holders}"


async def test_printers_come_back_through_nginx_when_a_replica_stops(
    harness: Harness,
    gateways: list[GatewayProcess],
    proxy: NginxProxy,
    certificates: TestCertificates,
) -> None:
    """When one replica stops, its printers reconnect through nginx to the others and print again."""
    context = certificates.client_context()
    serials = SERIALS[:3]
    harness.serials.update(serials)
    stopping = gateways[0]
    async with contextlib.AsyncExitStack() as stack:
        printers: list[PrinterEmulator] = []
        for serial in serials:
            printer = PrinterEmulator(
                proxy.url(), serial, EmulatorOptions(retry_interval=0.2), ssl=context
            )
            printers.append(await stack.enter_async_context(printer))
        # Once raw is open the printer's queues exist (the gateway declares them first).
        async with asyncio.timeout(LONG):
            await asyncio.gather(*(p.wait_channel("raw") for p in printers))
        client = await harness.client()

        async def print_label(printer: PrinterEmulator, text: str) -> None:
            label = f"^XA^FD{printer.printer_serial} {text}^FS^XZ".encode()
            outcome = await client.print(printer.printer_serial, label, timeout=LONG)
            assert outcome.status is JobStatus.DELIVERED
            await printer.wait_until(lambda: label in printer.labels, timeout=SHORT)

        # A first label each: every socket is connected and identified on its replica.
        await asyncio.gather(*(print_label(p, "before") for p in printers))
        # least_conn spreads the first sockets over all three replicas.
        assert any(
            line.get("event") in ("printer.online", "channel.opened")
            for line in stopping.lines
        ), "no socket reached the replica this test stops"

        assert await stopping.stop() == 0
        await asyncio.gather(*(print_label(p, "after") for p in printers))
        codes = [code for printer in printers for _, code in printer.close_codes]
        assert 1001 in codes, "no printer socket was on the stopped replica"
