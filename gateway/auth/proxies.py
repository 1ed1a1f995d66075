"""What a trusted proxy tells the gateway: a client certificate's subject, the client.

nginx verifies a printer's client certificate and passes its subject in a header
(``$ssl_client_s_dn``); the gateway believes that header, and ``X-Forwarded-For``,
only from addresses in ``trusted_proxies`` (:class:`TrustedProxies`). The
certificate's CN is the printer serial (:func:`identity_from_header`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from broker.errors import ConfigurationError
from broker.topology import is_valid_serial
from gateway.auth.basic import MAX_HEADER_LENGTH

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
