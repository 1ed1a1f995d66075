"""Who may open a WebLink socket: printer credentials, client certificates, proxies.

Printers prove who they are in one of two ways (``docs/security.md``):

* **HTTP Basic credentials.** A printer sends ``Authorization`` only after a 401
  challenge, and only when one of its ``weblink.ip.conn1.authentication.add`` entries
  names the server (``weblink-protocol.md`` §1.1, §1.3). Credentials live in a file of
  salted scrypt hashes (:class:`CredentialStore`), one JSON object per line, written by
  ``zebra-gateway-credentials``; each covers the printer serials it names.
* **Client certificates checked by a proxy.** nginx verifies the certificate and passes
  its subject in a header (``$ssl_client_s_dn``); the gateway believes that header only
  from addresses in ``trusted_proxies`` (:class:`TrustedProxies`). The certificate's CN
  is the printer serial.

The handshake yields a :class:`Principal` or a :class:`Rejection`
(:meth:`Authenticator.authenticate`); once the socket's first message names a serial,
:meth:`Principal.covers` says whether this principal may speak for it.

Credentials file, one JSON object per line (``#`` lines and blank lines are skipped)::

    {"username": "50J161000398", "password_hash": "$scrypt$ln=14,r=8,p=1$<salt>$<hash>",
     "serials": ["50J161000398"], "comment": "line 3", "created": "2025-01-01T00:00:00Z"}

``serials`` lists the serials the credential covers, usually exactly one. ``["*"]``
covers every printer and is accepted only with ``"fleet": true``: one leaked printer
configuration then speaks for the whole fleet, so it must be a deliberate choice.

Costs: scrypt with N=2**14, r=8, p=1 (16 MiB) takes about 30 ms on the reference
machine (2 vCPU, Python 3.11). A verified password is remembered per username as an
HMAC under a per-store random key, and recent failures likewise, so a reconnect storm
of printers with valid (or the same wrong) credentials costs one scrypt per username,
not one per socket. Loading the file again starts with empty caches.

Nothing here does I/O but reading the credentials file (and certificate files for
:func:`server_tls_context`); the async :meth:`Authenticator.authenticate` only moves
scrypt off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import http
import ipaddress
import json
import os
import re
import secrets
import ssl
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

from broker.errors import ConfigurationError
from broker.topology import is_valid_serial

# -- parameters -----------------------------------------------------------------------

#: scrypt cost: N = 2**SCRYPT_LN. Measured about 30 ms and 16 MiB per hash here.
SCRYPT_LN = 14
SCRYPT_R = 8
SCRYPT_P = 1
#: Bounds accepted from a credentials file: below the minimum a hash is too cheap to
#: brute-force offline, above the maximum one verification could stall the gateway.
MIN_SCRYPT_LN, MAX_SCRYPT_LN = 10, 20
MAX_SCRYPT_R, MAX_SCRYPT_P = 16, 4
#: Largest scrypt working memory accepted (128 * r * N bytes).
MAX_SCRYPT_MEMORY = 128 * 1024 * 1024
SALT_BYTES = 16
HASH_BYTES = 32

#: The serials entry of a fleet-wide credential.
FLEET = "*"
#: Usernames printers can send: no colon (Basic splits on it), no space (the printer's
#: ``authentication.add`` value is space-separated), nothing a log line could misread.
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
#: Passwords that fit in ``authentication.add "server user password"``: printable
#: ASCII without space, double quote or backslash, 12 to 128 characters.
PASSWORD_PATTERN = re.compile(r"[!#-\[\]-~]{12,128}")
#: Header values longer than this are refused unparsed.
MAX_HEADER_LENGTH = 4096
#: Failed (username, password) pairs remembered, so retries skip scrypt.
FAILURE_CACHE_SIZE = 4096
#: scrypt runs on at most this many threads at once (each uses 16 MiB).
DEFAULT_CONCURRENT_HASHES = 2

_PHC = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)
_LINE_FIELDS = frozenset(
    {"username", "password_hash", "serials", "fleet", "comment", "created"}
)


class CredentialFileError(ConfigurationError):
    """The credentials file cannot be read or a line in it is invalid."""


# -- password hashes ------------------------------------------------------------------


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@dataclass(frozen=True, repr=False)
class PasswordHash:
    """A salted scrypt hash in PHC string form (``$scrypt$ln=14,r=8,p=1$salt$hash``).

    Attributes:
        ln: log2 of scrypt's N.
        r: scrypt block size.
        p: scrypt parallelism.
        salt: Random per entry.
        digest: scrypt(password, salt).
    """

    ln: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if not MIN_SCRYPT_LN <= self.ln <= MAX_SCRYPT_LN:
            raise ValueError(
                f"scrypt ln must be {MIN_SCRYPT_LN}..{MAX_SCRYPT_LN}, not {self.ln}"
            )
        if not 1 <= self.r <= MAX_SCRYPT_R or not 1 <= self.p <= MAX_SCRYPT_P:
            raise ValueError(f"scrypt r={self.r}, p={self.p} out of range")
        if 128 * self.r * (1 << self.ln) > MAX_SCRYPT_MEMORY:
            raise ValueError("scrypt parameters need more than 128 MiB")
        if len(self.salt) < 8 or len(self.digest) < 16:
            raise ValueError("scrypt salt or hash too short")

    @classmethod
    def new(
        cls,
        password: str,
        *,
        ln: int = SCRYPT_LN,
        r: int = SCRYPT_R,
        p: int = SCRYPT_P,
        salt: bytes | None = None,
    ) -> PasswordHash:
        """Hash ``password`` with a fresh random salt (or ``salt``, for tests)."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        digest = _scrypt(password.encode("utf-8"), salt, ln, r, p, HASH_BYTES)
        return cls(ln, r, p, salt, digest)

    @classmethod
    def decode(cls, text: str) -> PasswordHash:
        """Parse a PHC string.

        Raises:
            ValueError: Not a valid ``$scrypt$`` string, or parameters out of range.
        """
        match = _PHC.fullmatch(text)
        if match is None:
            raise ValueError("password_hash is not a '$scrypt$ln=..,r=..,p=..$..$..'")
        try:
            salt, digest = _b64decode(match["salt"]), _b64decode(match["hash"])
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"password_hash has bad base64: {exc}") from None
        return cls(int(match["ln"]), int(match["r"]), int(match["p"]), salt, digest)

    def encode(self) -> str:
        """Return the PHC string stored in the credentials file."""
        return (
            f"$scrypt$ln={self.ln},r={self.r},p={self.p}"
            f"${_b64encode(self.salt)}${_b64encode(self.digest)}"
        )

    def matches(self, password: str) -> bool:
        """Run scrypt on ``password`` and compare in constant time."""
        candidate = _scrypt(
            password.encode("utf-8"),
            self.salt,
            self.ln,
            self.r,
            self.p,
            len(self.digest),
        )
        return hmac.compare_digest(candidate, self.digest)

    def __repr__(self) -> str:
        return f"PasswordHash(ln={self.ln}, r={self.r}, p={self.p})"


def _scrypt(password: bytes, salt: bytes, ln: int, r: int, p: int, size: int) -> bytes:
    n = 1 << ln
    # hashlib's default maxmem (32 MiB) is below what our upper bounds allow.
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=size, maxmem=2 * 128 * r * n * p
    )


def generate_password() -> str:
    """Return a random password of 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def check_password(password: str) -> str:
    """Return ``password`` if a printer can carry it, else raise ``ValueError``.

    It must fit ``authentication.add "server user password"``: see
    :data:`PASSWORD_PATTERN`.
    """
    if PASSWORD_PATTERN.fullmatch(password) is None:
        raise ValueError(
            "a password is 12 to 128 printable ASCII characters without spaces, "
            "double quotes or backslashes"
        )
    return password


def check_username(username: str) -> str:
    """Return ``username`` if valid (:data:`USERNAME_PATTERN`), else raise ``ValueError``."""
    if USERNAME_PATTERN.fullmatch(username) is None:
        raise ValueError(
            f"invalid username {username[:80]!r}: only [A-Za-z0-9_.@-]{{1,64}} is allowed"
        )
    return username


# -- credentials ----------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """One printer credential: a username, its password hash and the serials it covers.

    Attributes:
        username: What the printer sends (by convention its serial).
        password_hash: Never the password itself.
        serials: The printer serials this credential may speak for.
        fleet: Covers every serial (``serials`` is then ``{"*"}``).
        comment: Free text for people.
        created: ISO 8601 time the entry was written, if known.
    """

    username: str
    password_hash: PasswordHash
    serials: frozenset[str]
    fleet: bool = False
    comment: str | None = None
    created: str | None = None

    def __post_init__(self) -> None:
        check_username(self.username)
        if not self.serials:
            raise ValueError(
                "serials is empty: a credential covers at least one serial"
            )
        if FLEET in self.serials:
            if not self.fleet:
                raise ValueError(
                    'serials "*" covers every printer and needs "fleet": true'
                )
            if self.serials != {FLEET}:
                raise ValueError('serials "*" cannot be combined with other serials')
        elif self.fleet:
            raise ValueError('"fleet": true needs serials ["*"]')
        for serial in self.serials - {FLEET}:
            if not is_valid_serial(serial):
                raise ValueError(
                    f"invalid serial {serial[:80]!r}: only [A-Za-z0-9_-]{{1,64}}"
                )

    def covers(self, printer_serial: str) -> bool:
        """Return whether this credential may speak for ``printer_serial``."""
        if not is_valid_serial(printer_serial):
            return False
        return self.fleet or printer_serial in self.serials

    @classmethod
    def from_json(cls, value: Any) -> Credential:
        """Build a credential from one decoded line of the credentials file.

        Raises:
            ValueError: A missing, unknown or invalid field.
        """
        if not isinstance(value, dict):
            raise ValueError("each line must be a JSON object")
        unknown = set(value) - _LINE_FIELDS
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        username = value.get("username")
        password_hash = value.get("password_hash")
        serials = value.get("serials")
        fleet = value.get("fleet", False)
        comment = value.get("comment")
        created = value.get("created")
        if not isinstance(username, str):
            raise ValueError("username must be a string")
        if not isinstance(password_hash, str):
            raise ValueError("password_hash must be a string")
        if not isinstance(serials, list) or not all(
            isinstance(item, str) for item in serials
        ):
            raise ValueError("serials must be a list of strings")
        if not isinstance(fleet, bool):
            raise ValueError("fleet must be true or false")
        for name, text in (("comment", comment), ("created", created)):
            if text is not None and not isinstance(text, str):
                raise ValueError(f"{name} must be a string")
        return cls(
            username=username,
            password_hash=PasswordHash.decode(password_hash),
            serials=frozenset(serials),
            fleet=fleet,
            comment=comment,
            created=created,
        )

    def to_json(self) -> dict[str, Any]:
        """Return the object written as one line of the credentials file."""
        value: dict[str, Any] = {
            "username": self.username,
            "password_hash": self.password_hash.encode(),
            "serials": sorted(self.serials),
        }
        if self.fleet:
            value["fleet"] = True
        if self.comment is not None:
            value["comment"] = self.comment
        if self.created is not None:
            value["created"] = self.created
        return value

    def to_line(self) -> str:
        """Return the credentials-file line (no newline)."""
        return json.dumps(self.to_json(), separators=(", ", ": "))


def parse_credential_line(line: str) -> Credential | None:
    """Parse one line of a credentials file; ``None`` for blank and ``#`` lines.

    Raises:
        ValueError: The line is not a valid credential.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return Credential.from_json(value)


@dataclass(frozen=True)
class _FileSignature:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> _FileSignature | None:
        try:
            info = path.stat()
        except OSError:
            return None
        return cls(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class CacheMiss(enum.Enum):
    """The type of :data:`CACHE_MISS`."""

    MISS = "miss"


#: :meth:`CredentialStore.check_cached` cannot tell without running scrypt.
CACHE_MISS = CacheMiss.MISS


class CredentialStore:
    """The printer credentials, with caches that spare scrypt on repeated logins.

    Args:
        credentials: The entries; usernames must be unique.
        source: Where they came from, for messages.
        failure_cache_size: Failed (username, password) pairs remembered.

    Raises:
        ValueError: Two entries share a username.

    Thread-safe: :meth:`verify` may run in worker threads.
    """

    def __init__(
        self,
        credentials: Iterable[Credential],
        *,
        source: str = "<memory>",
        failure_cache_size: int = FAILURE_CACHE_SIZE,
    ) -> None:
        self.source = source
        self.path: Path | None = None
        self._signature: _FileSignature | None = None
        self._credentials: dict[str, Credential] = {}
        for credential in credentials:
            if credential.username in self._credentials:
                raise ValueError(f"username {credential.username!r} appears twice")
            self._credentials[credential.username] = credential
        # Keyed MACs of passwords, under a key that lives and dies with this store:
        # nothing cached here is useful to anyone who reads memory later.
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._failed: OrderedDict[bytes, None] = OrderedDict()
        self._failure_cache_size = failure_cache_size
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CredentialStore:
        """Read a credentials file (format in the module docstring).

        Raises:
            CredentialFileError: The file cannot be read, or a line is invalid (the
                message names the file and line, never a hash).
        """
        file = Path(path)
        signature = _FileSignature.of(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialFileError(
                f"cannot read credentials file {file}: {exc}"
            ) from None
        store = cls.parse(text, source=str(file))
        store.path, store._signature = file, signature
        return store

    @classmethod
    def parse(cls, text: str, *, source: str = "<memory>") -> CredentialStore:
        """Build a store from the text of a credentials file.

        Raises:
            CredentialFileError: A line is invalid or a username repeats.
        """
        credentials: list[Credential] = []
        seen: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                credential = parse_credential_line(line)
            except ValueError as exc:
                raise CredentialFileError(f"{source}:{number}: {exc}") from None
            if credential is None:
                continue
            if credential.username in seen:
                raise CredentialFileError(
                    f"{source}:{number}: username {credential.username!r} already "
                    f"appears on line {seen[credential.username]}"
                )
            seen[credential.username] = number
            credentials.append(credential)
        return cls(credentials, source=source)

    def has_changed_on_disk(self) -> bool:
        """Return whether the file was replaced or modified since it was loaded."""
        if self.path is None:
            return False
        return _FileSignature.of(self.path) != self._signature

    def reload(self) -> CredentialStore:
        """Return a fresh store from the same file (empty caches), or ``self``.

        Raises:
            CredentialFileError: As for :meth:`load`; keep using the old store then.
        """
        if self.path is None or not self.has_changed_on_disk():
            return self
        return CredentialStore.load(self.path)

    # -- lookups ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._credentials)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._credentials.values())

    def get(self, username: str) -> Credential | None:
        """Return the credential of ``username``, if any."""
        return self._credentials.get(username)

    def check_cached(
        self, username: str, password: str
    ) -> Credential | CacheMiss | None:
        """Answer from the caches alone, without scrypt.

        Returns:
            The credential if this password was verified before; ``None`` if it is
            known to be wrong (unknown username, a failure seen before, or another
            password than the one verified); :data:`CACHE_MISS` if only scrypt can
            tell.
        """
        credential = self._credentials.get(username)
        if credential is None:
            return None
        mac = self._mac(username, password)
        with self._lock:
            verified = self._verified.get(username)
            if verified is not None:
                # One correct password per username: any other one is wrong.
                return credential if hmac.compare_digest(verified, mac) else None
            if mac in self._failed:
                self._failed.move_to_end(mac)
                return None
        return CACHE_MISS

    def verify(self, username: str, password: str) -> Credential | None:
        """Return the credential if ``password`` is right for ``username``.

        Uses the caches first; otherwise runs scrypt (about 30 ms) and remembers the
        result. Unknown usernames are refused without scrypt: usernames are printer
        serials, printed on every label, not secrets.
        """
        cached = self.check_cached(username, password)
        if cached is not CACHE_MISS:
            return cached
        credential = self._credentials[username]
        mac = self._mac(username, password)
        if credential.password_hash.matches(password):
            with self._lock:
                self._verified[username] = mac
            return credential
        with self._lock:
            self._failed[mac] = None
            while len(self._failed) > self._failure_cache_size:
                self._failed.popitem(last=False)
        return None

    def _mac(self, username: str, password: str) -> bytes:
        message = username.encode("utf-8") + b"\0" + password.encode("utf-8")
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()


# -- HTTP Basic -----------------------------------------------------------------------


def parse_basic_authorization(header_value: str) -> tuple[str, str] | None:
    """Return ``(username, password)`` from an ``Authorization: Basic`` value.

    Returns ``None`` for any other scheme and for anything malformed: bad base64,
    not UTF-8, no colon, an empty username, control characters, or a value longer
    than :data:`MAX_HEADER_LENGTH` (RFC 7617).
    """
    if len(header_value) > MAX_HEADER_LENGTH:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    username, colon, password = text.partition(":")
    if not colon or not username:
        return None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        return None
    return username, password


def challenge_header(realm: str) -> str:
    """Return the ``WWW-Authenticate`` value, ``Basic realm="<realm>"`` (RFC 7617)."""
    escaped = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{escaped}"'


def _check_realm(realm: str) -> str:
    if not realm or any(not 0x20 <= ord(char) < 0x7F for char in realm):
        raise ConfigurationError(
            f"--auth-realm / ZEBRA_BROKER_AUTH_REALM: {realm!r} must be non-empty "
            "printable ASCII"
        )
    return realm


# -- client certificates behind a proxy -----------------------------------------------

_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")


def _split_dn(dn: str) -> list[tuple[str, str]] | None:
    """Split an RFC 4514 distinguished name into (TYPE, value) pairs, unescaped.

    Both ``,`` (between RDNs) and ``+`` (inside a multi-valued RDN) separate pairs;
    ``\\,``-style and ``\\2C``-style escapes are decoded. ``None`` if malformed.
    """
    pairs: list[tuple[str, str]] = []
    attribute: str | None = None
    current = bytearray()
    index = 0
    while index < len(dn):
        char = dn[index]
        if char == "\\":
            following = dn[index + 1 : index + 3]
            if _HEX_PAIR.fullmatch(following):
                current.append(int(following, 16))
                index += 3
                continue
            if index + 1 >= len(dn):
                return None
            current += dn[index + 1].encode("utf-8")
            index += 2
            continue
        if char == "=" and attribute is None:
            attribute = current.decode("utf-8", "replace").strip().upper()
            current = bytearray()
        elif char in ",+":
            if attribute is None:
                return None
            try:
                pairs.append((attribute, current.decode("utf-8").strip()))
            except UnicodeDecodeError:
                return None
            attribute, current = None, bytearray()
        else:
            current += char.encode("utf-8")
        index += 1
    if attribute is None:
        return None
    try:
        pairs.append((attribute, current.decode("utf-8").strip()))
    except UnicodeDecodeError:
        return None
    return pairs


def _split_legacy_dn(dn: str) -> list[tuple[str, str]]:
    """Split the legacy ``/C=US/O=Acme/CN=...`` form into (TYPE, value) pairs."""
    pairs: list[tuple[str, str]] = []
    for part in dn[1:].split("/"):
        name, equals, text = part.partition("=")
        if equals:
            pairs.append((name.strip().upper(), text.strip()))
    return pairs


def identity_from_header(value: str) -> str | None:
    """Return the printer serial named by a client certificate's subject.

    ``value`` is nginx's ``$ssl_client_s_dn``: RFC 4514 (``CN=50J161000398,O=Acme``,
    nginx 1.11.6+) or the legacy slash form (``/O=Acme/CN=50J161000398``). The rule is
    "the CN is the serial": the subject must hold exactly one CN and it must be a
    valid serial (``[A-Za-z0-9_-]{1,64}``); anything else gives ``None``.
    """
    value = value.strip()
    if not value or len(value) > MAX_HEADER_LENGTH:
        return None
    pairs = _split_legacy_dn(value) if value.startswith("/") else _split_dn(value)
    if pairs is None:
        return None
    names = [text for name, text in pairs if name in ("CN", "2.5.4.3")]
    if len(names) != 1 or not is_valid_serial(names[0]):
        return None
    return names[0]


Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_address(
    address: str,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        parsed = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


class TrustedProxies:
    """The networks whose forwarded headers the gateway believes.

    Args:
        networks: CIDR networks or single addresses (``10.0.0.0/8``, ``::1``).

    Raises:
        ConfigurationError: A value is not an address or network.
    """

    def __init__(self, networks: Iterable[str | Network] = ()) -> None:
        parsed: list[Network] = []
        for network in networks:
            if isinstance(network, str):
                try:
                    network = ipaddress.ip_network(network.strip(), strict=False)
                except ValueError as exc:
                    raise ConfigurationError(
                        f"--trusted-proxies / ZEBRA_BROKER_TRUSTED_PROXIES: {exc}"
                    ) from None
            parsed.append(network)
        self.networks: tuple[Network, ...] = tuple(parsed)

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> TrustedProxies:
        """Build from a comma- or space-separated string, a list, or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        return cls(value)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        parsed = _parse_address(address)
        if parsed is None:
            return False
        return any(parsed in network for network in self.networks)

    def client_address(
        self, peer: str | None, forwarded_for: Sequence[str]
    ) -> str | None:
        """Return the address of the client behind any trusted proxies.

        ``forwarded_for`` holds the ``X-Forwarded-For`` header values. Only a trusted
        peer's header counts; walking it from the right (the entry the nearest proxy
        added), the first address that is not a trusted proxy is the client.
        """
        if peer is None or peer not in self:
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            if _parse_address(hop) is None:
                return peer  # garbage in the chain: fall back to what we know
            if hop not in self:
                return hop
        return peer


# -- TLS ------------------------------------------------------------------------------


def server_tls_context(
    certfile: str | os.PathLike[str] | None,
    keyfile: str | os.PathLike[str] | None,
) -> ssl.SSLContext | None:
    """Return a server TLS context for native TLS, or ``None`` if neither is set.

    Printers speak TLS 1.2 (``weblink-protocol.md`` §1.2), the minimum allowed here.
    The certificate file holds the full chain: printers do not fetch intermediates.

    Raises:
        ConfigurationError: Only one of the two is set, or the files do not load.
    """
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise ConfigurationError(
            "--tls-certfile and --tls-keyfile (ZEBRA_BROKER_TLS_CERTFILE, "
            "ZEBRA_BROKER_TLS_KEYFILE) go together"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load --tls-certfile {certfile} / --tls-keyfile {keyfile}: {exc}"
        ) from None
    return context


# -- the handshake decision -----------------------------------------------------------


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
        concurrent_hashes: scrypt computations allowed at once.

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
        self.realm = _check_realm(realm)
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
        if store.get(username) is None:
            return self._challenge(RejectReason.UNKNOWN_USERNAME, loggable)
        verdict = store.check_cached(username, password)
        if verdict is CACHE_MISS:
            # scrypt, off the event loop and a few at a time.
            async with self._hash_slots:
                verdict = await asyncio.to_thread(store.verify, username, password)
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


__all__ = [
    "ANONYMOUS",
    "CACHE_MISS",
    "FLEET",
    "AuthMethod",
    "AuthSettings",
    "Authenticator",
    "CacheMiss",
    "Credential",
    "CredentialFileError",
    "CredentialStore",
    "HeaderSource",
    "PasswordHash",
    "Principal",
    "RejectReason",
    "Rejection",
    "TrustedProxies",
    "challenge_header",
    "check_password",
    "check_username",
    "generate_password",
    "identity_from_header",
    "parse_basic_authorization",
    "parse_credential_line",
    "server_tls_context",
]
