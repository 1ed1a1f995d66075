"""HTTP Basic (RFC 7617): the ``Authorization`` header and the 401 challenge.

A printer sends ``Authorization`` only after a 401 challenge, and only when one of its
``weblink.ip.conn1.authentication.add`` entries names the server
(``weblink-protocol.md`` §1.1, §1.3).
"""

from __future__ import annotations

import base64
import binascii

from broker.errors import ConfigurationError

#: Header values longer than this are refused unparsed.
MAX_HEADER_LENGTH = 4096


def parse_basic_authorization(header_value: str) -> tuple[str, str] | None:
    """Return ``(username, password)`` from an ``Authorization: Basic`` value.

    Returns ``None`` for any other scheme and for anything malformed: bad base64,
    not UTF-8, no colon, an empty username, control characters, or a value longer
    than :data:`MAX_HEADER_LENGTH` (RFC 7617).
    """
    if len(header_value) > MAX_HEADER_LENGTH:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    username, colon, password = text.partition(":")
    if not colon or not username:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        return None
    return username, password


def challenge_header(realm: str) -> str:
    """Return the ``WWW-Authenticate`` value, ``Basic realm="<realm>"`` (RFC 7617)."""
    escaped = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{escaped}"'


def check_realm(realm: str) -> str:
    """Return ``realm`` if a challenge can carry it; else ``ConfigurationError``."""
    if not realm or any(not 0x20 <= ord(char) < 0x7F for char in realm):
        raise ConfigurationError(
            f"--auth-realm / ZEBRA_BROKER_AUTH_REALM: {realm!r} must be non-empty "
            "printable ASCII"
        )
    return realm
