"""The client library without a broker: validation, reply routing, presence merging.

These tests drive ``BrokerClient`` through its reply entry points
(``_on_reply``, ``_on_replies_lost``) with plain :class:`ReceivedMessage` objects;
publishing, confirms and direct reply-to are covered in
``tests/integration/test_client.py`` against RabbitMQ.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.amqp import OutgoingMessage, ReceivedMessage
from broker.client import (
    BrokerClient,
    JobHandle,
    PresenceList,
    merge_presence,
)
from broker.errors import (
    BrokerUnavailable,
    ConfigurationError,
    RequestTimeout,
    SchemaError,
)
from broker.schemas import (
    HEADER_JOB_ID,
    HEADER_PRINTER,
    HEADER_STATUS,
    PRESENCE_REPLY_TYPE,
    JobStatus,
    Outcome,
    PresenceReply,
    PrinterPresence,
    RequestType,
)
from broker.settings import ClientSettings, load_settings

SERIAL = "50J161000398"
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> BrokerClient:
    """A client that is never connected."""
    monkeypatch.chdir(tmp_path)
    return BrokerClient(namespace="unit")


def outcome_message(
    job_id: str, status: str = "delivered", **extra: Any
) -> ReceivedMessage:
    headers = {HEADER_STATUS: status, HEADER_JOB_ID: job_id, HEADER_PRINTER: SERIAL}
    return ReceivedMessage(
        body=extra.pop("body", b""),
        headers=headers | extra.pop("headers", {}),
        correlation_id=job_id,
        type="zebra.outcome",
        **extra,
    )


def pending(client: BrokerClient, job_id: str) -> JobHandle:
    """Register a job as if it had been published, and return its handle."""
    future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    client._pending[job_id] = future
    return JobHandle(
        client,
        job_id=job_id,
        printer_serial=SERIAL,
        request_type=RequestType.PRINT,
        future=future,
    )


class TestConstruction:
    """Settings handed to the client."""

    def test_overrides(self, client: BrokerClient) -> None:
        """Keyword overrides beat settings; the topology follows the namespace."""
        assert client.settings.namespace == "unit"
        assert client.topology.requests_exchange == "unit.requests"
        assert client.connection_name.startswith("zebra-broker ")

    def test_overrides_on_given_settings(self, tmp_path: Any, monkeypatch: Any) -> None:
        """Overrides apply on top of explicit settings, keeping the other fields."""
        monkeypatch.chdir(tmp_path)
        settings = load_settings(ClientSettings, request_timeout=4, namespace="a")
        client = BrokerClient(
            settings, amqp_url="amqp://u:p@h:1/v", namespace="b", connection_name="t"
        )
        assert client.settings.namespace == "b"
        assert client.settings.request_timeout == 4
        assert client.settings.amqp_url_for_logs == "amqp://h:1/v"
        assert client.connection_name == "t"

    def test_bad_override(self, tmp_path: Any, monkeypatch: Any) -> None:
        """An invalid namespace is a ConfigurationError naming the setting."""
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ConfigurationError, match="--namespace"):
            BrokerClient(namespace="a.b")


class TestSubmitValidation:
    """Requests are checked before anything is published."""

    @pytest.mark.parametrize(
        ("serial", "body", "options", "message"),
        [
            ("a.b", b"x", {}, "invalid printer serial"),
            (SERIAL, b"", {}, "empty body"),
            (SERIAL, b"x", {"type": "zebra.fax"}, "unknown request type"),
            (SERIAL, b"~HS", {"type": RequestType.QUERY}, "needs response="),
            (
                SERIAL,
                b"~HS",
                {"type": RequestType.QUERY, "response": "frames:0"},
                "unknown x-zebra-response",
            ),
            (SERIAL, b"x", {"response": "line"}, "response= is for zebra.query"),
            (SERIAL, b"x", {"timeout_ms": 10}, "timeout_ms= is for"),
            (
                SERIAL,
                b"~HS",
                {"type": RequestType.QUERY, "response": "idle", "timeout_ms": 0},
                "from 1 to 600000",
            ),
            (
                SERIAL,
                b"~HS",
                {"type": RequestType.QUERY, "response": "idle", "timeout_ms": 600_001},
                "from 1 to 600000",
            ),
            (SERIAL, b"{}", {"type": RequestType.SGD}, "non-empty JSON object"),
            (SERIAL, b"x", {"type": RequestType.SGD}, "not valid UTF-8 JSON"),
            (
                SERIAL,
                b"{}",
                {"type": RequestType.SGD, "confirm": "printed"},
                "confirm= is",
            ),
            (SERIAL, b"x", {"confirm": "soon"}, "unknown confirm"),
            (SERIAL, b"x", {"expiration": 0}, "expiration must be a positive"),
            (SERIAL, b"x", {"expiration": -1.5}, "expiration must be a positive"),
        ],
    )
    async def test_invalid(
        self,
        client: BrokerClient,
        serial: str,
        body: bytes,
        options: dict[str, Any],
        message: str,
    ) -> None:
        """Invalid requests raise SchemaError without touching the network."""
        with pytest.raises(SchemaError, match=message):
            await client.submit(serial, body, **options)

    async def test_valid_needs_connection(self, client: BrokerClient) -> None:
        """A valid request on a client that is not connected is BrokerUnavailable."""
        with pytest.raises(BrokerUnavailable, match="not connected"):
            await client.submit(
                SERIAL,
                b"~HS",
                type=RequestType.QUERY,
                response="frames:3",
                timeout_ms=50,
            )

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda c: c.sgd_get(SERIAL), "at least one setting name"),
            (lambda c: c.sgd_set(SERIAL, "device.friendly_name"), "needs a value"),
            (lambda c: c.sgd_set(SERIAL, {"a": None}), "None .a read. is not allowed"),
            (lambda c: c.sgd(SERIAL, {"a": [1]}), "must be None"),
            (lambda c: c.sgd(SERIAL, {"a": True}), "must be None"),
        ],
    )
    async def test_sgd_arguments(
        self, client: BrokerClient, call: Any, message: str
    ) -> None:
        """SGD helpers check their arguments before sending."""
        with pytest.raises(SchemaError, match=message):
            await call(client)

    def test_events_pattern(self, client: BrokerClient) -> None:
        """events() needs a pattern of 1 to 255 bytes."""
        with pytest.raises(SchemaError, match="1 to 255 bytes"):
            client.events("")

    async def test_duplicate_job_id(self, client: BrokerClient) -> None:
        """A job id that is still in flight cannot be reused."""
        pending(client, "job-1")
        with pytest.raises(SchemaError, match="already in flight"):
            await client.submit(SERIAL, b"x", job_id="job-1")


class TestReplies:
    """Outcomes arriving on the reply consumer."""

    async def test_outcome_resolves_handle(self, client: BrokerClient) -> None:
        """The outcome with the handle's correlation id completes it."""
        handle = pending(client, "job-1")
        client._on_reply(outcome_message("job-1", "ok", body=b"answer"))
        async with asyncio.timeout(1):
            outcome = await handle.outcome()
        assert outcome.status is JobStatus.OK
        assert outcome.body == b"answer"
        assert outcome.correlation_id == "job-1"
        assert handle.done()
        assert "job-1" not in client._pending

    async def test_timeout_then_wait_again(self, client: BrokerClient) -> None:
        """A timed-out wait raises RequestTimeout and the handle keeps listening."""
        handle = pending(client, "job-2")
        with pytest.raises(RequestTimeout, match="job-2") as caught:
            await handle.outcome(timeout=0.01)
        assert caught.value.job_id == "job-2"
        assert isinstance(caught.value, TimeoutError)
        client._on_reply(outcome_message("job-2"))
        async with asyncio.timeout(1):
            assert (await handle.outcome()).status is JobStatus.DELIVERED

    async def test_discard_ignores_late_outcome(self, client: BrokerClient) -> None:
        """After discard(), a late outcome is dropped quietly."""
        handle = pending(client, "job-3")
        handle.discard()
        client._on_reply(outcome_message("job-3"))
        assert "job-3" not in client._pending

    async def test_unknown_correlation_id(self, client: BrokerClient) -> None:
        """An outcome nobody waits for is ignored."""
        handle = pending(client, "job-4")
        client._on_reply(outcome_message("someone-else"))
        assert not handle.done()

    async def test_malformed_outcome(self, client: BrokerClient) -> None:
        """A reply that breaks the contract fails its handle with SchemaError."""
        handle = pending(client, "job-5")
        client._on_reply(outcome_message("job-5", "maybe"))
        with pytest.raises(SchemaError, match="malformed outcome"):
            await handle.outcome(timeout=1)

    async def test_connection_lost(self, client: BrokerClient) -> None:
        """Losing the reply channel fails every waiting handle."""
        first, second = pending(client, "a"), pending(client, "b")
        client._on_replies_lost(BrokerUnavailable("gone"))
        for handle in (first, second):
            with pytest.raises(BrokerUnavailable, match="gone"):
                await handle.outcome(timeout=1)
        assert client._pending == {}

    async def test_close_fails_waiting_handles(self, client: BrokerClient) -> None:
        """Closing the client ends every wait with BrokerUnavailable."""
        handle = pending(client, "c")
        await client.close()
        with pytest.raises(BrokerUnavailable, match="client was closed"):
            await handle.outcome(timeout=1)

    async def test_presence_reply_routed(self, client: BrokerClient) -> None:
        """Presence replies go to the collector of their query, not to jobs."""
        collector: asyncio.Queue[PresenceReply] = asyncio.Queue()
        client._presence["q-1"] = collector
        reply = PresenceReply(replica="gw-1", printers=[])
        client._on_reply(
            ReceivedMessage(
                body=reply.model_dump_json(by_alias=True).encode(),
                headers={},
                correlation_id="q-1",
                type=PRESENCE_REPLY_TYPE,
            )
        )
        client._on_reply(
            ReceivedMessage(
                body=b"{}", headers={}, correlation_id="q-1", type=PRESENCE_REPLY_TYPE
            )
        )
        assert collector.get_nowait() == reply
        assert collector.empty()


def presence(serial: str, replica: str, minutes: int) -> PrinterPresence:
    return PrinterPresence(
        printer=serial, replica=replica, since=T0 + timedelta(minutes=minutes)
    )


class TestPresence:
    """Merging replicas' presence replies (docs/contract.md, presence)."""

    def test_merge_keeps_newest_claim(self) -> None:
        """A printer claimed twice is listed once, from the newest claim."""
        replies = [
            PresenceReply(
                replica="gw-1",
                printers=[presence("B", "gw-1", 5), presence("A", "gw-1", 0)],
            ),
            PresenceReply(
                replica="gw-2",
                printers=[presence("B", "gw-2", 1), presence("C", "gw-2", 2)],
            ),
        ]
        merged = merge_presence(replies)
        assert [(p.printer, p.replica) for p in merged] == [
            ("A", "gw-1"),
            ("B", "gw-1"),
            ("C", "gw-2"),
        ]

    def test_completeness(self) -> None:
        """A list is complete when every counted replica answered."""
        assert PresenceList(expected_replicas=0).is_complete
        assert not PresenceList(expected_replicas=2, replicas=["gw-1"]).is_complete
        complete = PresenceList(
            [presence("A", "gw-1", 0)], expected_replicas=2, replicas=["gw-2", "gw-1"]
        )
        assert complete.is_complete
        assert complete.replicas == ("gw-1", "gw-2")
        assert complete == [presence("A", "gw-1", 0)]


class TestOutgoingMessage:
    """The AMQP properties of a request (contract §1)."""

    def test_properties(self) -> None:
        """Expiration is sent in milliseconds; delivery is persistent by default."""
        message = OutgoingMessage(
            body=b"^XA^XZ",
            message_id="job-1",
            correlation_id="job-1",
            reply_to="amq.rabbitmq.reply-to",
            type="zebra.print",
            headers={"x-zebra-confirm": "printed"},
            expiration=1.5,
        )
        properties = message.properties()
        assert properties.expiration == "1500"
        assert properties.delivery_mode == 2
        assert properties.message_id == "job-1"
        assert properties.correlation_id == "job-1"
        assert properties.reply_to == "amq.rabbitmq.reply-to"
        assert properties.message_type == "zebra.print"
        assert properties.headers == {"x-zebra-confirm": "printed"}
        assert properties.app_id == "zebra-broker"
