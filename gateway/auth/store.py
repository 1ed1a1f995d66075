"""The credentials file in memory: lookups, verification and its caches.

Costs (``python -m scripts.bench.authcost``): a generated password's ``$hmac-sha256$``
entry checks in about 1.5 µs; a ``$scrypt$`` entry (a chosen password, or any entry
written before the fast scheme) in about 30 ms. A verified password is
remembered per username as an HMAC under a per-store random key, and recent failures
likewise, so repeated logins with valid (or the same wrong) credentials cost one hash
per username, not one per socket. Loading the file again starts with empty caches; so
does every other replica: after a failover the survivor checks each printer once.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from broker.errors import ConfigurationError
from gateway.auth.credentials import Credential, parse_credential_line

#: Failed (username, password) pairs remembered, so retries skip the hash.
FAILURE_CACHE_SIZE = 4096


class CredentialFileError(ConfigurationError):
    """The credentials file cannot be read or a line in it is invalid."""


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


#: :meth:`CredentialStore.check_cached` cannot tell without hashing the password.
CACHE_MISS = CacheMiss.MISS


class CredentialStore:
    """The printer credentials, with caches that spare the hash on repeated logins.

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
        """Read a credentials file (format in :mod:`gateway.auth.credentials`).

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
        """Answer from the caches alone, without hashing the password.

        Returns:
            The credential if this password was verified before; ``None`` if it is
            known to be wrong (unknown username, a failure seen before, or another
            password than the one verified); :data:`CACHE_MISS` if only the hash can
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

        Uses the caches first; otherwise hashes the password (scrypt: about 30 ms,
        hmac-sha256: about 1.5 µs) and remembers the result. Unknown usernames are
        refused without hashing: usernames are printer serials, printed on every
        label, not secrets.
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
