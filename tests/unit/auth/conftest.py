"""Fixtures for the ``gateway.auth`` tests."""

from __future__ import annotations

import pytest

from gateway.auth import PasswordHash


@pytest.fixture
def count_scrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every password scrypt checks (``PasswordHash.matches`` calls)."""
    calls: list[str] = []
    original = PasswordHash.matches

    def matches(self: PasswordHash, password: str) -> bool:
        calls.append(password)
        return original(self, password)

    monkeypatch.setattr(PasswordHash, "matches", matches)
    return calls
