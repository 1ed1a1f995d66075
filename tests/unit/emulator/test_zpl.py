"""Raw-channel parsing and status answers of the emulator (``weblink-protocol.md`` §6)."""

from __future__ import annotations

import pytest

from gateway.emulator.zpl import (
    GetVar,
    HostIdentificationQuery,
    HostStatusQuery,
    JsonSgd,
    LabelFormat,
    PrinterStatus,
    SetVar,
    ZplStream,
    getvar_answer,
    host_identification_answer,
    host_status_answer,
    json_object_end,
    label_count,
)

FORMAT = b"^XA^FO50,50^A0N,40,40^FDHello^FS^XZ"


def feed_bytewise(stream: ZplStream, data: bytes) -> list[object]:
    commands: list[object] = []
    for index in range(len(data)):
        commands.extend(stream.feed(data[index : index + 1]))
    return commands


class TestLabelCount:
    """``^PQ`` quantity: first parameter, default 1."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (FORMAT, 1),
            (b"^XA^PQ3^XZ", 3),
            (b"^XA^PQ12,0,1,Y^XZ", 12),
            (b"^xa^pq2^xz", 2),
            (b"^XA^PQ^XZ", 1),
            (b"^XA^PQ0^XZ", 1),
            (b"^XA^PQ2^PQ5^XZ", 5),
        ],
    )
    def test_label_count(self, data: bytes, expected: int) -> None:
        """The last ^PQ's quantity decides; empty or zero means one label."""
        assert label_count(data) == expected
        assert LabelFormat(data).label_count == expected


class TestZplStream:
    """Splitting the raw byte stream into commands across chunk boundaries."""

    def test_one_format_in_one_chunk(self) -> None:
        """A whole format in one message comes out verbatim."""
        assert ZplStream().feed(FORMAT) == [LabelFormat(FORMAT)]

    def test_format_split_at_every_byte(self) -> None:
        """A format fed one byte at a time still comes out once, verbatim."""
        data = b"\r\n" + FORMAT + b"\r\n" + b"^XA^PQ3^XZ"
        commands = feed_bytewise(ZplStream(), data)
        assert commands == [LabelFormat(FORMAT), LabelFormat(b"^XA^PQ3^XZ")]

    def test_partial_format_flag(self) -> None:
        """in_format is true between ^XA and ^XZ."""
        stream = ZplStream()
        assert stream.feed(b"^XA^FDx") == []
        assert stream.in_format
        assert stream.feed(b"^FS^X") == []
        assert stream.feed(b"Z") == [LabelFormat(b"^XA^FDx^FS^XZ")]
        assert not stream.in_format

    def test_several_formats_in_one_chunk(self) -> None:
        """Two formats and a ~HS in one message give three commands in order."""
        commands = ZplStream().feed(FORMAT + b"~HS" + FORMAT)
        assert commands == [LabelFormat(FORMAT), HostStatusQuery(), LabelFormat(FORMAT)]

    def test_tilde_commands(self) -> None:
        """~HS and ~HI are recognised outside formats, in any case."""
        commands = feed_bytewise(ZplStream(), b"~hs~HI")
        assert commands == [HostStatusQuery(), HostIdentificationQuery()]

    def test_tilde_inside_format_is_part_of_it(self) -> None:
        """Inside a format only ^XZ matters."""
        data = b"^XA~HS^XZ"
        assert ZplStream().feed(data) == [LabelFormat(data)]

    def test_getvar(self) -> None:
        """! U1 getvar completes at the closing quote, even without a newline."""
        stream = ZplStream()
        assert stream.feed(b'! U1 getvar "device.fri') == []
        assert stream.feed(b'endly_name"') == [GetVar("device.friendly_name")]
        assert stream.feed(b"\r\n" + FORMAT) == [LabelFormat(FORMAT)]

    def test_setvar_and_do(self) -> None:
        """! U1 setvar and do wait for their value, then complete."""
        stream = ZplStream()
        assert stream.feed(b'! U1 setvar "ip.port" "91') == []
        assert stream.feed(b'00"\r\n! U1 do "device.reset" ""\r\n') == [
            SetVar("ip.port", "9100"),
            SetVar("device.reset", ""),
        ]

    def test_malformed_sgd_line_is_skipped(self) -> None:
        """A complete ! U1 line that is not getvar/setvar/do is dropped."""
        stream = ZplStream()
        assert stream.feed(b'! U1 setvar "x"\r\n! U1 frobnicate\r\n~HS') == [
            HostStatusQuery()
        ]

    def test_sgd_line_split_at_every_byte(self) -> None:
        """A getvar split at every byte still comes out once."""
        commands = feed_bytewise(ZplStream(), b'! U1 getvar "appl.name"\r\n')
        assert commands == [GetVar("appl.name")]

    def test_json_sgd(self) -> None:
        """{}{...} on raw completes when its object closes."""
        stream = ZplStream()
        assert stream.feed(b'{}{"a":null,"b":"}') == []
        assert stream.feed(b'x"}') == [JsonSgd({"a": None, "b": "}x"})]

    def test_json_sgd_split_at_every_byte(self) -> None:
        """A JSON SGD request split at every byte still comes out once."""
        commands = feed_bytewise(ZplStream(), b'{}\r\n{"a" : "\\"{"}')
        assert commands == [JsonSgd({"a": '"{'})]

    def test_bad_json_sgd_is_skipped(self) -> None:
        """{} followed by something that is not a JSON object is dropped."""
        stream = ZplStream()
        assert stream.feed(b"{}[1]" + FORMAT) == [LabelFormat(FORMAT)]
        assert stream.feed(b'{}{"a":nope}~HS') == [HostStatusQuery()]

    def test_other_bytes_are_ignored(self) -> None:
        """CPCL and unknown commands outside formats are skipped."""
        commands = ZplStream().feed(b"! 0 200 200 210 1\r\nTEXT 4 0 30 40 Hi\r\n~JA")
        assert commands == []

    def test_long_unterminated_sgd_line_is_abandoned(self) -> None:
        """A ! U1 line that never ends does not block the stream forever."""
        stream = ZplStream()
        assert stream.feed(b"! U1 " + b"x" * 70_000) == []
        assert stream.feed(FORMAT) == [LabelFormat(FORMAT)]


class TestJsonObjectEnd:
    """Finding the end of a JSON object in a growing buffer."""

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            (b'{"a":1}', 7),
            (b' \r\n{"a":{"b":"}"}}tail', 18),
            (b'{"a":"\\\\"}', 10),
            (b"{", None),
            (b"   ", None),
            (b'{"a":"}', None),
            (b"[]", -1),
        ],
    )
    def test_end(self, data: bytes, expected: int | None) -> None:
        """Index past the closing brace, None if incomplete, -1 if not an object."""
        assert json_object_end(data, 0) == expected


class TestAnswers:
    """~HS, ~HI and getvar answers (programming guide; §6)."""

    def test_host_status_shape(self) -> None:
        """~HS answers three STX…ETX CR LF lines."""
        answer = host_status_answer(PrinterStatus())
        lines = answer.split(b"\r\n")
        assert lines[-1] == b""
        assert len(lines) == 4
        for line in lines[:3]:
            assert line.startswith(b"\x02")
            assert line.endswith(b"\x03")
        assert lines[0] == b"\x02030,0,0,1225,000,0,0,0,000,0,0,0\x03"
        assert lines[1] == b"\x02001,0,0,0,1,2,6,0,00000000,1,000\x03"
        assert lines[2] == b"\x021234,0\x03"

    def test_host_status_flags(self) -> None:
        """Paper out and pause are in line 1, head open and ribbon out in line 2."""
        status = PrinterStatus(
            paper_out=True,
            paused=True,
            head_open=True,
            ribbon_out=True,
            formats_in_buffer=2,
            labels_remaining=5,
            partial_format=True,
        )
        line1, line2, _, _ = host_status_answer(status).split(b"\r\n")
        fields1 = line1.strip(b"\x02\x03").split(b",")
        fields2 = line2.strip(b"\x02\x03").split(b",")
        assert fields1[1:3] == [b"1", b"1"]
        assert fields1[4] == b"002"
        assert fields1[7] == b"1"
        assert fields2[2:4] == [b"1", b"1"]
        assert fields2[7:9] == [b"1", b"00000005"]
        assert status.is_faulted

    @pytest.mark.parametrize("fault", ["paper_out", "head_open", "ribbon_out"])
    def test_faults_that_silence_host_status(self, fault: str) -> None:
        """Paper out, head open and ribbon out count as faults; pause does not."""
        assert PrinterStatus(**{fault: True}).is_faulted
        assert not PrinterStatus(paused=True).is_faulted

    def test_host_identification(self) -> None:
        """~HI answers model, firmware, dpmm and memory in one STX…ETX line."""
        answer = host_identification_answer("ZD620-203dpi", "V84.20.23Z")
        assert answer == b"\x02ZD620-203dpi,V84.20.23Z,8,8192KB\x03\r\n"

    def test_getvar_answer(self) -> None:
        """getvar answers the value in double quotes."""
        assert getvar_answer("LINE-3") == b'"LINE-3"'
