"""Waiting for the emulator's state to change, without polling."""

# ASYNC109: wait methods take a timeout on purpose; it is their documented API, and
# each applies it with asyncio.timeout() inside.

from __future__ import annotations

import asyncio
from collections.abc import Callable


class StateChanges:
    """A broadcast "something changed" signal that waiters re-check a predicate on.

    Every mutation of observable state calls :meth:`notify`; :meth:`wait_for` wakes on
    each notification and returns once its predicate holds. Notifying is synchronous,
    so it can be called from any callback.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        """Start with nobody waiting.

        Args:
            on_change: called on every notification, before waiters wake (e.g. to
                refresh derived state).
        """
        self._event = asyncio.Event()
        self._on_change = on_change

    def notify(self) -> None:
        """Wake every waiter so it re-checks its predicate."""
        if self._on_change is not None:
            self._on_change()
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float | None = None
    ) -> None:
        """Return once ``predicate()`` is true.

        Args:
            predicate: checked now and after every notification.
            timeout: seconds to wait at most; ``None`` waits forever.

        Raises:
            TimeoutError: the predicate stayed false for ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()
