"""Shared test data for ``gateway.auth``: credentials hashed cheaply, Basic values."""

from __future__ import annotations

import base64

from gateway.auth import Credential, PasswordHash

SERIAL = "50J161000398"
OTHER = "50J161000399"
PASSWORD = "correct-horse-battery"
FAST = 10  # scrypt ln for tests that need many hashes


def credential(
    username: str = SERIAL,
    password: str = PASSWORD,
    serials: tuple[str, ...] = (SERIAL,),
    *,
    fleet: bool = False,
) -> Credential:
    """Return a credential hashed cheaply."""
    return Credential(
        username=username,
        password_hash=PasswordHash.new(password, ln=FAST),
        serials=frozenset(serials),
        fleet=fleet,
    )


def basic(username: str, password: str) -> str:
    """Return an ``Authorization: Basic`` value."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


class Headers:
    """Request headers with websockets' ``get_all`` (names case-insensitive)."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = pairs

    def get_all(self, key: str) -> list[str]:
        return [value for name, value in self.pairs if name.lower() == key.lower()]
