"""A throwaway certificate authority and a ``localhost`` server certificate for tests.

Made with the ``openssl`` command line (the ``cryptography`` package is not a
dependency of this project): an EC P-256 CA, and a server certificate it signs for
``DNS:localhost`` and ``IP:127.0.0.1``, valid for 30 days from now.
The files live in a directory the caller owns (a pytest ``tmp_path``).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.requirements import skip_or_fail

#: Names in the server certificate's subjectAltName.
SERVER_NAMES = ("DNS:localhost", "IP:127.0.0.1")

_CA_EXTENSIONS = """\
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_EXTENSIONS = """\
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TestCertificates:
    """Paths of a test CA and a server certificate it signed (PEM files)."""

    __test__ = False  # not a test class, despite its name

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts only the test CA (and checks host names)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))


def openssl_binary() -> str:
    """Return the ``openssl`` command, failing under CI and skipping elsewhere."""
    found = shutil.which("openssl")
    if found is None:
        message = "the openssl command line is not installed (apt-get install openssl)"
        skip_or_fail(message)
    return found


def make_test_certificates(directory: Path) -> TestCertificates:
    """Create a CA and a server certificate for localhost/127.0.0.1 in ``directory``.

    Args:
        directory: an existing directory; the files are written into it.

    Returns:
        The paths; ``client_context()`` builds a client context trusting the CA.

    Raises:
        subprocess.CalledProcessError: ``openssl`` failed (its output is attached).
    """
    openssl = openssl_binary()
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "tls.key", directory / "tls.csr", directory / "tls.crt"
    ca_ext, server_ext = directory / "ca.ext", directory / "server.ext"
    ca_ext.write_text(_CA_EXTENSIONS)
    server_ext.write_text(_SERVER_EXTENSIONS.format(names=", ".join(SERVER_NAMES)))
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str | Path) -> None:
        subprocess.run(
            [openssl, *map(str, args)], check=True, capture_output=True, text=True
        )

    # The CA: self-signed, its extensions from the [ca] section.
    run("req", "-x509", *ec_key, "-keyout", ca_key, "-out", ca_cert,
        "-subj", "/CN=zebra-weblink-broker test CA", "-days", "30",
        "-config", ca_ext, "-extensions", "ca")  # fmt: skip
    # The server: a key and a request, then the CA signs it with the [server] section.
    run("req", "-new", *ec_key, "-keyout", key, "-out", csr,
        "-subj", "/CN=localhost", "-config", server_ext)  # fmt: skip
    run("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
        "-CAcreateserial", "-days", "30", "-sha256", "-out", cert,
        "-extfile", server_ext, "-extensions", "server")  # fmt: skip
    return TestCertificates(
        directory=directory, ca_cert=ca_cert, server_cert=cert, server_key=key
    )
