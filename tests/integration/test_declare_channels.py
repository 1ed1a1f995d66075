"""Declare channels closed by RabbitMQ never cost the gateway its connection.

A passive check of a missing queue (every new printer, twice) makes RabbitMQ close
that declare channel. aiormq frees a channel number as soon as RabbitMQ's
``channel.close`` arrives, before its ``close-ok`` is written; a channel opened in
that instant with the same number made RabbitMQ drop the whole connection
("second 'channel.open' seen"), with every printer consumer on it. Seen while 8,000
printers connected in the benchmark.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from broker.topology import Channel, Topology
from gateway.bus import DECLARE_CHANNELS
from tests.support.bus import start_bus

CHECKS = 400
WORKERS = 16


async def test_missing_queue_checks_side_by_side_keep_the_connection(
    amqp_url: str, namespace: str
) -> None:
    lost: list[str] = []
    bus = await start_bus(
        amqp_url, namespace, on_connection_lost=lambda: lost.append("lost")
    )
    topology = Topology(namespace=namespace)
    try:

        async def worker(first: int) -> None:
            for index in range(first, CHECKS, WORKERS):
                queue = topology.printer_queue(f"DCH{index:09d}", Channel.RAW)
                assert await bus.queue_counts(queue) is None

        done = asyncio.Event()

        async def publisher() -> None:
            # Outcomes side by side with the checks, as on a busy replica (on the
            # traffic connection since fix 18: the checks' numbering is the point).
            while not done.is_set():
                await bus.publish_reply(
                    "DCH-nobody", b"{}", message_type="t", correlation_id=None
                )

        publishers = [asyncio.create_task(publisher()) for _ in range(WORKERS)]
        try:
            await asyncio.gather(*(worker(first) for first in range(WORKERS)))
        finally:
            done.set()
            await asyncio.gather(*publishers, return_exceptions=True)
        assert lost == []
        assert bus.is_ready.is_set()
    finally:
        await bus.close()


async def test_a_channel_closed_by_rabbitmq_leaves_its_number_unused(
    amqp_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reopened declare channel takes a number that no channel had before."""
    bus = await start_bus(amqp_url, namespace)
    numbers: list[int] = []
    fresh = bus._fresh_channel_number

    def recording(amqp: Any) -> int:
        numbers.append(fresh(amqp))
        return numbers[-1]

    monkeypatch.setattr(bus, "_fresh_channel_number", recording)
    topology = Topology(namespace=namespace)
    try:
        checks = 3 * DECLARE_CHANNELS
        for index in range(checks):
            queue = topology.printer_queue(f"DCN{index:09d}", Channel.RAW)
            assert await bus.queue_counts(queue) is None
        # Every check closed its channel, so every check opened one: all numbers new.
        assert len(numbers) == checks
        assert len(set(numbers)) == checks
        assert bus.is_ready.is_set()
    finally:
        await bus.close()
