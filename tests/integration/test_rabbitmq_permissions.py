"""The users in ``deploy/rabbitmq/definitions.json`` can do their jobs and no more.

The very file is imported with ``rabbitmqctl import_definitions`` once per module,
into a vhost of its own with user names and passwords made unique for the run
(permission regexes unchanged: the namespace is ``zebra`` inside that vhost), and
deleted afterwards. Then, against the real RabbitMQ:

* the producer publishes requests, subscribes to events and, through the client
  library, prints on an emulated printer served by a gateway running as the gateway
  user;
* the producer cannot consume, purge or delete a printer queue, publish events,
  publish straight to a queue, or bind a queue to the requests exchange.

``rabbitmqctl`` must be able to manage the test broker (root or the rabbitmq user,
same host); locally the module skips without it, under CI it fails.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
)

from broker.amqp import declare_printer_topology
from broker.client import BrokerClient
from broker.settings import ClientSettings
from broker.topology import Channel, Topology
from tests.support.harness import Harness
from tests.support.rabbitmq import amqp_url as find_amqp_url
from tests.support.timing import SHORT

DEFINITIONS = Path(__file__).parents[2] / "deploy" / "rabbitmq" / "definitions.json"
SERIAL = "50J161000398"
TOPOLOGY = Topology()  # namespace "zebra", as the definitions' regexes expect


def rabbit_password_hash(password: str) -> str:
    """Hash a password as ``rabbit_password_hashing_sha256`` does (4-byte salt)."""
    salt = os.urandom(4)
    return base64.b64encode(
        salt + hashlib.sha256(salt + password.encode()).digest()
    ).decode()


def rename(
    definitions: dict[str, Any], suffix: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Give the vhost and users unique names and random passwords.

    Returns:
        The new definitions and each original user name's password.
    """
    result = copy.deepcopy(definitions)
    [vhost] = result["vhosts"]
    old_vhost, new_vhost = vhost["name"], f"{vhost['name']}-{suffix}"
    vhost["name"] = new_vhost
    names: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for user in result["users"]:
        passwords[user["name"]] = secrets.token_urlsafe(16)
        user["password_hash"] = rabbit_password_hash(passwords[user["name"]])
        names[user["name"]] = f"{user['name']}-{suffix}"
        user["name"] = names[user["name"]]
    for section in ("permissions", "topic_permissions", "policies"):
        for entry in result.get(section, []):
            assert entry["vhost"] == old_vhost
            entry["vhost"] = new_vhost
            if "user" in entry:
                entry["user"] = names[entry["user"]]
    return result, passwords


def rabbitmqctl(*commands: list[str]) -> None:
    """Run ``rabbitmqctl`` commands in parallel; fail with their output."""
    processes = [
        subprocess.Popen(
            ["rabbitmqctl", "-q", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for command in commands
    ]
    for command, process in zip(commands, processes, strict=True):
        output, _ = process.communicate(timeout=60)
        if process.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(command)}: {output.strip()}")


def import_definitions(definitions: dict[str, Any]) -> None:
    """Import definitions through a file the rabbitmq user can read.

    Debian's wrapper runs the tool as that user, who cannot read pytest's temporary
    directories, and 3.10 does not read definitions from stdin.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(definitions, file)
        file.flush()
        os.chmod(file.name, 0o644)
        rabbitmqctl(["import_definitions", file.name])


@dataclass(frozen=True)
class Users:
    """AMQP URLs of the imported users, in their vhost."""

    gateway_url: str
    producer_url: str


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    """Import the definitions under unique names; delete them afterwards."""
    base = find_amqp_url()
    required = os.environ.get("CI") == "true"
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not installed: cannot import definitions"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    suffix = uuid.uuid4().hex[:10]
    definitions, passwords = rename(json.loads(DEFINITIONS.read_text()), suffix)
    try:
        import_definitions(definitions)
    except RuntimeError as exc:
        if required:
            pytest.fail(str(exc))
        pytest.skip(f"cannot manage the test RabbitMQ: {exc}")
    vhost = definitions["vhosts"][0]["name"]
    parts = urlsplit(base)
    location = f"{parts.hostname}:{parts.port or 5672}/{quote(vhost, safe='')}"

    def url(user: str) -> str:
        return f"amqp://{user}-{suffix}:{passwords[user]}@{location}"

    try:
        yield Users(url("zebra-gateway"), url("zebra-producer"))
    finally:
        rabbitmqctl(
            ["delete_vhost", vhost],
            *(["delete_user", user["name"]] for user in definitions["users"]),
        )


@pytest.fixture
async def gateway_channel(users: Users) -> AsyncIterator[AbstractChannel]:
    """A channel as the gateway user, with one printer's topology declared."""
    connection = await aio_pika.connect(users.gateway_url)
    async with connection:
        channel = await connection.channel()
        await declare_printer_topology(channel, TOPOLOGY, SERIAL)
        yield channel


@pytest.fixture
async def producer(users: Users) -> AsyncIterator[AbstractConnection]:
    """A connection as the producer user.

    Not a robust one: aio-pika's robust channels name "server-named" queues
    themselves (``amq_...``), which the definitions do not allow.
    """
    connection = await aio_pika.connect(users.producer_url)
    async with connection:
        yield connection


async def refused(connection: AbstractConnection, action: Any) -> bool:
    """Run ``action(channel)`` on a fresh channel; whether RabbitMQ refused it (403)."""
    channel = await connection.channel(publisher_confirms=True)
    try:
        await action(channel)
    except aiormq.exceptions.ChannelAccessRefused:
        return True
    finally:
        if not channel.is_closed:
            await channel.close()
    return False


class TestProducerMay:
    """What a producer service needs."""

    async def test_publish_a_request(self, gateway_channel, producer):
        """A request published to zebra.requests reaches the printer's queue."""
        channel = await producer.channel(publisher_confirms=True)
        requests = await channel.get_exchange(TOPOLOGY.requests_exchange)
        await requests.publish(
            aio_pika.Message(b"^XA^XZ", message_id="job-1", type="zebra.print"),
            routing_key=TOPOLOGY.request_key(SERIAL, Channel.RAW),
            mandatory=True,
        )
        queue = await gateway_channel.get_queue(
            TOPOLOGY.printer_queue(SERIAL, Channel.RAW)
        )
        message = await queue.get(timeout=SHORT)
        assert message is not None
        assert message.body == b"^XA^XZ"
        await message.ack()

    @pytest.mark.parametrize(
        "named", [False, True], ids=["server-named", "zebra.watch"]
    )
    async def test_subscribe_to_events(self, gateway_channel, producer, named):
        """Its own exclusive queue, bound to zebra.events, receives events."""
        channel = await producer.channel()
        events = await channel.get_exchange(TOPOLOGY.events_exchange)  # passive
        name = f"zebra.watch.{uuid.uuid4().hex[:16]}" if named else ""
        queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key=f"job.{SERIAL}.#")
        published = await gateway_channel.get_exchange(TOPOLOGY.events_exchange)
        await published.publish(
            aio_pika.Message(b'{"status": "delivered"}'),
            routing_key=TOPOLOGY.job_key(SERIAL, "delivered"),
        )
        async with queue.iterator() as messages:
            async for message in messages:
                assert message.routing_key == f"job.{SERIAL}.delivered"
                await message.ack()
                break

    async def test_look_up_without_permissions(self, gateway_channel, producer):
        """Passive declarations (used by the client library) need no permission."""
        channel = await producer.channel()
        await channel.get_exchange(TOPOLOGY.requests_exchange, ensure=True)
        queue = await channel.get_queue(
            TOPOLOGY.printer_queue(SERIAL, Channel.RAW), ensure=True
        )
        assert queue.declaration_result.consumer_count == 0

    async def test_client_library_prints(self, users):
        """A gateway running as the gateway user serves a producer's print job."""
        harness = Harness(users.gateway_url, TOPOLOGY.namespace)
        try:
            gateway = await harness.gateway()
            printer = await harness.printer(harness.url(gateway), SERIAL)
            client = BrokerClient(
                ClientSettings(amqp_url=users.producer_url, namespace="zebra")
            )
            async with client:
                outcome = await client.print(SERIAL, b"^XA^FDok^FS^XZ", timeout=SHORT)
                assert outcome.status.value == "delivered"
                assert await printer.wait_for_labels(1, timeout=SHORT)
                online = await client.printers(timeout=SHORT)
                assert [row.printer for row in online] == [SERIAL]
        finally:
            await harness.close()

    async def test_client_library_watches_events(self, gateway_channel, users):
        """The client library's events() works with the producer's permissions."""
        client = BrokerClient(
            ClientSettings(amqp_url=users.producer_url, namespace="zebra")
        )
        async with client, client.events(f"job.{SERIAL}.#"):
            pass


class TestProducerMayNot:
    """What a producer must never do."""

    async def test_consume_a_printer_queue(self, gateway_channel, producer):
        """Consuming or reading a printer's queue is refused."""
        name = TOPOLOGY.printer_queue(SERIAL, Channel.RAW)

        async def ignore(message: AbstractIncomingMessage) -> None:
            """Never called."""

        async def consume(channel: AbstractChannel) -> None:
            queue = await channel.get_queue(name, ensure=True)
            await queue.consume(ignore)

        async def get(channel: AbstractChannel) -> None:
            queue = await channel.get_queue(name, ensure=True)
            await queue.get(fail=False)

        assert await refused(producer, consume)
        assert await refused(producer, get)

    async def test_purge_or_delete_a_printer_queue(self, gateway_channel, producer):
        """Purging or deleting a printer's queue is refused."""
        name = TOPOLOGY.printer_queue(SERIAL, Channel.CONFIG)

        async def purge(channel: AbstractChannel) -> None:
            await (await channel.get_queue(name, ensure=True)).purge()

        async def delete(channel: AbstractChannel) -> None:
            await channel.queue_delete(name)

        assert await refused(producer, purge)
        assert await refused(producer, delete)

    async def test_publish_events(self, gateway_channel, producer):
        """Publishing to zebra.events (faking outcomes or alerts) is refused."""

        async def publish(channel: AbstractChannel) -> None:
            events = await channel.get_exchange(TOPOLOGY.events_exchange)
            await events.publish(
                aio_pika.Message(b"{}"), routing_key=f"job.{SERIAL}.delivered"
            )

        assert await refused(producer, publish)

    async def test_publish_straight_to_a_queue(self, gateway_channel, producer):
        """The default exchange (straight into a printer queue or a reply) is refused."""

        async def publish(channel: AbstractChannel) -> None:
            await channel.default_exchange.publish(
                aio_pika.Message(b"^XA^XZ"),
                routing_key=TOPOLOGY.printer_queue(SERIAL, Channel.RAW),
            )

        assert await refused(producer, publish)

    @pytest.mark.parametrize(
        "exchange",
        [
            TOPOLOGY.requests_exchange,
            TOPOLOGY.control_exchange,
            TOPOLOGY.dead_letter_exchange,
        ],
    )
    async def test_snoop_on_gateway_exchanges(
        self, gateway_channel, producer, exchange
    ):
        """Binding its own queue to requests, control or dead letters is refused."""
        if exchange == TOPOLOGY.control_exchange:
            declared = await gateway_channel.declare_exchange(
                exchange, "direct", durable=True
            )
            assert declared.name == exchange

        async def bind(channel: AbstractChannel) -> None:
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(exchange, routing_key="#")

        assert await refused(producer, bind)

    async def test_delete_an_exchange(self, gateway_channel, producer):
        """Deleting (or redeclaring) zebra.events is refused."""

        async def delete(channel: AbstractChannel) -> None:
            await channel.exchange_delete(TOPOLOGY.events_exchange)

        async def declare(channel: AbstractChannel) -> None:
            await channel.declare_exchange(
                TOPOLOGY.events_exchange, "topic", durable=True
            )

        assert await refused(producer, delete)
        assert await refused(producer, declare)
