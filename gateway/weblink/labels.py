"""Counting the labels a ZPL job prints, for print confirmation.

Zebra's programming guide, ``^PQ``: the first parameter is the total quantity of
labels a format prints; without ``^PQ`` (or with 0) a format prints one label. A
printer with alerts configured sends one ``PQ JOB COMPLETED`` alert per label printed.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(rb"\^PQ\s*(\d*)", re.IGNORECASE)


def format_label_count(format_data: bytes) -> int:
    """Return how many labels one ``^XA…^XZ`` format prints (at least 1).

    The first parameter of the last ``^PQ`` decides; a missing, empty or zero
    quantity means one label.
    """
    if b"^PQ" not in format_data.upper():
        return 1
    quantities = _QUANTITY.findall(format_data)
    if not quantities or not quantities[-1]:
        return 1
    return max(1, int(quantities[-1]))


def count_labels(data: bytes) -> int:
    """Return how many labels the complete formats in ``data`` print (0 if none).

    A format runs from a ``^XA`` to the first ``^XZ`` after it (commands in any
    case); the search goes on after that ``^XZ``. Found with ``bytes.find``: a
    regular expression took 20 µs for a 1 KiB label, on every print.
    """
    upper = data.upper()
    total = 0
    start = upper.find(b"^XA")
    while start != -1:
        end = upper.find(b"^XZ", start + 3)
        if end == -1:
            break
        if upper.find(b"^PQ", start, end) == -1:
            total += 1
        else:
            total += format_label_count(upper[start : end + 3])
        start = upper.find(b"^XA", end + 3)
    return total
