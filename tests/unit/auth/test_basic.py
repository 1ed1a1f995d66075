"""HTTP Basic: the ``Authorization`` header and the challenge."""

from __future__ import annotations

import base64

import pytest

from gateway.auth import challenge_header, parse_basic_authorization
from tests.unit.auth.helpers import SERIAL, basic


class TestBasic:
    """``Authorization: Basic`` parsing and the challenge (RFC 7617)."""

    def test_parse(self):
        """Username and password split at the first colon."""
        assert parse_basic_authorization(basic(SERIAL, "pa:ss")) == (SERIAL, "pa:ss")
        assert parse_basic_authorization(basic(SERIAL, "")) == (SERIAL, "")
        token = base64.b64encode(b"u:p").decode()
        assert parse_basic_authorization(f"basic   {token} ") == ("u", "p")

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "Basic",
            "Bearer abc",
            "Digest username=x",
            "Basic !!!notbase64",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b":password").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Basic " + base64.b64encode(b"user\n:x").decode(),
            "Basic " + base64.b64encode(b"user:x\x7f").decode(),
            "Basic " + "A" * 5000,
        ],
    )
    def test_malformed(self, value):
        """Anything but a well-formed Basic value gives None."""
        assert parse_basic_authorization(value) is None

    def test_challenge_header(self):
        """The challenge quotes the realm and escapes quotes and backslashes."""
        assert challenge_header("zebra-weblink") == 'Basic realm="zebra-weblink"'
        assert challenge_header('a"b\\c') == 'Basic realm="a\\"b\\\\c"'
