"""Native TLS, for a gateway that printers reach without a proxy."""

from __future__ import annotations

import os
import ssl

from broker.errors import ConfigurationError


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
