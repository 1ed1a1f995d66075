"""Requests RabbitMQ dead-lettered: each gets its outcome (``expired`` or ``failed``).

Printer queues dead-letter to the fanout ``<ns>.dlx``, whose queue every replica drains.
A request whose ``expiration`` ran out while queued ends ``expired``; one dead-lettered
for another reason (rejected by a tool, a quorum delivery limit) ends ``failed``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog

from broker.errors import BrokerUnavailable
from broker.schemas import JobStatus, Outcome, RequestType, new_job_id
from gateway.metrics import publish_time

if TYPE_CHECKING:
    from gateway.bus import Bus, Delivery

log = structlog.get_logger(__name__)


def unsent_outcome(
    delivery: Delivery, printer_serial: str, status: JobStatus, error: str
) -> tuple[Outcome, RequestType | None]:
    """The outcome of a request that ends without reaching its printer, and its type."""
    outcome = Outcome(
        job_id=delivery.message_id or new_job_id(),
        printer_serial=printer_serial,
        status=status,
        correlation_id=delivery.correlation_id,
        error=error,
    )
    try:
        kind = RequestType(delivery.message_type) if delivery.message_type else None
    except ValueError:
        kind = None
    return outcome, kind


async def handle_dead_letter(bus: Bus, delivery: Delivery) -> None:
    """Turn a dead-lettered request into its outcome (``expired`` or ``failed``)."""
    parsed = bus.topology.parse_request_key(delivery.routing_key)
    reason = _death_reason(delivery.headers)
    if parsed is None:
        log.warning(
            "deadletter.unknown", routing_key=delivery.routing_key, reason=reason
        )
        await delivery.ack()
        return
    serial, _channel = parsed
    if reason == "expired":
        status = JobStatus.EXPIRED
        error = "the job's lifetime ran out before it could be sent to the printer"
    else:
        status = JobStatus.FAILED
        error = f"RabbitMQ dead-lettered the request ({reason})"
    outcome, kind = unsent_outcome(delivery, serial, status, error)
    try:
        await bus.publish_outcome(outcome, delivery.reply_to, kind)
    except BrokerUnavailable as exc:
        log.warning("deadletter.outcome_unpublished", error=str(exc))
        return
    await delivery.ack()
    started = publish_time(
        received_at=delivery.received_at,
        headers=delivery.headers,
        timestamp=delivery.timestamp,
    )
    bus.metrics.request_finished(kind, status, time.time() - started)
    log.info(
        "job.finished",
        printer_serial=serial,
        job_id=outcome.job_id,
        status=status.value,
        error=error,
    )


def _death_reason(headers: dict[str, Any]) -> str:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        if isinstance(reason, bytes):
            return reason.decode()
        if isinstance(reason, str):
            return reason
    return "unknown"
