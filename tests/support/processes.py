"""Gateway replicas as real processes (``python -m gateway``), for multi-replica tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from tests.support.timing import LONG

#: If set, every replica's log lines are also appended to ``<dir>/<replica>.log``.
LOG_DIR = os.environ.get("ZEBRA_BROKER_TEST_LOG_DIR", "")


class GatewayProcess:
    """A ``zebra-gateway`` subprocess on a free port; logs are kept for the test."""

    def __init__(
        self, amqp_url: str, namespace: str, replica: str, **flags: Any
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "gateway",
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
            "--allow-anonymous",
        ]
        for name, value in flags.items():
            self.args += [f"--{name.replace('_', '-')}", str(value)]
        self.replica = replica
        self._log_file = open(f"{LOG_DIR}/{replica}.log", "a") if LOG_DIR else None  # noqa: SIM115
        self.port = 0
        self.lines: list[dict[str, Any]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZEBRA_BROKER_")}
        self.process = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        listening = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(listening))
        async with asyncio.timeout(LONG):
            self.port = await listening
        return self

    async def _read(self, listening: asyncio.Future[int]) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"event": raw.decode(errors="replace").rstrip()}
            self.lines.append(line)
            if self._log_file is not None:
                self._log_file.write(json.dumps(line) + "\n")
                self._log_file.flush()
            if line.get("event") == "gateway.listening" and not listening.done():
                listening.set_result(int(line["port"]))
        if not listening.done():
            listening.set_exception(RuntimeError(f"gateway exited: {self.lines[-5:]}"))

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(sig)
        async with asyncio.timeout(LONG):
            code = await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        return code
