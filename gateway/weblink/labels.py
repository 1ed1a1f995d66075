"""Counting the labels a ZPL job prints, for print confirmation.

Zebra's programming guide, ``^PQ``: the first parameter is the total quantity of
labels a format prints; without ``^PQ`` (or with 0) a format prints one label. A
printer with alerts configured sends one ``PQ JOB COMPLETED`` alert per label printed.
"""

from __future__ import annotations

import re

_FORMAT = re.compile(rb"\^XA(.*?)\^XZ", re.IGNORECASE | re.DOTALL)
_QUANTITY = re.compile(rb"\^PQ\s*(\d*)", re.IGNORECASE)


def format_label_count(format_data: bytes) -> int:
    """Return how many labels one ``^XA…^XZ`` format prints (at least 1).

    The first parameter of the last ``^PQ`` decides; a missing, empty or zero
    quantity means one label.
    """
    quantities = _QUANTITY.findall(format_data)
    if not quantities or not quantities[-1]:
        return 1
    return max(1, int(quantities[-1]))


def count_labels(data: bytes) -> int:
    """Return how many labels the complete formats in ``data`` print (0 if none)."""
    return sum(format_label_count(match.group(0)) for match in _FORMAT.finditer(data))
