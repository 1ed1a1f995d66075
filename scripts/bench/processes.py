"""The processes a benchmark run starts: gateway replicas and the WebSocket floor.

Each runs as its own OS process (``python -m gateway``, ``python -m
scripts.bench.floor_server``) so that its memory and CPU can be read from ``/proc``
apart from the emulated printers and the producer, as in production. Output goes to
a log file in the results directory; the listening port is read from the first lines.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO

from gateway.settings import GatewaySettings

#: The repository root: children run from it so ``-m scripts.bench...`` resolves.
ROOT = Path(__file__).resolve().parents[2]

#: Seconds a process has to start listening or to exit after a signal.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
_DIGITS = re.compile(r"[0-9a-f]{6,}|\d+")


class ServiceProcess:
    """A child process that prints ``{"event": <ready_event>, "port": N}`` when ready."""

    ready_event = ""

    def __init__(self, args: list[str], log_path: Path, name: str) -> None:
        self.args = args
        self.log_path = log_path
        self.name = name
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> ServiceProcess:
        """Start the process and wait until it listens.

        Raises:
            RuntimeError: it exited or did not listen within ``START_TIMEOUT``.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZEBRA_BROKER_")}
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            limit=1 << 20,
        )
        log = self.log_path.open("wb")
        stdout = self.process.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    line = await stdout.readline()
                    if not line:
                        raise RuntimeError(
                            f"{self.name} exited before listening; see {self.log_path}"
                        )
                    log.write(line)
                    with contextlib.suppress(ValueError):
                        record = json.loads(line)
                        if record.get("event") == self.ready_event:
                            self.port = int(record["port"])
                            break
        except BaseException:
            log.close()
            await self.kill()
            raise
        self._drain = asyncio.create_task(_copy(stdout, log), name=f"{self.name}-log")
        return self

    async def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` and wait for the exit (SIGKILL after ``STOP_TIMEOUT``)."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain
        return process.returncode

    async def kill(self) -> int | None:
        """SIGKILL: the process dies at once, as in a crash."""
        return await self.stop(signal.SIGKILL)

    def log_summary(self) -> dict[str, Any]:
        """Lines by level, and the commonest warning and error events (digits as #)."""
        levels: collections.Counter[str] = collections.Counter()
        events: collections.Counter[str] = collections.Counter()
        with contextlib.suppress(OSError), self.log_path.open("rb") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    level = str(record.get("level", "other"))
                    event = str(record.get("event", ""))
                except (ValueError, AttributeError):
                    level, event = "other", ""
                levels[level] += 1
                if level in ("warning", "error", "critical"):
                    events[f"{level}: {_DIGITS.sub('#', event)[:100]}"] += 1
        return {"levels": dict(levels), "top_problems": dict(events.most_common(8))}


async def _copy(stream: asyncio.StreamReader, log: BinaryIO) -> None:
    """Copy the rest of a child's output to its log in large chunks (cheap)."""
    try:
        while chunk := await stream.read(1 << 16):
            log.write(chunk)
    finally:
        log.close()


#: ``python -c`` program: the gateway's command line on uvloop's event loop.
UVLOOP_ENTRY = (
    "import sys, uvloop; uvloop.install(); from gateway.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def bench_flags() -> list[str]:
    """Gateway flags every benchmark replica gets, when the gateway has them.

    The emulated printers all come from 127.0.0.1, so the per-address connection
    limit (meant for one printer per address) would throttle the whole fleet; and
    printers do not authenticate here: authentication has its own cost, not
    measured by these figures.
    """
    fields = GatewaySettings.model_fields
    flags: list[str] = []
    if "allow_anonymous" in fields:
        flags.append("--allow-anonymous")
    if "max_connections_per_second_per_address" in fields:
        flags += ["--max-connections-per-second-per-address", "1000000"]
    return flags


class GatewayProcess(ServiceProcess):
    """One gateway replica: ``python -m gateway`` on a free port of 127.0.0.1."""

    ready_event = "gateway.listening"

    def __init__(
        self,
        *,
        amqp_url: str,
        namespace: str,
        replica: str,
        log_path: Path,
        log_level: str = "info",
        uvloop: bool = False,
    ) -> None:
        entry = ["-c", UVLOOP_ENTRY] if uvloop else ["-m", "gateway"]
        args = [
            sys.executable,
            *entry,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--amqp-url",
            amqp_url,
            "--namespace",
            namespace,
            "--replica",
            replica,
            "--log-format",
            "json",
            "--log-level",
            log_level,
            *bench_flags(),
        ]
        super().__init__(args, log_path, f"gateway {replica}")
        self.replica = replica


class FloorProcess(ServiceProcess):
    """The websockets-only floor server (``scripts.bench.floor_server``)."""

    ready_event = "floor.listening"

    def __init__(self, *, log_path: Path, ping_interval: float | None = None) -> None:
        if ping_interval is None:  # the gateway's own default: same keep-alive work
            ping_interval = GatewaySettings.model_fields["ws_ping_interval"].default
        args = [
            sys.executable,
            "-m",
            "scripts.bench.floor_server",
            "--ping-interval",
            str(ping_interval),
        ]
        super().__init__(args, log_path, "floor server")
