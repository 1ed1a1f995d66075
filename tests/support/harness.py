"""Factories for integration tests: gateways, emulated printers and clients that are
all closed, and whose RabbitMQ objects are deleted, when the test ends."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import aio_pika

from broker.client import BrokerClient
from broker.settings import ClientSettings
from broker.topology import Channel, Topology
from gateway.emulator import EmulatorOptions, PrinterEmulator
from gateway.server import Gateway
from gateway.settings import GatewaySettings
from tests.support.timing import SHORT


class Harness:
    """Everything one test started, so that teardown can close it all."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.topology = Topology(namespace=namespace)
        self.gateways: list[Gateway] = []
        self.printers: list[PrinterEmulator] = []
        self.clients: list[BrokerClient] = []
        self.serials: set[str] = set()

    def settings(self, **overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "amqp_url": self.amqp_url,
            "namespace": self.namespace,
            "host": "127.0.0.1",
            "port": 0,
            "replica": f"test-{uuid.uuid4().hex[:6]}",
            "log_format": "console",
            "allow_anonymous": True,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    async def gateway(self, **overrides: Any) -> Gateway:
        gateway = Gateway(self.settings(**overrides))
        await gateway.start()
        self.gateways.append(gateway)
        return gateway

    def url(self, gateway: Gateway, path: str = "/") -> str:
        return f"ws://127.0.0.1:{gateway.port}{path}"

    async def printer(
        self,
        url: str,
        serial: str = "50J000000001",
        *,
        wait_raw: bool = True,
        ssl: Any = None,
        **options: Any,
    ) -> PrinterEmulator:
        """Start an emulated printer; by default wait until its raw channel is open.

        The gateway declares a printer's queues before it asks for the raw channel,
        so once raw is open, requests for the printer are routable.
        """
        options.setdefault("retry_interval", 0.2)
        printer = PrinterEmulator(url, serial, EmulatorOptions(**options), ssl=ssl)
        self.serials.add(serial)
        await printer.start()
        self.printers.append(printer)
        if wait_raw:
            await printer.wait_channel("raw", timeout=SHORT)
        return printer

    async def client(self, **overrides: Any) -> BrokerClient:
        """Connect a client to this test's namespace, with settings overrides."""
        settings = ClientSettings(
            amqp_url=self.amqp_url, namespace=self.namespace, **overrides
        )
        client = BrokerClient(settings)
        await client.__aenter__()
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for printer in self.printers:
            with contextlib.suppress(Exception):
                await printer.close()
        for gateway in self.gateways:
            with contextlib.suppress(Exception):
                await gateway.stop()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        await delete_namespace(self.amqp_url, self.topology, self.serials)


async def delete_namespace(
    amqp_url: str, topology: Topology, serials: set[str]
) -> None:
    """Delete the queues and exchanges a test namespace may have left behind."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queues = [topology.dead_letter_queue, topology.replicas_queue]
        for serial in serials:
            queues += [topology.printer_queue(serial, kind) for kind in Channel]
        for name in queues:
            await channel.queue_delete(name)
        for name in (
            topology.requests_exchange,
            topology.events_exchange,
            topology.dead_letter_exchange,
            topology.control_exchange,
            topology.presence_exchange,
        ):
            await channel.exchange_delete(name)
