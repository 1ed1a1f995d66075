"""The handshake decision: who a new socket is (:class:`Authenticator`).

Build it with :meth:`Authenticator.from_settings` (which enforces "secure by
default") and call :meth:`Authenticator.authenticate` from ``process_request``. It
reads the client-certificate header first (believed only from trusted proxies), then
HTTP Basic credentials against the :class:`~gateway.auth.store.CredentialStore`.

Nothing here blocks the event loop for long: a password checked against a ``$scrypt$``
entry (about 30 ms) runs in a worker thread, a few at a time; one checked against an
``$hmac-sha256$`` entry (about 1.5 µs, less than a thread hop) runs inline; answers
from the store's caches need no hash at all.
"""

from __future__ import annotations

import asyncio
import http
import os
import stat
from collections.abc import Sequence
from typing import Protocol

from broker.errors import ConfigurationError
from gateway.auth.basic import challenge_header, check_realm, parse_basic_authorization
from gateway.auth.credentials import USERNAME_PATTERN
from gateway.auth.principal import (
    ANONYMOUS,
    AuthMethod,
    Principal,
    Rejection,
    RejectReason,
)
from gateway.auth.proxies import TrustedProxies, identity_from_header
from gateway.auth.store import CACHE_MISS, CredentialStore

#: scrypt runs on at most this many threads at once (each uses 16 MiB).
DEFAULT_CONCURRENT_HASHES = 2


class HeaderSource(Protocol):
    """What :meth:`Authenticator.authenticate` reads headers from (websockets'
    ``Headers`` fits)."""

    def get_all(self, key: str) -> list[str]: ...


class AuthSettings(Protocol):
    """The settings :meth:`Authenticator.from_settings` reads (``GatewaySettings``)."""

    @property
    def credentials_file(self) -> str | os.PathLike[str] | None: ...
    @property
    def auth_realm(self) -> str: ...
    @property
    def allow_anonymous(self) -> bool: ...
    @property
    def client_cert_header(self) -> str | None: ...
    @property
    def trusted_proxies(self) -> str | Sequence[str] | None: ...


class Authenticator:
    """Decide, during the HTTP handshake, who a new socket is.

    Build it with :meth:`from_settings` (which enforces "secure by default") and call
    :meth:`authenticate` from ``process_request``.

    Args:
        store: Printer credentials (Basic), or ``None``.
        realm: The realm of the 401 challenge.
        allow_anonymous: Accept every socket as :data:`ANONYMOUS` (development only);
            only valid with no other method.
        client_cert_header: The header carrying the verified certificate subject.
        trusted_proxies: Addresses allowed to send ``client_cert_header``.
        concurrent_hashes: scrypt computations allowed at once (hmac-sha256
            checks run inline and take no slot).

    Raises:
        ConfigurationError: No method and not anonymous; anonymous mixed with a
            method; a certificate header without trusted proxies; a bad realm.
    """

    def __init__(
        self,
        *,
        store: CredentialStore | None = None,
        realm: str = "zebra-weblink",
        allow_anonymous: bool = False,
        client_cert_header: str | None = None,
        trusted_proxies: TrustedProxies | None = None,
        concurrent_hashes: int = DEFAULT_CONCURRENT_HASHES,
    ) -> None:
        self.store = store
        self.realm = check_realm(realm)
        self.allow_anonymous = allow_anonymous
        self.client_cert_header = client_cert_header
        self.trusted_proxies = trusted_proxies or TrustedProxies()
        has_method = store is not None or client_cert_header is not None
        if not has_method and not allow_anonymous:
            raise ConfigurationError(
                "no printer authentication configured: set --credentials-file "
                "(ZEBRA_BROKER_CREDENTIALS_FILE), or --client-cert-header with "
                "--trusted-proxies; or run open for development with "
                "--allow-anonymous (ZEBRA_BROKER_ALLOW_ANONYMOUS=true)"
            )
        if has_method and allow_anonymous:
            raise ConfigurationError(
                "--allow-anonymous (ZEBRA_BROKER_ALLOW_ANONYMOUS) is for development "
                "without authentication; it cannot be combined with "
                "--credentials-file or --client-cert-header"
            )
        if client_cert_header is not None and not self.trusted_proxies:
            raise ConfigurationError(
                "--client-cert-header (ZEBRA_BROKER_CLIENT_CERT_HEADER) needs "
                "--trusted-proxies (ZEBRA_BROKER_TRUSTED_PROXIES): the proxy "
                "addresses whose header the gateway may believe"
            )
        if concurrent_hashes < 1:
            raise ConfigurationError("concurrent_hashes must be at least 1")
        self._hash_slots = asyncio.Semaphore(concurrent_hashes)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        """Build from gateway settings, loading the credentials file if one is set.

        Raises:
            ConfigurationError: See the class; also an unreadable or invalid file.
        """
        store = None
        if settings.credentials_file is not None:
            store = CredentialStore.load(settings.credentials_file)
        return cls(
            store=store,
            realm=settings.auth_realm,
            allow_anonymous=settings.allow_anonymous,
            client_cert_header=settings.client_cert_header or None,
            trusted_proxies=TrustedProxies.parse(settings.trusted_proxies),
        )

    @property
    def methods(self) -> tuple[AuthMethod, ...]:
        """The methods in force, for the startup log."""
        if self.allow_anonymous:
            return (AuthMethod.ANONYMOUS,)
        methods: list[AuthMethod] = []
        if self.client_cert_header is not None:
            methods.append(AuthMethod.CLIENT_CERTIFICATE)
        if self.store is not None:
            methods.append(AuthMethod.PASSWORD)
        return tuple(methods)

    def startup_warnings(self) -> list[str]:
        """Return what the gateway should log as warnings at every start."""
        warnings: list[str] = []
        if self.allow_anonymous:
            warnings.append(
                "running OPEN (allow_anonymous): any client that reaches this port "
                "can claim any printer serial and read its jobs; development only"
            )
        if self.store is not None:
            if not len(self.store):
                warnings.append(
                    f"credentials file {self.store.source} holds no credentials: "
                    "every printer using a password is refused"
                )
            if self.store.path is not None:
                try:
                    mode = self.store.path.stat().st_mode
                except OSError:
                    mode = 0
                if mode & (stat.S_IROTH | stat.S_IWOTH):
                    warnings.append(
                        f"credentials file {self.store.path} is readable or writable "
                        "by other users: chmod 600 it"
                    )
        return warnings

    def reload(self) -> bool:
        """Re-read the credentials file if it changed; return whether it did.

        Call it on SIGHUP or periodically. New logins use the new file at once;
        open sockets keep the principal they were opened with.

        Raises:
            CredentialFileError: The new file is invalid; the old one stays in force.
        """
        if self.store is None:
            return False
        fresh = self.store.reload()
        changed = fresh is not self.store
        self.store = fresh
        return changed

    async def authenticate(
        self, headers: HeaderSource, peer: str | None
    ) -> Principal | Rejection:
        """Decide who the client of one handshake is.

        Args:
            headers: The request headers.
            peer: The TCP peer's IP address (``connection.remote_address[0]``).

        Returns:
            The :class:`Principal`, or the :class:`Rejection` to answer with.
        """
        if self.allow_anonymous:
            return ANONYMOUS
        if self.client_cert_header is not None:
            subjects = [
                value for value in headers.get_all(self.client_cert_header) if value
            ]
            if subjects:
                return self._certificate(subjects, peer)
        if self.store is None:
            return Rejection(
                http.HTTPStatus.FORBIDDEN, RejectReason.MISSING_CERTIFICATE
            )
        return await self._password(self.store, headers.get_all("Authorization"))

    def _certificate(
        self, subjects: list[str], peer: str | None
    ) -> Principal | Rejection:
        if peer not in self.trusted_proxies:
            return Rejection(
                http.HTTPStatus.FORBIDDEN, RejectReason.UNTRUSTED_CERTIFICATE_HEADER
            )
        serial = identity_from_header(subjects[0]) if len(subjects) == 1 else None
        if serial is None:
            return Rejection(
                http.HTTPStatus.FORBIDDEN, RejectReason.INVALID_CERTIFICATE_SUBJECT
            )
        return Principal(AuthMethod.CLIENT_CERTIFICATE, serial, frozenset({serial}))

    async def _password(
        self, store: CredentialStore, authorization: list[str]
    ) -> Principal | Rejection:
        if not authorization:
            return self._challenge(RejectReason.MISSING_CREDENTIALS)
        parsed = (
            parse_basic_authorization(authorization[0])
            if len(authorization) == 1
            else None
        )
        if parsed is None:
            return self._challenge(RejectReason.MALFORMED_AUTHORIZATION)
        username, password = parsed
        loggable = username if USERNAME_PATTERN.fullmatch(username) else None
        credential = store.get(username)
        if credential is None:
            return self._challenge(RejectReason.UNKNOWN_USERNAME, loggable)
        verdict = store.check_cached(username, password)
        if verdict is CACHE_MISS:
            if credential.password_hash.slow:
                # scrypt, off the event loop and a few at a time.
                async with self._hash_slots:
                    verdict = await asyncio.to_thread(store.verify, username, password)
            else:
                # hmac-sha256: a few µs, cheaper here than a hop to a thread.
                verdict = store.verify(username, password)
        if verdict is None:
            return self._challenge(RejectReason.WRONG_PASSWORD, loggable)
        return Principal(
            AuthMethod.PASSWORD, verdict.username, verdict.serials, verdict.fleet
        )

    def _challenge(
        self, reason: RejectReason, username: str | None = None
    ) -> Rejection:
        return Rejection(
            http.HTTPStatus.UNAUTHORIZED,
            reason,
            (("WWW-Authenticate", challenge_header(self.realm)),),
            username,
        )
