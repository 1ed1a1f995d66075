"""Reading what a printer receives on its raw channel, and its status answers.

Pure: bytes in, commands out, answers as bytes. The raw channel is a byte stream
whose WebSocket message boundaries carry no meaning (``weblink-protocol.md`` §2, §6),
so :class:`ZplStream` accepts arbitrary chunks and yields only complete commands.

Recognised, outside a format: ``^XA…^XZ`` formats, ``~HS``, ``~HI``,
``! U1 getvar "name"``, ``! U1 setvar "name" "value"`` (and ``do``), and JSON SGD
``{}{...}`` (the same JSON works on every port, §5). Everything else is skipped: the
emulator records it in ``raw_received`` but does not interpret it. Inside a format only
``^XZ`` matters, so immediate (``~``) commands there are not answered. ZPL command
letters are matched case-insensitively; ``^CC``/``~CT`` prefix changes are not
supported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.weblink.labels import format_label_count

STX = b"\x02"
ETX = b"\x03"
CRLF = b"\r\n"

#: Longest token the scanner looks for, minus one: the bytes kept at the end of the
#: buffer when nothing was found, in case a token is split across chunks.
_TOKEN_TAIL = 4
#: Give up on an unterminated ``! U1`` line or ``{}`` object after this many bytes.
_MAX_COMMAND_SIZE = 64 * 1024

_TOKEN = re.compile(rb"\^XA|~HS|~HI|!\s?U1\s|\{\}", re.IGNORECASE)
_FORMAT_END = re.compile(rb"\^XZ", re.IGNORECASE)
_SGD_LINE = re.compile(
    rb'!\s?U1\s+(getvar|setvar|do)\s+"([^"\r\n]*)"(?:[ \t]+"([^"\r\n]*)")?',
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LabelFormat:
    """One complete ``^XA…^XZ`` format, verbatim."""

    data: bytes

    @property
    def label_count(self) -> int:
        """Labels this format prints (its ``^PQ`` quantity, default 1)."""
        return label_count(self.data)


@dataclass(frozen=True)
class HostStatusQuery:
    """``~HS``: the host asks for the three status lines."""


@dataclass(frozen=True)
class HostIdentificationQuery:
    """``~HI``: the host asks for model, firmware and memory."""


@dataclass(frozen=True)
class GetVar:
    """``! U1 getvar "name"``: answered with the quoted value."""

    name: str


@dataclass(frozen=True)
class SetVar:
    """``! U1 setvar "name" "value"`` (or ``do``): no answer."""

    name: str
    value: str


@dataclass(frozen=True)
class JsonSgd:
    """``{}{...}`` on the raw channel: answered with a JSON object."""

    request: dict[str, Any]


RawCommand = (
    LabelFormat | HostStatusQuery | HostIdentificationQuery | GetVar | SetVar | JsonSgd
)


label_count = format_label_count


class ZplStream:
    """Split a raw-channel byte stream into complete commands, chunk by chunk.

    Feed every received message to :meth:`feed`; each call returns the commands that
    became complete, in stream order.
    """

    def __init__(self) -> None:
        """Start with an empty buffer, outside any format."""
        self._buffer = bytearray()
        #: While inside a format: where the next ``^XZ`` search starts.
        self._format_scan: int | None = None

    @property
    def in_format(self) -> bool:
        """Whether a ``^XA`` arrived whose ``^XZ`` has not (the partial-format flag)."""
        return self._format_scan is not None

    def feed(self, data: bytes) -> list[RawCommand]:
        """Add received bytes and return every command they completed.

        Args:
            data: the next chunk of the stream, any size.

        Returns:
            Complete commands, in the order they appear in the stream.
        """
        self._buffer += data
        commands: list[RawCommand] = []
        while True:
            command: RawCommand | _Skipped | None
            if self._format_scan is not None:
                command = self._take_format()
            else:
                command = self._take_command()
            if command is None:
                return commands
            if not isinstance(command, _Skipped):
                commands.append(command)

    def _take_format(self) -> LabelFormat | None:
        """Complete the current format if its ``^XZ`` arrived."""
        assert self._format_scan is not None
        end = _FORMAT_END.search(self._buffer, self._format_scan)
        if end is None:
            # ``^X`` may be the start of a ``^XZ`` split across chunks.
            self._format_scan = max(3, len(self._buffer) - 2)
            return None
        data = bytes(self._buffer[: end.end()])
        del self._buffer[: end.end()]
        self._format_scan = None
        return LabelFormat(data)

    def _take_command(self) -> RawCommand | _Skipped | None:
        """Find the next token outside a format and decode its command."""
        token = _TOKEN.search(self._buffer)
        if token is None:
            # Keep a possible partial token; the rest is not ours to interpret.
            del self._buffer[: max(0, len(self._buffer) - _TOKEN_TAIL)]
            return None
        word = token.group().upper()
        del self._buffer[: token.start()]
        if word == b"^XA":
            self._format_scan = 3
            return _SKIPPED
        if word in (b"~HS", b"~HI"):
            del self._buffer[:3]
            return HostStatusQuery() if word == b"~HS" else HostIdentificationQuery()
        if word == b"{}":
            return self._take_json_sgd()
        return self._take_sgd_line()

    def _take_sgd_line(self) -> RawCommand | _Skipped | None:
        """Decode ``! U1 getvar|setvar|do …`` at the start of the buffer."""
        newline = self._buffer.find(b"\n")
        match = _SGD_LINE.match(self._buffer)
        if match is not None:
            verb = match.group(1).lower()
            name = match.group(2).decode("utf-8", "replace")
            value = match.group(3)
            if verb == b"getvar":
                del self._buffer[: match.end()]
                return GetVar(name)
            if value is not None:
                del self._buffer[: match.end()]
                return SetVar(name, value.decode("utf-8", "replace"))
        if newline >= 0:
            # A whole line that is not a command we know: skip it.
            del self._buffer[: newline + 1]
            return _SKIPPED
        if len(self._buffer) > _MAX_COMMAND_SIZE:
            del self._buffer[:1]
            return _SKIPPED
        return None

    def _take_json_sgd(self) -> RawCommand | _Skipped | None:
        """Decode ``{}{...}`` at the start of the buffer once the object is complete."""
        end = json_object_end(self._buffer, 2)
        if end is None:
            if len(self._buffer) > _MAX_COMMAND_SIZE:
                del self._buffer[:2]
                return _SKIPPED
            return None
        if end < 0:
            del self._buffer[:2]
            return _SKIPPED
        text = bytes(self._buffer[2:end])
        del self._buffer[:end]
        try:
            request = json.loads(text)
        except ValueError:
            return _SKIPPED
        if not isinstance(request, dict):
            return _SKIPPED
        return JsonSgd(request)


class _Skipped:
    """Internal marker: the scanner consumed bytes but found no command."""


_SKIPPED = _Skipped()


def json_object_end(data: bytes | bytearray, start: int) -> int | None:
    """Find where the JSON object starting at ``start`` (after blanks) ends.

    Args:
        data: the buffer.
        start: where the object (or blanks before it) begins.

    Returns:
        The index just past the closing brace; ``None`` if more bytes are needed;
        ``-1`` if what follows is not a JSON object.
    """
    position = start
    while position < len(data) and data[position] in b" \t\r\n":
        position += 1
    if position == len(data):
        return None
    if data[position] != ord("{"):
        return -1
    depth = 0
    in_string = False
    escaped = False
    for index in range(position, len(data)):
        byte = data[index]
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte == ord("{"):
            depth += 1
        elif byte == ord("}"):
            depth -= 1
            if depth == 0:
                return index + 1
    return None


# -- answers -------------------------------------------------------------------


@dataclass(frozen=True)
class PrinterStatus:
    """What ``~HS`` reports (programming guide, ``~HS``)."""

    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    #: Formats received but not yet printed (line 1, ``eee``).
    formats_in_buffer: int = 0
    #: Labels still to print in the current batch (line 2, ``uuuuuuuu``).
    labels_remaining: int = 0
    #: A ``^XA`` arrived without its ``^XZ`` yet (line 1, ``h``).
    partial_format: bool = False
    #: Label length in dots (line 1, ``dddd``).
    label_length: int = 1225

    @property
    def is_faulted(self) -> bool:
        """Whether a real printer would stay silent on ``~HS`` (§6)."""
        return self.paper_out or self.head_open or self.ribbon_out


def _flag(value: bool) -> str:
    return "1" if value else "0"


def host_status_answer(status: PrinterStatus) -> bytes:
    """Build the ``~HS`` answer: three ``STX … ETX CR LF`` lines.

    Line 1 carries the paper-out and pause flags, line 2 head-up and ribbon-out.

    Args:
        status: the printer state to report.

    Returns:
        The answer bytes, exactly as a printer sends them.
    """
    line1 = (
        f"030,{_flag(status.paper_out)},{_flag(status.paused)},"
        f"{status.label_length:04d},{min(status.formats_in_buffer, 999):03d},0,0,"
        f"{_flag(status.partial_format)},000,0,0,0"
    )
    line2 = (
        f"001,0,{_flag(status.head_open)},{_flag(status.ribbon_out)},1,2,6,"
        f"{_flag(status.labels_remaining > 0)},"
        f"{min(status.labels_remaining, 99_999_999):08d},1,000"
    )
    line3 = "1234,0"
    return b"".join(STX + line.encode() + ETX + CRLF for line in (line1, line2, line3))


def host_identification_answer(
    product_name: str, firmware: str, *, dots_per_mm: int = 8, memory_kb: int = 8192
) -> bytes:
    """Build the ``~HI`` answer: ``STX model,firmware,dpmm,memory ETX CR LF``.

    Args:
        product_name: the printer model.
        firmware: the firmware version.
        dots_per_mm: print resolution.
        memory_kb: memory size in KB.

    Returns:
        The answer bytes.
    """
    line = f"{product_name},{firmware},{dots_per_mm},{memory_kb}KB"
    return STX + line.encode() + ETX + CRLF


def getvar_answer(value: str) -> bytes:
    """Build the answer to ``! U1 getvar``: the value in double quotes, no newline.

    Args:
        value: the setting's value (``?`` for an unknown setting).

    Returns:
        The answer bytes.
    """
    return b'"' + value.encode() + b'"'
