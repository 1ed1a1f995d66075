"""What a handshake decides: a :class:`Principal` or a :class:`Rejection`.

A principal is who opened the socket and which printer serials it may speak for; a
rejection is the HTTP answer that refuses the handshake.
"""

from __future__ import annotations

import enum
import http
from dataclasses import dataclass
from typing import Any

from broker.topology import is_valid_serial


class AuthMethod(enum.StrEnum):
    """How a socket's principal was established."""

    ANONYMOUS = "anonymous"
    PASSWORD = "password"
    CLIENT_CERTIFICATE = "client_certificate"


@dataclass(frozen=True)
class Principal:
    """Who opened a socket, and which printer serials it may speak for."""

    method: AuthMethod
    #: The username, the certificate's CN, or ``anonymous``.
    name: str
    serials: frozenset[str] = frozenset()
    #: Anonymous access (development) and fleet credentials cover every serial.
    fleet: bool = False

    def covers(self, printer_serial: str) -> bool:
        """Return whether this principal may open sockets for ``printer_serial``."""
        if not is_valid_serial(printer_serial):
            return False
        return self.fleet or printer_serial in self.serials

    def log_fields(self) -> dict[str, str]:
        """Return ``auth_method`` and ``auth_name`` for log lines."""
        return {"auth_method": self.method.value, "auth_name": self.name}


#: The principal of every socket when the gateway runs with ``allow_anonymous``.
ANONYMOUS = Principal(AuthMethod.ANONYMOUS, "anonymous", fleet=True)


class RejectReason(enum.StrEnum):
    """Why a handshake was refused: stable values for logs and metrics."""

    #: No ``Authorization`` header: the first step of every printer login (expected).
    MISSING_CREDENTIALS = "missing_credentials"
    MALFORMED_AUTHORIZATION = "malformed_authorization"
    UNKNOWN_USERNAME = "unknown_username"
    WRONG_PASSWORD = "wrong_password"
    #: The client-certificate header came from an address not in trusted_proxies.
    UNTRUSTED_CERTIFICATE_HEADER = "untrusted_certificate_header"
    #: The certificate subject holds no single CN that is a valid serial.
    INVALID_CERTIFICATE_SUBJECT = "invalid_certificate_subject"
    #: Only client certificates are accepted and there is none.
    MISSING_CERTIFICATE = "missing_certificate"


@dataclass(frozen=True)
class Rejection:
    """An HTTP answer that refuses the WebSocket handshake.

    Attributes:
        status: 401 with a challenge, or 403.
        reason: Why, for the log (the response body never says).
        headers: Response headers to add (``WWW-Authenticate`` on a 401).
        username: The username presented, if any, already checked to be loggable
            (``None`` if absent or not a valid username).
    """

    status: http.HTTPStatus
    reason: RejectReason
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None

    @property
    def body(self) -> str:
        """The response body: generic on purpose."""
        if self.status == http.HTTPStatus.UNAUTHORIZED:
            return "authentication required\n"
        return "forbidden\n"

    @property
    def is_expected(self) -> bool:
        """True for the 401 every printer gets before it sends credentials.

        Log those at debug level; every other rejection is a security event.
        """
        return self.reason is RejectReason.MISSING_CREDENTIALS

    def log_fields(self) -> dict[str, Any]:
        """Return ``reason``, ``status`` and ``username`` (if any) for log lines."""
        fields: dict[str, Any] = {
            "reason": self.reason.value,
            "status": int(self.status),
        }
        if self.username is not None:
            fields["username"] = self.username
        return fields
