"""``zebra-printer-emulator``: one or more emulated printers against a gateway.

The printers behave like real ones: they keep dialling until the gateway answers,
reconnect after ``--retry-interval`` and stay connected until SIGINT or SIGTERM, when
they close every socket with 1000 and the process exits 0. Each received label is
logged (``label.received`` with its size and label count).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import ssl
from collections.abc import Sequence

import structlog

from broker.errors import ConfigurationError
from broker.logs import configure_logging
from broker.topology import check_serial
from gateway.emulator.fleet import Fleet, FleetOptions
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.printer import PrinterEmulator

_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

logger = structlog.get_logger(__name__)


def expand_serials(serial: str, count: int) -> list[str]:
    """Return ``count`` serials: ``serial``, then ``serial`` + 1, … on its digits.

    Args:
        serial: the first serial, e.g. ``50J000000001``.
        count: how many printers.

    Returns:
        The serials, keeping the width of the trailing number
        (``50J000000009`` → ``50J000000010``).

    Raises:
        ConfigurationError: a count below 1, an invalid serial, or ``count > 1`` with
            a serial that does not end in digits.
    """
    if count < 1:
        raise ConfigurationError(f"--count must be at least 1, not {count}")
    try:
        check_serial(serial)
    except ValueError as exc:
        raise ConfigurationError(f"--serial: {exc}") from exc
    if count == 1:
        return [serial]
    match = _TRAILING_DIGITS.match(serial)
    if match is None:
        raise ConfigurationError(
            f"--count {count} needs a --serial that ends in digits, not {serial!r}"
        )
    prefix, digits = match.groups()
    first = int(digits)
    return [f"{prefix}{first + index:0{len(digits)}d}" for index in range(count)]


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="zebra-printer-emulator",
        description="Emulate Zebra Link-OS printers that connect to a WebLink gateway.",
    )
    parser.add_argument(
        "--url", required=True, help="WebLink location, e.g. ws://127.0.0.1:8080/"
    )
    parser.add_argument(
        "--serial", required=True, help="printer serial, e.g. 50J000000001"
    )
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="number of printers; serials count up from --serial (default 1)",
    )
    parser.add_argument(
        "--retry-interval",
        type=float,
        default=10.0,
        help="seconds before dialling main again after a loss (default 10)",
    )
    parser.add_argument(
        "--close-config-after-reply",
        action="store_true",
        help="close the config channel with 1000 after each SGD reply",
    )
    parser.add_argument(
        "--split-replies",
        type=int,
        default=None,
        metavar="N",
        help="split every message the printer sends into pieces of N bytes",
    )
    parser.add_argument(
        "--legacy-discovery",
        action="store_true",
        help="send a legacy (v3) discovery packet; serials of 10 characters at most",
    )
    parser.add_argument(
        "--label-print-time",
        type=float,
        default=0.0,
        help="seconds each label takes before its PQ JOB COMPLETED alert",
    )
    parser.add_argument(
        "--no-content-length-check",
        action="store_true",
        help="accept a 101 response without 'Content-Length: 0'",
    )
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="drive the printers with the lightweight fleet client (thousands per "
        "process; the common path only: no split replies, print time or config close)",
    )
    parser.add_argument(
        "--ramp-rate",
        type=float,
        default=200.0,
        metavar="N",
        help="with --fleet: first connections per second (default 200; 0: no limit)",
    )
    parser.add_argument(
        "--username",
        help="user to answer the gateway's 401 challenge with (usually the serial)",
    )
    parser.add_argument("--password", help="password for --username")
    parser.add_argument("--cafile", help="CA bundle to trust for wss:// URLs")
    parser.add_argument("--certfile", help="client certificate (PEM) for wss:// URLs")
    parser.add_argument("--keyfile", help="private key of --certfile")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="minimum log level (default info)",
    )
    parser.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "console"],
        help="log line format (default auto: console on a terminal, else json)",
    )
    return parser


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.url.startswith("wss:"):
        return None
    context = ssl.create_default_context(cafile=args.cafile)
    if args.certfile:
        context.load_cert_chain(args.certfile, args.keyfile)
    return context


async def run_printers(
    url: str,
    serials: Sequence[str],
    options: EmulatorOptions,
    tls: ssl.SSLContext | None = None,
) -> int:
    """Run the printers until SIGINT or SIGTERM, then close them with 1000.

    Args:
        url: the WebLink location.
        serials: one printer per serial.
        options: shared by every printer.
        tls: TLS context for ``wss://``.

    Returns:
        The exit status, 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Restore the previous handlers afterwards, as uvicorn's capture_signals does.
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    printers = [PrinterEmulator(url, serial, options, ssl=tls) for serial in serials]
    try:
        for printer in printers:
            await printer.start(wait=False)
        logger.info("emulator.started", printers=len(printers), url=url)
        await stop.wait()
        logger.info("emulator.stopping", printers=len(printers))
    finally:
        await asyncio.gather(*(printer.close() for printer in printers))
        for signum, handler in previous.items():
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
                if handler is not None:  # None: not installed from Python
                    signal.signal(signum, handler)
    return 0


#: Flags the fleet client does not implement, with the value that means "unused".
_NOT_IN_FLEET = {
    "close_config_after_reply": False,
    "split_replies": None,
    "label_print_time": 0.0,
    "no_content_length_check": False,
}


def fleet_options(args: argparse.Namespace, emulator: EmulatorOptions) -> FleetOptions:
    """Build the fleet's options from the flags (``--serial`` gives prefix and counter).

    Raises:
        ConfigurationError: a flag the fleet does not implement, or a bad ramp rate.
    """
    unsupported = [
        "--" + name.replace("_", "-")
        for name, unused in _NOT_IN_FLEET.items()
        if getattr(args, name) != unused
    ]
    if unsupported:
        raise ConfigurationError(f"--fleet does not support {', '.join(unsupported)}")
    if args.ramp_rate < 0:
        raise ConfigurationError(
            f"--ramp-rate must not be negative, not {args.ramp_rate}"
        )
    match = _TRAILING_DIGITS.match(args.serial)
    if match is None:
        raise ConfigurationError(
            f"--fleet needs a --serial that ends in digits, not {args.serial!r}"
        )
    prefix, digits = match.groups()
    return FleetOptions(
        prefix=prefix,
        first=int(digits),
        width=len(digits),
        ramp_rate=args.ramp_rate or None,
        retry_interval=args.retry_interval,
        emulator=emulator,
    )


async def run_fleet(
    url: str, count: int, options: FleetOptions, tls: ssl.SSLContext | None = None
) -> int:
    """Run a fleet until SIGINT or SIGTERM, then close its sockets with 1000.

    Returns:
        The exit status, 0.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    fleet = Fleet(url, count, options, ssl=tls)
    try:
        async with fleet:
            await stop.wait()
            logger.info("emulator.stopping", printers=count)
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
                if handler is not None:
                    signal.signal(signum, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``zebra-printer-emulator``.

    Args:
        argv: the arguments, without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit status, 0 after a clean shutdown. Bad arguments exit with status 2
        through ``argparse`` (``SystemExit``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        serials = expand_serials(args.serial, args.count)
        options = EmulatorOptions(
            retry_interval=args.retry_interval,
            close_config_after_reply=args.close_config_after_reply,
            split_replies=args.split_replies,
            legacy_discovery=args.legacy_discovery,
            label_print_time=args.label_print_time,
            require_content_length=not args.no_content_length_check,
            username=args.username,
            password=args.password,
        )
        tls = _ssl_context(args)
        if args.fleet:
            fleet = fleet_options(args, options)
            Fleet(args.url, len(serials), fleet)  # URL and serial errors surface here
        else:
            # Build each printer once here so identity errors surface before the loop.
            for serial in serials:
                PrinterEmulator(args.url, serial, options)
    except (ConfigurationError, OSError) as exc:
        parser.error(str(exc))
    configure_logging(args.log_level, args.log_format)
    if args.fleet:
        return asyncio.run(run_fleet(args.url, len(serials), fleet, tls))
    return asyncio.run(run_printers(args.url, serials, options, tls))
