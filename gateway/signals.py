"""Small stand-ins for ``asyncio.Event`` and ``asyncio.Queue``, for per-printer state.

A replica keeps a few of these for every printer it holds. ``asyncio.Event`` costs
about 0.8 KiB (an instance dict and a deque of waiters) and ``asyncio.Queue`` about
3 KiB (four deques), even when nobody ever waits; these cost about a tenth of that
until they are waited on.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Flag:
    """An ``asyncio.Event`` that makes its event only when someone waits."""

    __slots__ = ("_event", "_set")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._event: asyncio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    def clear(self) -> None:
        self._set = False
        if self._event is not None:
            self._event.clear()

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is)."""
        if self._set:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()


class Mailbox(Generic[T]):
    """A first-in first-out queue with one reader (:meth:`get` is not shared)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def get_nowait(self) -> T:
        """Take the oldest item; raise ``IndexError`` if there is none."""
        return self._items.pop(0)

    async def get(self) -> T:
        """Wait for an item and take it."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("a mailbox has one reader")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)
