"""Watch consumers come and go on RabbitMQ, through the event exchange plugin.

``rabbitmq_event_exchange`` publishes ``consumer.created`` and ``consumer.deleted`` to
``amq.rabbitmq.event`` with the queue name in the headers, so a test can follow how
many consumers a queue has at every moment without polling.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ConsumerWatch:
    """Current and highest consumer counts per queue, from broker events."""

    def __init__(self, amqp_url: str, queue_prefix: str) -> None:
        self.amqp_url = amqp_url
        self.queue_prefix = queue_prefix
        self.current: dict[str, set[str]] = defaultdict(set)
        self.highest: dict[str, int] = defaultdict(int)
        self.changed = asyncio.Condition()

    async def __aenter__(self) -> ConsumerWatch:
        self.connection = await aio_pika.connect(self.amqp_url)
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind("amq.rabbitmq.event", routing_key="consumer.*")
        await queue.consume(self._event, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def _event(self, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        queue = _text(headers.get("queue", ""))
        if not queue.startswith(self.queue_prefix):
            return
        tag = _text(headers.get("consumer_tag", ""))
        async with self.changed:
            if message.routing_key == "consumer.created":
                self.current[queue].add(tag)
                self.highest[queue] = max(self.highest[queue], len(self.current[queue]))
            elif message.routing_key == "consumer.deleted":
                self.current[queue].discard(tag)
            self.changed.notify_all()

    async def wait_for_count(self, queue: str, count: int, timeout: float) -> None:
        """Wait until ``queue`` has exactly ``count`` consumers."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: len(self.current[queue]) == count)
