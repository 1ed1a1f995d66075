"""Subscribe to the events exchange in a test and wait for the event you expect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from tests.support.timing import SHORT


class EventLog:
    """Collects events from a subscription and waits for one that matches."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.changed = asyncio.Condition()

    async def feed(self, subscription: Any) -> None:
        async for event in subscription:
            async with self.changed:
                self.events.append(event)
                self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[Any], bool]) -> Any:
        """Return the first event that matches, waiting up to SHORT for it."""
        async with asyncio.timeout(SHORT), self.changed:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await self.changed.wait()


@contextlib.asynccontextmanager
async def watching(client: Any, pattern: str = "#") -> AsyncIterator[EventLog]:
    """Collect the events matching ``pattern`` while the block runs."""
    log = EventLog()
    async with client.events(pattern) as subscription:
        task = asyncio.create_task(log.feed(subscription))
        try:
            yield log
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
