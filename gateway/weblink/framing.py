"""Where a raw-channel answer ends.

``weblink-protocol.md`` §6: the raw channel behaves like TCP port 9100 and replies are
unframed bytes, chunked arbitrarily. A query therefore says how its answer ends (the
contract's ``x-zebra-response`` header), and :class:`ResponseCollector` applies that
rule to the bytes as they arrive:

* ``frames`` (with a count N): complete after the N-th ETX (0x03) that closes an STX
  (0x02) frame, as in ``~HS``'s three ``<STX>…<ETX><CR><LF>`` lines (§6). CR and LF
  bytes right after the last ETX belong to the answer if they are already buffered;
  any that arrive later are left over.
* ``line``: complete after the first LF, which is included (``! U1 getvar`` answers).
* ``json``: complete after one JSON object or array (leading whitespace allowed). If
  the bytes cannot be JSON, the answer completes at once with everything collected,
  so the caller sees the bad reply instead of waiting for a timeout.
* ``idle``: never completes by itself; the session ends it with :meth:`finish` once
  the printer has been quiet long enough (the core has no clock).

Whatever the kind, once more than ``max_size`` bytes are collected the answer completes
with everything collected so far, so a chatty printer cannot grow it without bound.
"""

from __future__ import annotations

import re

from gateway.weblink.jsonstream import JsonStream, JsonStreamError

#: The framings a query may ask for.
RESPONSE_KINDS = frozenset({"json", "frames", "line", "idle"})

_STX, _ETX = 0x02, 0x03
_FRAME_BYTES = re.compile(rb"[\x02\x03]")
_LINE_END = frozenset(b"\r\n")


class ResponseCollector:
    """Collect one raw-channel answer under its framing rule.

    Args:
        kind: ``json``, ``frames``, ``line`` or ``idle`` (see the module docstring).
        frames: For ``frames``, how many STX…ETX frames make the answer (at least 1).
        max_size: Collected bytes beyond which the answer completes as it is.

    Raises:
        ValueError: Unknown ``kind``, or ``frames`` below 1 for the ``frames`` kind.
    """

    def __init__(self, kind: str, frames: int = 0, max_size: int = 1 << 20) -> None:
        if kind not in RESPONSE_KINDS:
            raise ValueError(
                f"unknown response framing {kind!r}; expected one of "
                f"{', '.join(sorted(RESPONSE_KINDS))}"
            )
        if kind == "frames" and frames < 1:
            raise ValueError(
                f"frames framing needs a frame count of 1 or more, got {frames}"
            )
        self.kind = kind
        self.frames = frames
        self.max_size = max_size
        self._collected = bytearray()
        self._done = False
        self._scan_pos = 0  # frames/line: where the search resumes
        self._in_frame = False
        self._frames_seen = 0
        self._json = JsonStream(max_buffer_size=max_size)

    @property
    def collected(self) -> bytes:
        """The bytes collected so far (the whole answer once it is complete)."""
        return bytes(self._collected)

    @property
    def done(self) -> bool:
        """Whether the answer is complete or was ended with :meth:`finish`."""
        return self._done

    def feed(self, data: bytes) -> tuple[bytes | None, bytes]:
        """Add bytes received on the raw channel.

        Args:
            data: The next bytes from the printer.

        Returns:
            ``(answer, leftover)``: ``answer`` is ``None`` until the answer completes,
            then its bytes; ``leftover`` holds bytes after the end of the answer, which
            belong to nobody. Once done, every byte fed is leftover.
        """
        if self._done:
            return None, bytes(data)
        self._collected += data
        end = self._find_end(data)
        if end is None:
            if len(self._collected) <= self.max_size:
                return None, b""
            end = len(self._collected)
        answer, leftover = bytes(self._collected[:end]), bytes(self._collected[end:])
        del self._collected[end:]
        self._done = True
        return answer, leftover

    def finish(self) -> bytes:
        """End the answer now (idle framing, or a timeout) and return what arrived."""
        self._done = True
        return bytes(self._collected)

    def _find_end(self, data: bytes) -> int | None:
        """Return the end index of the answer in the collected bytes, if complete."""
        if self.kind == "frames":
            return self._find_frames_end()
        if self.kind == "line":
            index = self._collected.find(b"\n", self._scan_pos)
            self._scan_pos = len(self._collected)
            return None if index < 0 else index + 1
        if self.kind == "json":
            return self._find_json_end(data)
        return None  # idle

    def _find_frames_end(self) -> int | None:
        buf = self._collected
        for match in _FRAME_BYTES.finditer(buf, self._scan_pos):
            if buf[match.start()] == _STX:
                self._in_frame = True
            elif self._in_frame:  # an ETX closing a frame; a stray ETX does not count
                self._in_frame = False
                self._frames_seen += 1
                if self._frames_seen == self.frames:
                    end = match.end()
                    while end < len(buf) and buf[end] in _LINE_END:
                        end += 1
                    return end
        self._scan_pos = len(buf)
        return None

    def _find_json_end(self, data: bytes) -> int | None:
        # The stream holds exactly the bytes collected so far, so the length of the
        # head it returns is the end index in self._collected.
        try:
            first = self._json.split_first(data)
        except JsonStreamError:
            return len(self._collected)
        return None if first is None else len(first[0])
