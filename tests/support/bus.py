"""A gateway ``Bus`` on its own, started against the test RabbitMQ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.bus import Bus
from gateway.settings import GatewaySettings


async def _ignore(*_args: object) -> None:
    return None


async def start_bus(
    amqp_url: str,
    namespace: str,
    *,
    replica: str | None = None,
    on_connection_lost: Callable[[], None] = lambda: None,
    on_reconnected: Callable[[], Awaitable[None]] = _ignore,
) -> Bus:
    """Connect a bus (no sessions: control messages and dead letters are ignored)."""
    settings = GatewaySettings(
        amqp_url=amqp_url, namespace=namespace, allow_anonymous=True
    )
    if replica is not None:
        settings = settings.model_copy(update={"replica": replica})
    bus = Bus(settings)
    await bus.start(
        on_control=_ignore,
        on_dead_letter=_ignore,
        on_connection_lost=on_connection_lost,
        on_reconnected=on_reconnected,
    )
    return bus
