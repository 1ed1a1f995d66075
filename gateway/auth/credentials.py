"""One printer credential: a line of the credentials file.

One JSON object per line (``#`` lines and blank lines are skipped)::

    {"username": "50J161000398", "password_hash": "$hmac-sha256$<salt>$<hash>",
     "serials": ["50J161000398"], "comment": "line 3", "created": "2025-01-01T00:00:00Z"}

``password_hash`` is either scheme of :mod:`gateway.auth.passwords`
(``$hmac-sha256$...`` for generated passwords, ``$scrypt$...`` for chosen ones and
for every entry written before the fast scheme existed). ``serials`` lists the serials
the credential covers, usually exactly one. ``["*"]`` covers every printer and is
accepted only with ``"fleet": true``: one leaked printer configuration then speaks for
the whole fleet, so it must be a deliberate choice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from broker.topology import is_valid_serial
from gateway.auth.passwords import StoredHash, decode_password_hash

#: The serials entry of a fleet-wide credential.
FLEET = "*"
#: Usernames printers can send: no colon (Basic splits on it), no space (the printer's
#: ``authentication.add`` value is space-separated), nothing a log line could misread.
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

_LINE_FIELDS = frozenset(
    {"username", "password_hash", "serials", "fleet", "comment", "created"}
)


def check_username(username: str) -> str:
    """Return ``username`` if valid (:data:`USERNAME_PATTERN`), else raise ``ValueError``."""
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise ValueError(
            f"invalid username {username[:80]!r}: only [A-Za-z0-9_.@-]{{1,64}} is allowed"
        )
    return username


@dataclass(frozen=True)
class Credential:
    """One printer credential: a username, its password hash and the serials it covers.

    Attributes:
        username: What the printer sends (by convention its serial).
        password_hash: Never the password itself; either scheme.
        serials: The printer serials this credential may speak for.
        fleet: Covers every serial (``serials`` is then ``{"*"}``).
        comment: Free text for people.
        created: ISO 8601 time the entry was written, if known.
    """

    username: str
    password_hash: StoredHash
    serials: frozenset[str]
    fleet: bool = False
    comment: str | None = None
    created: str | None = None

    def __post_init__(self) -> None:
        check_username(self.username)
        if not self.serials:
            raise ValueError(
                "serials is empty: a credential covers at least one serial"
            )
        if FLEET in self.serials:
            if not self.fleet:
                raise ValueError(
                    'serials "*" covers every printer and needs "fleet": true'
                )
            if self.serials != {FLEET}:
                raise ValueError('serials "*" cannot be combined with other serials')
        elif self.fleet:
            raise ValueError('"fleet": true needs serials ["*"]')
        for serial in self.serials - {FLEET}:
            if not is_valid_serial(serial):
                raise ValueError(
                    f"invalid serial {serial[:80]!r}: only [A-Za-z0-9_-]{{1,64}}"
                )

    def covers(self, printer_serial: str) -> bool:
        """Return whether this credential may speak for ``printer_serial``."""
        if not is_valid_serial(printer_serial):
            return False
        return self.fleet or printer_serial in self.serials

    @classmethod
    def from_json(cls, value: Any) -> Credential:
        """Build a credential from one decoded line of the credentials file.

        Raises:
            ValueError: A missing, unknown or invalid field.
        """
        if not isinstance(value, dict):
            raise ValueError("each line must be a JSON object")
        unknown = set(value) - _LINE_FIELDS
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        username = value.get("username")
        password_hash = value.get("password_hash")
        serials = value.get("serials")
        fleet = value.get("fleet", False)
        comment = value.get("comment")
        created = value.get("created")
        if not isinstance(username, str):
            raise ValueError("username must be a string")
        if not isinstance(password_hash, str):
            raise ValueError("password_hash must be a string")
        if not isinstance(serials, list) or not all(
            isinstance(item, str) for item in serials
        ):
            raise ValueError("serials must be a list of strings")
        if not isinstance(fleet, bool):
            raise ValueError("fleet must be true or false")
        for name, text in (("comment", comment), ("created", created)):
            if text is not None and not isinstance(text, str):
                raise ValueError(f"{name} must be a string")
        return cls(
            username=username,
            password_hash=decode_password_hash(password_hash),
            serials=frozenset(serials),
            fleet=fleet,
            comment=comment,
            created=created,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the object written as one line of the credentials file."""
        value: dict[str, Any] = {
            "username": self.username,
            "password_hash": self.password_hash.encode(),
            "serials": sorted(self.serials),
        }
        if self.fleet:
            value["fleet"] = True
        if self.comment is not None:
            value["comment"] = self.comment
        if self.created is not None:
            value["created"] = self.created
        return value

    def to_line(self) -> str:
        """Return the credentials-file line (no newline)."""
        return json.dumps(self.to_json(), separators=(", ", ": "))


def parse_credential_line(line: str) -> Credential | None:
    """Parse one line of a credentials file; ``None`` for blank and ``#`` lines.

    Raises:
        ValueError: The line is not a valid credential.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return Credential.from_json(value)
