"""One credential: a line of the credentials file."""

from __future__ import annotations

import pytest

from gateway.auth import Credential, PasswordHash, check_username, parse_credential_line
from tests.unit.auth.helpers import FAST, OTHER, PASSWORD, SERIAL, credential


class TestCredential:
    """One line of the credentials file."""

    def test_covers_its_serials_only(self):
        """A credential covers the serials it names and nothing else."""
        item = credential(serials=(SERIAL, OTHER))
        assert item.covers(SERIAL)
        assert item.covers(OTHER)
        assert not item.covers("50J000000000")
        assert not item.covers("bad serial!")

    def test_fleet_covers_every_valid_serial(self):
        """A fleet credential covers any valid serial, never an invalid one."""
        item = credential("site-a", serials=("*",), fleet=True)
        assert item.covers(SERIAL)
        assert item.covers("X")
        assert not item.covers("")
        assert not item.covers("a.b")

    @pytest.mark.parametrize(
        ("serials", "fleet", "message"),
        [
            (("*",), False, "needs"),
            (("*", SERIAL), True, "cannot be combined"),
            ((SERIAL,), True, "needs serials"),
            ((), False, "empty"),
            (("50J.1",), False, "invalid serial"),
        ],
    )
    def test_invalid_serials(self, serials, fleet, message):
        """'*' needs the fleet flag alone; serials must be valid and non-empty."""
        with pytest.raises(ValueError, match=message):
            credential(serials=serials, fleet=fleet)

    @pytest.mark.parametrize("username", ["", "a:b", "a b", "ü", "x" * 65])
    def test_invalid_username(self, username):
        """Usernames are [A-Za-z0-9_.@-]{1,64}."""
        with pytest.raises(ValueError, match="invalid username"):
            check_username(username)

    def test_line_round_trip(self):
        """A credential written as a line reads back equal."""
        item = Credential(
            username="site-a",
            password_hash=PasswordHash.new(PASSWORD, ln=FAST),
            serials=frozenset({"*"}),
            fleet=True,
            comment="hall B",
            created="2025-01-01T00:00:00Z",
        )
        assert parse_credential_line(item.to_line()) == item
        assert PASSWORD not in item.to_line()

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            ('{"username": "a", "serial": "x"}', "unknown fields: serial"),
            ('{"password_hash": "x", "serials": []}', "username"),
            ('{"username": "a", "serials": ["A"]}', "password_hash"),
            ('{"username": "a", "password_hash": "x", "serials": "A"}', "serials"),
        ],
    )
    def test_bad_lines(self, line, message):
        """Malformed lines raise ``ValueError`` saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            parse_credential_line(line)

    def test_bad_field_types(self):
        """``fleet`` must be a boolean and ``comment`` a string."""
        good = credential().to_json()
        with pytest.raises(ValueError, match="fleet"):
            Credential.from_json({**good, "fleet": "yes"})
        with pytest.raises(ValueError, match="comment"):
            Credential.from_json({**good, "comment": 3})

    @pytest.mark.parametrize("line", ["", "   ", "# a comment", "  # indented"])
    def test_blank_and_comment_lines(self, line):
        """Blank lines and ``#`` lines hold no credential."""
        assert parse_credential_line(line) is None
