"""Counting the labels of a ZPL job (print confirmation waits for that many alerts)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from gateway.weblink.labels import count_labels, format_label_count

#: The definition, as a regular expression: each ``^XA`` up to the nearest ``^XZ``.
FORMAT = re.compile(rb"\^XA(.*?)\^XZ", re.IGNORECASE | re.DOTALL)


def test_one_label_per_format_without_quantity() -> None:
    assert count_labels(b"^XA^FDone^FS^XZ^XA^FDtwo^FS^XZ") == 2


def test_quantity_of_the_last_pq() -> None:
    assert count_labels(b"^XA^PQ2^FDx^FS^PQ5^XZ") == 5
    assert count_labels(b"^xa^pq 3^xz") == 3


def test_zero_or_empty_quantity_prints_one() -> None:
    assert count_labels(b"^XA^PQ0^XZ") == 1
    assert count_labels(b"^XA^PQ,,,Y^XZ") == 1


def test_incomplete_formats_count_nothing() -> None:
    assert count_labels(b"") == 0
    assert count_labels(b"^XA^FDno end") == 0
    assert count_labels(b"^FDno start^XZ") == 0
    assert count_labels(b"~HS") == 0


def test_a_format_ends_at_the_first_xz() -> None:
    assert count_labels(b"^XA^XA^PQ4^XZ^PQ9^XZ") == 4


ZPL_PIECES = st.sampled_from(
    [
        b"^XA",
        b"^xa",
        b"^XZ",
        b"^xZ",
        b"^PQ",
        b"^pq",
        b"2",
        b"0",
        b" ",
        b",",
        b"^FD",
        b"x",
        b"^",
    ]
)


@given(st.lists(ZPL_PIECES, max_size=30).map(b"".join))
def test_matches_the_definition(data: bytes) -> None:
    expected = sum(
        format_label_count(match.group(0)) for match in FORMAT.finditer(data)
    )
    assert count_labels(data) == expected
