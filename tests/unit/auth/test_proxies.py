"""Client-certificate subjects and trusted proxies."""

from __future__ import annotations

import pytest

from broker.errors import ConfigurationError
from gateway.auth import TrustedProxies, identity_from_header
from tests.unit.auth.helpers import OTHER, SERIAL


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
