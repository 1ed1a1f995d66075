"""Sampling a gateway process with py-spy while a scenario runs, and summarising it.

``py-spy record --pid`` attaches to the running replica (root or ptrace rights
needed), samples 250 times a second without pausing it (``--nonblocking``) and writes
collapsed stacks (``--format raw``) when it gets SIGINT. The summary lists, for the
gateway's own code and for everything, the functions with the most samples on CPU,
by self time (the function itself) and by total time (it or what it calls).

py-spy is not a project dependency: ``.venv/bin/pip install py-spy`` to profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: ``function (path/to/file.py)`` in py-spy's collapsed output (``--nolineno``).
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*)\)$")
#: Paths of the project's own code (py-spy shows them relative to the working
#: directory, e.g. ``gateway/bridge.py``); entry points are left out of totals.
_OURS = ("gateway/", "broker/")
_ENTRY = ("gateway/__main__.py", "gateway/cli.py")
TOP = 15


def find_py_spy() -> str | None:
    """The py-spy executable next to this Python, or on the PATH."""
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    return shutil.which("py-spy")


class Profiler:
    """One py-spy recording of one process."""

    def __init__(
        self, executable: str, pid: int, output: Path, rate: int = 250
    ) -> None:
        self.executable = executable
        self.pid = pid
        self.output = output
        self.rate = rate
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Profiler:
        self.process = await asyncio.create_subprocess_exec(
            self.executable,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            str(self.rate),
            "--format",
            "raw",
            "--nolineno",
            "--nonblocking",
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return self

    async def stop(self) -> dict[str, Any] | None:
        """Stop sampling (SIGINT makes py-spy write its file) and summarise."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if not self.output.exists():
            return {"error": f"py-spy wrote no profile (exit {process.returncode})"}
        return summarise(self.output.read_text(errors="replace"), path=str(self.output))


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match["function"], match["path"]


def _is_ours(path: str) -> bool:
    if path.endswith(_ENTRY) or "site-packages" in path:
        return False
    return any(path.startswith(mark) or f"/{mark}" in path for mark in _OURS)


def _short(function: str, path: str) -> str:
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        for ours in _OURS:
            if f"/{ours}" in path:
                path = ours + path.split(f"/{ours}", 1)[1]
                break
    return f"{function} ({path})" if path else function


def summarise(collapsed: str, path: str = "") -> dict[str, Any]:
    """Summarise py-spy's collapsed stacks: top functions by self and total samples."""
    total = 0
    self_all: Counter[str] = Counter()
    self_ours: Counter[str] = Counter()
    inclusive_ours: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if frame[1]]  # drop thread/process names
        if not frames:
            continue
        leaf = _short(*frames[-1])
        self_all[leaf] += count
        ours = [frame for frame in frames if _is_ours(frame[1])]
        if ours:
            self_ours[_short(*ours[-1])] += count
        for name in {_short(*frame) for frame in ours}:
            inclusive_ours[name] += count

    def top(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "samples": samples,
                "percent": round(100 * samples / total, 1) if total else 0.0,
            }
            for name, samples in counter.most_common(TOP)
        ]

    return {
        "file": path,
        "samples": total,
        "self_all": top(self_all),
        "self_gateway_code": top(self_ours),
        "total_gateway_code": top(inclusive_ours),
    }
