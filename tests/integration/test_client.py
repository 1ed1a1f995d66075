"""The client library against a real RabbitMQ, with scripted gateways in raw aio-pika.

The scripted responders and replicas below do what ``docs/contract.md`` tells any
gateway to do (consume the printer queue, publish one outcome to ``reply_to`` with
``mandatory=False``; answer presence queries), so these tests also check that the
contract as written is enough to talk to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from broker.client import BrokerClient
from broker.errors import (
    BrokerUnavailable,
    ConfigurationError,
    PrinterError,
    QueueFull,
    RequestTimeout,
    UnroutableMessage,
)
from broker.schemas import (
    HEADER_CONFIRM,
    HEADER_RESPONSE,
    HEADER_TIMEOUT,
    OUTCOME_TYPE,
    PRESENCE_QUERY_TYPE,
    PRESENCE_REPLY_TYPE,
    JobStatus,
    Outcome,
    PresenceReply,
    PrinterAlert,
    PrinterOffline,
    PrinterOnline,
    PrinterPresence,
    encode_event,
)
from broker.settings import ClientSettings, load_settings
from broker.topology import Channel, Topology
from tests.support.timing import SHORT

PRINTER = "50J161000398"
OTHER = "XXQ222"
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)

#: What a scripted responder answers: (status, body, error), or None for silence.
Answer = tuple[JobStatus, bytes, str | None] | None


@pytest.fixture
def settings(
    amqp_url: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ClientSettings:
    """Client settings for this test's namespace (no developer .env)."""
    monkeypatch.chdir(tmp_path)
    return load_settings(ClientSettings, amqp_url=amqp_url, namespace=namespace)


@pytest.fixture
async def raw(
    amqp_url: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[AbstractRobustConnection]:
    """A plain aio-pika connection for the test's own AMQP work; cleans up after.

    At teardown it deletes everything this namespace may have declared.
    """
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": f"pytest {request.node.nodeid}"}
    )
    try:
        yield connection
    finally:
        topology = Topology(namespace=namespace)
        channel = await connection.channel()
        for serial in (PRINTER, OTHER):
            for printer_channel in Channel:
                await channel.queue_delete(
                    topology.printer_queue(serial, printer_channel)
                )
        await channel.queue_delete(topology.replicas_queue)
        for exchange in (
            topology.requests_exchange,
            topology.events_exchange,
            topology.dead_letter_exchange,
            topology.presence_exchange,
        ):
            await channel.exchange_delete(exchange)
        await connection.close()


@pytest.fixture
async def client(
    settings: ClientSettings,
    raw: AbstractRobustConnection,
    request: pytest.FixtureRequest,
) -> AsyncIterator[BrokerClient]:
    """A connected client, named after the test in the management UI."""
    async with BrokerClient(
        settings, connection_name=f"pytest client {request.node.nodeid}"
    ) as connected:
        yield connected


@dataclass
class Responder:
    """A scripted gateway for one printer queue: answers each request as told."""

    channel: AbstractChannel
    answer: Callable[[AbstractIncomingMessage], Answer]
    received: list[AbstractIncomingMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        # Ack first, keep state here: never hold a delivery while working.
        await message.ack()
        self.received.append(message)
        self.arrived.set()
        answer = self.answer(message)
        if answer is None or not message.reply_to:
            return
        status, body, error = answer
        outcome = Outcome(
            job_id=message.message_id or "",
            printer_serial=PRINTER,
            status=status,
            error=error,
        )
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body,
                correlation_id=message.correlation_id,
                type=OUTCOME_TYPE,
                headers=dict(outcome.to_headers()),
            ),
            routing_key=message.reply_to,
            # RabbitMQ 3.10 returns mandatory replies to direct reply-to (#6124).
            mandatory=False,
        )


@contextlib.asynccontextmanager
async def responder(
    connection: AbstractRobustConnection,
    queue: str,
    answer: Callable[[AbstractIncomingMessage], Answer],
) -> AsyncIterator[Responder]:
    """Consume ``queue`` and answer every request with ``answer(message)``."""
    channel = await connection.channel()
    scripted = Responder(channel, answer)
    consumed = await channel.get_queue(queue)
    tag = await consumed.consume(scripted.handle)
    try:
        yield scripted
    finally:
        await consumed.cancel(tag)
        await channel.close()


@dataclass
class Replica:
    """A scripted gateway replica, as far as presence goes."""

    name: str
    printers: list[PrinterPresence]
    answers: bool = True
    queries: list[AbstractIncomingMessage] = field(default_factory=list)

    async def run(
        self, connection: AbstractRobustConnection, topology: Topology
    ) -> None:
        channel = await connection.channel()
        replicas = await channel.declare_queue(topology.replicas_queue, durable=True)
        await replicas.consume(self._ignore, no_ack=True)
        if not self.answers:
            return
        presence = await channel.declare_exchange(
            topology.presence_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        control = await channel.declare_queue(
            topology.control_queue(self.name), exclusive=True, auto_delete=True
        )
        await control.bind(presence)

        async def answer(message: AbstractIncomingMessage) -> None:
            self.queries.append(message)
            assert message.reply_to is not None
            reply = PresenceReply(replica=self.name, printers=self.printers)
            await channel.default_exchange.publish(
                aio_pika.Message(
                    reply.model_dump_json(by_alias=True).encode(),
                    correlation_id=message.correlation_id,
                    type=PRESENCE_REPLY_TYPE,
                    content_type="application/json",
                ),
                routing_key=message.reply_to,
                mandatory=False,
            )

        await control.consume(answer, no_ack=True)

    @staticmethod
    async def _ignore(message: AbstractIncomingMessage) -> None:
        """Nothing is published to the replicas queue."""


def delivered(message: AbstractIncomingMessage) -> Answer:
    return JobStatus.DELIVERED, b"", None


class TestProvision:
    """``provision`` declares what the gateway declares (contract §1)."""

    async def test_declares_contract_queues(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """The printer queues exist with the contract's arguments and bindings."""
        names = await client.provision(PRINTER)
        assert names == (
            f"{namespace}.printer.{PRINTER}.raw",
            f"{namespace}.printer.{PRINTER}.config",
        )
        assert await client.provision(PRINTER) == names  # idempotent
        channel = await raw.channel()
        for name in names:
            # Passive: the queue exists.
            await channel.declare_queue(name, passive=True, robust=False)
            # Redeclaring with the contract's arguments, spelled out here, is
            # accepted only if they are exactly the ones provision used.
            await channel.declare_queue(
                name,
                durable=True,
                robust=False,
                arguments={
                    "x-dead-letter-exchange": f"{namespace}.dlx",
                    "x-max-length": 10_000,
                    "x-overflow": "reject-publish",
                    "x-single-active-consumer": True,
                    "x-queue-type": "classic",
                },
            )
        for exchange, kind in (
            ("requests", "direct"),
            ("events", "topic"),
            ("dlx", "fanout"),
        ):
            await channel.declare_exchange(
                f"{namespace}.{exchange}", kind, durable=True, robust=False
            )
        requests = await channel.get_exchange(f"{namespace}.requests")
        await requests.publish(aio_pika.Message(b"{}"), f"{PRINTER}.config")
        config = await channel.get_queue(names[1])
        async with asyncio.timeout(SHORT):
            message = await config.get(fail=True)
        assert message.body == b"{}"
        await message.ack()

    async def test_different_arguments_are_refused(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """A redeclaration with another length limit fails, so the check above bites."""
        await client.provision(PRINTER)
        channel = await raw.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue(
                f"{namespace}.printer.{PRINTER}.raw",
                durable=True,
                robust=False,
                arguments={"x-max-length": 5},
            )

    async def test_conflicting_settings(
        self, client: BrokerClient, settings: ClientSettings
    ) -> None:
        """Provisioning with other queue settings is a ConfigurationError naming them."""
        await client.provision(PRINTER)
        other = load_settings(
            ClientSettings, **(settings.model_dump() | {"queue_max_length": 5})
        )
        async with BrokerClient(other) as mismatched:
            with pytest.raises(
                ConfigurationError, match="ZEBRA_BROKER_QUEUE_MAX_LENGTH"
            ):
                await mismatched.provision(PRINTER)
            # The failed declaration did not break the client's reply channel.
            await mismatched.provision(OTHER)

    async def test_queue_full(
        self, settings: ClientSettings, raw: AbstractRobustConnection
    ) -> None:
        """Past x-max-length the publish is nacked: QueueFull names the queue."""
        tiny = load_settings(
            ClientSettings, **(settings.model_dump() | {"queue_max_length": 1})
        )
        async with BrokerClient(tiny) as client:
            await client.provision(PRINTER)
            await client.submit(PRINTER, b"^XA^XZ")
            with pytest.raises(QueueFull) as caught:
                await client.submit(PRINTER, b"^XA^XZ")
            assert caught.value.printer_serial == PRINTER
            assert caught.value.queue == f"{tiny.namespace}.printer.{PRINTER}.raw"
            # The channel survives a nack: the config queue still takes requests.
            await client.submit(PRINTER, b'{"a": null}', type="zebra.sgd")


class TestUnroutable:
    """Requests for printers that have no queue (mandatory publishing)."""

    async def test_unknown_printer(self, client: BrokerClient) -> None:
        """A printer without queues is UnroutableMessage (basic.return)."""
        await client.provision(PRINTER)
        with pytest.raises(UnroutableMessage) as caught:
            await client.print(OTHER, "^XA^XZ")
        assert caught.value.printer_serial == OTHER
        assert caught.value.routing_key == f"{OTHER}.raw"
        # The channel survives a return.
        await client.submit(PRINTER, b"^XA^XZ")

    async def test_no_topology_at_all(self, client: BrokerClient) -> None:
        """Before anything was declared, requests are UnroutableMessage too."""
        with pytest.raises(UnroutableMessage, match="provision"):
            await client.print(PRINTER, "^XA^XZ")


class TestRoundTrips:
    """Requests and outcomes through a scripted gateway (contract §1-2)."""

    async def test_print(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """print() returns the outcome; the request carries the contract's properties."""
        await client.provision(PRINTER)
        queue = f"{namespace}.printer.{PRINTER}.raw"
        async with responder(raw, queue, delivered) as gateway:
            async with asyncio.timeout(SHORT):
                outcome = await client.print(
                    PRINTER, "^XA^FDhi^FS^XZ", confirm="printed", expiration=60
                )
        assert outcome.status is JobStatus.DELIVERED
        assert outcome.printer_serial == PRINTER
        (request,) = gateway.received
        assert request.body == b"^XA^FDhi^FS^XZ"
        assert request.message_id == outcome.job_id == outcome.correlation_id
        assert request.correlation_id == request.message_id
        assert request.type == "zebra.print"
        assert request.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert request.expiration == 60
        assert request.headers[HEADER_CONFIRM] == "printed"
        assert request.reply_to is not None
        assert request.reply_to.startswith("amq.rabbitmq.reply-to.")

    async def test_failed_outcome_is_returned(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """print() returns a non-success outcome with its error; it does not raise."""
        await client.provision(PRINTER)

        def fail(message: AbstractIncomingMessage) -> Answer:
            return JobStatus.UNCERTAIN, b"", "the raw channel closed before the ack"

        async with responder(raw, f"{namespace}.printer.{PRINTER}.raw", fail):
            async with asyncio.timeout(SHORT):
                outcome = await client.print(PRINTER, b"^XA^XZ")
        assert outcome.status is JobStatus.UNCERTAIN
        assert outcome.error == "the raw channel closed before the ack"

    async def test_sgd_get(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """sgd_get() sends a JSON object of nulls and returns the answer's values."""
        await client.provision(PRINTER)

        def answer(message: AbstractIncomingMessage) -> Answer:
            names = json.loads(message.body)
            values = {name: "LINE-3" for name in names}
            return JobStatus.OK, json.dumps(values).encode(), None

        queue = f"{namespace}.printer.{PRINTER}.config"
        async with responder(raw, queue, answer) as gateway:
            async with asyncio.timeout(SHORT):
                values = await client.sgd_get(
                    PRINTER, "device.friendly_name", timeout_ms=2500
                )
        assert values == {"device.friendly_name": "LINE-3"}
        (request,) = gateway.received
        assert json.loads(request.body) == {"device.friendly_name": None}
        assert request.type == "zebra.sgd"
        assert request.headers[HEADER_TIMEOUT] == 2500

    async def test_query(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """query() returns the answer's bytes and raises PrinterError when not ok."""
        await client.provision(PRINTER)
        answers: list[Answer] = [
            (JobStatus.OK, b"\x02030,0,0\x03\r\n", None),
            (JobStatus.TIMEOUT, b"", "the printer did not answer within 0.5 s"),
        ]

        def answer(message: AbstractIncomingMessage) -> Answer:
            return answers.pop(0)

        queue = f"{namespace}.printer.{PRINTER}.raw"
        async with responder(raw, queue, answer) as gateway:
            async with asyncio.timeout(SHORT):
                assert await client.query(PRINTER, "~HS", response="frames:3") == (
                    b"\x02030,0,0\x03\r\n"
                )
                with pytest.raises(PrinterError, match="timeout") as caught:
                    await client.query(PRINTER, "~HS", response="line", timeout_ms=500)
        assert caught.value.outcome.status is JobStatus.TIMEOUT
        first, second = gateway.received
        assert first.type == "zebra.query"
        assert first.headers[HEADER_RESPONSE] == "frames:3"
        assert second.headers[HEADER_RESPONSE] == "line"
        assert second.headers[HEADER_TIMEOUT] == 500

    async def test_outcomes_out_of_order(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """Concurrent jobs each get their own outcome, whatever the reply order."""
        await client.provision(PRINTER)
        count = 5
        async with responder(
            raw, f"{namespace}.printer.{PRINTER}.raw", lambda m: None
        ) as gw:
            handles = [
                await client.submit(PRINTER, f"job {i}".encode()) for i in range(count)
            ]
            async with asyncio.timeout(SHORT):
                while len(gw.received) < count:
                    gw.arrived.clear()
                    await gw.arrived.wait()
            for message in reversed(gw.received):
                outcome = Outcome(
                    job_id=message.message_id or "",
                    printer_serial=PRINTER,
                    status=JobStatus.DELIVERED,
                )
                await gw.channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,  # echo the body to tell the outcomes apart
                        correlation_id=message.correlation_id,
                        type=OUTCOME_TYPE,
                        headers=dict(outcome.to_headers()),
                    ),
                    routing_key=message.reply_to or "",
                    mandatory=False,
                )
            async with asyncio.timeout(SHORT):
                outcomes = [await handle.outcome() for handle in handles]
        assert [outcome.body for outcome in outcomes] == [
            f"job {i}".encode() for i in range(count)
        ]
        assert [outcome.job_id for outcome in outcomes] == [h.job_id for h in handles]

    async def test_request_timeout(self, client: BrokerClient) -> None:
        """Without an answer, print() raises RequestTimeout naming the job."""
        await client.provision(PRINTER)
        with pytest.raises(RequestTimeout, match="no outcome for job") as caught:
            await client.print(PRINTER, "^XA^XZ", timeout=0.2)
        assert caught.value.timeout == 0.2


class TestEvents:
    """Subscribing to ``<ns>.events`` (contract §3)."""

    async def test_events_with_pattern(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """events() yields decoded events that match its pattern, in order."""
        async with client.events(f"printer.{PRINTER}.*") as events:
            channel = await raw.channel()
            exchange = await channel.get_exchange(f"{namespace}.events")
            topology = Topology(namespace=namespace)
            alert = PrinterAlert(
                printer=PRINTER,
                condition="paper_out",
                condition_name="PAPER OUT",
                state="set",
            )
            published = [
                (
                    topology.online_key(PRINTER),
                    PrinterOnline(printer=PRINTER, model="ZD621"),
                ),
                (
                    topology.alert_key(PRINTER, "paper_out"),
                    alert,
                ),  # two words: no match
                (
                    topology.online_key(OTHER),
                    PrinterOnline(printer=OTHER),
                ),  # other printer
                (topology.offline_key(PRINTER), PrinterOffline(printer=PRINTER)),
            ]
            for routing_key, event in published:
                await exchange.publish(
                    aio_pika.Message(encode_event(event)), routing_key
                )
            await exchange.publish(
                aio_pika.Message(b"not json"), topology.data_key(PRINTER)
            )
            async with asyncio.timeout(SHORT):
                first = await anext(events)
                second = await anext(events)
        assert isinstance(first, PrinterOnline)
        assert first.model == "ZD621"
        assert isinstance(second, PrinterOffline)
        assert second.printer == PRINTER

    async def test_subscription_queue_is_deleted(
        self, client: BrokerClient, raw: AbstractRobustConnection
    ) -> None:
        """Leaving events() deletes its queue."""
        stream = client.events("#")
        async with stream:
            queue_name = stream._subscription.queue_name
        channel = await raw.channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(queue_name, passive=True, robust=False)

    async def test_iteration_ends_when_client_closes(
        self, settings: ClientSettings, raw: AbstractRobustConnection
    ) -> None:
        """Closing the client ends an ``async for`` over its events."""
        client = BrokerClient(settings)
        async with client, client.events("#") as events:

            async def collect() -> list[Any]:
                return [event async for event in events]

            iterating = asyncio.create_task(collect())
            await client.close()
            async with asyncio.timeout(SHORT):
                assert await iterating == []


def claim(serial: str, replica: str, minutes: int) -> PrinterPresence:
    return PrinterPresence(
        printer=serial,
        replica=replica,
        since=T0 + timedelta(minutes=minutes),
        model="ZD621",
    )


class TestPrinters:
    """Presence: which printers are online (contract §4, docs/contract.md)."""

    async def test_merges_replicas(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """Two replicas answer; a printer both claim is listed from the newer claim."""
        topology = Topology(namespace=namespace)
        first = Replica("gw-1", [claim(PRINTER, "gw-1", 0), claim("A1", "gw-1", 3)])
        second = Replica("gw-2", [claim(PRINTER, "gw-2", 5)])
        for replica in (first, second):
            await replica.run(raw, topology)
        # A generous presence timeout: returning in time proves the client stopped
        # waiting as soon as both counted replicas had answered.
        async with asyncio.timeout(SHORT):
            printers = await client.printers(timeout=SHORT * 10)
        assert printers.is_complete
        assert printers.expected_replicas == 2
        assert printers.replicas == ("gw-1", "gw-2")
        # One row per printer, sorted by serial; the newer claim wins.
        assert [(p.printer, p.replica) for p in printers] == [
            (PRINTER, "gw-2"),
            ("A1", "gw-1"),
        ]
        (query,) = first.queries
        assert query.type == PRESENCE_QUERY_TYPE
        assert query.body == b""
        assert query.correlation_id

    async def test_waits_for_every_counted_replica(
        self, client: BrokerClient, raw: AbstractRobustConnection, namespace: str
    ) -> None:
        """With three replicas counted and two answering, the list is incomplete."""
        topology = Topology(namespace=namespace)
        replicas = [
            Replica("gw-1", [claim("A1", "gw-1", 0)]),
            Replica("gw-2", [claim("B2", "gw-2", 0)]),
            Replica("gw-3", [], answers=False),
        ]
        for replica in replicas:
            await replica.run(raw, topology)
        async with asyncio.timeout(SHORT):
            printers = await client.printers(timeout=0.5)
        assert not printers.is_complete
        assert printers.expected_replicas == 3
        assert printers.replicas == ("gw-1", "gw-2")
        assert [p.printer for p in printers] == ["A1", "B2"]

    async def test_no_replica(self, client: BrokerClient) -> None:
        """Without any replica the list is empty and complete, with no waiting."""
        async with asyncio.timeout(SHORT):
            printers = await client.printers(timeout=SHORT * 10)
        assert printers == []
        assert printers.is_complete
        assert printers.expected_replicas == 0


async def test_connection_refused(
    namespace: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """An unreachable broker is BrokerUnavailable, naming host and port."""
    monkeypatch.chdir(tmp_path)
    client = BrokerClient(
        amqp_url="amqp://guest:guest@127.0.0.1:1/", namespace=namespace
    )
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1"):
        await client.connect()


async def test_login_refused(
    amqp_url: str, namespace: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """A wrong password is BrokerUnavailable that says to check the credentials."""
    monkeypatch.chdir(tmp_path)
    url = amqp_url.replace("guest:guest@", "guest:wrong@")
    client = BrokerClient(amqp_url=url, namespace=namespace)
    with pytest.raises(BrokerUnavailable) as caught:
        await client.connect()
    assert "wrong" not in str(caught.value)
