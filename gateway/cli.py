"""``zebra-gateway``: serve WebLink printers and bridge them to RabbitMQ.

Flags override ``ZEBRA_BROKER_*`` variables, which override ``.env`` and defaults.
``zebra-gateway --check`` asks a running gateway's ``/readyz`` and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
import typing
import urllib.request
from collections.abc import Callable
from typing import Any, Literal

import structlog

from broker.errors import PrintBrokerError
from broker.logs import configure_logging
from broker.settings import load_settings
from gateway.server import Gateway
from gateway.settings import GatewaySettings

log = structlog.get_logger("gateway")

#: Collections of the young generation between middle ones, and of those between
#: full ones (Python's defaults: 10 and 10), used with ``gc_young_threshold``.
GC_OLDER_THRESHOLDS = (20, 50)


def _flag_type(annotation: Any) -> tuple[Callable[[str], Any], list[str] | None]:
    """Return an argparse type and choices for a settings field's annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return str, [str(a) for a in args]
    if args:  # Optional[X] / X | None
        return _flag_type(args[0])
    if annotation in (int, float):
        return annotation, None
    return str, None


def build_parser() -> argparse.ArgumentParser:
    """One flag per ``GatewaySettings`` field, named after it (``--ws-path``)."""
    parser = argparse.ArgumentParser(
        prog="zebra-gateway",
        description="Serve Zebra WebLink printers and bridge them to RabbitMQ. Every "
        "flag also reads from ZEBRA_BROKER_<NAME> (e.g. ZEBRA_BROKER_PORT); flags win.",
        argument_default=argparse.SUPPRESS,
    )
    for name, field in GatewaySettings.model_fields.items():
        if field.annotation is bool:
            parser.add_argument(
                "--" + name.replace("_", "-"),
                dest=name,
                action="store_true",
                help=field.description,
            )
            continue
        kind, choices = _flag_type(field.annotation)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            choices=choices,
            help=field.description,
        )
    parser.add_argument(
        "--check",
        action="store_true",
        help="probe a running gateway's /readyz on --host/--port and exit 0 or 1",
    )
    return parser


def check(settings: GatewaySettings) -> int:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def tune_gc(young_threshold: int) -> None:
    """Collect garbage less often than Python's defaults (``0`` keeps them).

    Every printer that connects leaves a few hundred long-lived objects. With the
    defaults, a burst of connects (a failover) triggers a full collection, which
    walks the whole heap, every ~70,000 allocations: 2,000 printers connecting cost
    3.8 s of CPU in collections, one pause lasting a second. With a young threshold
    of 10,000 and the older ones of :data:`GC_OLDER_THRESHOLDS` it was 0.9 s and no
    full collection (docs/performance.md, fix 10). Reference counting frees almost
    everything anyway; what the collector finds, it still finds, a little later.
    """
    if young_threshold > 0:
        gc.set_threshold(young_threshold, *GC_OLDER_THRESHOLDS)


async def serve(settings: GatewaySettings) -> int:
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, gateway.guard.reload_credentials)
    await stop.wait()
    log.info("gateway.stopping")
    await gateway.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args: dict[str, Any] = vars(build_parser().parse_args(argv))
    is_check = args.pop("check", False)
    try:
        settings = load_settings(GatewaySettings, **args)
    except PrintBrokerError as exc:
        print(f"zebra-gateway: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if is_check:
        return check(settings)
    configure_logging(settings.log_level, settings.log_format)
    tune_gc(settings.gc_young_threshold)
    try:
        return asyncio.run(serve(settings))
    except PrintBrokerError as exc:
        log.error("gateway.failed", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
