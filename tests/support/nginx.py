"""``NginxProxy``: the shipped ``deploy/nginx/weblink.conf`` in a real nginx, for tests.

The helper renders a small ``nginx.conf`` of its own (foreground master, one worker,
logs, pid and temporary files in a private directory) whose ``http`` block includes a
copy of ``deploy/nginx/weblink.conf``. In that copy only three things change: the
servers between the ``upstream-servers`` markers (the test's gateway replicas), the
``listen 443 ssl;`` line (a free loopback port) and the two ``ssl_certificate*`` paths
(the test's certificates). Everything else (timeouts, headers, locations, TLS
versions) is the shipped file, so the tests exercise what users deploy; a change to
the shipped file that breaks this rendering fails loudly here rather than silently
testing something else.

nginx has no readiness notification, but it logs ``start worker process <pid>`` (a
``notice``) once its master has bound the listening sockets and forked the worker. The
helper logs to stderr as well as to ``error.log`` and waits for that line on the pipe
(no polling), then makes one TLS handshake to prove the port serves the certificate.

Where nginx is missing, tests skip with a message naming ``scripts/nginx.sh``; with
``CI=true`` (or ``ZEBRA_BROKER_REQUIRE_NGINX=1``) they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.support.timing import LONG, SHORT
from tests.support.tls import TestCertificates

REPO = Path(__file__).resolve().parents[2]
#: The config under test, as shipped.
WEBLINK_CONF = REPO / "deploy" / "nginx" / "weblink.conf"
#: The WebLink location of the shipped config (printers' weblink.ip.conn1.location).
WEBLINK_PATH = "/zebra/weblink/"

#: nginx retries a busy port for about 2.5 s, then exits; a free port picked by
#: binding port 0 can be taken by another process in between, so try a few.
_PORT_ATTEMPTS = 3
_READY_LINE = "start worker process "
_UPSTREAM_SERVERS = re.compile(
    r"^(?P<indent>[ \t]*)# upstream-servers: begin\n.*?^[ \t]*# upstream-servers: end\n",
    re.MULTILINE | re.DOTALL,
)
_LISTEN = re.compile(r"^(?P<indent>[ \t]*)listen 443 ssl;", re.MULTILINE)
_CERTIFICATE = re.compile(
    r"^(?P<indent>[ \t]*)ssl_certificate[ \t]+[^;\n]+;", re.MULTILINE
)
_CERTIFICATE_KEY = re.compile(
    r"^(?P<indent>[ \t]*)ssl_certificate_key[ \t]+[^;\n]+;", re.MULTILINE
)


_TOKEN = re.compile(
    r"""#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};"'#]+"""
)


@dataclass
class Directive:
    """One nginx directive: its name, its arguments and, for a block, its children."""

    name: str
    args: list[str]
    block: list[Directive] | None = field(default=None, repr=False)

    def find(self, name: str, *args: str) -> list[Directive]:
        """Children called ``name`` whose arguments start with ``args``."""
        return find_directives(self.block or [], name, *args)

    def one(self, name: str, *args: str) -> Directive:
        """The single child called ``name`` (with those first arguments)."""
        found = self.find(name, *args)
        assert len(found) == 1, f"{self.name} {self.args}: {len(found)} x {name} {args}"
        return found[0]


def find_directives(
    directives: Sequence[Directive], name: str, *args: str
) -> list[Directive]:
    """The directives called ``name`` whose arguments start with ``args``."""
    return [
        d for d in directives if d.name == name and d.args[: len(args)] == list(args)
    ]


def parse_nginx_conf(text: str) -> list[Directive]:
    """Parse nginx configuration text (comments dropped, quotes removed).

    Enough of nginx's syntax for the shipped config: words, quoted strings,
    ``;``-terminated directives and ``{ }`` blocks. Raises ``ValueError`` on
    unbalanced braces or a directive without its ``;``.
    """
    tokens = [t for t in _TOKEN.findall(text) if not t.startswith("#")]
    position = 0

    def block(depth: int) -> list[Directive]:
        nonlocal position
        directives: list[Directive] = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                if not words:
                    raise ValueError("empty directive")
                directives.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                if not words:
                    raise ValueError("block without a name")
                directives.append(Directive(words[0], words[1:], block(depth + 1)))
                words = []
            elif token == "}":
                if depth == 0 or words:
                    raise ValueError(f"unexpected }} after {words}")
                return directives
            elif token[0] in "\"'":
                words.append(re.sub(r"\\(.)", r"\1", token[1:-1]))
            else:
                words.append(token)
        if depth or words:
            raise ValueError("unexpected end of configuration")
        return directives

    return block(0)


class NginxStartError(RuntimeError):
    """nginx exited, or did not become ready, while starting."""


def nginx_binary() -> str:
    """Return the nginx executable, failing under CI and skipping elsewhere."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        message = "nginx is not installed: run scripts/nginx.sh (Debian's nginx)"
        required = os.environ.get("CI") == "true" or os.environ.get(
            "ZEBRA_BROKER_REQUIRE_NGINX"
        ) in ("1", "true")
        if required:
            pytest.fail(message + " (CI=true: tests must not skip)")
        pytest.skip(message)
    return found


def _quote(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _replace_once(pattern: re.Pattern[str], text: str, replacement: str) -> str:
    """Replace the single match of ``pattern``, keeping its indentation."""
    matches = list(pattern.finditer(text))
    if len(matches) != 1:
        raise ValueError(
            f"{WEBLINK_CONF.relative_to(REPO)}: expected exactly one match of "
            f"{pattern.pattern!r}, found {len(matches)}; tests/support/nginx.py "
            "templates those lines"
        )
    match = matches[0]
    indent = match.group("indent")
    lines = "".join(f"{indent}{line}\n" for line in replacement.splitlines())
    if not match.group(0).endswith("\n"):
        lines = lines.removesuffix("\n")
    return text[: match.start()] + lines + text[match.end() :]


def render_weblink_conf(
    source: str,
    *,
    upstreams: Sequence[str],
    listen: str,
    certificate: Path,
    certificate_key: Path,
) -> str:
    """Return ``weblink.conf`` with the test's upstreams, listen address and certificates.

    Args:
        source: the text of ``deploy/nginx/weblink.conf``.
        upstreams: ``host:port`` of each gateway replica.
        listen: the listen address, e.g. ``127.0.0.1:8443``.
        certificate: the server certificate (chain) PEM file.
        certificate_key: its private key.

    Raises:
        ValueError: no upstreams, or the shipped file no longer has exactly one of
            each templated line.
    """
    if not upstreams:
        raise ValueError("at least one upstream server is needed")
    servers = "\n".join(f"server {upstream};" for upstream in upstreams)
    text = _replace_once(
        _UPSTREAM_SERVERS,
        source,
        f"# upstream-servers: begin\n{servers}\n# upstream-servers: end",
    )
    text = _replace_once(_LISTEN, text, f"listen {listen} ssl;")
    text = _replace_once(_CERTIFICATE, text, f"ssl_certificate {_quote(certificate)};")
    return _replace_once(
        _CERTIFICATE_KEY, text, f"ssl_certificate_key {_quote(certificate_key)};"
    )


def render_nginx_conf(directory: Path) -> str:
    """Return a whole ``nginx.conf`` that includes ``directory/weblink.conf``.

    Everything nginx writes (pid, logs, temporary files) stays in ``directory``.
    """
    temp_paths = "\n".join(
        f"    {kind}_temp_path {_quote(directory / kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Written by tests/support/nginx.py for one test.
daemon off;
master_process on;
worker_processes 1;
pid {_quote(directory / "nginx.pid")};
error_log {_quote(directory / "error.log")} notice;
# The same lines on the pipe the helper reads: "start worker process" means ready.
error_log stderr notice;
# Graceful stop (SIGQUIT) waits for open WebSockets; a test's stop must not hang.
worker_shutdown_timeout 5s;

events {{
    worker_connections 1024;
}}

http {{
    access_log {_quote(directory / "access.log")};
{temp_paths}
    include {_quote(directory / "weblink.conf")};
}}
"""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class NginxProxy:
    """nginx with ``deploy/nginx/weblink.conf`` in front of gateway replicas, over TLS.

    ::

        async with NginxProxy(["127.0.0.1:8081", "127.0.0.1:8082"], certificates) as proxy:
            printer = PrinterEmulator(proxy.url(), serial, ssl=certificates.client_context())

    Args:
        upstreams: ``host:port`` of each gateway replica.
        certificates: the server certificate nginx presents (``tests.support.tls``).
    """

    def __init__(
        self, upstreams: Sequence[str], certificates: TestCertificates
    ) -> None:
        self.upstreams = list(upstreams)
        self.certificates = certificates
        self.port = 0
        #: Every line nginx wrote to stderr (its error log), in order.
        self.lines: list[str] = []
        self.directory: Path | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    def url(self, path: str = WEBLINK_PATH) -> str:
        """The ``wss://`` URL printers dial (the shipped WebLink path by default)."""
        return f"wss://127.0.0.1:{self.port}{path}"

    @property
    def error_log(self) -> str:
        """The text of nginx's ``error.log`` so far (empty once stopped)."""
        if self.directory is None:
            return ""
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> Self:
        """Render the configs, start nginx and return once it serves TLS.

        Raises:
            NginxStartError: nginx exited (bad config, port taken three times) or was
                not ready within ``LONG`` seconds; the message quotes its log.
            OSError, ssl.SSLError, TimeoutError: the TLS handshake with it failed.
        """
        binary = nginx_binary()
        # Workers run as an unprivileged user when the tests run as root: they must
        # be able to reach their temporary directories, so not a 0700 pytest tmp_path.
        self.directory = Path(tempfile.mkdtemp(prefix="zebra-nginx-"))
        self.directory.chmod(0o755)
        source = WEBLINK_CONF.read_text()
        (self.directory / "nginx.conf").write_text(render_nginx_conf(self.directory))
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port()
            (self.directory / "weblink.conf").write_text(
                render_weblink_conf(
                    source,
                    upstreams=self.upstreams,
                    listen=f"127.0.0.1:{self.port}",
                    certificate=self.certificates.server_cert,
                    certificate_key=self.certificates.server_key,
                )
            )
            try:
                await self._launch(binary)
            except NginxStartError:
                if attempt < _PORT_ATTEMPTS and self._port_was_taken():
                    continue
                await self.stop()
                raise
            break
        try:
            await self._check_tls()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _launch(self, binary: str) -> None:
        assert self.directory is not None
        self.lines = []
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "-e",
            str(self.directory / "error.log"),
            "-p",
            str(self.directory),
            "-c",
            str(self.directory / "nginx.conf"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            # Its own process group, so a last-resort kill reaches the worker too.
            start_new_session=True,
        )
        ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        try:
            async with asyncio.timeout(LONG):
                await ready
        except TimeoutError:
            raise NginxStartError(
                f"nginx was not ready within {LONG:g} s:\n{self._log_tail()}"
            ) from None

    async def _read(self, ready: asyncio.Future[None]) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if _READY_LINE in line and not ready.done():
                ready.set_result(None)
        await self.process.wait()
        if not ready.done():
            ready.set_exception(
                NginxStartError(
                    f"nginx exited with {self.process.returncode}:\n{self._log_tail()}"
                )
            )

    def _port_was_taken(self) -> bool:
        return any("Address already in use" in line for line in self.lines)

    def _log_tail(self) -> str:
        return "\n".join(self.lines[-20:]) or self.error_log[-4000:]

    async def _check_tls(self) -> None:
        """One TLS handshake: the port is bound and the worker serves the certificate."""
        async with asyncio.timeout(SHORT):
            _, writer = await asyncio.open_connection(
                "127.0.0.1",
                self.port,
                ssl=self.certificates.client_context(),
                server_hostname="localhost",
            )
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()

    async def stop(self) -> int | None:
        """Stop nginx gracefully (SIGQUIT), remove its directory, return its status.

        Open WebSockets get the config's ``worker_shutdown_timeout`` (5 s) to close;
        past ``LONG`` seconds the whole process group is killed.
        """
        code: int | None = None
        process, self.process = self.process, None
        if process is not None:
            if process.returncode is None:
                process.send_signal(signal.SIGQUIT)
                try:
                    async with asyncio.timeout(LONG):
                        await process.wait()
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            code = process.returncode
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
            self._reader = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        return code
