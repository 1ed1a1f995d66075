"""Bad input closes one socket with a fitting code; everything else carries on."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gateway.weblink import SUBPROTOCOL, encode_discovery_b64
from tests.support.timing import SHORT

SERIAL = "50J000000001"


async def close_code_after(url: str, *messages: bytes | str) -> int | None:
    """Connect like a printer, send the messages, return the gateway's close code."""
    async with connect(
        url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None
    ) as ws:
        for message in messages:
            try:
                await ws.send(message)
            except ConnectionClosed:
                break
        async with asyncio.timeout(SHORT):
            await ws.wait_closed()
        return ws.close_code


def discovery(serial: str) -> bytes:
    return json.dumps(
        {"discovery_b64": encode_discovery_b64(printer_serial=serial)}
    ).encode()


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        pytest.param(
            (b'{"discovery_b64": "bm90IGEgcGFja2V0"}',), 1008, id="bad-discovery"
        ),
        pytest.param(('{"discovery_b64": "x"}',), 1003, id="text-frame"),
        pytest.param((b"\x00\x01 not json",), 1007, id="not-json"),
        pytest.param((b'{"hello": 1}',), 1008, id="unknown-first-message"),
        pytest.param(
            (
                b'{"channel_name":"v1.fax.zebra.com","unique_id":"50J1","channel_id":"2"}',
            ),
            1008,
            id="unknown-channel-name",
        ),
        pytest.param(
            (
                b'{"channel_name":"v1.raw.zebra.com","unique_id":"50J.1#","channel_id":"2"}',
            ),
            1008,
            id="bad-serial-in-hello",
        ),
        pytest.param((discovery("50J.X#1"),), 1008, id="bad-serial-in-discovery"),
        pytest.param(
            (discovery(SERIAL), b"{ not json }"), 1007, id="malformed-after-hello"
        ),
        pytest.param((discovery(SERIAL), "text later"), 1003, id="text-after-hello"),
    ],
)
async def test_bad_input_closes_only_that_socket(harness, messages, code):
    """Each kind of bad input closes its socket with a fitting code; a printer carries on."""
    gateway = await harness.gateway()
    url = harness.url(gateway)
    printer = await harness.printer(url, "50J000000077")
    assert await close_code_after(url, *messages) == code
    client = await harness.client()
    outcome = await client.print("50J000000077", b"^XA^FDstill fine^XZ", timeout=SHORT)
    assert outcome.status.value == "delivered"
    assert await printer.wait_for_labels(1, timeout=SHORT)


async def test_oversized_message_closes_with_1009(harness):
    """A message above the size limit closes that socket with 1009."""
    gateway = await harness.gateway(ws_max_message_size=4096)
    code = await close_code_after(harness.url(gateway), b"{" + b" " * 10_000 + b"}")
    assert code == 1009


async def test_socket_that_never_identifies_is_closed(harness):
    """A socket that sends nothing is closed after `identify_timeout` with 1008."""
    gateway = await harness.gateway(identify_timeout=0.3)
    assert await close_code_after(harness.url(gateway)) == 1008


async def test_handshake_selects_subprotocol_and_content_length(harness):
    """The 101 echoes the WebLink subprotocol and carries `Content-Length: 0`."""
    gateway = await harness.gateway()
    async with connect(
        harness.url(gateway), subprotocols=[Subprotocol(SUBPROTOCOL)]
    ) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        assert ws.response is not None
        assert ws.response.headers["Content-Length"] == "0"


async def test_required_path_is_enforced(harness):
    """With `ws_path` set, other paths get 404 and the right one connects."""
    gateway = await harness.gateway(ws_path="/zebra/weblink/")
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            harness.url(gateway, "/other"), subprotocols=[Subprotocol(SUBPROTOCOL)]
        ):
            pass
    assert caught.value.response.status_code == 404
    printer = await harness.printer(harness.url(gateway, "/zebra/weblink/"), SERIAL)
    await printer.wait_channel("raw", timeout=SHORT)


async def test_health_endpoints_answer_plain_http(harness):
    """`/healthz` and `/readyz` answer plain HTTP on the WebLink port."""
    gateway = await harness.gateway()

    def get(path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}{path}") as r:
            return r.status, r.read()

    assert await asyncio.to_thread(get, "/healthz") == (200, b"ok\n")
    assert await asyncio.to_thread(get, "/readyz") == (200, b"ready\n")


async def test_metrics_endpoint_counts_printers_sockets_and_outcomes(harness):
    """`/metrics` shows the connected printer, its sockets and a finished job."""
    gateway = await harness.gateway()
    await harness.printer(harness.url(gateway), SERIAL)
    client = await harness.client()
    # With prefetch 1 the second job is only taken once the first was acked and
    # counted: after its outcome, the first is surely in the metrics.
    await client.print(SERIAL, b"^XA^FDm^XZ", timeout=SHORT)
    await client.print(SERIAL, b"^XA^FDn^XZ", timeout=SHORT)

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            body: bytes = r.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    assert "zebra_gateway_printers_connected 1.0" in text
    assert 'zebra_gateway_sockets_open{channel="raw"} 1.0' in text
    delivered = 'zebra_gateway_requests_total{status="delivered",type="print"}'
    assert f"{delivered} 1.0" in text or f"{delivered} 2.0" in text
