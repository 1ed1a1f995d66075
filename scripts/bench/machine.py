"""What the benchmark reads about the machine and its processes, from ``/proc``.

Linux only, like the deployment target. Memory is resident set size (``VmRSS``) in
KiB; CPU is user plus system time in seconds (``/proc/<pid>/stat``), so a process's
share of one core over a window is ``cpu delta / wall delta``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")
PACKAGES = ("websockets", "aio-pika", "aiormq", "pydantic", "structlog", "uvloop")


def rss_kib(pid: int | None = None) -> int:
    """Resident memory of a process (this one by default), in KiB; 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid or os.getpid()}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int | None = None) -> float:
    """User plus system CPU time of a process so far, in seconds; 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid or os.getpid()}/stat").read_text(encoding="ascii")
    except OSError:
        return 0.0
    # The command name (field 2) may hold spaces; fields after ")" are plain.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy so far (``/proc/stat``, not idle or iowait)."""
    try:
        fields = (
            Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0].split()
        )
    except OSError:
        return 0.0
    values = [int(value) for value in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    # guest time is already counted in user time
    busy = sum(values[:8]) - idle
    return busy / _TICKS


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


@dataclass
class Machine:
    """Busy cores of the whole machine over a window (to spot background load)."""

    busy_start: float = 0.0
    wall_start: float = 0.0
    busy_cores: float = 0.0

    def start(self) -> Machine:
        self.busy_start = machine_busy_seconds()
        self.wall_start = time.monotonic()
        return self

    def stop(self) -> Machine:
        wall = time.monotonic() - self.wall_start
        busy = machine_busy_seconds() - self.busy_start
        self.busy_cores = busy / wall if wall > 0 else 0.0
        return self


@dataclass
class Usage:
    """CPU and memory of one process over a window, from :meth:`start` to :meth:`stop`."""

    pid: int | None
    cpu_start: float = 0.0
    wall_start: float = 0.0
    rss_start_kib: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    rss_end_kib: int = 0

    def start(self) -> Usage:
        self.cpu_start = cpu_seconds(self.pid)
        self.wall_start = time.monotonic()
        self.rss_start_kib = rss_kib(self.pid)
        return self

    def stop(self) -> Usage:
        self.cpu_s = cpu_seconds(self.pid) - self.cpu_start
        self.wall_s = time.monotonic() - self.wall_start
        self.rss_end_kib = rss_kib(self.pid)
        return self

    @property
    def core_share(self) -> float:
        """CPU used over the window, as a fraction of one core."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu_s": round(self.cpu_s, 3),
            "wall_s": round(self.wall_s, 3),
            "core_percent": round(100 * self.core_share, 2),
            "rss_start_kib": self.rss_start_kib,
            "rss_end_kib": self.rss_end_kib,
        }


def rabbitmq_pid() -> int | None:
    """The pid of the local RabbitMQ node (``beam.smp`` running ``rabbit``), if any."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            if b"beam" in cmdline and b"rabbit" in cmdline:
                return int(entry.name)
    return None


def raise_open_files(wanted: int) -> dict[str, int]:
    """Raise this process's open-file limit towards ``wanted`` (up to the hard limit).

    Child processes inherit it. Returns the soft and hard limits now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_mib() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(*args: str) -> str | None:
    """Read-only git queries (the commit and whether the tree is dirty)."""
    try:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def describe(rabbitmq: dict[str, Any]) -> dict[str, Any]:
    """Describe the machine, the software and the code that was measured."""
    status = _git("status", "--porcelain")
    somaxconn = None
    with contextlib.suppress(OSError, ValueError):
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mib": _memory_mib(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": _versions(),
        "rabbitmq": rabbitmq,
        "open_files": dict(
            zip(
                ("soft", "hard"),
                resource.getrlimit(resource.RLIMIT_NOFILE),
                strict=True,
            )
        ),
        "somaxconn": somaxconn,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }
