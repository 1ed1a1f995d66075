"""Internal control messages between gateway replicas (not part of the public contract).

They travel on the ``<ns>.control`` direct exchange with the printer serial as routing
key, and reach every replica that holds one of that printer's sockets. They are hints
about state elsewhere, sent without persistence and consumed without acks: losing one
costs a delay (a channel reopened at the next request), never a label.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class ControlOp(StrEnum):
    #: A raw or config socket of the printer was identified on some replica.
    CHANNEL_OPENED = "channel_opened"
    #: ... and closed again.
    CHANNEL_CLOSED = "channel_closed"
    #: A new main socket was identified: older sockets of the printer must close.
    MAIN_CLAIMED = "main_claimed"
    #: A new raw or config socket wants the printer's queue: older sockets of that
    #: kind must close (and cancel their consumers) before it starts consuming.
    CHANNEL_CLAIMED = "channel_claimed"
    #: A raw or config socket stopped consuming its queue (superseded or draining),
    #: possibly before the socket itself has finished closing.
    CONSUMER_RELEASED = "consumer_released"
    #: A replica is alive (sent every ``replica_heartbeat_interval`` to every replica).
    REPLICA_ALIVE = "replica_alive"
    #: A replica is shutting down on purpose.
    REPLICA_LEAVING = "replica_leaving"
    #: The conditions now holding the printer's jobs (from the replica holding main).
    HOLD = "hold"
    #: The printer sent an alert (on whichever replica holds the socket it came on).
    ALERT = "alert"


#: Routing key of messages for every replica (a dot is never part of a serial).
ALL_REPLICAS_KEY = ".replicas"


@dataclass(frozen=True)
class ControlMessage:
    op: ControlOp
    printer_serial: str
    replica: str
    socket_id: str
    #: Wall-clock time (epoch seconds) the socket was identified.
    since: float
    kind: str | None = None
    close_code: int | None = None
    #: For REPLICA_ALIVE: seconds until the next heartbeat.
    interval: float | None = None
    #: For ALERT: the normalised condition (``pq_job_completed``) and ``set``/``clear``.
    condition: str | None = None
    state: str | None = None
    #: For HOLD: the conditions holding jobs (empty: none).
    conditions: list[str] | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> ControlMessage:
        """Parse a control message; raise ``ValueError`` if it is not one."""
        try:
            data = json.loads(body)
            data["op"] = ControlOp(data["op"])
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed control message: {exc}") from exc
