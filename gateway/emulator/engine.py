"""The print mechanism of the emulated printer: a queue of formats and its faults.

No network here. Formats queue up as they arrive on raw; one task prints them label by
label (``^PQ`` labels per format), each taking ``label_print_time``, and stops while any
fault is active (head open, paper out, ribbon out, paused), as a real printer does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.emulator.alerts import FAULT_CONDITIONS
from gateway.emulator.changes import StateChanges
from gateway.emulator.zpl import LabelFormat, PrinterStatus


class PrintEngine:
    """Print received formats one label at a time, unless a fault stops it.

    Args:
        changes: notified whenever labels, counts or faults change.
        label_print_time: seconds each label takes.
    """

    def __init__(self, changes: StateChanges, *, label_print_time: float) -> None:
        self._changes = changes
        self._label_print_time = label_print_time
        #: Every complete format received, verbatim, in order.
        self.labels: list[bytes] = []
        #: Labels printed so far.
        self.labels_printed = 0
        #: Active faults, by their name in ``FAULT_CONDITIONS``.
        self.faults: set[str] = set()
        self._queue: asyncio.Queue[LabelFormat] = asyncio.Queue()
        self._labels_remaining = 0

    def add(self, label_format: LabelFormat) -> None:
        """Queue a format for printing.

        Args:
            label_format: the format, as received.
        """
        self.labels.append(label_format.data)
        self._labels_remaining += label_format.label_count
        self._queue.put_nowait(label_format)
        self._changes.notify()

    def set_fault(self, name: str, active: bool) -> bool:
        """Raise or clear a fault.

        Args:
            name: ``head open``, ``paper out``, ``ribbon out`` or ``printer paused``.
            active: the new state.

        Returns:
            Whether the fault changed state.

        Raises:
            ValueError: unknown fault name.
        """
        if name not in FAULT_CONDITIONS:
            raise ValueError(
                f"unknown fault {name!r}; use one of {sorted(FAULT_CONDITIONS)}"
            )
        if active == (name in self.faults):
            return False
        if active:
            self.faults.add(name)
        else:
            self.faults.discard(name)
        self._changes.notify()
        return True

    def status(self, *, partial_format: bool = False) -> PrinterStatus:
        """Report the state ``~HS`` shows.

        Args:
            partial_format: whether the asking raw stream is inside a format.

        Returns:
            The status, with fault flags and buffer counts.
        """
        return PrinterStatus(
            paper_out="paper out" in self.faults,
            paused="printer paused" in self.faults,
            head_open="head open" in self.faults,
            ribbon_out="ribbon out" in self.faults,
            formats_in_buffer=self._queue.qsize(),
            labels_remaining=self._labels_remaining,
            partial_format=partial_format,
        )

    async def run(self, on_printed: Callable[[], Awaitable[None]]) -> None:
        """Print forever; call ``on_printed`` after each label.

        Args:
            on_printed: e.g. sends the ``PQ JOB COMPLETED`` alert.
        """
        while True:
            label_format = await self._queue.get()
            for _ in range(label_format.label_count):
                await self._changes.wait_for(lambda: not self.faults)
                if self._label_print_time > 0:
                    # Simulated print time, a printer behaviour, not synchronisation.
                    await asyncio.sleep(self._label_print_time)
                self.labels_printed += 1
                self._labels_remaining -= 1
                self._changes.notify()
                await on_printed()
