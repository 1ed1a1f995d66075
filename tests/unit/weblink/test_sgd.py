"""JSON SGD and the JSON the core sends: ``weblink-protocol.md`` §5 and §2."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.weblink.sgd import encode_json, encode_sgd_request, reply_matches


class TestEncodeJson:
    """Compact for the gateway, printer-style pretty for the emulator (§2)."""

    def test_compact(self) -> None:
        """Compact JSON has no spaces, as the gateway sends it."""
        assert (
            encode_json({"open": "v1.raw.zebra.com"}) == b'{"open":"v1.raw.zebra.com"}'
        )

    def test_pretty_printer_style(self) -> None:
        """Pretty JSON uses two-space indents, ``" : "`` and CRLF like a printer."""
        assert encode_json({"discovery_b64": "OiwuBA==", "n": 1}, pretty=True) == (
            b'{\r\n  "discovery_b64" : "OiwuBA==",\r\n  "n" : 1\r\n}'
        )

    def test_pretty_nested(self) -> None:
        """Nested objects are indented one more level."""
        encoded = encode_json({"alert": {"type": "ALERT", "list": [1]}}, pretty=True)
        assert encoded == (
            b'{\r\n  "alert" : {\r\n    "type" : "ALERT",\r\n'
            b'    "list" : [\r\n      1\r\n    ]\r\n  }\r\n}'
        )

    def test_pretty_newline_in_string(self) -> None:
        """A line feed inside a string stays escaped; only layout breaks become CRLF."""
        encoded = encode_json({"s": "a\nb"}, pretty=True)
        assert encoded == b'{\r\n  "s" : "a\\nb"\r\n}'
        assert json.loads(encoded) == {"s": "a\nb"}

    def test_empty_containers(self) -> None:
        """Empty objects and arrays stay on one line."""
        assert encode_json({}, pretty=True) == b"{}"
        assert encode_json({"a": []}, pretty=True) == b'{\r\n  "a" : []\r\n}'

    def test_utf8(self) -> None:
        """Non-ASCII text goes out as UTF-8, not as escapes."""
        assert encode_json({"name": "Bäckerei"}) == '{"name":"Bäckerei"}'.encode()

    def test_bytes_type(self) -> None:
        """The result is bytes, ready for one binary message."""
        assert isinstance(encode_json([1]), bytes)


class TestEncodeSgdRequest:
    """Every JSON SGD command is prefixed by ``{}`` (§5)."""

    def test_get(self) -> None:
        """A get names settings with null values after the ``{}`` prefix."""
        request = {"device.friendly_name": None, "appl.name": None}
        assert encode_sgd_request(request) == (
            b'{}{"device.friendly_name":null,"appl.name":null}'
        )

    def test_set(self) -> None:
        """A set carries string values."""
        assert encode_sgd_request({"ip.port": "1234"}) == b'{}{"ip.port":"1234"}'


class TestReplyMatches:
    """Replies carry no id; their keys are the only cross-check (§5)."""

    @pytest.mark.parametrize(
        ("request_", "reply", "expected"),
        [
            ({"device.friendly_name": None}, {"device.friendly_name": "LINE-3"}, True),
            ({"a": None, "b": None}, {"a": "1", "b": "2"}, True),
            ({"a": None, "b": None}, {"a": "1"}, True),
            (
                {"weblink": None},
                {"weblink.enable": "on", "weblink.ip.conn1.location": ""},
                True,
            ),
            ({"weblink": None}, {"weblinkx.enable": "on"}, False),
            ({"device.friendly_name": None}, {"appl.name": "V84"}, False),
            ({"a": None}, {"a": "1", "b": "2"}, False),
            ({"allvalues": None}, {"anything": "x"}, True),
            ({"allconfig": None}, {"anything": {"value": "x"}}, True),
            ({"a": None}, {}, False),
            ({"allvalues": None}, {}, False),
        ],
    )
    def test_cases(
        self, request_: dict[str, Any], reply: dict[str, Any], expected: bool
    ) -> None:
        """Every reply key must equal or lie below a request key; dumps match all."""
        assert reply_matches(request_, reply) is expected
