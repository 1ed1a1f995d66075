"""What a test needs from the machine: skip locally when it is missing, fail under CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_or_fail(message: str) -> NoReturn:
    """Skip, or fail when ``CI=true`` (CI installs everything, so nothing may skip)."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: tests must not skip)")
    pytest.skip(message)
