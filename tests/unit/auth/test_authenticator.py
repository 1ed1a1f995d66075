"""The handshake decision: configuration and ``authenticate``."""

from __future__ import annotations

import asyncio
import http
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from gateway.auth import (
    ANONYMOUS,
    Authenticator,
    AuthMethod,
    Credential,
    CredentialFileError,
    CredentialStore,
    PasswordHash,
    Principal,
    Rejection,
    RejectReason,
    SecretHash,
    TrustedProxies,
    generate_password,
)
from tests.unit.auth.helpers import OTHER, PASSWORD, SERIAL, Headers, basic, credential


@dataclass(frozen=True)
class FakeSettings:
    """The authentication fields of ``GatewaySettings``."""

    credentials_file: Path | None = None
    auth_realm: str = "zebra-weblink"
    allow_anonymous: bool = False
    client_cert_header: str | None = None
    trusted_proxies: str | None = None


class TestAuthenticatorConfiguration:
    """Secure by default: no method, no start."""

    def test_nothing_configured_refuses(self):
        """Without a method or allow_anonymous the gateway must not start."""
        with pytest.raises(ConfigurationError, match="--allow-anonymous"):
            Authenticator.from_settings(FakeSettings())

    def test_anonymous_with_a_method_refuses(self):
        """allow_anonymous cannot be mixed with a real method."""
        with pytest.raises(ConfigurationError, match="cannot be combined"):
            Authenticator(store=CredentialStore([]), allow_anonymous=True)

    def test_certificate_header_needs_proxies(self):
        """A certificate header without trusted proxies is refused."""
        with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
            Authenticator.from_settings(FakeSettings(client_cert_header="X-Client-DN"))

    @pytest.mark.parametrize("realm", ["", "tab\there", "ü"])
    def test_bad_realm(self, realm):
        """The realm must be printable ASCII."""
        with pytest.raises(ConfigurationError, match="AUTH_REALM"):
            Authenticator(allow_anonymous=True, realm=realm)

    def test_bad_concurrency(self):
        """At least one scrypt must be allowed at a time."""
        with pytest.raises(ConfigurationError, match="concurrent_hashes"):
            Authenticator(allow_anonymous=True, concurrent_hashes=0)

    def test_from_settings_loads_file(self, tmp_path):
        """A credentials file setting loads the store; the methods say so."""
        path = tmp_path / "c.jsonl"
        path.write_text(credential().to_line() + "\n")
        path.chmod(0o600)
        auth = Authenticator.from_settings(
            FakeSettings(
                credentials_file=path,
                client_cert_header="X-Client-DN",
                trusted_proxies="127.0.0.1",
            )
        )
        assert auth.store is not None
        assert len(auth.store) == 1
        assert auth.methods == (AuthMethod.CLIENT_CERTIFICATE, AuthMethod.PASSWORD)
        assert auth.startup_warnings() == []

    def test_startup_warnings(self, tmp_path):
        """Open mode, an empty file and a world-readable file are warned about."""
        assert "OPEN" in Authenticator(allow_anonymous=True).startup_warnings()[0]
        assert Authenticator(allow_anonymous=True).methods == (AuthMethod.ANONYMOUS,)
        path = tmp_path / "c.jsonl"
        path.write_text("")
        path.chmod(0o644)
        warnings = Authenticator.from_settings(
            FakeSettings(credentials_file=path)
        ).startup_warnings()
        assert any("no credentials" in warning for warning in warnings)
        assert any("chmod 600" in warning for warning in warnings)

    def test_reload(self, tmp_path):
        """Reload picks up a changed file and keeps the old one if the new is bad."""
        path = tmp_path / "c.jsonl"
        path.write_text(credential().to_line() + "\n")
        auth = Authenticator.from_settings(FakeSettings(credentials_file=path))
        assert not auth.reload()
        path.write_text(credential(OTHER, serials=(OTHER,)).to_line() + "\n")
        assert auth.reload()
        assert auth.store is not None
        assert auth.store.get(OTHER) is not None
        path.write_text("{broken\n")
        with pytest.raises(CredentialFileError):
            auth.reload()
        assert auth.store.get(OTHER) is not None
        assert not Authenticator(allow_anonymous=True).reload()


class TestAuthenticate:
    """The handshake decision."""

    @pytest.fixture
    def auth(self) -> Authenticator:
        store = CredentialStore(
            [
                credential(),
                credential("site-a", "fleet-password-1", ("*",), fleet=True),
            ]
        )
        return Authenticator(store=store, realm="print.example.com")

    async def test_anonymous(self):
        """allow_anonymous admits everyone as a principal covering every serial."""
        principal = await Authenticator(allow_anonymous=True).authenticate(
            Headers(), "203.0.113.9"
        )
        assert principal is ANONYMOUS
        assert principal.covers(SERIAL)
        assert not principal.covers("bad serial")

    async def test_no_credentials_is_an_expected_challenge(self, auth):
        """A first handshake without credentials gets 401 and the challenge."""
        result = await auth.authenticate(Headers(), "203.0.113.9")
        assert isinstance(result, Rejection)
        assert result.status == http.HTTPStatus.UNAUTHORIZED
        assert result.reason is RejectReason.MISSING_CREDENTIALS
        assert result.is_expected
        assert result.headers == (
            ("WWW-Authenticate", 'Basic realm="print.example.com"'),
        )
        assert result.body == "authentication required\n"
        assert result.log_fields() == {"reason": "missing_credentials", "status": 401}

    @pytest.mark.parametrize(
        ("headers", "reason", "username"),
        [
            (
                [("Authorization", "Bearer x")],
                RejectReason.MALFORMED_AUTHORIZATION,
                None,
            ),
            (
                [
                    ("Authorization", basic(SERIAL, PASSWORD)),
                    ("Authorization", basic(SERIAL, PASSWORD)),
                ],
                RejectReason.MALFORMED_AUTHORIZATION,
                None,
            ),
            (
                [("Authorization", basic("nobody", PASSWORD))],
                RejectReason.UNKNOWN_USERNAME,
                "nobody",
            ),
            (
                [("Authorization", basic("no body!", PASSWORD))],
                RejectReason.UNKNOWN_USERNAME,
                None,
            ),
            (
                [("Authorization", basic(SERIAL, "wrong-password"))],
                RejectReason.WRONG_PASSWORD,
                SERIAL,
            ),
        ],
    )
    async def test_refused_credentials(self, auth, headers, reason, username):
        """Bad credentials get a 401 challenge and a loggable reason."""
        result = await auth.authenticate(Headers(*headers), "203.0.113.9")
        assert isinstance(result, Rejection)
        assert result.status == http.HTTPStatus.UNAUTHORIZED
        assert result.reason is reason
        assert result.username == username
        assert not result.is_expected
        assert result.headers[0][0] == "WWW-Authenticate"

    async def test_valid_credentials_bind_the_serial(self, auth):
        """Valid credentials give a principal covering its serials only."""
        result = await auth.authenticate(
            Headers(("authorization", basic(SERIAL, PASSWORD))), "203.0.113.9"
        )
        assert isinstance(result, Principal)
        assert result.method is AuthMethod.PASSWORD
        assert result.name == SERIAL
        assert result.covers(SERIAL)
        assert not result.covers(OTHER)
        assert result.log_fields() == {"auth_method": "password", "auth_name": SERIAL}

    async def test_fleet_credentials(self, auth):
        """A fleet credential covers every printer."""
        result = await auth.authenticate(
            Headers(("Authorization", basic("site-a", "fleet-password-1"))), None
        )
        assert isinstance(result, Principal)
        assert result.covers(SERIAL)
        assert result.covers(OTHER)

    async def test_scrypt_runs_off_the_loop_and_bounded(self, monkeypatch):
        """Cache misses run scrypt in threads, no more at once than allowed."""
        store = CredentialStore([credential()])
        active, peak, threads = 0, 0, set()
        lock = threading.Lock()
        original = PasswordHash.matches

        def matches(self: PasswordHash, password: str) -> bool:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
                threads.add(threading.get_ident())
            try:
                return original(self, password)
            finally:
                with lock:
                    active -= 1

        monkeypatch.setattr(PasswordHash, "matches", matches)
        auth = Authenticator(store=store, concurrent_hashes=1)
        results = await asyncio.gather(
            *(
                auth.authenticate(
                    Headers(("Authorization", basic(SERIAL, f"wrong-password-{i}"))),
                    None,
                )
                for i in range(6)
            )
        )
        assert all(isinstance(result, Rejection) for result in results)
        assert peak == 1
        assert threading.get_ident() not in threads

    async def test_generated_password_is_checked_inline(self, monkeypatch):
        """An hmac-sha256 entry is checked on the loop's thread: no thread hop."""
        secret = generate_password()
        store = CredentialStore(
            [
                Credential(
                    username=SERIAL,
                    password_hash=SecretHash.new(secret),
                    serials=frozenset({SERIAL}),
                )
            ]
        )
        threads: list[int] = []
        original = SecretHash.matches

        def matches(self: SecretHash, password: str) -> bool:
            threads.append(threading.get_ident())
            return original(self, password)

        monkeypatch.setattr(SecretHash, "matches", matches)

        def no_threads(*args: object, **kwargs: object) -> None:
            raise AssertionError("asyncio.to_thread called")

        monkeypatch.setattr(asyncio, "to_thread", no_threads)
        auth = Authenticator(store=store)
        wrong = await auth.authenticate(
            Headers(("Authorization", basic(SERIAL, generate_password()))), None
        )
        assert isinstance(wrong, Rejection)
        assert wrong.reason is RejectReason.WRONG_PASSWORD
        right = await auth.authenticate(
            Headers(("Authorization", basic(SERIAL, secret))), None
        )
        assert isinstance(right, Principal)
        assert right.covers(SERIAL)
        assert threads == [threading.get_ident()] * 2

    async def test_certificate_from_trusted_proxy(self):
        """A trusted proxy's certificate header names the principal by its CN."""
        auth = Authenticator(
            client_cert_header="X-Client-DN",
            trusted_proxies=TrustedProxies.parse("10.0.0.0/8"),
        )
        result = await auth.authenticate(
            Headers(("x-client-dn", f"CN={SERIAL},O=Acme")), "10.1.1.1"
        )
        assert result == Principal(
            AuthMethod.CLIENT_CERTIFICATE, SERIAL, frozenset({SERIAL})
        )
        assert isinstance(result, Principal)
        assert not result.covers(OTHER)

    @pytest.mark.parametrize(
        ("headers", "peer", "reason"),
        [
            (
                [("X-Client-DN", f"CN={SERIAL}")],
                "203.0.113.9",
                RejectReason.UNTRUSTED_CERTIFICATE_HEADER,
            ),
            (
                [("X-Client-DN", f"CN={SERIAL}")],
                None,
                RejectReason.UNTRUSTED_CERTIFICATE_HEADER,
            ),
            (
                [("X-Client-DN", "O=Acme")],
                "10.1.1.1",
                RejectReason.INVALID_CERTIFICATE_SUBJECT,
            ),
            (
                [("X-Client-DN", f"CN={SERIAL}"), ("X-Client-DN", f"CN={OTHER}")],
                "10.1.1.1",
                RejectReason.INVALID_CERTIFICATE_SUBJECT,
            ),
            ([], "10.1.1.1", RejectReason.MISSING_CERTIFICATE),
            ([("X-Client-DN", "")], "10.1.1.1", RejectReason.MISSING_CERTIFICATE),
        ],
    )
    async def test_certificate_refusals(self, headers, peer, reason):
        """Spoofed, ambiguous or missing certificate identities get 403."""
        auth = Authenticator(
            client_cert_header="X-Client-DN",
            trusted_proxies=TrustedProxies.parse("10.0.0.0/8"),
        )
        result = await auth.authenticate(Headers(*headers), peer)
        assert isinstance(result, Rejection)
        assert result.status == http.HTTPStatus.FORBIDDEN
        assert result.reason is reason
        assert result.headers == ()
        assert result.body == "forbidden\n"

    async def test_certificate_or_password(self):
        """With both methods, a socket without a certificate may use a password."""
        auth = Authenticator(
            store=CredentialStore([credential()]),
            client_cert_header="X-Client-DN",
            trusted_proxies=TrustedProxies.parse("10.0.0.0/8"),
        )
        challenge = await auth.authenticate(Headers(), "10.1.1.1")
        assert isinstance(challenge, Rejection)
        assert challenge.status == http.HTTPStatus.UNAUTHORIZED
        by_password = await auth.authenticate(
            Headers(("Authorization", basic(SERIAL, PASSWORD))), "10.1.1.1"
        )
        assert isinstance(by_password, Principal)
        assert by_password.method is AuthMethod.PASSWORD
        by_certificate = await auth.authenticate(
            Headers(
                ("X-Client-DN", f"CN={OTHER}"),
                ("Authorization", basic(SERIAL, PASSWORD)),
            ),
            "10.1.1.1",
        )
        assert isinstance(by_certificate, Principal)
        assert by_certificate.name == OTHER
