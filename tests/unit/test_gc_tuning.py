"""The gateway's garbage-collector thresholds (``gc_young_threshold``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.cli import GC_OLDER_THRESHOLDS, tune_gc
from gateway.settings import GatewaySettings


@pytest.fixture
def thresholds() -> Iterator[None]:
    """Restore the interpreter's thresholds after the test."""
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_default_setting_raises_the_young_threshold(thresholds: None) -> None:
    settings = GatewaySettings(allow_anonymous=True)
    tune_gc(settings.gc_young_threshold)
    assert gc.get_threshold() == (10_000, *GC_OLDER_THRESHOLDS)


def test_zero_keeps_what_the_interpreter_has(thresholds: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_environment_sets_it(
    thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZEBRA_BROKER_GC_YOUNG_THRESHOLD", "2500")
    settings = GatewaySettings(allow_anonymous=True)
    tune_gc(settings.gc_young_threshold)
    assert gc.get_threshold()[0] == 2500
