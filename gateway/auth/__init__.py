"""Who may open a WebLink socket: printer credentials, client certificates, proxies.

Printers prove who they are in one of two ways (``docs/security.md``):

* **HTTP Basic credentials.** A printer sends ``Authorization`` only after a 401
  challenge (:mod:`~gateway.auth.basic`). Credentials live in a file, one JSON object
  per line (:mod:`~gateway.auth.credentials`), written by
  ``zebra-gateway-credentials``; each covers the printer serials it names. The file
  keeps salted hashes only (:mod:`~gateway.auth.passwords`): HMAC-SHA-256 for the
  192-bit passwords the tool generates, scrypt for passwords people chose. The
  :class:`CredentialStore` (:mod:`~gateway.auth.store`) verifies and caches.
* **Client certificates checked by a proxy.** nginx verifies the certificate and passes
  its subject in a header; the gateway believes that header only from addresses in
  ``trusted_proxies`` (:mod:`~gateway.auth.proxies`). The certificate's CN is the
  printer serial.

The handshake yields a :class:`Principal` or a :class:`Rejection`
(:mod:`~gateway.auth.principal`, decided by :meth:`Authenticator.authenticate` in
:mod:`~gateway.auth.authenticator`); once the socket's first message names a serial,
:meth:`Principal.covers` says whether this principal may speak for it.
:func:`server_tls_context` (:mod:`~gateway.auth.tls`) serves native TLS.

Nothing here does I/O but reading the credentials file (and certificate files for
:func:`server_tls_context`); the async :meth:`Authenticator.authenticate` only moves
scrypt off the event loop. Every name is importable from ``gateway.auth``.
"""

from __future__ import annotations

from gateway.auth.authenticator import (
    DEFAULT_CONCURRENT_HASHES,
    Authenticator,
    AuthSettings,
    HeaderSource,
)
from gateway.auth.basic import (
    MAX_HEADER_LENGTH,
    challenge_header,
    check_realm,
    parse_basic_authorization,
)
from gateway.auth.credentials import (
    FLEET,
    USERNAME_PATTERN,
    Credential,
    check_username,
    parse_credential_line,
)
from gateway.auth.passwords import (
    GENERATED_PASSWORD_BYTES,
    HASH_BYTES,
    MAX_SCRYPT_LN,
    MAX_SCRYPT_MEMORY,
    MAX_SCRYPT_P,
    MAX_SCRYPT_R,
    MIN_SCRYPT_LN,
    PASSWORD_PATTERN,
    SALT_BYTES,
    SCRYPT_LN,
    SCRYPT_P,
    SCRYPT_R,
    PasswordHash,
    SecretHash,
    StoredHash,
    check_password,
    decode_password_hash,
    generate_password,
)
from gateway.auth.principal import (
    ANONYMOUS,
    AuthMethod,
    Principal,
    Rejection,
    RejectReason,
)
from gateway.auth.proxies import Network, TrustedProxies, identity_from_header
from gateway.auth.store import (
    CACHE_MISS,
    FAILURE_CACHE_SIZE,
    CacheMiss,
    CredentialFileError,
    CredentialStore,
)
from gateway.auth.tls import server_tls_context

__all__ = [
    "ANONYMOUS",
    "CACHE_MISS",
    "DEFAULT_CONCURRENT_HASHES",
    "FAILURE_CACHE_SIZE",
    "FLEET",
    "GENERATED_PASSWORD_BYTES",
    "HASH_BYTES",
    "MAX_HEADER_LENGTH",
    "MAX_SCRYPT_LN",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_P",
    "MAX_SCRYPT_R",
    "MIN_SCRYPT_LN",
    "PASSWORD_PATTERN",
    "SALT_BYTES",
    "SCRYPT_LN",
    "SCRYPT_P",
    "SCRYPT_R",
    "USERNAME_PATTERN",
    "AuthMethod",
    "AuthSettings",
    "Authenticator",
    "CacheMiss",
    "Credential",
    "CredentialFileError",
    "CredentialStore",
    "HeaderSource",
    "Network",
    "PasswordHash",
    "Principal",
    "RejectReason",
    "Rejection",
    "SecretHash",
    "StoredHash",
    "TrustedProxies",
    "challenge_header",
    "check_password",
    "check_realm",
    "check_username",
    "decode_password_hash",
    "generate_password",
    "identity_from_header",
    "parse_basic_authorization",
    "parse_credential_line",
    "server_tls_context",
]
