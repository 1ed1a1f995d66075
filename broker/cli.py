"""``zebra-broker``: print, query, read and write settings, watch, list, provision.

::

    zebra-broker print --printer 50J161000398 label.zpl
    zebra-broker sgd get 50J161000398 device.friendly_name
    zebra-broker sgd set 50J161000398 device.friendly_name LINE-3
    zebra-broker query 50J161000398 '~HS' --response frames:3
    zebra-broker watch 'printer.*.alert.#'
    zebra-broker printers
    zebra-broker provision 50J161000398

Settings come from flags, then ``ZEBRA_BROKER_*`` variables, then ``.env``, then
defaults; flags use ``argparse.SUPPRESS`` so that only typed flags override.

Exit status: 0 success; 1 an error or an outcome that is not a success (one line on
stderr); 2 a usage or settings error; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from broker.client import BrokerClient, PresenceList
from broker.errors import ConfigurationError, PrintBrokerError
from broker.logs import configure_logging
from broker.schemas import (
    MAX_TIMEOUT_MS,
    Confirm,
    Event,
    Outcome,
    PrinterData,
    PrinterPresence,
    ResponseFraming,
    encode_event,
)
from broker.settings import ENV_PREFIX, ClientSettings, load_settings
from broker.topology import is_valid_serial

PROG = "zebra-broker"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Settings fields that have a flag (the flag is ``--`` + the name with dashes).
SETTINGS_FLAGS = (
    "amqp_url",
    "namespace",
    "request_timeout",
    "log_level",
    "log_format",
    "queue_max_length",
    "queue_type",
)


class EventSource(Protocol):
    """What ``client.events()`` returns, as the CLI uses it."""

    async def __aenter__(self) -> AsyncIterator[Event]: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class CliClient(Protocol):
    """The part of :class:`~broker.client.BrokerClient` the CLI uses (a test seam)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def print(
        self,
        printer_serial: str,
        /,
        data: bytes | str,
        *,
        confirm: Confirm | str = ...,
        expiration: float | None = ...,
        timeout: float | None = ...,  # noqa: ASYNC109 (mirrors BrokerClient)
    ) -> Outcome: ...

    async def query(
        self,
        printer_serial: str,
        /,
        data: bytes | str,
        *,
        response: str = ...,
        timeout_ms: int | None = ...,
        timeout: float | None = ...,  # noqa: ASYNC109 (mirrors BrokerClient)
    ) -> bytes: ...

    async def sgd_get(
        self,
        printer_serial: str,
        /,
        *names: str,
        timeout_ms: int | None = ...,
        timeout: float | None = ...,  # noqa: ASYNC109 (mirrors BrokerClient)
    ) -> dict[str, Any]: ...

    async def sgd_set(
        self,
        printer_serial: str,
        /,
        name_or_mapping: Any,
        value: str | int | float | None = ...,
        *,
        timeout_ms: int | None = ...,
        timeout: float | None = ...,  # noqa: ASYNC109 (mirrors BrokerClient)
    ) -> dict[str, Any]: ...

    async def printers(
        self,
        timeout: float = ...,  # noqa: ASYNC109 (mirrors BrokerClient)
    ) -> PresenceList: ...

    async def provision(self, printer_serial: str, /) -> tuple[str, ...]: ...

    def events(self, pattern: str = ...) -> EventSource: ...


ClientFactory = Callable[[ClientSettings], CliClient]
Handler = Callable[[CliClient, argparse.Namespace], Coroutine[Any, Any, int]]


class InputError(PrintBrokerError):
    """A file or argument the CLI could not use."""


# formatting


def escape_bytes(data: bytes) -> str:
    """Show a printer's answer as text, with control characters escaped.

    Printable text, newlines and tabs stay as they are; ``\\r`` is shown as
    ``\\r``, other control bytes (STX, ETX...) and bytes that are not UTF-8 as
    ``\\xNN``, and a backslash as ``\\\\``.
    """
    text = data.decode("utf-8", "surrogateescape")
    parts = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\\":
            parts.append("\\\\")
        elif char in "\n\t":
            parts.append(char)
        elif char == "\r":
            parts.append("\\r")
        elif not char.isprintable():
            parts.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            parts.append(char)
    return "".join(parts)


_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}


def unescape_text(text: str) -> bytes:
    """Turn command-line text into bytes, decoding ``\\r \\n \\t \\\\ \\xNN``.

    Other backslashes are kept as they are, so ZPL such as ``^FH\\^FD`` survives.
    """
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        if match.group(1) is not None:
            out.append(int(match.group(1), 16))
        else:
            out += _SIMPLE_ESCAPES.get(match.group(2), match.group(0).encode("utf-8"))
        position = match.end()
    out += text[position:].encode("utf-8")
    return bytes(out)


def format_value(value: Any) -> str:
    """Format a setting value as JSON (``"LINE-3"``, ``null``, ``42``)."""
    return json.dumps(value, ensure_ascii=False)


def format_sgd(values: dict[str, Any]) -> list[str]:
    """Format an SGD answer as ``name = value`` lines."""
    return [f"{name} = {format_value(value)}" for name, value in values.items()]


def format_time(moment: datetime) -> str:
    """Format a time in UTC to the millisecond: ``2026-01-31T12:00:00.123Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _field(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if not text or any(char.isspace() or char in "\"'=" for char in text):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_event(event: Event) -> str:
    """Format one event as a line: time, printer, event, then ``key=value`` fields."""
    fields = event.model_dump(
        mode="json", exclude_none=True, exclude={"schema_", "event", "printer", "time"}
    )
    if isinstance(event, PrinterData):
        fields["data"] = escape_bytes(event.raw)
    details = " ".join(f"{key}={_field(value)}" for key, value in fields.items())
    line = f"{format_time(event.time)} {event.printer} {event.event}"
    return f"{line} {details}" if details else line


PRINTER_COLUMNS = ("SERIAL", "MODEL", "FIRMWARE", "IP", "REPLICA", "SINCE", "HELD")


def format_printers(printers: Sequence[PrinterPresence]) -> list[str]:
    """Format the printers online as an aligned table with a header line."""
    rows = [PRINTER_COLUMNS] + [
        (
            printer.printer,
            printer.model or "-",
            printer.firmware or "-",
            printer.ip or "-",
            printer.replica,
            format_time(printer.since.replace(microsecond=0)).replace(".000Z", "Z"),
            ",".join(printer.held or ()) or "-",
        )
        for printer in printers
    ]
    widths = [
        max(len(row[column]) for row in rows) for column in range(len(PRINTER_COLUMNS))
    ]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def format_outcome(outcome: Outcome) -> str:
    """Format an outcome as ``job <id>: <status>`` (and the error, if any)."""
    line = f"job {outcome.job_id}: {outcome.status.value}"
    return f"{line} ({outcome.error})" if outcome.error else line


# argument types


def _serial(text: str) -> str:
    if not is_valid_serial(text):
        raise argparse.ArgumentTypeError(
            f"invalid printer serial {text[:80]!r}: only [A-Za-z0-9_-]{{1,64}} is allowed"
        )
    return text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds, not {text!r}"
        )
    return value


def _timeout_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_TIMEOUT_MS:
        raise argparse.ArgumentTypeError(
            f"expected whole milliseconds from 1 to {MAX_TIMEOUT_MS}, not {text!r}"
        )
    return value


def _response(text: str) -> str:
    try:
        return str(ResponseFraming.parse(text))
    except PrintBrokerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# commands


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as file:
            return file.read()
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc


async def _print(client: CliClient, args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(_read_input, args.file)
    if not data:
        raise InputError(f"{args.file} is empty: nothing to print")
    outcome = await client.print(
        args.printer, data, confirm=args.confirm, expiration=args.expiration
    )
    if outcome.status.is_success:
        print(format_outcome(outcome))
        return EXIT_OK
    print(f"{PROG}: {format_outcome(outcome)}", file=sys.stderr)
    return EXIT_ERROR


async def _query(client: CliClient, args: argparse.Namespace) -> int:
    if args.data == "-":
        data = await asyncio.to_thread(_read_input, "-")
    else:
        data = unescape_text(args.data)
    answer = await client.query(
        args.serial, data, response=args.response, timeout_ms=args.timeout_ms
    )
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(answer)
        sys.stdout.buffer.flush()
    else:
        text = escape_bytes(answer)
        print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_OK


def _print_sgd(values: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(values, ensure_ascii=False))
    else:
        for line in format_sgd(values):
            print(line)


async def _sgd_get(client: CliClient, args: argparse.Namespace) -> int:
    values = await client.sgd_get(args.serial, *args.names, timeout_ms=args.timeout_ms)
    _print_sgd(values, args.json)
    return EXIT_OK


async def _sgd_set(client: CliClient, args: argparse.Namespace) -> int:
    values = await client.sgd_set(
        args.serial, args.name, args.value, timeout_ms=args.timeout_ms
    )
    _print_sgd(values, args.json)
    return EXIT_OK


async def _watch(client: CliClient, args: argparse.Namespace) -> int:
    async with client.events(args.pattern) as events:
        async for event in events:
            line = encode_event(event).decode() if args.json else format_event(event)
            print(line, flush=True)
    return EXIT_OK


async def _printers(client: CliClient, args: argparse.Namespace) -> int:
    printers = await client.printers(timeout=args.wait)
    if args.json:
        print(json.dumps([printer.model_dump(mode="json") for printer in printers]))
    else:
        for line in format_printers(printers):
            print(line)
    if printers.expected_replicas == 0:
        print(f"{PROG}: no gateway replica is running", file=sys.stderr)
    elif not printers.is_complete:
        print(
            f"{PROG}: warning: {len(printers.replicas)} of "
            f"{printers.expected_replicas} gateway replicas answered within "
            f"{args.wait:g} s; the list may be incomplete",
            file=sys.stderr,
        )
    return EXIT_OK


async def _provision(client: CliClient, args: argparse.Namespace) -> int:
    for serial in args.serials:
        queues = await client.provision(serial)
        print(f"provisioned {serial}: {', '.join(queues)}")
    return EXIT_OK


# parser


def _default_help(name: str) -> str:
    field = ClientSettings.model_fields[name]
    default = field.default
    if hasattr(default, "get_secret_value"):
        default = default.get_secret_value()
    return (
        f"{field.description} (env {ENV_PREFIX}{name.upper()}; default: {default})"
    ).replace("%", "%%")


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("settings")
    group.add_argument("--amqp-url", metavar="URL", help=_default_help("amqp_url"))
    group.add_argument("--namespace", metavar="NAME", help=_default_help("namespace"))
    group.add_argument(
        "--request-timeout",
        "--timeout",
        dest="request_timeout",
        metavar="SECONDS",
        type=float,
        help=_default_help("request_timeout"),
    )
    group.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help=_default_help("log_level"),
    )
    group.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help=_default_help("log_format"),
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """Build the ``zebra-broker`` argument parser."""
    common = _common_flags()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Send print jobs, queries and settings to Zebra printers through "
        "the print broker, and watch what they do.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    printing = command("print", _print, "print a file and report the job's outcome")
    printing.add_argument("--printer", required=True, type=_serial, metavar="SERIAL")
    printing.add_argument(
        "file", metavar="FILE", help="print data (ZPL, CPCL); - for stdin"
    )
    printing.add_argument(
        "--confirm",
        choices=[confirm.value for confirm in Confirm],
        default=Confirm.DELIVERED.value,
        help="delivered: written to the printer (default); printed: job completed",
    )
    printing.add_argument(
        "--expiration",
        type=_positive_seconds,
        metavar="SECONDS",
        help="drop the job (outcome expired) if it is still queued after this long",
    )

    query = command("query", _query, "send raw data and show the printer's answer")
    query.add_argument("serial", type=_serial, metavar="SERIAL")
    query.add_argument(
        "data",
        metavar="DATA",
        help=r"what to send (\r \n \t \\ \xNN escapes are decoded); - for stdin",
    )
    query.add_argument(
        "--response",
        required=True,
        type=_response,
        metavar="FRAMING",
        help="how the answer ends: json, line, idle, frames:N (frames:3 for ~HS)",
    )
    query.add_argument("--timeout-ms", type=_timeout_ms, metavar="N", default=None)
    query.add_argument(
        "--raw", action="store_true", help="write the answer's bytes verbatim to stdout"
    )

    sgd = command("sgd", _sgd_get, "read or write settings (JSON SGD)")
    sgd_commands = sgd.add_subparsers(
        dest="sgd_command", required=True, metavar="ACTION"
    )
    get = sgd_commands.add_parser(
        "get", help="read settings", description="read settings", parents=[common]
    )
    get.set_defaults(handler=_sgd_get)
    get.add_argument("serial", type=_serial, metavar="SERIAL")
    get.add_argument("names", nargs="+", metavar="NAME")
    put = sgd_commands.add_parser(
        "set", help="write a setting", description="write a setting", parents=[common]
    )
    put.set_defaults(handler=_sgd_set)
    put.add_argument("serial", type=_serial, metavar="SERIAL")
    put.add_argument("name", metavar="NAME")
    put.add_argument("value", metavar="VALUE")
    for sub in (get, put):
        sub.add_argument("--json", action="store_true", help="print the answer as JSON")
        sub.add_argument("--timeout-ms", type=_timeout_ms, metavar="N", default=None)

    watch = command("watch", _watch, "print events as they happen, until Ctrl-C")
    watch.add_argument(
        "pattern",
        nargs="?",
        default="#",
        metavar="PATTERN",
        help="topic binding key: # (default), printer.*.alert.#, job.SERIAL.*",
    )
    watch.add_argument("--json", action="store_true", help="print raw JSON lines")

    printers = command("printers", _printers, "list the printers online")
    printers.add_argument(
        "--wait",
        type=_positive_seconds,
        default=3.0,
        metavar="SECONDS",
        help="how long to wait for the gateway replicas' answers (default 3)",
    )
    printers.add_argument("--json", action="store_true", help="print a JSON array")

    provision = command(
        "provision",
        _provision,
        "declare printers' queues ahead of their first connection",
    )
    provision.add_argument("serials", nargs="+", type=_serial, metavar="SERIAL")
    provision.add_argument(
        "--queue-max-length",
        type=int,
        metavar="N",
        default=argparse.SUPPRESS,
        help=_default_help("queue_max_length"),
    )
    provision.add_argument(
        "--queue-type",
        choices=["classic", "quorum"],
        default=argparse.SUPPRESS,
        help=_default_help("queue_type"),
    )
    return parser


# entry point


def _error(message: object) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def setup_logging(settings: ClientSettings) -> None:
    """Configure logging, on stderr: stdout carries the command's output."""
    configure_logging(settings.log_level, settings.log_format, stream=sys.stderr)


async def _run(
    handler: Handler,
    args: argparse.Namespace,
    settings: ClientSettings,
    client_factory: ClientFactory,
) -> int:
    async with client_factory(settings) as client:
        return await handler(client, args)


def main(
    argv: Sequence[str] | None = None, *, client_factory: ClientFactory = BrokerClient
) -> int:
    """Run ``zebra-broker`` and return its exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        client_factory: builds the client from the settings (a test seam).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    overrides = {
        name: getattr(args, name) for name in SETTINGS_FLAGS if hasattr(args, name)
    }
    try:
        settings = load_settings(ClientSettings, **overrides)
    except ConfigurationError as exc:
        _error(exc)
        return EXIT_USAGE
    setup_logging(settings)
    try:
        return asyncio.run(_run(args.handler, args, settings, client_factory))
    except PrintBrokerError as exc:
        _error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


__all__ = ["build_parser", "main"]
