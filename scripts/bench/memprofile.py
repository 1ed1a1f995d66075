"""``python -m scripts.bench.memprofile``: where the memory per idle printer goes.

Runs the gateway (or, with ``--server floor``, the websockets-only floor server of
``scripts.bench.floor_server``, same handler and options) **in this process** under
:mod:`tracemalloc`, and the emulated printers (:class:`~gateway.emulator.fleet.Fleet`)
in a **child process**, so that only the server's allocations are counted. The
gateway is built as ``gateway.cli`` builds it, with the benchmark's settings
(anonymous printers, no per-address connection limit), in a fresh namespace
(``memprof<random>``) on the RabbitMQ at ``--amqp-url``; its queues and exchanges are
deleted at the end, also after an error, SIGINT or SIGTERM.

Phases, each measured after ``--settle`` seconds and a full garbage collection:

1. ``base``: the server listening, no printer;
2. ``connected-<n>``: for each count of ``--printers`` (``1000``, or ``1000,2000`` to
   see what scales linearly: a new child fleet per step), once every printer has
   main and raw open and, on the gateway, got a probe label (so every raw consumer
   is live) and the gateway finished the probes;
3. ``disconnected``: the fleets closed their sockets and the server forgot them;
   then again after ``malloc_trim(0)`` (what stays is fragmentation).

Each phase records RSS, the memory tracemalloc traces and its own tables, pymalloc's
arenas and blocks (``sys._debugmallocstats``), glibc's heap (``mallinfo2``), a
tracemalloc snapshot and a census of live objects by type: every object the
collector tracks, and the untracked ones they hold (strings, bytes, atomic dicts and
tuples), with tasks, coroutines and handles named by what they run. Snapshot and
census are taken in a forked copy of the process, so they neither add to the memory
measured nor stop the event loop. The report gives, per printer: the growth of each
figure; the traced growth by allocation site, file, package, innermost project frame
and innermost library frame; the top tracebacks; the objects by type; the tasks by
coroutine and the timers by callback; what ``gc.freeze()`` changes; and what is still
allocated after the printers left.

``--keep DIR`` keeps the snapshots and censuses; ``--baseline DIR`` (a kept run, e.g.
of the floor) adds this run's growth minus the baseline's, by site and by type.
``--no-trace`` runs without tracemalloc (RSS without its overhead, ten times faster
connects). ``--json PATH`` writes every figure as JSON.

Takes about 10 minutes for 1,000 printers traced with 25 frames, 2 minutes untraced.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import dataclasses
import gc
import itertools
import json
import linecache
import os
import re
import signal
import sys
import sysconfig
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from broker.logs import configure_logging
from gateway.emulator.fleet import fleet_serials
from scripts.bench.machine import raise_open_files, rss_kib
from scripts.bench.processes import ROOT

#: Seconds to let the last events drain before a phase is measured: longer than
#: ``channel_open_timeout`` (10 s), so the cancelled channel-open timers are gone.
SETTLE = 12.0
#: Seconds without a probe label arriving before the missing ones are sent again.
QUIET = 5.0
#: Descriptors kept free beyond two per printer.
SPARE_FILES = 1000
#: Seconds a fleet has to connect and print, per printer (plus two minutes): the
#: gateway connects about 10 times slower under tracemalloc with 25 frames.
SECONDS_PER_PRINTER = 0.4
_STDLIB = sysconfig.get_paths()["stdlib"]
_PROJECT = ("gateway/", "broker/")


# -- measuring one phase --------------------------------------------------------------


def pymalloc_stats() -> dict[str, int]:
    """pymalloc's totals from ``sys._debugmallocstats()`` (it writes to fd 2)."""
    wanted = {
        "# arenas allocated current": "arenas",
        "# bytes in allocated blocks": "allocated_blocks",
        "# bytes in available blocks": "available_blocks",
        "# bytes lost to pool headers": "pool_headers",
        "# bytes lost to quantization": "quantization",
        "# bytes lost to arena alignment": "arena_alignment",
        "Total": "total",
    }
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    stats: dict[str, int] = {}
    for line in text.splitlines():
        if "=" not in line:
            continue
        key, _, value = line.rpartition("=")
        name = wanted.get(key.strip())
        if name is not None:
            with contextlib.suppress(ValueError):
                stats[name] = int(value.strip().replace(",", ""))
    # "N arenas * 1048576 bytes/arena" is the memory pymalloc holds from the OS.
    match = re.search(r"(\d[\d,]*) arenas \* (\d+) bytes/arena\s*=\s*([\d,]+)", text)
    if match:
        stats["arena_bytes"] = int(match.group(3).replace(",", ""))
    return stats


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


_LIBC = _libc()


def malloc_stats() -> dict[str, int]:
    """glibc's heap: ``arena`` (sbrk'd), ``hblkhd`` (mmapped), in use and free bytes."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return {}
    function = _LIBC.mallinfo2
    function.restype = _Mallinfo2
    info = function()
    return {
        "heap": int(info.arena),
        "mmapped": int(info.hblkhd),
        "in_use": int(info.uordblks),
        "free": int(info.fordblks),
    }


def malloc_trim() -> bool:
    """Give glibc's free heap memory back to the OS; whether it could."""
    if _LIBC is None or not hasattr(_LIBC, "malloc_trim"):
        return False
    _LIBC.malloc_trim(0)
    return True


def type_name(obj: object) -> str:
    """A readable kind: the type, and what a task, coroutine or handle runs."""
    kind = type(obj)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if name.startswith("builtins."):
        name = name[len("builtins.") :]
    if isinstance(obj, asyncio.Task):
        coro = obj.get_coro()
        return f"Task[{getattr(coro, '__qualname__', type(coro).__qualname__)}]"
    if kind.__name__ == "coroutine":
        return f"coroutine[{getattr(obj, '__qualname__', '?')}]"
    if isinstance(obj, asyncio.Handle):
        callback = getattr(obj, "_callback", None)
        label = getattr(callback, "__qualname__", type(callback).__qualname__)
        return f"{kind.__qualname__}[{label}]"
    return name


def census() -> dict[str, tuple[int, int]]:
    """Live objects by kind: ``{kind: (count, shallow bytes)}``.

    Every object the collector tracks, and every untracked object reachable from
    them through untracked containers (strings, bytes, ints, atomic dicts, tuples).
    Instances with a managed ``__dict__`` (3.11) count without their values array.
    """
    tracked = gc.get_objects()
    seen: set[int] = {id(tracked)}
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()

    def count(obj: object) -> None:
        name = type_name(obj)
        counts[name] += 1
        with contextlib.suppress(TypeError):
            sizes[name] += sys.getsizeof(obj)

    pending: list[object] = []
    for obj in tracked:
        seen.add(id(obj))
    for obj in tracked:
        count(obj)
        pending.extend(gc.get_referents(obj))
        while pending:
            ref = pending.pop()
            if id(ref) in seen or gc.is_tracked(ref):
                continue
            seen.add(id(ref))
            count(ref)
            pending.extend(gc.get_referents(ref))
    del tracked
    return {name: (counts[name], sizes[name]) for name in counts}


@dataclasses.dataclass
class Phase:
    """What one phase measured."""

    name: str
    printers: int
    rss_kib: int
    traced: int = 0
    traced_peak: int = 0
    tracemalloc_overhead: int = 0
    gc_collected: int = 0
    gc_seconds: float = 0.0
    gc_tracked: int = 0
    rss_before_gc_kib: int = 0
    traced_before_gc: int = 0
    pymalloc: dict[str, int] = dataclasses.field(default_factory=dict)
    malloc: dict[str, int] = dataclasses.field(default_factory=dict)
    snapshot: Path | None = None
    #: The pymalloc statistics and census file (read by ``load_objects``).
    census: Path | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


async def _in_fork(work: Callable[[], None]) -> None:
    """Run ``work`` in a forked copy of this process and wait for it.

    The copy shares this process's memory copy-on-write: what it allocates (a
    snapshot, a census: millions of small blocks) never touches the memory measured
    here, and whatever it changes is gone when it exits. It sees this process as it
    was at the fork, while the event loop here goes on serving (a loop blocked for a
    minute would lose its AMQP connection to missed heartbeats).

    Raises:
        RuntimeError: ``work`` failed in the copy.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the copy: leave without cleaning up what the parent owns
        status = 1
        try:
            work()
            status = 0
        finally:
            os._exit(status)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 (never blocks)
        if done:
            break
        await asyncio.sleep(0.2)  # no event tells when a forked copy exits
    if status != 0:
        raise RuntimeError(f"the forked inspection failed (status {status})")


def _dump_snapshot(path: Path) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    tracemalloc.stop()
    snapshot.dump(str(path))


def _write_heap(path: Path, objects: bool) -> None:
    # pymalloc reports nothing while tracemalloc hooks the allocators: stop it first
    # (in this copy only; its tables are malloc'd, pymalloc's state is untouched).
    tracemalloc.stop()
    heap = {"pymalloc": pymalloc_stats(), "objects": census() if objects else {}}
    path.write_text(json.dumps(heap))


async def measure(
    name: str, printers: int, folder: Path, *, objects: bool = True
) -> Phase:
    """Collect garbage, read RSS and the heaps; snapshot and census in forked copies.

    ``objects=False`` skips the census.
    """
    tracing = tracemalloc.is_tracing()
    rss_before = rss_kib()
    traced_before = tracemalloc.get_traced_memory()[0] if tracing else 0
    started = time.perf_counter()
    collected = gc.collect()
    gc_seconds = time.perf_counter() - started
    phase = Phase(
        name=name,
        printers=printers,
        rss_kib=rss_kib(),
        gc_collected=collected,
        gc_seconds=round(gc_seconds, 4),
        gc_tracked=len(gc.get_objects()),
        rss_before_gc_kib=rss_before,
        traced_before_gc=traced_before,
        malloc=malloc_stats(),
    )
    if tracing:
        phase.traced, phase.traced_peak = tracemalloc.get_traced_memory()
        phase.tracemalloc_overhead = tracemalloc.get_tracemalloc_memory()
    heap_path = folder / f"{name}.heap.json"
    await _in_fork(lambda: _write_heap(heap_path, objects))
    phase.census = heap_path
    phase.pymalloc = {
        key: int(value)
        for key, value in json.loads(heap_path.read_text())["pymalloc"].items()
    }
    if tracing:
        snapshot_path = folder / f"{name}.snapshot"
        await _in_fork(lambda: _dump_snapshot(snapshot_path))
        phase.snapshot = snapshot_path
    phase.extra["inspected in s"] = round(time.perf_counter() - started, 1)
    return phase


def load_objects(phase: Phase) -> dict[str, tuple[int, int]]:
    """A phase's census: ``{kind: (count, shallow bytes)}``."""
    if phase.census is None:
        return {}
    return _census_file(phase.census)


# -- the server under test --------------------------------------------------------------


class Server(Protocol):
    """The server held in this process."""

    kind: str
    url: str

    def held(self) -> int:
        """Sockets or sessions still held (0 once every printer is forgotten)."""
        ...

    def busy(self) -> int:
        """Requests in progress."""
        ...

    def describe(self) -> dict[str, Any]: ...

    async def stop(self) -> None: ...


class GatewayServer:
    """The gateway, built and started as ``gateway.cli.serve`` does."""

    kind = "gateway"

    def __init__(self, amqp_url: str, namespace: str) -> None:
        from broker.settings import load_settings
        from gateway.server import Gateway
        from gateway.settings import GatewaySettings

        fields = GatewaySettings.model_fields
        overrides: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "amqp_url": amqp_url,
            "namespace": namespace,
            "replica": f"{namespace}-main",
            "log_format": "json",
        }
        if "allow_anonymous" in fields:
            overrides["allow_anonymous"] = True
        if "max_connections_per_second_per_address" in fields:
            overrides["max_connections_per_second_per_address"] = 1e6
        self.settings = load_settings(GatewaySettings, **overrides)
        self.gateway = Gateway(self.settings)
        self.url = ""

    async def start(self) -> GatewayServer:
        await self.gateway.start()
        self.url = f"ws://127.0.0.1:{self.gateway.port}/"
        return self

    def held(self) -> int:
        gateway = self.gateway
        connections = len(gateway.server.connections) if gateway.server else 0
        return (
            connections
            + len(gateway.registry.all_sessions())
            + gateway.registry.printer_count
            + len(gateway._sessions)
        )

    def busy(self) -> int:
        """Requests still in progress (a probe's outcome not yet published)."""
        return sum(
            1
            for session in self.gateway.registry.request_sessions()
            if getattr(session, "_busy", False)
        )

    def describe(self) -> dict[str, Any]:
        gateway = self.gateway
        return {
            "sessions": len(gateway.registry.all_sessions()),
            "printers": gateway.registry.printer_count,
            "handler_tasks": len(gateway._sessions),
            "connections": len(gateway.server.connections) if gateway.server else 0,
            "missing_consumers": gateway.registry.missing_consumers(),
        }

    async def stop(self) -> None:
        await self.gateway.stop()


class FloorServer:
    """``scripts.bench.floor_server``'s handler with its options, in this process."""

    kind = "floor"

    def __init__(self) -> None:
        self.url = ""
        self.server: Any = None

    async def start(self) -> FloorServer:
        from websockets.asyncio.server import serve
        from websockets.typing import Subprotocol

        from gateway.settings import GatewaySettings
        from gateway.weblink import SUBPROTOCOL
        from scripts.bench.floor_server import _handle

        ping = GatewaySettings.model_fields["ws_ping_interval"].default
        self.server = await serve(
            _handle,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            compression=None,
            ping_interval=ping,
            ping_timeout=ping,
            max_size=1 << 20,
        )
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"
        return self

    def held(self) -> int:
        return len(self.server.connections)

    def busy(self) -> int:
        return 0

    def describe(self) -> dict[str, Any]:
        return {"connections": len(self.server.connections)}

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


# -- the fleet, in a child process --------------------------------------------------------


class FleetChild:
    """``count`` printers from ``first`` in a child process, driven over its pipes.

    The child prints JSON lines: ``ready`` (main and raw open), ``printable`` (each
    printer got its probe label, when ``probe``), ``closed``; it closes its fleet when
    it reads a line on stdin.
    """

    def __init__(
        self,
        *,
        url: str,
        count: int,
        first: int,
        prefix: str,
        probe: bool,
        max_dialing: int,
    ) -> None:
        self.url, self.count, self.first = url, count, first
        self.prefix, self.probe, self.max_dialing = prefix, probe, max_dialing
        self.process: asyncio.subprocess.Process | None = None
        self.events: dict[str, dict[str, Any]] = {}

    async def start(self, amqp_url: str, namespace: str) -> FleetChild:
        args = [
            sys.executable,
            "-m",
            "scripts.bench.memprofile",
            "--fleet-child",
            "--url",
            self.url,
            "--printers",
            str(self.count),
            "--first",
            str(self.first),
            "--prefix",
            self.prefix,
            "--amqp-url",
            amqp_url,
            "--namespace",
            namespace,
            "--max-dialing",
            str(self.max_dialing),
        ]
        if self.probe:
            args.append("--probe")
        self.process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        return self

    async def wait_for(self, event: str, limit: float) -> dict[str, Any]:
        """Read the child's lines until ``event``.

        Raises:
            RuntimeError: the child exited first.
            TimeoutError: not within ``limit`` seconds.
        """
        assert self.process is not None
        assert self.process.stdout is not None
        async with asyncio.timeout(limit):
            while event not in self.events:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"fleet child exited before {event!r}")
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    self.events[str(record.get("event"))] = record
        return self.events[event]

    async def close(self, limit: float) -> None:
        """Ask the child to close its printers' sockets and wait until they are."""
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(b"close\n")
        await self.process.stdin.drain()
        await self.wait_for("closed", limit)

    async def kill(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


_STARTED = time.monotonic()


def say(text: str) -> None:
    """A progress line on standard error, with the seconds since the start."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def fleet_child(args: argparse.Namespace) -> int:
    """The child: connect the printers, probe them, hold them until told to close."""
    from broker.topology import Channel, Topology
    from gateway.emulator.fleet import Fleet, FleetOptions
    from scripts.bench import amqp
    from scripts.bench.scenarios import make_label

    configure_logging("warning", "console", stream=sys.stderr)
    raise_open_files(2 * args.printers + SPARE_FILES)
    timeout = 120.0 + SECONDS_PER_PRINTER * args.printers
    fleet = Fleet(
        args.url,
        args.printers,
        FleetOptions(
            prefix=args.prefix,
            first=args.first,
            ramp_rate=None,
            max_dialing=args.max_dialing,
        ),
    )
    started = time.monotonic()
    fleet.start()
    try:
        await fleet.wait_ready(timeout=timeout)
        _emit("ready", seconds=round(time.monotonic() - started, 2))
        if args.probe:
            topology = Topology(namespace=args.namespace)
            connection = await amqp.connect(args.amqp_url, f"{args.namespace} memprof")
            try:
                # A probe published before the gateway declared the printer's raw
                # queue is dropped (unroutable): once labels stop arriving for
                # QUIET seconds, send again to the printers still without one (a
                # traced gateway delivers only some 50 a second).
                missing = list(fleet.serials)
                deadline = time.monotonic() + timeout
                while missing:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{len(missing)} printers got no probe")
                    await amqp.publish_many(
                        connection,
                        topology.requests_exchange,
                        [topology.request_key(s, Channel.RAW) for s in missing],
                        make_label(0),
                    )
                    while missing:
                        before = fleet.labels.value
                        with contextlib.suppress(TimeoutError):
                            await fleet.wait_labels(
                                before + len(missing), timeout=QUIET
                            )
                        missing = [s for s in missing if not fleet.label_count(s)]
                        if fleet.labels.value == before:
                            break
            finally:
                await connection.close()
        _emit("printable", seconds=round(time.monotonic() - started, 2))
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    finally:
        await fleet.close(timeout=30)
    _emit("closed", ready=fleet.ready.value, sockets=fleet.sockets.value)
    return 0


# -- analysis -------------------------------------------------------------------------


def short_path(filename: str) -> str:
    """Relative to site-packages, the repository or the standard library."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    root = str(ROOT) + "/"
    if filename.startswith(root):
        return filename[len(root) :]
    if filename.startswith(_STDLIB + "/"):
        return "stdlib/" + filename[len(_STDLIB) + 1 :]
    return filename


def package_of(filename: str) -> str:
    """The top-level package (``websockets``, ``gateway``, ``stdlib:asyncio``)."""
    path = short_path(filename)
    if path.startswith("stdlib/"):
        return "stdlib:" + path[len("stdlib/") :].split("/", 1)[0].removesuffix(".py")
    return path.split("/", 1)[0].removesuffix(".py")


def _raw_traces(
    snapshot: tracemalloc.Snapshot,
) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(size, frames most recent first) of every trace, without building objects."""
    for trace in snapshot.traces._traces:  # type: ignore[attr-defined]
        yield trace[1], trace[2]


def group_traces(
    snapshot: tracemalloc.Snapshot, key: Callable[[tuple[Any, ...]], str]
) -> dict[str, tuple[int, int]]:
    """``{key(frames): (bytes, blocks)}`` over every trace."""
    sizes: collections.Counter[str] = collections.Counter()
    blocks: collections.Counter[str] = collections.Counter()
    for size, frames in _raw_traces(snapshot):
        name = key(frames)
        sizes[name] += size
        blocks[name] += 1
    return {name: (sizes[name], blocks[name]) for name in sizes}


#: Frames that say nothing about who allocated: the standard library, frozen
#: modules and this script (the event loop runs under its ``asyncio.run``).
_NOT_A_CALLER = ("stdlib/", "<", "scripts/bench/memprofile.py")


def library_frame(frames: tuple[Any, ...]) -> str:
    """The innermost frame outside the standard library (the library that asked)."""
    for filename, lineno in frames:
        path = short_path(filename)
        if not path.startswith(_NOT_A_CALLER):
            return f"{path}:{lineno}"
    filename, lineno = frames[0]
    return f"(event loop) {short_path(filename)}:{lineno}"


def project_frame(frames: tuple[Any, ...]) -> str:
    """The innermost frame in the project; else the innermost library frame."""
    for filename, lineno in frames:
        path = short_path(filename)
        if path.startswith(_PROJECT):
            return f"{path}:{lineno}"
    return f"(no project frame) {library_frame(frames)}"


def diff(
    after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """``after - before`` per key, zero differences left out."""
    result: dict[str, tuple[int, int]] = {}
    for name in set(after) | set(before):
        size_a, count_a = after.get(name, (0, 0))
        size_b, count_b = before.get(name, (0, 0))
        if size_a != size_b or count_a != count_b:
            result[name] = (size_a - size_b, count_a - count_b)
    return result


def top_table(
    rows: dict[str, tuple[int, int]],
    per: int,
    *,
    limit: int,
    count_label: str = "blocks",
    size_label: str = "B/printer",
) -> list[str]:
    """Lines of the largest rows by bytes, per printer, with a cumulative share."""
    total = sum(size for size, _ in rows.values())
    ordered = sorted(rows.items(), key=lambda item: -item[1][0])
    lines = [f"{size_label:>10} {count_label + '/pr':>10} {'cum%':>6}  where"]
    running = 0
    for name, (size, count) in ordered[:limit]:
        running += size
        share = 100 * running / total if total else 0.0
        lines.append(f"{size / per:10.1f} {count / per:10.2f} {share:6.1f}  {name}")
    rest = ordered[limit:]
    if rest:
        size = sum(s for _, (s, _) in rest)
        count = sum(c for _, (_, c) in rest)
        lines.append(
            f"{size / per:10.1f} {count / per:10.2f} {100.0:6.1f}  ({len(rest)} more)"
        )
    lines.append(f"{total / per:10.1f} {'':>10} {'':>6}  total")
    return lines


def traceback_lines(frames: Iterable[tuple[str, int]], limit: int = 14) -> list[str]:
    """Frames most recent first, with their source line."""
    lines = []
    for filename, lineno in list(frames)[:limit]:
        source = linecache.getline(filename, lineno).strip()
        lines.append(f"      {short_path(filename)}:{lineno}  {source[:90]}")
    return lines


def top_tracebacks(
    after: tracemalloc.Snapshot,
    before: tracemalloc.Snapshot,
    per: int,
    limit: int,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The tracebacks that grew most, per printer."""
    grown: dict[tuple[Any, ...], list[int]] = {}
    for size, frames in _raw_traces(after):
        entry = grown.setdefault(frames, [0, 0])
        entry[0] += size
        entry[1] += 1
    for size, frames in _raw_traces(before):
        entry = grown.setdefault(frames, [0, 0])
        entry[0] -= size
        entry[1] -= 1
    ordered = sorted(grown.items(), key=lambda item: -item[1][0])[:limit]
    lines: list[str] = []
    data: list[dict[str, Any]] = []
    for rank, (frames, (size, count)) in enumerate(ordered, 1):
        lines.append(
            f"  #{rank}: {size / per:.1f} B/printer in {count / per:.2f} blocks/printer"
        )
        lines += traceback_lines(frames)
        data.append(
            {
                "bytes_per_printer": round(size / per, 1),
                "blocks_per_printer": round(count / per, 3),
                "frames": [f"{short_path(f)}:{n}" for f, n in frames],
            }
        )
    return lines, data


@dataclasses.dataclass
class Report:
    lines: list[str] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)


def _kib(value: float) -> str:
    return f"{value / 1024:.2f}"


def phase_table(phases: list[Phase]) -> list[str]:
    lines = [
        f"{'phase':<18}{'printers':>9}{'RSS KiB':>10}{'traced KiB':>12}"
        f"{'tm own KiB':>11}{'pymalloc arenas KiB':>20}{'blocks KiB':>11}"
        f"{'malloc in use KiB':>18}{'free KiB':>10}{'gc found':>9}{'gc s':>7}"
    ]
    for phase in phases:
        lines.append(
            f"{phase.name:<18}{phase.printers:>9}{phase.rss_kib:>10}"
            f"{_kib(phase.traced):>12}{_kib(phase.tracemalloc_overhead):>11}"
            f"{_kib(phase.pymalloc.get('arena_bytes', 0)):>20}"
            f"{_kib(phase.pymalloc.get('allocated_blocks', 0)):>11}"
            f"{_kib(phase.malloc.get('in_use', 0)):>18}"
            f"{_kib(phase.malloc.get('free', 0)):>10}"
            f"{phase.gc_collected:>9}{phase.gc_seconds:>7.3f}"
        )
    return lines


def growth_lines(after: Phase, before: Phase) -> tuple[list[str], dict[str, float]]:
    """Per-printer growth of every memory figure from ``before`` to ``after``."""
    per = after.printers - before.printers
    figures = {
        "rss_kib": (after.rss_kib - before.rss_kib) / per,
        "traced_kib": (after.traced - before.traced) / 1024 / per,
        "tracemalloc_overhead_kib": (
            after.tracemalloc_overhead - before.tracemalloc_overhead
        )
        / 1024
        / per,
        "pymalloc_arenas_kib": (
            after.pymalloc.get("arena_bytes", 0) - before.pymalloc.get("arena_bytes", 0)
        )
        / 1024
        / per,
        "pymalloc_blocks_kib": (
            after.pymalloc.get("allocated_blocks", 0)
            - before.pymalloc.get("allocated_blocks", 0)
        )
        / 1024
        / per,
        "malloc_in_use_kib": (
            after.malloc.get("in_use", 0) - before.malloc.get("in_use", 0)
        )
        / 1024
        / per,
        "malloc_heap_kib": (
            after.malloc.get("heap", 0)
            + after.malloc.get("mmapped", 0)
            - before.malloc.get("heap", 0)
            - before.malloc.get("mmapped", 0)
        )
        / 1024
        / per,
        "gc_tracked_objects": (after.gc_tracked - before.gc_tracked) / per,
    }
    rss_less = figures["rss_kib"] - figures["tracemalloc_overhead_kib"]
    figures["rss_less_tracemalloc_kib"] = rss_less
    lines = [
        f"  {before.name} -> {after.name} ({per} printers), per printer:",
        f"    RSS                       {figures['rss_kib']:8.2f} KiB",
        f"    tracemalloc's own tables  {figures['tracemalloc_overhead_kib']:8.2f} KiB"
        f"  (RSS without them: {rss_less:.2f} KiB)",
        f"    traced (live allocations) {figures['traced_kib']:8.2f} KiB",
        f"    pymalloc arenas           {figures['pymalloc_arenas_kib']:8.2f} KiB"
        f"  (blocks in use {figures['pymalloc_blocks_kib']:.2f} KiB)",
        f"    glibc malloc in use       {figures['malloc_in_use_kib']:8.2f} KiB"
        f"  (heap + mmapped {figures['malloc_heap_kib']:.2f} KiB)",
        f"    objects tracked by gc     {figures['gc_tracked_objects']:8.1f}",
    ]
    if after.traced:
        share = 100 * figures["traced_kib"] / rss_less if rss_less else 0.0
        lines.append(
            f"    traced / (RSS - tracemalloc) = {share:.0f} %; the rest is pymalloc "
            "and malloc slack (free blocks in used pools/arenas, headers)"
        )
    return lines, figures


def object_lines(
    after: Phase, before: Phase, limit: int
) -> tuple[list[str], dict[str, Any]]:
    per = after.printers - before.printers
    grown = diff(load_objects(after), load_objects(before))
    rows = {name: (size, count) for name, (count, size) in grown.items()}
    ordered = sorted(rows.items(), key=lambda item: -abs(item[1][1]))
    lines = [f"{'objs/printer':>13} {'shallow B/pr':>13}  type"]
    data: dict[str, Any] = {}
    for name, (size, count) in ordered:
        if abs(count) / per < 0.05 and abs(size) / per < 16:
            continue
        data[name] = {
            "per_printer": round(count / per, 3),
            "shallow_bytes_per_printer": round(size / per, 1),
        }
        if len(lines) <= limit:
            lines.append(f"{count / per:13.2f} {size / per:13.1f}  {name}")
    total = sum(size for size, _ in rows.values())
    lines.append(f"{'':>13} {total / per:13.1f}  total shallow (sys.getsizeof)")
    return lines, data


def analyse(
    phases: list[Phase], connected: list[Phase], args: argparse.Namespace
) -> Report:
    report = Report()
    base, last = phases[0], connected[-1]
    report.add("", "== phases ==", *phase_table(phases))
    report.data["phases"] = [
        {
            key: value
            for key, value in dataclasses.asdict(phase).items()
            if key not in ("census", "snapshot")
        }
        for phase in phases
    ]
    report.add("", "== growth ==")
    growth: dict[str, Any] = {}
    steps = [base, *connected]
    for before, after in itertools.pairwise(steps):
        lines, figures = growth_lines(after, before)
        report.add(*lines)
        growth[f"{before.name}->{after.name}"] = figures
    if len(connected) > 1:
        lines, figures = growth_lines(last, base)
        report.add(*lines)
        growth[f"{base.name}->{last.name}"] = figures
    after_phases = [p for p in phases if p.name.startswith("disconnected")]
    for phase in after_phases:
        report.add(
            f"  {phase.name}: RSS {phase.rss_kib - base.rss_kib:+d} KiB over base "
            f"({(phase.rss_kib - base.rss_kib) / last.printers:.2f} KiB per printer "
            f"once held), traced {_kib(phase.traced - base.traced)} KiB over base, "
            f"pymalloc arenas {_kib(phase.pymalloc.get('arena_bytes', 0) - base.pymalloc.get('arena_bytes', 0))} KiB "
            f"over base (blocks in use {_kib(phase.pymalloc.get('allocated_blocks', 0) - base.pymalloc.get('allocated_blocks', 0))} KiB)"
        )
    report.data["growth"] = growth
    extra = last.extra
    if extra:
        report.add("", "== gc ==")
        report.add(
            f"  full collection with {last.printers} printers: {last.gc_seconds * 1000:.0f} ms, "
            f"{last.gc_collected} unreachable objects found; RSS before/after "
            f"{last.rss_before_gc_kib}/{last.rss_kib} KiB"
        )
        for key, value in extra.items():
            report.add(f"  {key}: {value}")
        report.data["gc"] = extra

    report.add(
        "",
        f"== objects alive, {base.name} -> {last.name}, per printer "
        "(gc-tracked objects and the untracked ones they hold) ==",
    )
    lines, objects = object_lines(last, base, args.top_objects)
    report.add(*lines)
    report.data["objects"] = objects
    if len(connected) > 1:
        first = connected[0]
        report.add(
            "",
            f"== objects, marginal {first.name} -> {last.name}, per printer ==",
        )
        lines, _ = object_lines(last, first, args.top_objects // 2)
        report.add(*lines)

    if last.snapshot is not None and base.snapshot is not None:
        analyse_traces(report, phases, connected, args)
    if args.baseline is not None:
        analyse_baseline(report, phases[0], connected[-1], args)
    return report


def _kept_phases(folder: Path) -> tuple[Path, Path, int]:
    """A kept run's ``base`` file stem and its last ``connected-<n>`` one, and n."""
    counts = sorted(
        int(path.name.split(".")[0].rsplit("-", 1)[1])
        for path in folder.glob("connected-*.heap.json")
    )
    if not counts:
        raise SystemExit(f"--baseline {folder}: no connected-<n>.heap.json there")
    return folder / "base", folder / f"connected-{counts[-1]}", counts[-1]


def _growth_per_printer(
    after: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]], per: int
) -> dict[str, tuple[float, float]]:
    return {
        name: (size / per, count / per)
        for name, (size, count) in diff(after, before).items()
    }


def _minus(
    ours: dict[str, tuple[float, float]], theirs: dict[str, tuple[float, float]]
) -> dict[str, tuple[int, int]]:
    """``ours - theirs`` per key, as (bytes, count) per printer scaled by 1000."""
    result: dict[str, tuple[int, int]] = {}
    for name in set(ours) | set(theirs):
        size_a, count_a = ours.get(name, (0.0, 0.0))
        size_b, count_b = theirs.get(name, (0.0, 0.0))
        result[name] = (
            round((size_a - size_b) * 1000),
            round((count_a - count_b) * 1000),
        )
    return result


def analyse_baseline(
    report: Report, base: Phase, last: Phase, args: argparse.Namespace
) -> None:
    """Per printer: this run's growth minus the baseline run's, by site and by type."""
    their_base, their_last, their_count = _kept_phases(args.baseline)
    per = last.printers - base.printers
    ours_objects = {
        name: (size, count)
        for name, (count, size) in diff(load_objects(last), load_objects(base)).items()
    }
    theirs_objects = {
        name: (size, count)
        for name, (count, size) in diff(
            _census_file(their_last.with_suffix(".heap.json")),
            _census_file(their_base.with_suffix(".heap.json")),
        ).items()
    }
    extra = _minus(
        {k: (s / per, c / per) for k, (s, c) in ours_objects.items()},
        {k: (s / their_count, c / their_count) for k, (s, c) in theirs_objects.items()},
    )
    report.add(
        "",
        f"== objects per printer beyond the baseline ({args.baseline}), shallow ==",
    )
    report.add(
        *top_table(
            extra,
            1000,
            limit=args.top_objects // 2,
            count_label="objects",
            size_label="B/printer",
        )
    )
    if last.snapshot is None or base.snapshot is None:
        return
    their_snap_last = their_last.with_suffix(".snapshot")
    their_snap_base = their_base.with_suffix(".snapshot")
    if not their_snap_last.exists():
        report.add("  (the baseline was not traced: no per-site comparison)")
        return
    snaps = {
        "ours": (
            tracemalloc.Snapshot.load(str(last.snapshot)),
            tracemalloc.Snapshot.load(str(base.snapshot)),
            per,
        ),
        "theirs": (
            tracemalloc.Snapshot.load(str(their_snap_last)),
            tracemalloc.Snapshot.load(str(their_snap_base)),
            their_count,
        ),
    }
    for title, view in (
        ("allocation site", _site),
        ("innermost library frame", library_frame),
        ("innermost project frame", project_frame),
    ):
        grown = {
            side: _growth_per_printer(
                group_traces(after, view), group_traces(before, view), count
            )
            for side, (after, before, count) in snaps.items()
        }
        report.add(
            "",
            f"== traced per printer beyond the baseline, by {title} ==",
        )
        report.add(
            *top_table(_minus(grown["ours"], grown["theirs"]), 1000, limit=args.top)
        )


def _census_file(path: Path) -> dict[str, tuple[int, int]]:
    objects = json.loads(path.read_text())["objects"]
    return {kind: (int(count), int(size)) for kind, (count, size) in objects.items()}


def _site(frames: tuple[Any, ...]) -> str:
    return f"{short_path(frames[0][0])}:{frames[0][1]}"


def analyse_traces(
    report: Report,
    phases: list[Phase],
    connected: list[Phase],
    args: argparse.Namespace,
) -> None:
    """The traced growth from ``base`` to the last connected phase, in every view."""
    base, last = phases[0], connected[-1]
    per = last.printers - base.printers
    assert base.snapshot is not None
    assert last.snapshot is not None
    snap_base = tracemalloc.Snapshot.load(str(base.snapshot))
    snap_last = tracemalloc.Snapshot.load(str(last.snapshot))
    views: dict[str, Callable[[tuple[Any, ...]], str]] = {
        "allocation site (filename:lineno)": _site,
        "file": lambda f: short_path(f[0][0]),
        "package": lambda f: package_of(f[0][0]),
        "innermost project frame (gateway/, broker/: who caused it)": project_frame,
        "innermost library frame (outside the standard library)": library_frame,
    }
    report.data["traced"] = {}
    for title, view in views.items():
        grown = diff(group_traces(snap_last, view), group_traces(snap_base, view))
        report.add("", f"== traced growth by {title}, {base.name} -> {last.name} ==")
        limit = args.top if "lineno" in title or "frame" in title else args.top // 2
        report.add(*top_table(grown, per, limit=limit))
        ordered = sorted(grown.items(), key=lambda item: -item[1][0])[: args.top]
        report.data["traced"][title] = {
            name: {
                "bytes_per_printer": round(size / per, 1),
                "blocks_per_printer": round(count / per, 3),
            }
            for name, (size, count) in ordered
        }
    report.add(
        "", f"== top {args.tracebacks} tracebacks, {base.name} -> {last.name} =="
    )
    lines, data = top_tracebacks(snap_last, snap_base, per, args.tracebacks)
    report.add(*lines)
    report.data["tracebacks"] = data
    first = connected[0]
    if len(connected) > 1 and first.snapshot is not None:
        snap_first = tracemalloc.Snapshot.load(str(first.snapshot))
        grown = diff(group_traces(snap_last, _site), group_traces(snap_first, _site))
        report.add(
            "",
            f"== marginal traced growth by allocation site, {first.name} -> "
            f"{last.name} ==",
        )
        report.add(*top_table(grown, last.printers - first.printers, limit=args.top))
    for phase in phases:
        if phase.name == "disconnected" and phase.snapshot is not None:
            snap_gone = tracemalloc.Snapshot.load(str(phase.snapshot))
            grown = diff(group_traces(snap_gone, _site), group_traces(snap_base, _site))
            report.add("", f"== still traced after disconnecting, over {base.name} ==")
            report.add(*top_table(grown, last.printers, limit=args.top // 2))


# -- the run ------------------------------------------------------------------------------


async def wait_until(
    predicate: Callable[[], bool], limit: float, what: str, step: float = 0.1
) -> None:
    """Poll ``predicate`` (the server exposes no event for these counts).

    Raises:
        TimeoutError: it did not hold within ``limit`` seconds.
    """
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {limit:g} s")
        await asyncio.sleep(step)


def code_version() -> dict[str, Any]:
    """The commit measured, and whether ``gateway/`` or ``broker/`` differed from it."""
    import hashlib
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    changes = git("diff", "HEAD", "--", "gateway", "broker")
    return {
        "root": str(ROOT),
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "gateway_or_broker_changed": bool(changes),
        "changes_sha1": hashlib.sha1(changes.encode()).hexdigest()[:12]
        if changes
        else None,
    }


def cache_sources() -> None:
    """Read every loaded module's source now: the report quotes lines of the code
    that ran, even if someone edits the files during the run."""
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if filename and filename.endswith(".py"):
            linecache.getlines(filename)


async def cleanup(amqp_url: str, namespace: str, serials: list[str]) -> None:
    """Delete the printers' queues and the namespace's shared queues and exchanges."""
    from broker.topology import Topology
    from scripts.bench import amqp

    topology = Topology(namespace=namespace)
    connection = await amqp.connect(amqp_url, f"{namespace} memprof cleanup")
    try:
        await amqp.delete_queues(connection, amqp.printer_queues(topology, serials))
        await amqp.delete_namespace(connection, topology)
    finally:
        await connection.close()


@dataclasses.dataclass
class Run:
    """One profiling run: what it measured, and what it declared in RabbitMQ."""

    targets: list[int]
    folder: Path
    namespace: str = dataclasses.field(
        default_factory=lambda: "memprof" + uuid.uuid4().hex[:8]
    )
    prefix: str = dataclasses.field(
        default_factory=lambda: "MP" + uuid.uuid4().hex[:4].upper()
    )
    phases: list[Phase] = dataclasses.field(default_factory=list)
    connected: list[Phase] = dataclasses.field(default_factory=list)
    #: Printers connected so far (their serials are made only to clean up: a list
    #: of them here would count as memory per printer).
    printers: int = 0

    @property
    def serials(self) -> list[str]:
        return fleet_serials(self.prefix, self.printers)


def _loop_census(phase: Phase) -> None:
    """Tasks by coroutine and timers by callback, now (in ``phase.extra``)."""
    loop: Any = asyncio.get_running_loop()
    phase.extra["tasks by coroutine"] = dict(
        collections.Counter(
            getattr(task.get_coro(), "__qualname__", "?")
            for task in asyncio.all_tasks()
        ).most_common(12)
    )
    phase.extra["timers by callback"] = dict(
        collections.Counter(
            getattr(handle._callback, "__qualname__", "?")
            for handle in loop._scheduled
            if not handle.cancelled()
        ).most_common(12)
    )
    phase.extra["cancelled timers still scheduled"] = sum(
        1 for handle in loop._scheduled if handle.cancelled()
    )


async def _try_freeze(phase: Phase) -> None:
    """Whether ``gc.freeze()`` changes memory (it moves objects, frees nothing)."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    await asyncio.sleep(1.0)
    started = time.perf_counter()
    found = gc.collect()
    seconds = time.perf_counter() - started
    phase.extra["gc.freeze()"] = (
        f"{frozen} objects frozen; RSS {rss_kib()} KiB after (was {phase.rss_kib}); "
        f"a full collection then takes {seconds * 1000:.1f} ms and finds {found}"
    )
    gc.unfreeze()
    phase.extra["gc thresholds"] = gc.get_threshold()


async def profile(args: argparse.Namespace, run: Run) -> None:
    """Start the server, connect the fleets step by step, measure every phase.

    SIGTERM and SIGINT cancel the run, so its namespace is deleted all the same.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    server: GatewayServer | FloorServer
    if args.server == "gateway":
        server = GatewayServer(args.amqp_url, run.namespace)
    else:
        server = FloorServer()
    say(
        f"memprofile: {args.server} in this process (pid {os.getpid()}), "
        f"namespace {run.namespace}, printers {run.targets}, "
        f"tracemalloc {'off' if args.no_trace else f'{args.frames} frames'}"
    )
    children: list[FleetChild] = []
    started_server = False
    try:
        await server.start()
        started_server = True
        cache_sources()
        await asyncio.sleep(args.settle)
        run.phases.append(await measure("base", 0, run.folder))
        say(f"base: RSS {run.phases[-1].rss_kib} KiB")
        held = 0
        for target in run.targets:
            child = FleetChild(
                url=server.url,
                count=target - held,
                first=held + 1,
                prefix=run.prefix,
                probe=args.server == "gateway",
                max_dialing=args.max_dialing,
            )
            run.printers = target
            children.append(await child.start(args.amqp_url, run.namespace))
            limit = 120.0 + SECONDS_PER_PRINTER * (target - held)
            ready = await child.wait_for("ready", limit)
            printable = await child.wait_for("printable", limit)
            held = target
            await wait_until(lambda: server.busy() == 0, limit, "probes finished")
            # Measurement design, not synchronisation: the last events drain.
            await asyncio.sleep(args.settle)
            phase = await measure(f"connected-{target}", target, run.folder)
            phase.extra["server"] = server.describe()
            say(
                f"{target} printers: ready in {ready['seconds']} s, printable in "
                f"{printable['seconds']} s; RSS {phase.rss_kib} KiB; "
                f"{phase.extra['server']}"
            )
            run.phases.append(phase)
            run.connected.append(phase)
        last = run.connected[-1]
        _loop_census(last)
        await _try_freeze(last)
        for child in children:
            await child.close(limit=60)
        await wait_until(lambda: server.held() == 0, 120, "printers forgotten")
        say("disconnected")
        await asyncio.sleep(args.settle)
        run.phases.append(await measure("disconnected", run.targets[-1], run.folder))
        trimmed = malloc_trim()
        phase = await measure(
            "disconnected+trim", run.targets[-1], run.folder, objects=False
        )
        phase.extra["malloc_trim"] = trimmed
        run.phases.append(phase)
        say("measured")
    finally:
        for child in children:
            await child.kill()
        if started_server:
            await server.stop()
        if args.server == "gateway":
            await cleanup(args.amqp_url, run.namespace, run.serials)
            say(
                f"deleted namespace {run.namespace} "
                f"({len(run.serials)} printers' queues)"
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.memprofile",
        description="Profile the memory the gateway spends per idle printer.",
    )
    parser.add_argument(
        "--printers",
        default="1000",
        help="printer counts to measure at, cumulative (default 1000; e.g. 1000,2000)",
    )
    parser.add_argument(
        "--server",
        choices=["gateway", "floor"],
        default="gateway",
        help="what to hold the printers: the gateway, or websockets alone (the floor)",
    )
    parser.add_argument(
        "--frames", type=int, default=25, help="tracemalloc frames (default 25)"
    )
    parser.add_argument(
        "--no-trace", action="store_true", help="no tracemalloc: RSS without overhead"
    )
    parser.add_argument("--top", type=int, default=30, help="rows per traced table")
    parser.add_argument(
        "--tracebacks", type=int, default=10, help="tracebacks shown (default 10)"
    )
    parser.add_argument(
        "--top-objects", type=int, default=60, help="rows of the object census"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=SETTLE,
        help=f"seconds of quiet before each phase is measured (default {SETTLE:g})",
    )
    parser.add_argument(
        "--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/", help="RabbitMQ"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the gateway's log level (default info, as in production)",
    )
    parser.add_argument(
        "--log-file", default=os.devnull, help="where the gateway logs (default: none)"
    )
    parser.add_argument(
        "--max-dialing",
        type=int,
        default=4,
        help="handshakes in flight from the fleet (default 4: a traced gateway is "
        "slow, and a printer whose raw channel takes over channel_open_timeout "
        "gets asked again)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the snapshots and censuses in DIR (for a later --baseline)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="a run kept with --keep (e.g. --server floor): also report this run's "
        "growth per printer minus that run's, by allocation site and by type",
    )
    # The child process's flags.
    parser.add_argument("--fleet-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="MP", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.fleet_child:
        args.printers = int(args.printers)
        return asyncio.run(fleet_child(args))
    targets = sorted({int(value) for value in args.printers.split(",") if value})
    if not targets or targets[0] <= 0:
        print("--printers: positive counts, e.g. 1000 or 1000,2000", file=sys.stderr)
        return 2
    wanted = 2 * targets[-1] + SPARE_FILES
    limits = raise_open_files(wanted)
    if limits["soft"] < wanted:
        print(f"open-file limit {limits['soft']} < {wanted}", file=sys.stderr)
        return 2
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (
        open(args.log_file, "a") as log_stream,
        tempfile.TemporaryDirectory(prefix="memprofile-") as scratch,
    ):
        configure_logging(args.log_level, "json", stream=log_stream)
        run = Run(targets=targets, folder=args.keep or Path(scratch))
        if not args.no_trace:
            tracemalloc.start(args.frames)
        try:
            asyncio.run(profile(args, run))
        finally:
            tracemalloc.stop()  # the snapshots are on disk; analysing is faster so
        report = analyse(run.phases, run.connected, args)
        say("analysed")
    report.data["run"] = {
        "code": code_version(),
        "server": args.server,
        "printers": targets,
        "frames": None if args.no_trace else args.frames,
        "namespace": run.namespace,
        "python": sys.version.split()[0],
    }
    code = report.data["run"]["code"]
    report.lines.insert(
        0,
        f"{args.server}, printers {targets}, tracemalloc "
        f"{'off' if args.no_trace else f'{args.frames} frames'}; code at "
        f"{code['commit']} in {code['root']}"
        + (
            f", gateway/broker changed ({code['changes_sha1']})"
            if code["changes_sha1"]
            else ""
        ),
    )
    print("\n".join(report.lines))
    if args.json:
        args.json.write_text(json.dumps(report.data, indent=1, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
