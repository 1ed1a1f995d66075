"""Only printers with credentials for their own serial get in (and TLS without a proxy)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aio_pika
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from broker.errors import ConfigurationError
from broker.schemas import JobStatus, PrinterOnline
from gateway.credentials_cli import main as credentials
from gateway.emulator import ConnectFailed
from gateway.server import Gateway
from gateway.weblink import SUBPROTOCOL, encode_discovery_b64
from tests.support.events import watching
from tests.support.timing import SHORT
from tests.support.tls import make_test_certificates

SERIAL = "50J000000001"
OTHER = "50J000000002"


def add_credential(path: Path, serial: str, password: str, monkeypatch) -> None:
    """Add a printer with the credentials command, as an operator would."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert credentials(["add", serial, "--file", str(path), "--password-stdin"]) == 0


def test_gateway_refuses_to_start_without_authentication(harness):
    """No credentials, no certificate header, not told to run open: it will not start."""
    with pytest.raises(ConfigurationError, match=r"allow.anonymous"):
        Gateway(harness.settings(allow_anonymous=False))


async def test_printer_with_credentials_gets_in_after_the_challenge(
    harness, tmp_path, monkeypatch
):
    """401 with a Basic challenge first; the printer's retry with credentials prints."""
    path = tmp_path / "credentials.jsonl"
    add_credential(path, SERIAL, "correct-horse-battery", monkeypatch)
    gateway = await harness.gateway(allow_anonymous=False, credentials_file=path)
    url = harness.url(gateway)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, subprotocols=[Subprotocol(SUBPROTOCOL)]):
            pass
    assert caught.value.response.status_code == 401
    assert caught.value.response.headers["WWW-Authenticate"].startswith("Basic realm=")
    printer = await harness.printer(
        url, SERIAL, username=SERIAL, password="correct-horse-battery"
    )
    client = await harness.client()
    outcome = await client.print(SERIAL, b"^XA^FDauth^XZ", timeout=SHORT)
    assert outcome.status is JobStatus.DELIVERED
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDauth^XZ"]
    with pytest.raises(ConnectFailed, match="401"):
        await harness.printer(
            url, SERIAL, username=SERIAL, password="wrong", reconnect=False
        )


async def test_credential_for_one_serial_cannot_claim_another(
    harness, tmp_path, monkeypatch
):
    """A socket naming a serial its credential does not cover closes 1008, unseen."""
    path = tmp_path / "credentials.jsonl"
    add_credential(path, SERIAL, "correct-horse-battery", monkeypatch)
    gateway = await harness.gateway(allow_anonymous=False, credentials_file=path)
    client = await harness.client()
    harness.serials.add(OTHER)
    headers = {
        "Authorization": "Basic NTBKMDAwMDAwMDAxOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ=="
    }
    async with watching(client, f"printer.{OTHER}.#") as log:
        async with connect(
            harness.url(gateway),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            additional_headers=headers,
        ) as ws:
            await ws.send(
                json.dumps(
                    {"discovery_b64": encode_discovery_b64(printer_serial=OTHER)}
                ).encode()
            )
            async with asyncio.timeout(SHORT):
                await ws.wait_closed()
            assert ws.close_code == 1008
        assert not [e for e in log.events if isinstance(e, PrinterOnline)]
    connection = await aio_pika.connect(harness.amqp_url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(
                f"{harness.namespace}.printer.{OTHER}.raw", passive=True
            )


async def test_client_certificate_identity_from_a_trusted_proxy_only(harness):
    """The proxy's certificate header is believed from trusted addresses only."""
    trusted = await harness.gateway(
        allow_anonymous=False,
        client_cert_header="X-Client-DN",
        trusted_proxies="127.0.0.0/8",
    )
    untrusted = await harness.gateway(
        allow_anonymous=False,
        client_cert_header="X-Client-DN",
        trusted_proxies="10.0.0.0/8",
    )
    headers = {"X-Client-DN": f"CN={SERIAL},O=Example"}
    async with connect(
        harness.url(trusted),
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        additional_headers=headers,
    ) as ws:
        assert ws.subprotocol == SUBPROTOCOL
    with pytest.raises(InvalidStatus) as caught:
        async with connect(
            harness.url(untrusted),
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            additional_headers=headers,
        ):
            pass
    assert caught.value.response.status_code == 403


async def test_native_tls_without_a_proxy(harness, tmp_path):
    """With a certificate and key the gateway serves wss:// itself."""
    certificates = make_test_certificates(tmp_path)
    gateway = await harness.gateway(
        tls_certfile=certificates.server_cert, tls_keyfile=certificates.server_key
    )
    printer = await harness.printer(
        f"wss://localhost:{gateway.port}/", SERIAL, ssl=certificates.client_context()
    )
    client = await harness.client()
    assert (
        await client.print(SERIAL, b"^XA^FDtls^XZ", timeout=SHORT)
    ).status.value == ("delivered")
    assert await printer.wait_for_labels(1, timeout=SHORT) == [b"^XA^FDtls^XZ"]
