"""``zebra-gateway``: serve WebLink printers and bridge them to RabbitMQ.

Flags override ``ZEBRA_BROKER_*`` variables, which override ``.env`` and defaults.
``zebra-gateway --check`` asks a running gateway's ``/readyz`` and exits 0 or 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import urllib.request
from typing import Any

import structlog

from broker.errors import PrintBrokerError
from broker.logs import configure_logging
from broker.settings import load_settings
from gateway.server import Gateway
from gateway.settings import GatewaySettings

log = structlog.get_logger("gateway")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zebra-gateway",
        description="Serve Zebra WebLink printers and bridge them to RabbitMQ. Every "
        "flag also reads from ZEBRA_BROKER_<NAME> (e.g. ZEBRA_BROKER_PORT).",
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--host", help="address to listen on (default 0.0.0.0)")
    add("--port", type=int, help="port for WebLink and /healthz (default 8080)")
    add("--ws-path", help="the only URL path printers may use (default: any)")
    add("--amqp-url", help="RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/)")
    add("--namespace", help="prefix of exchange and queue names (default zebra)")
    add("--replica", help="this replica's name (default: host-pid-random)")
    add("--queue-max-length", type=int, help="x-max-length of printer queues")
    add(
        "--queue-type",
        choices=["classic", "quorum"],
        help="x-queue-type of printer queues",
    )
    add("--ws-ping-interval", type=float, help="seconds between pings (default 20)")
    add("--shutdown-timeout", type=float, help="seconds to drain on SIGTERM")
    add("--log-level", choices=["debug", "info", "warning", "error"])
    add("--log-format", choices=["auto", "json", "console"])
    add(
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


async def serve(settings: GatewaySettings) -> int:
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
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
    try:
        return asyncio.run(serve(settings))
    except PrintBrokerError as exc:
        log.error("gateway.failed", error=str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
