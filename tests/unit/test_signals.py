"""The light Event and Queue stand-ins kept per printer."""

from __future__ import annotations

import asyncio

import pytest

from gateway.signals import Flag, Mailbox


async def test_flag_wakes_a_waiter_and_can_be_cleared():
    flag = Flag()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)  # let the waiter start waiting (one loop turn)
    assert not waiter.done()
    flag.set()
    await asyncio.wait_for(waiter, timeout=5)
    assert flag.is_set()
    flag.clear()
    assert not flag.is_set()
    again = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not again.done()
    flag.set()
    await asyncio.wait_for(again, timeout=5)


async def test_flag_set_before_waiting_returns_at_once():
    await asyncio.wait_for(Flag(True).wait(), timeout=5)


async def test_mailbox_is_first_in_first_out_across_waits():
    box: Mailbox[int] = Mailbox()
    box.put_nowait(1)
    box.put_nowait(2)
    assert await box.get() == 1
    getting = asyncio.ensure_future(box.get())
    assert await asyncio.wait_for(getting, timeout=5) == 2
    later = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    box.put_nowait(3)
    assert await asyncio.wait_for(later, timeout=5) == 3
    assert box.empty()
    with pytest.raises(IndexError):
        box.get_nowait()


async def test_mailbox_refuses_a_second_reader():
    box: Mailbox[int] = Mailbox()
    first = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await box.get()
    box.put_nowait(7)
    assert await asyncio.wait_for(first, timeout=5) == 7
