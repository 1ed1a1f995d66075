"""Native TLS settings."""

from __future__ import annotations

import pytest

from broker.errors import ConfigurationError
from gateway.auth import server_tls_context


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
