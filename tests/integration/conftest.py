"""Fixtures for tests against the real RabbitMQ."""

from __future__ import annotations

import pytest

from tests.support.rabbitmq import amqp_url as find_amqp_url
from tests.support.rabbitmq import unique_namespace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def amqp_url() -> str:
    """The URL of the test RabbitMQ (fails under CI when it is missing)."""
    return find_amqp_url()


@pytest.fixture
def namespace() -> str:
    """A namespace of exchanges and queues for this test alone."""
    return unique_namespace()


@pytest.fixture
async def harness(amqp_url: str, namespace: str):
    """Start gateways, printers and clients; close them all and clean RabbitMQ after."""
    from tests.support.harness import Harness

    harness = Harness(amqp_url, namespace)
    try:
        yield harness
    finally:
        await harness.close()
