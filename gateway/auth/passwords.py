"""Password hashes in the credentials file, and the passwords printers can carry.

Two schemes, told apart by their prefix (``docs/security.md``, "Password hashes"):

* ``$hmac-sha256$<salt>$<hash>`` (:class:`SecretHash`), for the passwords
  :func:`generate_password` makes: HMAC-SHA-256 keyed by a random 16-byte salt, over
  the password's UTF-8 bytes. About 1.5 µs per check. A 192-bit random secret cannot
  be guessed however fast the hash, so a slow KDF buys nothing for it.
* ``$scrypt$ln=14,r=8,p=1$<salt>$<hash>`` (:class:`PasswordHash`), for passwords a
  person chose (``zebra-gateway-credentials add --password-stdin``), which may be
  guessable: scrypt makes each guess cost about 30 ms and 16 MiB.

Salt and hash are standard base64 without padding, as in PHC strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

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
#: Random bytes in a generated password (192 bits, 32 URL-safe characters).
GENERATED_PASSWORD_BYTES = 24

#: Passwords that fit in ``authentication.add "server user password"``: printable
#: ASCII without space, double quote or backslash, 12 to 128 characters.
PASSWORD_PATTERN = re.compile(r"[!#-\[\]-~]{12,128}")

_SCRYPT = re.compile(
    r"\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)
_HMAC_SHA256 = re.compile(
    r"\$hmac-sha256\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)"
)


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _salt_and_digest(match: re.Match[str]) -> tuple[bytes, bytes]:
    try:
        return _b64decode(match["salt"]), _b64decode(match["hash"])
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"password_hash has bad base64: {exc}") from None


@dataclass(frozen=True, repr=False)
class PasswordHash:
    """A salted scrypt hash in PHC string form (``$scrypt$ln=14,r=8,p=1$salt$hash``).

    For passwords people choose. Attributes:
        ln: log2 of scrypt's N.
        r: scrypt block size.
        p: scrypt parallelism.
        salt: Random per entry.
        digest: scrypt(password, salt).
    """

    #: The scheme's name, as in the string's prefix.
    scheme: ClassVar[str] = "scrypt"
    #: One check takes long enough (about 30 ms) to belong in a worker thread.
    slow: ClassVar[bool] = True

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
        match = _SCRYPT.fullmatch(text)
        if match is None:
            raise ValueError("password_hash is not a '$scrypt$ln=..,r=..,p=..$..$..'")
        salt, digest = _salt_and_digest(match)
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


@dataclass(frozen=True, repr=False)
class SecretHash:
    """HMAC-SHA-256 of a generated password, keyed by a random salt.

    Stored as ``$hmac-sha256$<salt>$<hash>`` where ``hash`` is
    ``HMAC-SHA-256(key=salt, message=password as UTF-8)``. Only for passwords from
    :func:`generate_password` (192 random bits): the hash is fast, so it protects a
    password exactly as well as the password's own randomness does.

    Attributes:
        salt: Random per entry (16 bytes when made here).
        digest: The 32-byte HMAC.
    """

    scheme: ClassVar[str] = "hmac-sha256"
    #: One check takes about 1.5 µs: less than handing it to a thread.
    slow: ClassVar[bool] = False

    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if len(self.salt) < 8 or len(self.digest) != 32:
            raise ValueError(
                "hmac-sha256 salt must be at least 8 bytes and the hash 32 bytes"
            )

    @classmethod
    def new(cls, secret: str, *, salt: bytes | None = None) -> SecretHash:
        """Hash a generated ``secret`` with a fresh random salt (or ``salt``)."""
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        return cls(salt, _hmac_sha256(salt, secret))

    @classmethod
    def decode(cls, text: str) -> SecretHash:
        """Parse ``$hmac-sha256$<salt>$<hash>``.

        Raises:
            ValueError: Not such a string, or the salt or hash has the wrong size.
        """
        match = _HMAC_SHA256.fullmatch(text)
        if match is None:
            raise ValueError("password_hash is not a '$hmac-sha256$<salt>$<hash>'")
        return cls(*_salt_and_digest(match))

    def encode(self) -> str:
        """Return the string stored in the credentials file."""
        return f"$hmac-sha256${_b64encode(self.salt)}${_b64encode(self.digest)}"

    def matches(self, secret: str) -> bool:
        """Compute the HMAC of ``secret`` and compare in constant time."""
        return hmac.compare_digest(_hmac_sha256(self.salt, secret), self.digest)

    def __repr__(self) -> str:
        return "SecretHash(hmac-sha256)"


def _hmac_sha256(salt: bytes, secret: str) -> bytes:
    return hmac.digest(salt, secret.encode("utf-8"), "sha256")


#: Either scheme, as held by a :class:`~gateway.auth.credentials.Credential`.
StoredHash: TypeAlias = PasswordHash | SecretHash


def decode_password_hash(text: str) -> StoredHash:
    """Parse a ``password_hash`` of either scheme.

    Raises:
        ValueError: An unknown scheme, or an invalid string of a known one.
    """
    if text.startswith("$hmac-sha256$"):
        return SecretHash.decode(text)
    if text.startswith("$scrypt$"):
        return PasswordHash.decode(text)
    raise ValueError(
        "password_hash must be '$hmac-sha256$<salt>$<hash>' or "
        "'$scrypt$ln=..,r=..,p=..$<salt>$<hash>'"
    )


def generate_password() -> str:
    """Return a random password of 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


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
