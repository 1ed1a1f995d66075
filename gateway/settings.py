"""Settings of one gateway replica (flags > ``ZEBRA_BROKER_*`` env > ``.env`` > defaults)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pydantic import Field, field_validator

from broker.settings import BaseBrokerSettings


def _default_replica() -> str:
    host = socket.gethostname().split(".")[0] or "gateway"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class GatewaySettings(BaseBrokerSettings):
    """Everything a gateway replica can be told. Durations are seconds, sizes bytes."""

    host: str = Field("0.0.0.0", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port for WebLink and /healthz")
    ws_path: str | None = Field(
        None,
        description="if set, the only URL path printers may connect to "
        "(e.g. /zebra/weblink/); any path otherwise",
    )
    replica: str = Field(
        default_factory=_default_replica,
        description="this replica's name in events, presence and the management UI",
    )
    ws_ping_interval: float | None = Field(
        60.0,
        gt=0,
        description="a socket silent this many seconds gets a ping, which finds "
        "half-open sockets; printers ping every ~60 s themselves, so their sockets "
        "are seldom pinged (none: never ping)",
    )
    ws_ping_timeout: float | None = Field(
        20.0,
        gt=0,
        description="seconds to wait for a pong before closing a socket (1011); none: "
        "ws_ping_interval",
    )
    ws_close_timeout: float = Field(
        1.0,
        gt=0,
        description="seconds to wait for a printer's close frame before dropping the "
        "TCP connection (a half-open one never answers)",
    )
    ws_max_message_size: int = Field(
        1 << 20, ge=1024, description="largest WebSocket message a printer may send"
    )
    ws_max_buffer_size: int = Field(
        1 << 20,
        ge=1024,
        description="bytes buffered per channel for one incomplete JSON value or answer",
    )
    ws_send_chunk_size: int = Field(
        64 * 1024,
        ge=512,
        description="print data is sent in binary messages of at most this size",
    )
    identify_timeout: float = Field(
        10.0, gt=0, description="seconds a new socket has to send its first message"
    )
    channel_open_timeout: float = Field(
        10.0,
        gt=0,
        description="seconds a printer has to open a channel it was asked for",
    )
    idle_response_window: float = Field(
        0.3, gt=0, description="quiet time that ends an 'idle' query answer"
    )
    max_request_size: int = Field(
        16 * 1024 * 1024, ge=1, description="largest request body accepted"
    )
    credentials_file: Path | None = Field(
        None,
        description="printer credentials: salted password hashes, one JSON object per "
        "line (zebra-gateway-credentials)",
    )
    auth_realm: str = Field(
        "zebra-weblink",
        description="realm of the 401 challenge printers get before they send "
        "credentials",
    )
    allow_anonymous: bool = Field(
        False,
        description="run open to any printer (development only); without an "
        "authentication setting the gateway refuses to start",
    )
    client_cert_header: str | None = Field(
        None,
        description="header in which a trusted proxy passes the verified "
        "client-certificate subject (CN = serial), e.g. X-Client-DN",
    )
    trusted_proxies: str | None = Field(
        None,
        description="comma-separated networks whose client_cert_header and "
        "X-Forwarded-For are believed",
    )
    tls_certfile: Path | None = Field(
        None, description="certificate chain for native TLS (no proxy)"
    )
    tls_keyfile: Path | None = Field(None, description="private key of tls_certfile")
    max_connections_per_second_per_address: float | None = Field(
        100.0,
        gt=0,
        description="new connections per second per client address (burst: 5 s "
        "worth); past it HTTP 429",
    )
    max_sockets_per_printer: int = Field(
        10, ge=1, description="sockets one printer serial may hold on this replica"
    )
    amqp_channels: int = Field(
        4, ge=1, le=64, description="AMQP channels shared by printer consumers"
    )
    prefetch: int = Field(
        1,
        ge=1,
        le=100,
        description="requests RabbitMQ hands a printer channel at once (done one at a "
        "time; above 1, jobs can print out of order when a printer's raw channel "
        "moves to another socket)",
    )
    gc_young_threshold: int = Field(
        10_000,
        ge=0,
        description="objects allocated between young garbage collections (Python's "
        "default is 700, which makes a burst of connecting printers trigger repeated "
        "full collections of the whole heap); 0 keeps Python's defaults",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="times a request may lose its printer channel mid-way (per "
        "replica) before it ends as failed instead of going back to its queue",
    )
    replica_heartbeat_interval: float = Field(
        2.0,
        gt=0,
        description="seconds between this replica's heartbeats to the others; a "
        "replica silent for three intervals is taken as dead and its printer "
        "channels are asked for again",
    )
    shutdown_timeout: float = Field(
        10.0, ge=0, description="seconds in-flight requests get to finish on SIGTERM"
    )
    shutdown_grace_period: float = Field(
        5.0,
        ge=0,
        description="seconds over which printer sockets are closed, in batches, on "
        "SIGTERM (spreads the reconnects over the other replicas)",
    )

    @field_validator("ws_path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with /")
        return value
