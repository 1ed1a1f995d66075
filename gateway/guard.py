"""Who may open a socket, and for which printer: the gateway's door.

Three checks, in the order a socket meets them:

1. the handshake: too many new connections from one address get 429; then the
   credentials (HTTP Basic after a 401 challenge, or a client certificate vouched for
   by a trusted proxy) must be good, unless the gateway runs open on purpose;
2. the first message: the serial it names must be one the credentials cover (else
   1008, logged as a security event), so a socket never gets a queue, a consumer or
   an event under a serial it may not speak for;
3. a printer may hold at most ``max_sockets_per_printer`` sockets on this replica.

The checks themselves live in ``gateway/auth/`` and ``gateway/limits.py``; this
module applies them and says what to answer, without websockets types.
"""

from __future__ import annotations

import asyncio
import http
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from gateway.auth import (
    Authenticator,
    CredentialFileError,
    HeaderSource,
    Principal,
    Rejection,
)
from gateway.limits import ConnectionRateLimiter, PrinterSocketLimiter, SocketLease

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

#: Seconds between checks of the credentials file for changes (also on SIGHUP).
CREDENTIALS_CHECK_INTERVAL = 5.0


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer that refuses a handshake."""

    status: http.HTTPStatus
    body: str
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class Guard:
    """The gateway's authentication and limits, built from its settings.

    Raises:
        ConfigurationError: no authentication is configured and the gateway was not
            told to run open (``allow_anonymous``), or the settings conflict.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.authenticator = Authenticator.from_settings(settings)
        rate = settings.max_connections_per_second_per_address
        self.rate_limiter = ConnectionRateLimiter(rate) if rate else None
        self.sockets = PrinterSocketLimiter(settings.max_sockets_per_printer)

    def log_start(self) -> None:
        """Say which methods are in force; warn (at every start) when running open."""
        for warning in self.authenticator.startup_warnings():
            event = (
                "security.anonymous"
                if self.authenticator.allow_anonymous
                else ("security.warning")
            )
            log.warning(event, message=warning)
        log.info(
            "security.methods",
            methods=[method.value for method in self.authenticator.methods],
        )

    def reload_credentials(self) -> None:
        """Pick up a changed credentials file; a broken one leaves the old in force."""
        try:
            if self.authenticator.reload():
                log.info("security.credentials_reloaded")
        except CredentialFileError as exc:
            log.error("security.credentials_invalid", error=str(exc))

    async def watch_credentials(
        self, interval: float = CREDENTIALS_CHECK_INTERVAL
    ) -> None:
        """Check the credentials file every ``interval`` seconds (a ``stat`` each)."""
        if self.authenticator.store is None:
            return
        while True:
            await asyncio.sleep(interval)  # the check's own period
            self.reload_credentials()

    def client_address(self, peer: str | None, forwarded: Iterable[str]) -> str | None:
        """The client's address: from X-Forwarded-For only behind a trusted proxy."""
        return self.authenticator.trusted_proxies.client_address(peer, list(forwarded))

    def rate_limited(self, client: str | None) -> Refusal | None:
        """429 when ``client`` opens connections faster than allowed."""
        if (
            self.rate_limiter is None
            or client is None
            or self.rate_limiter.allow(client)
        ):
            return None
        log.warning("security.rate_limited", address=client)
        retry = max(1, math.ceil(self.rate_limiter.retry_after(client)))
        return Refusal(
            http.HTTPStatus.TOO_MANY_REQUESTS,
            "too many connections\n",
            (("Retry-After", str(retry)),),
        )

    async def authenticate(
        self, headers: HeaderSource, peer: str | None, client: str | None
    ) -> Principal | Refusal:
        """Check the handshake's credentials (the peer decides proxy trust)."""
        result = await self.authenticator.authenticate(headers, peer)
        if not isinstance(result, Rejection):
            return result
        # Every printer's first attempt gets the 401 challenge: not worth a warning.
        (log.debug if result.is_expected else log.warning)(
            "security.handshake_rejected", address=client, **result.log_fields()
        )
        return Refusal(result.status, result.body, tuple(result.headers))

    def admit(
        self,
        principal: Principal | None,
        printer_serial: str,
        channel: str,
        address: str,
    ) -> SocketLease | str:
        """After identification: a socket lease, or the reason to close with 1008."""
        if principal is None or not principal.covers(printer_serial):
            log.warning(
                "security.serial_not_covered",
                printer_serial=printer_serial,
                channel=channel,
                address=address,
                **(principal.log_fields() if principal else {}),
            )
            return "credentials do not cover this printer"
        lease = self.sockets.try_acquire(printer_serial)
        if lease is None:
            log.warning(
                "security.too_many_sockets",
                printer_serial=printer_serial,
                channel=channel,
            )
            return "too many sockets for this printer"
        return lease
