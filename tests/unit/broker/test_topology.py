"""Names and declarations of the topology (contract §1, docs/contract.md)."""

from __future__ import annotations

import pytest

from broker.amqp import public_exchange_specs
from broker.topology import Channel, Topology, check_serial, is_valid_serial

SERIAL = "50J161000398"


def test_exchange_names() -> None:
    """Every exchange is prefixed with the namespace."""
    topology = Topology(namespace="acme")
    assert topology.requests_exchange == "acme.requests"
    assert topology.events_exchange == "acme.events"
    assert topology.dead_letter_exchange == "acme.dlx"
    assert topology.presence_exchange == "acme.presence"
    assert topology.replicas_queue == "acme.replicas"


def test_public_exchange_declarations() -> None:
    """requests is direct, events topic, dlx fanout; all durable."""
    specs = {spec.name: spec for spec in public_exchange_specs(Topology())}
    assert {name: (spec.kind, spec.durable) for name, spec in specs.items()} == {
        "zebra.requests": ("direct", True),
        "zebra.events": ("topic", True),
        "zebra.dlx": ("fanout", True),
    }


@pytest.mark.parametrize("channel", list(Channel))
def test_printer_queue(channel: Channel) -> None:
    """A printer queue has the contract's name, binding key and arguments."""
    topology = Topology(namespace="zebra", queue_max_length=50, queue_type="quorum")
    spec = topology.printer_queue_spec(SERIAL, channel)
    assert spec.name == f"zebra.printer.{SERIAL}.{channel.value}"
    assert topology.request_key(SERIAL, channel) == f"{SERIAL}.{channel.value}"
    assert spec.durable
    assert not spec.exclusive
    assert not spec.auto_delete
    assert spec.arguments == {
        "x-dead-letter-exchange": "zebra.dlx",
        "x-max-length": 50,
        "x-overflow": "reject-publish",
        "x-single-active-consumer": True,
        "x-queue-type": "quorum",
    }
    assert topology.printer_queue_of(spec.name) == (SERIAL, channel)
    assert topology.parse_request_key(f"{SERIAL}.{channel.value}") == (SERIAL, channel)


def test_foreign_names_are_not_printer_queues() -> None:
    """Names of other namespaces or channels do not parse."""
    topology = Topology(namespace="zebra")
    assert topology.printer_queue_of("other.printer.P1.raw") is None
    assert topology.printer_queue_of("zebra.printer.P1.main") is None
    assert topology.parse_request_key("P1.main") is None
    assert topology.parse_request_key("a.b.raw") is None


def test_event_keys() -> None:
    """Event routing keys follow contract §3."""
    topology = Topology()
    assert topology.online_key(SERIAL) == f"printer.{SERIAL}.online"
    assert topology.offline_key(SERIAL) == f"printer.{SERIAL}.offline"
    assert (
        topology.channel_key(SERIAL, Channel.RAW, "opened")
        == f"printer.{SERIAL}.channel.raw.opened"
    )
    assert (
        topology.alert_key(SERIAL, "paper_out") == f"printer.{SERIAL}.alert.paper_out"
    )
    assert topology.data_key(SERIAL) == f"printer.{SERIAL}.data"
    assert topology.job_key(SERIAL, "delivered") == f"job.{SERIAL}.delivered"


@pytest.mark.parametrize("serial", ["a", "A-b_9", "x" * 64])
def test_valid_serials(serial: str) -> None:
    """Letters, digits, - and _ up to 64 characters are serials."""
    assert is_valid_serial(serial)
    assert check_serial(serial) == serial


@pytest.mark.parametrize("serial", ["", "a.b", "a*", "a#", "a b", "x" * 65, "é"])
def test_invalid_serials(serial: str) -> None:
    """Anything that could inject a dot or a wildcard is refused."""
    assert not is_valid_serial(serial)
    with pytest.raises(ValueError, match="invalid printer serial"):
        check_serial(serial)
    with pytest.raises(ValueError, match="invalid printer serial"):
        Topology().request_key(serial, Channel.RAW)
