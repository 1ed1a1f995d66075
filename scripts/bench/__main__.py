"""``python -m scripts.bench [--quick | --smoke] [--profile]``: run the benchmark.

Starts its own gateway processes in a fresh namespace (``bench<random>``) on the
RabbitMQ at ``--amqp-url``, drives them with emulated printers, measures every figure
beside its floor, writes ``bench-<mode>-<time>.json`` and ``.md`` to ``--out``
(``bench-results/``), prints the table and deletes everything it declared. Exit
status 0 when every scenario ran (whatever the figures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.logs import configure_logging
from scripts.bench import amqp, report
from scripts.bench.config import MODES, Sizes
from scripts.bench.machine import describe, raise_open_files
from scripts.bench.processes import ROOT, bench_flags
from scripts.bench.scenarios import (
    Run,
    measure_floors,
    measure_idle,
    measure_latency_and_throughput,
    measure_storm,
)

SCENARIOS: dict[str, Callable[[Run], Awaitable[None]]] = {
    "floors": measure_floors,
    "latency": measure_latency_and_throughput,
    "idle": measure_idle,
    "storm": measure_storm,
}
#: Descriptors kept free beyond two per printer (AMQP, logs, pipes, the interpreter).
SPARE_FILES = 1000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Measure the gateway against its physical floors, in one run.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="smaller counts: about a minute"
    )
    size.add_argument(
        "--smoke", action="store_true", help="tiny counts, to check that it runs (CI)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the gateway with py-spy during throughput and the storm",
    )
    parser.add_argument(
        "--amqp-url",
        default="amqp://guest:guest@127.0.0.1:5672/",
        help="RabbitMQ to use (default: the local one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench-results",
        help="where reports and logs go (default: bench-results/)",
    )
    parser.add_argument(
        "--gateway-log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the gateways' log level (default info, as in production)",
    )
    parser.add_argument(
        "--printers",
        type=int,
        metavar="N",
        help="printers of the idle and storm scenarios (default: the mode's)",
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run the gateways on uvloop's event loop (uvloop must be importable)",
    )
    parser.add_argument("--label", help="a note stored with the run in history.jsonl")
    return parser


def _fit_to_files(sizes: Sizes, notes: list[str]) -> Sizes:
    """Shrink printer counts that need more descriptors than one process may hold."""
    limits = raise_open_files(
        2 * max(sizes.idle_printers, sizes.storm_printers) + SPARE_FILES
    )
    most = max(1, (limits["soft"] - SPARE_FILES) // 2)
    if sizes.idle_printers <= most and sizes.storm_printers <= most:
        return sizes
    notes.append(
        f"open-file limit {limits['soft']}: printer counts capped at {most} "
        "(two sockets per printer in this process and in the gateway)"
    )
    return dataclasses.replace(
        sizes,
        idle_printers=min(sizes.idle_printers, most),
        storm_printers=min(sizes.storm_printers, most),
    )


async def run_benchmark(args: argparse.Namespace) -> int:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    notes: list[str] = []
    sizes = MODES[mode]
    if args.printers:
        sizes = dataclasses.replace(
            sizes, idle_printers=args.printers, storm_printers=args.printers
        )
    sizes = _fit_to_files(sizes, notes)
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(selected) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {sorted(unknown)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    run = Run(
        sizes=sizes,
        amqp_url=args.amqp_url,
        out=args.out,
        log_level=args.gateway_log_level,
        profile=args.profile,
        uvloop=args.uvloop,
        notes=notes,
    )
    started = time.monotonic()
    errors: list[str] = []
    timings: dict[str, float] = {}
    run.connection = await amqp.connect(args.amqp_url, f"{run.namespace} bench")
    rabbit = amqp.server_info(run.connection)
    rabbit["event_exchange_plugin"] = await amqp.has_event_exchange(run.connection)
    if rabbit["event_exchange_plugin"]:
        run.notes.append(
            "RabbitMQ has the test suite's rabbitmq_event_exchange plugin on: it "
            "publishes an event for every binding, consumer and queue change, which "
            "cost 13-24 % more RabbitMQ CPU and 14-22 % more storm time on 2026-11-25; "
            "production brokers do not need it (`make bench` turns it off, `make "
            "rabbitmq` and `make test` on)"
        )
    print(f"benchmark {mode}: namespace {run.namespace}, results in {args.out}")
    try:
        for name in selected:
            print(f"  {name} ...", flush=True)
            begun = time.monotonic()
            try:
                await SCENARIOS[name](run)
            except Exception as exc:  # record it, carry on with the next scenario
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                print(f"  {name} failed: {exc!r}", file=sys.stderr)
            timings[name] = round(time.monotonic() - begun, 1)
            print(f"  {name} done in {timings[name]} s", flush=True)
    finally:
        await amqp.delete_namespace(run.connection, run.topology)
        await run.connection.close()
    result: dict[str, Any] = {
        "schema": "zebra-bench/1",
        "mode": mode,
        "label": args.label,
        "gateway_event_loop": "uvloop" if args.uvloop else "asyncio",
        "gateway_flags": bench_flags(),
        "namespace": run.namespace,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "timings_s": timings,
        "sizes": sizes.__dict__,
        "machine": describe(rabbit),
        "figures": report.figures(run.results),
        "results": run.results,
        "profiles": run.profiles,
        "gateway_logs": run.logs,
        "notes": run.notes,
        "errors": errors,
    }
    json_path, md_path = report.write(result, args.out)
    print()
    print(report.markdown(result))
    print(f"report: {json_path}\n        {md_path}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("warning", "console", stream=sys.stderr)
    return asyncio.run(run_benchmark(args))


if __name__ == "__main__":
    sys.exit(main())
