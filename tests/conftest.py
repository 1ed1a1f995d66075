"""Test-wide fixtures: a clean ``ZEBRA_BROKER_*`` environment for every test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ``ZEBRA_BROKER_*`` variables out of every test."""
    for name in list(os.environ):
        if name.startswith("ZEBRA_BROKER_") and not name.startswith(
            "ZEBRA_BROKER_TEST"
        ):
            monkeypatch.delenv(name)
