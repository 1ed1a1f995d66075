"""Cutting a byte stream into JSON values: ``weblink-protocol.md`` §2."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import WebLinkProtocolError
from gateway.weblink.jsonstream import JsonStream, JsonStreamError, decode_json
from gateway.weblink.sgd import encode_json
from tests.unit.weblink.frames import (
    ALERT_PQ_JOB_COMPLETED,
    ALERT_SGD_SET,
    MAIN_HELLO,
    SGD_GET,
    SGD_REPLY,
    SGD_REPLY_VALUE,
    splits,
)

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TOP_LEVEL = st.lists(JSON_VALUES, max_size=4) | st.dictionaries(
    st.text(max_size=8), JSON_VALUES, max_size=4
)


def feed_all(stream: JsonStream, pieces: list[bytes]) -> list[Any]:
    """Feed every piece and collect the values in order."""
    values: list[Any] = []
    for piece in pieces:
        values.extend(stream.feed(piece))
    return values


class TestValues:
    """Complete values come out whole, in order, however the bytes arrive."""

    def test_one_value(self) -> None:
        """A compact object in one piece is one value."""
        assert JsonStream().feed(b'{"a":1}') == [{"a": 1}]

    def test_two_values_in_one_feed(self) -> None:
        """``{}{"a":1}`` (the SGD prefix form) yields both objects in order."""
        assert JsonStream().feed(b'{}{"a":1}') == [{}, {"a": 1}]

    def test_sgd_request_stream(self) -> None:
        """The config channel's ``{}{...}`` request form is two values."""
        assert JsonStream().feed(SGD_GET) == [
            {},
            {"device.friendly_name": None, "appl.name": None},
        ]

    def test_arrays(self) -> None:
        """Top-level arrays are values too, nested brackets included."""
        assert JsonStream().feed(b'[1,[2,{"x":[3]}]] [] ') == [[1, [2, {"x": [3]}]], []]

    def test_pretty_printed_crlf(self) -> None:
        """Printer-style pretty JSON with CRLF parses, and so does the whitespace between."""
        data = b"\r\n" + SGD_REPLY + b"\r\n\r\n" + ALERT_PQ_JOB_COMPLETED + b"\r\n"
        values = JsonStream().feed(data)
        assert values[0] == SGD_REPLY_VALUE
        assert values[1]["alert"]["condition_id"] == "PQ JOB COMPLETED"

    @pytest.mark.parametrize(
        "message", [MAIN_HELLO, SGD_REPLY, ALERT_PQ_JOB_COMPLETED, ALERT_SGD_SET]
    )
    def test_split_at_every_byte(self, message: bytes) -> None:
        """A printer message split in two at any byte yields the same single value."""
        expected = json.loads(message)
        for head, tail in splits(message):
            stream = JsonStream()
            assert feed_all(stream, [head, tail]) == [expected]
            assert stream.pending_size == 0

    def test_byte_by_byte(self) -> None:
        """Feeding one byte at a time yields nothing until the last byte."""
        stream = JsonStream()
        for byte in SGD_REPLY[:-1]:
            assert stream.feed(bytes([byte])) == []
        assert stream.feed(SGD_REPLY[-1:]) == [SGD_REPLY_VALUE]

    def test_split_inside_utf8_character(self) -> None:
        """A split between the bytes of one UTF-8 character is harmless."""
        data = '{"name":"Bäckerei ✓"}'.encode()
        cut = data.index("✓".encode()) + 1
        stream = JsonStream()
        assert stream.feed(data[:cut]) == []
        assert stream.feed(data[cut:]) == [{"name": "Bäckerei ✓"}]

    @pytest.mark.parametrize(
        "value",
        [
            {"s": 'quote " inside'},
            {"s": "brace } and [ inside"},
            {"s": "backslash \\"},
            {"s": 'backslash then quote \\"'},
            {"s": "\\\\"},
            {'key with "quotes"': "}"},
        ],
    )
    def test_strings_with_escapes_and_brackets(self, value: dict[str, str]) -> None:
        """Quotes, backslashes and brackets inside strings never end a value."""
        data = json.dumps(value).encode()
        for head, tail in splits(data):
            assert feed_all(JsonStream(), [head, tail]) == [value]

    def test_pending_size(self) -> None:
        """pending_size counts bytes of the incomplete value only."""
        stream = JsonStream()
        assert stream.feed(b' {"a":1}  {"b":') == [{"a": 1}]
        assert stream.pending_size == len(b'{"b":')
        assert stream.feed(b"2}") == [{"b": 2}]
        assert stream.pending_size == 0

    def test_whitespace_only(self) -> None:
        """Whitespace alone yields nothing and is not kept."""
        stream = JsonStream()
        assert stream.feed(b" \r\n\t") == []
        assert stream.pending_size == 0

    def test_large_value_byte_by_byte_is_linear(self) -> None:
        """Feeding a 200 kB value one byte at a time stays fast (incremental scan)."""
        value = {"data": ["x" * 50, {"k": "\\}"}] * 2000}
        data = json.dumps(value).encode()
        stream = JsonStream()
        started = time.perf_counter()
        for index in range(len(data) - 1):
            stream.feed(data[index : index + 1])
        assert stream.feed(data[-1:]) == [value]
        # O(n²) rescanning would take minutes here; O(n) takes well under a second.
        assert time.perf_counter() - started < 20

    @given(
        values=st.lists(TOP_LEVEL, min_size=1, max_size=4),
        cuts=st.lists(st.integers(min_value=0), max_size=8),
        pretty=st.booleans(),
    )
    def test_any_split_points(
        self, values: list[Any], cuts: list[int], pretty: bool
    ) -> None:
        """The values that come out do not depend on where the stream is cut."""
        data = b"\r\n".join(encode_json(value, pretty=pretty) for value in values)
        points = sorted({cut % (len(data) + 1) for cut in cuts})
        pieces = [
            data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)
        ]
        stream = JsonStream()
        assert feed_all(stream, pieces) == values
        assert stream.pending_size == 0


class TestErrors:
    """Bytes that cannot be a JSON stream fail it for good."""

    @pytest.mark.parametrize("data", [b"hello", b'"string"', b"42", b"\x02status\x03"])
    def test_leading_garbage(self, data: bytes) -> None:
        """Anything but whitespace, ``{`` or ``[`` where a value must start is an error."""
        with pytest.raises(
            JsonStreamError, match="expected a JSON object or array"
        ) as info:
            JsonStream().feed(data)
        assert info.value.too_big is False

    def test_values_before_error_are_kept(self) -> None:
        """Values completed before the error travel on the exception."""
        with pytest.raises(JsonStreamError) as info:
            JsonStream().feed(b'{"a":1} [2] oops')
        assert info.value.values == [{"a": 1}, [2]]

    @pytest.mark.parametrize(
        "data",
        [b'{"a":}', b"{'a':1}", b'{"a":1]', b'{"a":"\xff"}', b"[" * 5000 + b"]" * 5000],
    )
    def test_balanced_but_invalid(self, data: bytes) -> None:
        """A balanced value that is not valid JSON (or too deep to decode) is an error."""
        with pytest.raises(JsonStreamError, match="invalid JSON value"):
            JsonStream().feed(data)

    def test_too_big(self) -> None:
        """More buffered bytes than the limit, without a complete value, is too_big."""
        stream = JsonStream(max_buffer_size=16)
        assert stream.feed(b'{"a":"0123456') == []
        with pytest.raises(JsonStreamError, match="more than 16 bytes") as info:
            stream.feed(b"789A")
        assert info.value.too_big is True

    def test_complete_values_do_not_count_towards_limit(self) -> None:
        """A big complete value is fine; only the incomplete remainder is limited."""
        stream = JsonStream(max_buffer_size=16)
        big = {"a": "x" * 100}
        assert stream.feed(json.dumps(big).encode() + b'{"b":1') == [big]
        assert stream.pending_size == 6

    def test_unusable_after_error(self) -> None:
        """After an error every later feed raises again, keeping too_big."""
        stream = JsonStream(max_buffer_size=4)
        with pytest.raises(JsonStreamError):
            stream.feed(b'{"abcdef')
        with pytest.raises(JsonStreamError, match="failed earlier") as info:
            stream.feed(b'"}')
        assert info.value.too_big is True
        with pytest.raises(JsonStreamError, match="failed earlier"):
            stream.split_first(b"{}")

    def test_reset_recovers(self) -> None:
        """reset() clears the error and the buffer."""
        stream = JsonStream()
        with pytest.raises(JsonStreamError):
            stream.feed(b"x")
        stream.reset()
        assert stream.feed(b"{}") == [{}]

    def test_error_hierarchy(self) -> None:
        """JsonStreamError is a WebLinkProtocolError and a ValueError."""
        assert issubclass(JsonStreamError, WebLinkProtocolError)
        assert issubclass(JsonStreamError, ValueError)


class TestSplitFirst:
    """split_first: the first value's bytes and everything after, undecoded."""

    def test_incomplete(self) -> None:
        """Nothing is returned until the first value is complete."""
        stream = JsonStream()
        assert stream.split_first(b'  {"a":') is None
        assert stream.split_first(b"1}tail") == (b'  {"a":1}', b"tail")
        assert stream.pending_size == 0

    def test_rest_may_be_anything(self) -> None:
        """Bytes after the first value are handed back as they are, even non-JSON."""
        head, rest = JsonStream().split_first(b'{"x":1}^XA^XZ{}') or (b"", b"")
        assert (head, rest) == (b'{"x":1}', b"^XA^XZ{}")

    def test_leading_garbage(self) -> None:
        """A byte that cannot start a value raises as feed does."""
        with pytest.raises(JsonStreamError):
            JsonStream().split_first(b"?")

    def test_too_big(self) -> None:
        """An incomplete first value over the limit raises too_big."""
        with pytest.raises(JsonStreamError) as info:
            JsonStream(max_buffer_size=4).split_first(b'{"abcdef')
        assert info.value.too_big is True


class TestDecodeJson:
    """decode_json: one value's bytes to Python."""

    def test_valid(self) -> None:
        """Valid UTF-8 JSON decodes, whitespace allowed."""
        assert decode_json(b' {"a": [1]}\r\n') == {"a": [1]}

    def test_invalid(self) -> None:
        """Invalid JSON raises JsonStreamError."""
        with pytest.raises(JsonStreamError):
            decode_json(b"{")
