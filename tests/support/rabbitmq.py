"""Finding the test RabbitMQ: skip locally when it is absent, fail under CI."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


def amqp_url() -> str:
    """Return the test broker URL, failing or skipping if nothing listens there."""
    url = os.environ.get("ZEBRA_BROKER_TEST_AMQP_URL", DEFAULT_URL)
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 5672), timeout=2):
            pass
    except OSError as exc:
        message = f"RabbitMQ is not reachable at {parts.hostname}:{parts.port}: {exc}"
        required = os.environ.get("CI") == "true" or os.environ.get(
            "ZEBRA_BROKER_REQUIRE_RABBITMQ"
        ) in ("1", "true")
        if required:
            pytest.fail(message + " (CI=true: integration tests must not skip)")
        pytest.skip(message)
    return url


def unique_namespace() -> str:
    """Return a namespace no other test uses, so tests never see each other."""
    return "t" + uuid.uuid4().hex[:12]
