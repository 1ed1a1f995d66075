"""Cut a byte stream into top-level JSON values.

``weblink-protocol.md`` §2: WebSocket message boundaries carry no meaning. A printer may
split one JSON reply across several messages, or put several values in one (the config
channel's ``{}{"setting":null}``), and it pretty-prints with CRLF. So the core treats
each JSON channel as a byte stream and cuts it wherever a top-level object or array
closes.

The scan is incremental: it remembers where it stopped, the nesting depth and whether
it is inside a string or just after a backslash, so feeding a large value one byte at
a time costs O(n) in total. It works on bytes: the bytes it looks at (brackets, quotes,
backslash) never occur inside a multi-byte UTF-8 sequence, so a split inside a
character is harmless; decoding happens once a value is complete.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from broker.errors import WebLinkProtocolError

_WHITESPACE = frozenset(b" \t\r\n")  # JSON's insignificant whitespace (RFC 8259 §2)
_OPENERS = frozenset(b"{[")
_QUOTE, _BACKSLASH = 0x22, 0x5C
# Outside strings only brackets and quotes matter; inside, only quotes and backslashes.
_STRUCTURAL = re.compile(rb'[{}\[\]"]')
_STRING_SPECIAL = re.compile(rb'["\\]')


class JsonStreamError(WebLinkProtocolError, ValueError):
    """The stream is not a sequence of JSON objects and arrays.

    Attributes:
        too_big: The buffered, still incomplete value outgrew the size limit.
        values: Values completed in the same ``feed`` before the error, so that the
            caller can still act on them.
    """

    def __init__(
        self, message: str, *, too_big: bool = False, values: Iterable[Any] = ()
    ) -> None:
        super().__init__(message)
        self.too_big = too_big
        self.values = list(values)


class _Scanner:
    """Find where top-level values start and end in a growing buffer."""

    def __init__(self) -> None:
        self.pos = 0  # next index to examine
        self.start: int | None = None  # index of the current value's opening bracket
        self.depth = 0
        self.in_string = False
        self.escape = False

    def scan(self, buf: bytearray) -> tuple[int, int] | None:
        """Return ``(start, end)`` of the next complete value, or ``None``.

        Raises:
            JsonStreamError: A byte that can neither be whitespace nor start a value.
        """
        end = len(buf)
        pos = self.pos
        while pos < end:
            if self.start is None:
                byte = buf[pos]
                if byte in _WHITESPACE:
                    pos += 1
                elif byte in _OPENERS:
                    self.start, self.depth = pos, 1
                    pos += 1
                else:
                    self.pos = pos
                    found = bytes(buf[pos : pos + 16])
                    raise JsonStreamError(
                        f"expected a JSON object or array, got {found!r}"
                    )
            elif self.escape:
                self.escape = False
                pos += 1
            elif self.in_string:
                match = _STRING_SPECIAL.search(buf, pos)
                if match is None:
                    pos = end
                    break
                pos = match.start()
                if buf[pos] == _BACKSLASH:
                    self.escape = True
                else:
                    self.in_string = False
                pos += 1
            else:
                match = _STRUCTURAL.search(buf, pos)
                if match is None:
                    pos = end
                    break
                pos = match.start()
                byte = buf[pos]
                pos += 1
                if byte == _QUOTE:
                    self.in_string = True
                elif byte in _OPENERS:
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 0:
                        start, self.start, self.pos = self.start, None, pos
                        return start, pos
        self.pos = pos
        return None

    def shift(self, count: int) -> None:
        """Account for ``count`` bytes removed from the front of the buffer."""
        self.pos -= count
        if self.start is not None:
            self.start -= count


class JsonStream:
    """Incremental splitter of a byte stream into top-level JSON values.

    Only objects and arrays are accepted at the top level: that is all WebLink sends.
    After an error the stream is unusable until :meth:`reset`.

    Args:
        max_buffer_size: Most bytes of an incomplete value to hold before giving up.
    """

    def __init__(self, max_buffer_size: int = 1 << 20) -> None:
        self.max_buffer_size = max_buffer_size
        self._buffer = bytearray()
        self._scanner = _Scanner()
        self._error: JsonStreamError | None = None

    @property
    def pending_size(self) -> int:
        """Bytes buffered towards a value that is not complete yet."""
        return len(self._buffer)

    def reset(self) -> None:
        """Drop buffered bytes and any earlier error."""
        self._buffer.clear()
        self._scanner = _Scanner()
        self._error = None

    def feed(self, data: bytes) -> list[Any]:
        """Buffer ``data`` and return every value it completes, in order.

        Args:
            data: The next bytes of the stream, split anywhere.

        Returns:
            The decoded values now complete (possibly none); the rest stays buffered.

        Raises:
            JsonStreamError: A byte that cannot start a value, a balanced value that is
                not valid JSON, or more than ``max_buffer_size`` bytes of an incomplete
                value (``too_big``). Values completed before the error are on the
                exception's ``values``. The stream then stays failed.
        """
        self._check_usable()
        self._buffer += data
        values: list[Any] = []
        while True:
            span = self._scan(values)
            if span is None:
                break
            start, end = span
            try:
                values.append(decode_json(self._buffer[start:end]))
            except JsonStreamError as exc:
                raise self._fail(str(exc), values=values) from exc
        # Everything before the current value (or the scan position) is done with:
        # complete values and whitespace between them.
        scanner = self._scanner
        consumed = scanner.pos if scanner.start is None else scanner.start
        del self._buffer[:consumed]
        scanner.shift(consumed)
        self._check_size(values)
        return values

    def split_first(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Buffer ``data`` until the first value is complete, then hand back bytes.

        Unlike :meth:`feed`, this neither decodes nor looks past the first value: the
        bytes after it may be anything (raw-channel data after a channel hello, the
        rest of a printer's reply stream). Once it returns a pair the stream is empty.

        Args:
            data: The next bytes of the stream.

        Returns:
            ``None`` while the first value is incomplete; then ``(head, rest)`` where
            ``head`` is every byte up to and including the end of the value (leading
            whitespace included) and ``rest`` every byte after it.

        Raises:
            JsonStreamError: As for :meth:`feed`, except that the value is not decoded.
        """
        self._check_usable()
        self._buffer += data
        span = self._scan([])
        if span is None:
            self._check_size([])
            return None
        head, rest = bytes(self._buffer[: span[1]]), bytes(self._buffer[span[1] :])
        self.reset()
        return head, rest

    def _scan(self, values: list[Any]) -> tuple[int, int] | None:
        try:
            return self._scanner.scan(self._buffer)
        except JsonStreamError as exc:
            raise self._fail(str(exc), values=values) from None

    def _check_usable(self) -> None:
        if self._error is not None:
            raise JsonStreamError(
                f"JSON stream failed earlier ({self._error}); reset it before reuse",
                too_big=self._error.too_big,
            )

    def _check_size(self, values: list[Any]) -> None:
        if len(self._buffer) > self.max_buffer_size:
            raise self._fail(
                f"more than {self.max_buffer_size} bytes buffered without a complete "
                "JSON value",
                too_big=True,
                values=values,
            )

    def _fail(
        self, message: str, *, too_big: bool = False, values: list[Any]
    ) -> JsonStreamError:
        self._error = JsonStreamError(message, too_big=too_big, values=values)
        return self._error


def decode_json(raw: bytes | bytearray) -> Any:
    """Decode one UTF-8 JSON value.

    Args:
        raw: The bytes of exactly one value (surrounding whitespace allowed).

    Returns:
        The decoded value.

    Raises:
        JsonStreamError: Invalid UTF-8 or JSON, or nesting too deep to decode.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise JsonStreamError(f"invalid JSON value: {exc}") from exc
