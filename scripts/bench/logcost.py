"""``python -m scripts.bench.logcost [--module PATH] [--format json|console]``.

Time what one log call costs, in µs, with :func:`broker.logs.configure_logging`
writing to ``os.devnull``: an info line with four fields that is written, a debug
line that the info level drops, and a standard-library warning. ``--module`` takes
another ``logs.py`` (a file path) to compare, e.g. a copy of the old one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from types import ModuleType

import structlog


def load(module: str) -> ModuleType:
    """Import ``module``: a dotted name, or a path to a ``.py`` file."""
    if not module.endswith(".py"):
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location("logs_under_test", module)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {module}")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def per_call_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``calls`` calls, in µs per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.logcost")
    parser.add_argument("--module", default="broker.logs")
    parser.add_argument("--format", default="json", choices=["json", "console"])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    logs = load(args.module)
    with open(os.devnull, "w") as devnull:
        logs.configure_logging("info", args.format, stream=devnull)
        log = structlog.get_logger("bench").bind(
            printer_serial="XXZ1234", channel="raw"
        )
        stdlib_log = logging.getLogger("x")
        cases: dict[str, Callable[[], object]] = {
            "info, 4 fields, written": lambda: log.info(
                "job.finished", job_id="job-1", duration_ms=12
            ),
            "debug, filtered out": lambda: log.debug(
                "job.progress", job_id="job-1", duration_ms=12
            ),
            "stdlib warning, written": lambda: stdlib_log.warning(
                "printer %s offline", "XXZ1234"
            ),
        }
        results = {
            name: per_call_us(call, args.calls, args.repeats)
            for name, call in cases.items()
        }
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()

    print(f"{args.module} ({args.format})")
    print(f"{'case':<26}{'µs/call':>10}")
    for name, micros in results.items():
        print(f"{name:<26}{micros:>10.2f}")


if __name__ == "__main__":
    main()
