"""Raw-channel answer framing: ``weblink-protocol.md`` §6."""

from __future__ import annotations

import pytest

from gateway.weblink.framing import ResponseCollector
from tests.unit.weblink.frames import GETVAR_REPLY, HS_REPLY, SGD_REPLY, splits


def feed_pieces(
    collector: ResponseCollector, pieces: list[bytes]
) -> tuple[bytes | None, bytes]:
    """Feed pieces until the answer completes; return it and all leftover bytes."""
    answer: bytes | None = None
    leftover = b""
    for piece in pieces:
        got, rest = collector.feed(piece)
        answer = answer if got is None else got
        leftover += rest
    return answer, leftover


class TestArguments:
    """Framing arguments are checked up front."""

    def test_unknown_kind(self) -> None:
        """An unknown framing is a ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="frames, idle, json, line"):
            ResponseCollector("bytes")

    def test_frames_needs_count(self) -> None:
        """``frames`` needs a count of at least one."""
        with pytest.raises(ValueError, match="frame count"):
            ResponseCollector("frames", 0)


class TestFrames:
    """``frames:N``: complete after the N-th ETX that closes an STX frame (§6 ~HS)."""

    def test_hs_in_one_piece(self) -> None:
        """``~HS``'s three frames with their CRLFs make the whole answer."""
        collector = ResponseCollector("frames", 3)
        assert collector.feed(HS_REPLY) == (HS_REPLY, b"")
        assert collector.done

    def test_hs_split_everywhere(self) -> None:
        """However the answer is cut, it completes at the third ETX."""
        for head, tail in splits(HS_REPLY):
            answer, leftover = feed_pieces(ResponseCollector("frames", 3), [head, tail])
            assert answer is not None
            assert answer + leftover == HS_REPLY
            # The CRLF after the last ETX is in the answer when it was buffered.
            assert answer == HS_REPLY or leftover in (b"\n", b"\r\n")

    def test_crlf_arriving_later_is_leftover(self) -> None:
        """Line ends that arrive after completion are leftover bytes."""
        collector = ResponseCollector("frames", 1)
        assert collector.feed(b"\x02a\x03") == (b"\x02a\x03", b"")
        assert collector.feed(b"\r\n") == (None, b"\r\n")

    def test_bytes_after_answer_are_leftover(self) -> None:
        """Bytes after the last frame and its CRLF belong to nobody."""
        collector = ResponseCollector("frames", 1)
        assert collector.feed(b"\x02a\x03\r\nextra") == (b"\x02a\x03\r\n", b"extra")
        assert collector.collected == b"\x02a\x03\r\n"

    def test_stray_etx_not_counted(self) -> None:
        """An ETX outside a frame does not count; an STX inside a frame is data."""
        collector = ResponseCollector("frames", 1)
        assert collector.feed(b"\x03junk\x02a\x02b") == (None, b"")
        assert collector.feed(b"\x03") == (b"\x03junk\x02a\x02b\x03", b"")

    def test_fewer_frames(self) -> None:
        """Two frames are not enough for ``frames:3``."""
        collector = ResponseCollector("frames", 3)
        assert collector.feed(HS_REPLY[:-12]) == (None, b"")
        assert not collector.done


class TestLine:
    """``line``: up to and including the first LF (``! U1 getvar``)."""

    def test_getvar(self) -> None:
        """A quoted getvar value with its CRLF is one answer."""
        assert ResponseCollector("line").feed(GETVAR_REPLY) == (GETVAR_REPLY, b"")

    def test_split_everywhere(self) -> None:
        """The answer ends at the first LF however it is cut."""
        data = GETVAR_REPLY + b"next"
        for head, tail in splits(data):
            answer, leftover = feed_pieces(ResponseCollector("line"), [head, tail])
            assert (answer, leftover) == (GETVAR_REPLY, b"next")


class TestJson:
    """``json``: one complete JSON value (SGD over raw, §5)."""

    def test_split_everywhere(self) -> None:
        """A pretty reply cut anywhere completes at its closing brace."""
        data = b"\r\n" + SGD_REPLY + b"\r\n"
        for head, tail in splits(data):
            answer, leftover = feed_pieces(ResponseCollector("json"), [head, tail])
            assert answer == b"\r\n" + SGD_REPLY
            assert leftover == b"\r\n"

    def test_not_json_completes_at_once(self) -> None:
        """Bytes that cannot be JSON complete the answer with everything collected."""
        collector = ResponseCollector("json")
        assert collector.feed(b"  ?bad") == (b"  ?bad", b"")

    def test_over_size(self) -> None:
        """An incomplete value over max_size completes with what arrived."""
        collector = ResponseCollector("json", max_size=8)
        assert collector.feed(b'{"a":"') == (None, b"")
        assert collector.feed(b'12345"') == (b'{"a":"12345"', b"")


class TestIdle:
    """``idle``: only the session ends it, after a quiet period."""

    def test_never_completes(self) -> None:
        """Feeding never completes; finish() returns everything."""
        collector = ResponseCollector("idle")
        assert collector.feed(b"abc") == (None, b"")
        assert collector.feed(b"def") == (None, b"")
        assert collector.collected == b"abcdef"
        assert collector.finish() == b"abcdef"
        assert collector.done

    def test_after_finish_everything_is_leftover(self) -> None:
        """Once finished, fed bytes are returned as leftover."""
        collector = ResponseCollector("idle")
        collector.finish()
        assert collector.feed(b"late") == (None, b"late")

    def test_max_size(self) -> None:
        """More than max_size bytes complete even an idle answer."""
        collector = ResponseCollector("idle", max_size=4)
        assert collector.feed(b"abcd") == (None, b"")
        assert collector.feed(b"e") == (b"abcde", b"")


class TestFinish:
    """finish() ends a partial answer at a timeout."""

    def test_partial_frames(self) -> None:
        """A partial ``~HS`` answer is returned as collected."""
        collector = ResponseCollector("frames", 3)
        collector.feed(HS_REPLY[:10])
        assert collector.finish() == HS_REPLY[:10]
