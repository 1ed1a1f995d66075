"""Printer authentication: credentials file, password hashes, Basic, certificates, CLI.

Everything is pure except the credentials files, written under ``tmp_path``. Hashes
are made with ``ln=10`` (about 2 ms) where many are needed; the CLI uses the real
cost.
"""

from __future__ import annotations

import asyncio
import base64
import http
import io
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.errors import ConfigurationError
from gateway import credentials_cli
from gateway.auth import (
    ANONYMOUS,
    CACHE_MISS,
    SCRYPT_LN,
    Authenticator,
    AuthMethod,
    Credential,
    CredentialFileError,
    CredentialStore,
    PasswordHash,
    Principal,
    Rejection,
    RejectReason,
    TrustedProxies,
    challenge_header,
    check_password,
    check_username,
    generate_password,
    identity_from_header,
    parse_basic_authorization,
    parse_credential_line,
    server_tls_context,
)

SERIAL = "50J161000398"
OTHER = "50J161000399"
PASSWORD = "correct-horse-battery"
FAST = 10  # scrypt ln for tests that need many hashes


def credential(
    username: str = SERIAL,
    password: str = PASSWORD,
    serials: tuple[str, ...] = (SERIAL,),
    *,
    fleet: bool = False,
) -> Credential:
    """Return a credential hashed cheaply."""
    return Credential(
        username=username,
        password_hash=PasswordHash.new(password, ln=FAST),
        serials=frozenset(serials),
        fleet=fleet,
    )


def basic(username: str, password: str) -> str:
    """Return an ``Authorization: Basic`` value."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


class Headers:
    """Request headers with websockets' ``get_all`` (names case-insensitive)."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.pairs = pairs

    def get_all(self, key: str) -> list[str]:
        return [value for name, value in self.pairs if name.lower() == key.lower()]


@pytest.fixture
def count_scrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every password scrypt checks (``PasswordHash.matches`` calls)."""
    calls: list[str] = []
    original = PasswordHash.matches

    def matches(self: PasswordHash, password: str) -> bool:
        calls.append(password)
        return original(self, password)

    monkeypatch.setattr(PasswordHash, "matches", matches)
    return calls


class TestPasswordHash:
    """Salted scrypt hashes in PHC form."""

    def test_round_trip(self):
        """A hash survives encode/decode and verifies only its own password."""
        hashed = PasswordHash.new(PASSWORD, ln=FAST)
        decoded = PasswordHash.decode(hashed.encode())
        assert decoded == hashed
        assert decoded.matches(PASSWORD)
        assert not decoded.matches(PASSWORD + "x")

    def test_default_parameters(self):
        """The default cost is N=2**14, r=8, p=1 with a 16-byte salt."""
        hashed = PasswordHash.new(PASSWORD)
        assert (hashed.ln, hashed.r, hashed.p) == (SCRYPT_LN, 8, 1)
        assert len(hashed.salt) == 16
        assert hashed.encode().startswith("$scrypt$ln=14,r=8,p=1$")

    def test_salt_is_random(self):
        """Two hashes of one password differ."""
        assert PasswordHash.new(PASSWORD, ln=FAST) != PasswordHash.new(
            PASSWORD, ln=FAST
        )

    def test_repr_hides_salt_and_digest(self):
        """``repr`` shows the parameters only."""
        hashed = PasswordHash.new(PASSWORD, ln=FAST)
        assert repr(hashed) == "PasswordHash(ln=10, r=8, p=1)"

    @pytest.mark.parametrize(
        "text",
        [
            "plain",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$scrypt$ln=9,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=21,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=20,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=9$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2Fs$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$a",
        ],
    )
    def test_decode_rejects(self, text):
        """Other schemes, weak or huge parameters and short salts are refused."""
        with pytest.raises(ValueError, match=r"\S"):
            PasswordHash.decode(text)


class TestCredential:
    """One line of the credentials file."""

    def test_covers_its_serials_only(self):
        """A credential covers the serials it names and nothing else."""
        item = credential(serials=(SERIAL, OTHER))
        assert item.covers(SERIAL)
        assert item.covers(OTHER)
        assert not item.covers("50J000000000")
        assert not item.covers("bad serial!")

    def test_fleet_covers_every_valid_serial(self):
        """A fleet credential covers any valid serial, never an invalid one."""
        item = credential("site-a", serials=("*",), fleet=True)
        assert item.covers(SERIAL)
        assert item.covers("X")
        assert not item.covers("")
        assert not item.covers("a.b")

    @pytest.mark.parametrize(
        ("serials", "fleet", "message"),
        [
            (("*",), False, "needs"),
            (("*", SERIAL), True, "cannot be combined"),
            ((SERIAL,), True, "needs serials"),
            ((), False, "empty"),
            (("50J.1",), False, "invalid serial"),
        ],
    )
    def test_invalid_serials(self, serials, fleet, message):
        """'*' needs the fleet flag alone; serials must be valid and non-empty."""
        with pytest.raises(ValueError, match=message):
            credential(serials=serials, fleet=fleet)

    @pytest.mark.parametrize("username", ["", "a:b", "a b", "ü", "x" * 65])
    def test_invalid_username(self, username):
        """Usernames are [A-Za-z0-9_.@-]{1,64}."""
        with pytest.raises(ValueError, match="invalid username"):
            check_username(username)

    def test_line_round_trip(self):
        """A credential written as a line reads back equal."""
        item = Credential(
            username="site-a",
            password_hash=PasswordHash.new(PASSWORD, ln=FAST),
            serials=frozenset({"*"}),
            fleet=True,
            comment="hall B",
            created="2025-01-01T00:00:00Z",
        )
        assert parse_credential_line(item.to_line()) == item
        assert PASSWORD not in item.to_line()

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("{", "not JSON"),
            ("[1]", "JSON object"),
            ('{"username": "a", "serial": "x"}', "unknown fields: serial"),
            ('{"password_hash": "x", "serials": []}', "username"),
            ('{"username": "a", "serials": ["A"]}', "password_hash"),
            ('{"username": "a", "password_hash": "x", "serials": "A"}', "serials"),
        ],
    )
    def test_bad_lines(self, line, message):
        """Malformed lines raise ``ValueError`` saying what is wrong."""
        with pytest.raises(ValueError, match=message):
            parse_credential_line(line)

    def test_bad_field_types(self):
        """``fleet`` must be a boolean and ``comment`` a string."""
        good = credential().to_json()
        with pytest.raises(ValueError, match="fleet"):
            Credential.from_json({**good, "fleet": "yes"})
        with pytest.raises(ValueError, match="comment"):
            Credential.from_json({**good, "comment": 3})

    @pytest.mark.parametrize("line", ["", "   ", "# a comment", "  # indented"])
    def test_blank_and_comment_lines(self, line):
        """Blank lines and ``#`` lines hold no credential."""
        assert parse_credential_line(line) is None


class TestPasswords:
    """Passwords printers can carry."""

    def test_generated_passwords_are_strong_and_valid(self):
        """Generated passwords are 32 URL-safe characters and all different."""
        passwords = {generate_password() for _ in range(50)}
        assert len(passwords) == 50
        for password in passwords:
            assert len(password) == 32
            assert check_password(password) == password

    @pytest.mark.parametrize(
        "password", ["short", "has space inside", 'quote"inside1', "back\\slash1234"]
    )
    def test_rejected_passwords(self, password):
        """Short passwords and spaces, quotes or backslashes are refused."""
        with pytest.raises(ValueError, match="password"):
            check_password(password)


class TestCredentialStore:
    """Loading, verifying and caching."""

    def write(self, path: Path, *items: Credential, extra: str = "") -> Path:
        path.write_text(extra + "".join(item.to_line() + "\n" for item in items))
        return path

    def test_load_skips_comments(self, tmp_path):
        """Comments and blank lines are skipped; entries are found by username."""
        path = self.write(
            tmp_path / "c.jsonl", credential(), credential(OTHER, serials=(OTHER,))
        )
        path.write_text("# printers\n\n" + path.read_text())
        store = CredentialStore.load(path)
        assert len(store) == 2
        assert {item.username for item in store} == {SERIAL, OTHER}
        assert store.get(SERIAL) is not None
        assert store.path == path

    def test_errors_name_file_and_line_not_the_hash(self, tmp_path):
        """A bad line is reported as file:line, without the line's content."""
        good = credential().to_line()
        path = tmp_path / "c.jsonl"
        path.write_text(f"{good}\n{good}\n")
        with pytest.raises(CredentialFileError, match=r"c.jsonl:2: .*line 1") as caught:
            CredentialStore.load(path)
        assert "$scrypt$" not in str(caught.value)
        path.write_text('# x\n{"username": "a"}\n')
        with pytest.raises(CredentialFileError, match=r"c.jsonl:2: "):
            CredentialStore.load(path)

    def test_missing_file(self, tmp_path):
        """A missing file is a configuration error naming it."""
        with pytest.raises(CredentialFileError, match=r"nope\.jsonl"):
            CredentialStore.load(tmp_path / "nope.jsonl")

    def test_duplicate_usernames_in_memory(self):
        """Two credentials with one username are refused."""
        with pytest.raises(ValueError, match="twice"):
            CredentialStore([credential(), credential()])

    def test_verify(self, count_scrypt):
        """The right password gives the credential; wrong or unknown give None."""
        store = CredentialStore([credential()])
        assert store.verify(SERIAL, PASSWORD) == store.get(SERIAL)
        assert store.verify(SERIAL, "wrong-password") is None
        assert store.verify("nobody", PASSWORD) is None
        assert count_scrypt == [PASSWORD]  # the rest came from the caches

    def test_valid_password_runs_scrypt_once(self, count_scrypt):
        """A reconnect storm with a valid credential costs one scrypt."""
        store = CredentialStore([credential()])
        for _ in range(100):
            assert store.verify(SERIAL, PASSWORD) is not None
        assert count_scrypt == [PASSWORD]

    def test_repeated_wrong_password_runs_scrypt_once(self, count_scrypt):
        """A printer retrying a wrong password costs one scrypt."""
        store = CredentialStore([credential()])
        for _ in range(10):
            assert store.verify(SERIAL, "wrong-password") is None
        assert count_scrypt == ["wrong-password"]
        assert store.verify(SERIAL, PASSWORD) is not None
        assert count_scrypt == ["wrong-password", PASSWORD]

    def test_failure_cache_is_bounded(self, count_scrypt):
        """Past its size, the oldest remembered failure is forgotten."""
        store = CredentialStore([credential()], failure_cache_size=2)
        for password in ("wrong-1", "wrong-2", "wrong-3", "wrong-1"):
            assert store.verify(SERIAL, password) is None
        assert count_scrypt == ["wrong-1", "wrong-2", "wrong-3", "wrong-1"]
        assert store.verify(SERIAL, "wrong-3") is None
        assert len(count_scrypt) == 4

    def test_check_cached(self):
        """Without scrypt the store answers known cases and reports a miss."""
        store = CredentialStore([credential()])
        assert store.check_cached("nobody", PASSWORD) is None
        assert store.check_cached(SERIAL, PASSWORD) is CACHE_MISS
        store.verify(SERIAL, PASSWORD)
        assert store.check_cached(SERIAL, PASSWORD) == store.get(SERIAL)
        assert store.check_cached(SERIAL, "other-password") is None

    def test_reload_only_when_changed(self, tmp_path, count_scrypt):
        """Reloading an unchanged file keeps the store; a changed one starts afresh."""
        path = self.write(tmp_path / "c.jsonl", credential())
        store = CredentialStore.load(path)
        store.verify(SERIAL, PASSWORD)
        assert not store.has_changed_on_disk()
        assert store.reload() is store
        self.write(path, credential(), credential(OTHER, serials=(OTHER,)))
        assert store.has_changed_on_disk()
        fresh = store.reload()
        assert fresh is not store
        assert len(fresh) == 2
        fresh.verify(SERIAL, PASSWORD)
        assert count_scrypt == [PASSWORD, PASSWORD]  # new store, empty caches

    def test_in_memory_store_never_reloads(self):
        """A store not read from a file has nothing to reload."""
        store = CredentialStore.parse(credential().to_line())
        assert not store.has_changed_on_disk()
        assert store.reload() is store

    def test_verify_is_thread_safe(self):
        """Concurrent verifications from threads agree."""
        store = CredentialStore([credential()])
        results: list[Credential | None] = []
        lock = threading.Lock()

        def work(password: str) -> None:
            outcome = store.verify(SERIAL, password)
            with lock:
                results.append(outcome)

        threads = [
            threading.Thread(target=work, args=(PASSWORD if i % 2 else f"bad-{i}",))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(result is not None for result in results) == 4


class TestBasic:
    """``Authorization: Basic`` parsing and the challenge (RFC 7617)."""

    def test_parse(self):
        """Username and password split at the first colon."""
        assert parse_basic_authorization(basic(SERIAL, "pa:ss")) == (SERIAL, "pa:ss")
        assert parse_basic_authorization(basic(SERIAL, "")) == (SERIAL, "")
        token = base64.b64encode(b"u:p").decode()
        assert parse_basic_authorization(f"basic   {token} ") == ("u", "p")

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "Basic",
            "Bearer abc",
            "Digest username=x",
            "Basic !!!notbase64",
            "Basic " + base64.b64encode(b"no-colon").decode(),
            "Basic " + base64.b64encode(b":password").decode(),
            "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
            "Basic " + base64.b64encode(b"user\n:x").decode(),
            "Basic " + base64.b64encode(b"user:x\x7f").decode(),
            "Basic " + "A" * 5000,
        ],
    )
    def test_malformed(self, value):
        """Anything but a well-formed Basic value gives None."""
        assert parse_basic_authorization(value) is None

    def test_challenge_header(self):
        """The challenge quotes the realm and escapes quotes and backslashes."""
        assert challenge_header("zebra-weblink") == 'Basic realm="zebra-weblink"'
        assert challenge_header('a"b\\c') == 'Basic realm="a\\"b\\\\c"'


class TestClientCertificateIdentity:
    """The CN of a proxy-verified certificate is the printer serial."""

    @pytest.mark.parametrize(
        ("subject", "serial"),
        [
            (f"CN={SERIAL},O=Acme,C=US", SERIAL),
            (f"C=US,O=Acme\\, Inc.,CN={SERIAL}", SERIAL),
            (f"O=Acme\\2C Inc.,CN={SERIAL}", SERIAL),
            (f"cn = {SERIAL} , o=Acme", SERIAL),
            (f"O=Acme+CN={SERIAL}", SERIAL),
            (f"2.5.4.3={SERIAL},O=Acme", SERIAL),
            (f"/C=US/O=Acme/CN={SERIAL}", SERIAL),
            ("CN=50J\\2D1", "50J-1"),
        ],
    )
    def test_identity(self, subject, serial):
        """RFC 4514 and legacy slash subjects give their CN."""
        assert identity_from_header(subject) == serial

    @pytest.mark.parametrize(
        "subject",
        [
            "",
            "O=Acme,C=US",
            f"CN={SERIAL},CN={OTHER}",
            "CN=not a serial",
            "CN=50J\\2C1",
            "CN=ab\\",
            "CN=\\ff\\fe",
            "justtext",
            "=x,CN=ab,c",
            f"/O=Acme/CN={SERIAL}/CN={OTHER}",
            "CN=" + "A" * 5000,
        ],
    )
    def test_no_identity(self, subject):
        """No CN, two CNs, an invalid serial or a malformed subject give None."""
        assert identity_from_header(subject) is None


class TestTrustedProxies:
    """Which peers' forwarded headers count."""

    def test_membership(self):
        """Addresses match networks, IPv4-mapped IPv6 included; junk never does."""
        proxies = TrustedProxies.parse("10.0.0.0/8, 192.168.1.5 ::1")
        assert "10.2.3.4" in proxies
        assert "::ffff:10.2.3.4" in proxies
        assert "192.168.1.5" in proxies
        assert "::1" in proxies
        assert "192.168.1.6" not in proxies
        assert "not-an-ip" not in proxies
        assert None not in proxies
        assert bool(proxies)
        assert not TrustedProxies.parse(None)
        assert TrustedProxies.parse(["127.0.0.1"]).networks[0].prefixlen == 32

    def test_bad_network(self):
        """A value that is no network is a configuration error naming the setting."""
        with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
            TrustedProxies.parse("10.0.0.0/33")

    @pytest.mark.parametrize(
        ("peer", "forwarded", "client"),
        [
            ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer
            ("10.0.0.2", [], "10.0.0.2"),
            ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.3"], "198.51.100.1"),
            ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.2"),
            ("10.0.0.2", ["garbage"], "10.0.0.2"),
            (None, ["198.51.100.1"], None),
        ],
    )
    def test_client_address(self, peer, forwarded, client):
        """The client is the rightmost untrusted hop, from a trusted peer only."""
        proxies = TrustedProxies.parse("10.0.0.0/8")
        assert proxies.client_address(peer, forwarded) == client


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


class TestTls:
    """Native TLS settings."""

    def test_off_without_files(self):
        """Neither file set: no TLS."""
        assert server_tls_context(None, None) is None

    def test_both_or_neither(self):
        """A certificate without a key (or the reverse) is refused."""
        with pytest.raises(ConfigurationError, match="go together"):
            server_tls_context("cert.pem", None)
        with pytest.raises(ConfigurationError, match="go together"):
            server_tls_context(None, "key.pem")

    def test_unreadable_files(self, tmp_path):
        """Files that do not load are a configuration error naming them."""
        with pytest.raises(ConfigurationError, match=r"cert\.pem"):
            server_tls_context(tmp_path / "cert.pem", tmp_path / "key.pem")


class TestCredentialsCli:
    """``zebra-gateway-credentials add | remove | list``."""

    def run(
        self, *argv: str, stdin: str = "", env_file: Path | None = None
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = credentials_cli.main(
            list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err
        )
        return code, out.getvalue(), err.getvalue()

    def test_add_generates_password_and_prints_sgd(self, tmp_path):
        """``add`` stores a hash, prints the password once and the SGD lines."""
        path = tmp_path / "c.jsonl"
        code, out, _ = self.run(
            "--file", str(path), "add", SERIAL, "--server-name", "print.example.com"
        )
        assert code == 0
        password = next(
            line.split(": ", 1)[1]
            for line in out.splitlines()
            if line.startswith("password: ")
        )
        assert check_password(password) == password
        assert (
            '! U1 setvar "weblink.ip.conn1.authentication.add" '
            f'"print.example.com {SERIAL} {password}"' in out
        )
        assert '! U1 do "device.reset" ""' in out
        value = f"print.example.com {SERIAL} {password}"
        assert "{}" + json.dumps(
            {"weblink.ip.conn1.authentication.add": value}, separators=(",", ":")
        ) in out.replace("  {}", "{}")
        assert password not in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        store = CredentialStore.load(path)
        found = store.verify(SERIAL, password)
        assert found is not None
        assert found.serials == {SERIAL}

    def test_add_from_stdin_with_username_and_serials(self, tmp_path):
        """A password from stdin, a username and several serials are stored."""
        path = tmp_path / "c.jsonl"
        code, out, _ = self.run(
            "--file",
            str(path),
            "add",
            SERIAL,
            OTHER,
            "--username",
            "line-3",
            "--password-stdin",
            "--conn",
            "2",
            "--comment",
            "hall B",
            stdin=PASSWORD + "\n",
        )
        assert code == 0
        assert "weblink.ip.conn2.authentication.add" in out
        assert "<server-name>" in out
        found = CredentialStore.load(path).verify("line-3", PASSWORD)
        assert found is not None
        assert found.serials == {SERIAL, OTHER}
        assert found.comment == "hall B"

    def test_fleet(self, tmp_path):
        """A fleet credential needs '*', --fleet and --username."""
        path = str(tmp_path / "c.jsonl")
        assert self.run("--file", path, "add", "*")[0] == 2
        assert self.run("--file", path, "add", "*", "--fleet")[0] == 2
        code, _, err = self.run(
            "--file", path, "add", SERIAL, "--fleet", "--username", "x"
        )
        assert code == 2
        assert "'*' as the only serial" in err
        code, out, _ = self.run(
            "--file", path, "add", "*", "--fleet", "--username", "a"
        )
        assert code == 0
        assert "every printer" in out
        only = next(iter(CredentialStore.load(path)))
        assert only.fleet

    @pytest.mark.parametrize(
        ("argv", "stdin", "message"),
        [
            (["add", "50J.1"], "", "invalid serial"),
            (["add", SERIAL, "--username", "a:b"], "", "invalid username"),
            (["add", SERIAL, "--password-stdin"], "short\n", "password"),
            (["remove", "nobody"], "", "no credential"),
        ],
    )
    def test_usage_errors(self, tmp_path, argv, stdin, message):
        """Bad input exits 2 with a one-line message."""
        code, _, err = self.run("--file", str(tmp_path / "c.jsonl"), *argv, stdin=stdin)
        assert code == 2
        assert message in err

    def test_add_existing_needs_replace(self, tmp_path, count_scrypt):
        """Adding a username twice fails unless --replace, which rotates it."""
        path = str(tmp_path / "c.jsonl")
        self.run("--file", path, "add", SERIAL, "--password-stdin", stdin=PASSWORD)
        code, _, err = self.run("--file", path, "add", SERIAL)
        assert code == 2
        assert "--replace" in err
        new = "another-password-1"
        code, out, _ = self.run(
            "--file", path, "add", SERIAL, "--replace", "--password-stdin", stdin=new
        )
        assert code == 0
        assert out.startswith("replaced")
        store = CredentialStore.load(path)
        assert len(store) == 1
        assert store.verify(SERIAL, new) is not None
        assert store.verify(SERIAL, PASSWORD) is None

    def test_remove_keeps_other_lines(self, tmp_path):
        """``remove`` drops one entry and keeps comments and the others."""
        path = tmp_path / "c.jsonl"
        path.write_text("# site A\n" + credential(OTHER, serials=(OTHER,)).to_line())
        self.run("--file", str(path), "add", SERIAL)
        code, out, _ = self.run("--file", str(path), "remove", OTHER)
        assert code == 0
        assert "removed" in out
        assert path.read_text().startswith("# site A\n")
        assert [item.username for item in CredentialStore.load(path)] == [SERIAL]

    def test_list_never_shows_hashes(self, tmp_path):
        """``list`` shows usernames and serials, never hashes."""
        path = tmp_path / "c.jsonl"
        assert self.run("--file", str(path), "list")[1].startswith("no credentials")
        self.run("--file", str(path), "add", SERIAL, "--comment", "hall B")
        code, out, _ = self.run("--file", str(path), "list")
        assert code == 0
        assert out.startswith(f"{SERIAL}\t{SERIAL}\t")
        assert "# hall B" in out
        assert "$scrypt$" not in out
        rows = json.loads(self.run("--file", str(path), "list", "--json")[1])
        assert rows[0]["username"] == SERIAL
        assert "$scrypt$" not in json.dumps(rows)

    def test_broken_file_is_not_rewritten(self, tmp_path):
        """A file with a bad line is left alone."""
        path = tmp_path / "c.jsonl"
        path.write_text("{broken\n")
        code, _, err = self.run("--file", str(path), "add", SERIAL)
        assert code == 2
        assert "c.jsonl:1" in err
        assert path.read_text() == "{broken\n"

    def test_file_from_environment(self, tmp_path, monkeypatch):
        """Without --file the gateway's ZEBRA_BROKER_CREDENTIALS_FILE is used."""
        code, _, err = self.run("list")
        assert code == 2
        assert "ZEBRA_BROKER_CREDENTIALS_FILE" in err
        path = tmp_path / "env.jsonl"
        monkeypatch.setenv("ZEBRA_BROKER_CREDENTIALS_FILE", str(path))
        assert self.run("add", SERIAL)[0] == 0
        assert os.path.exists(path)

    def test_unwritable_directory(self, tmp_path):
        """An I/O failure exits 1 with the error."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        code, _, err = self.run("--file", str(blocker / "c.jsonl"), "add", SERIAL)
        assert code == 1
        assert "zebra-gateway-credentials:" in err
