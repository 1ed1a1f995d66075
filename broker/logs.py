"""Logging setup: structlog for our lines, the same format for websockets and aio-pika.

Call :func:`configure_logging` once, from a process entry point; nothing configures
logging at import time.

Our own lines skip the standard library: a structlog logger below the level is a
no-op, and one at or above it renders its line and writes it straight to the
stream. Standard-library lines (websockets, aio-pika, ...) go through a
``logging.StreamHandler`` with the same processors, so both come out alike.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]

# The one handler for standard-library lines; our own lines write to its stream,
# under its lock, so the two never interleave within a line. It is attached to the
# root logger by configure_logging, not here.
_handler: logging.StreamHandler[TextIO] = logging.StreamHandler(sys.stdout)


class _LineWriter:
    """What a structlog logger writes to: a name and the handler's stream.

    The stream is looked up at each write, so loggers cached before a second
    :func:`configure_logging` still follow its ``stream``.
    """

    def __init__(self, name: str) -> None:
        self.name = name  # read by structlog.stdlib.add_logger_name

    def msg(self, message: str) -> None:
        """Write one rendered line and flush, as the handler does."""
        _handler.acquire()
        try:
            _handler.stream.write(message + "\n")
            _handler.stream.flush()
        except (OSError, ValueError):
            pass  # like logging.Handler: a line that cannot be written is dropped
        finally:
            _handler.release()

    debug = info = warning = error = critical = msg


def _line_writer(*args: Any) -> _LineWriter:
    """Logger factory: ``structlog.get_logger(name)`` passes ``name`` here."""
    return _LineWriter(str(args[0]) if args else "")


def _websocket_context(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Turn websockets' ``extra={"websocket": ...}`` into a ``connection_id`` key."""
    record = event_dict.get("_record")
    websocket = getattr(record, "websocket", None) if record is not None else None
    if websocket is not None:
        event_dict["connection_id"] = str(getattr(websocket, "id", ""))[:8]
    return event_dict


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind ``values`` to every log line of this context for the block, then restore.

    What ``structlog.contextvars.bound_contextvars`` does, at a third of its cost (it
    copies the whole context first): the gateway binds a job's ids for every request.
    """
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def configure_logging(
    level: str = "info",
    log_format: LogFormat = "auto",
    *,
    cache: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and standard-library logs to stdout in one format.

    Args:
        level: minimum level (``debug``, ``info``, ``warning``, ``error``).
        log_format: ``json`` lines, ``console`` lines, or ``auto`` (console on a TTY).
        cache: cache loggers on first use (turn off in tests).
        stream: where lines go (default: standard output).
    """
    stream = stream or sys.stdout
    if log_format == "auto":
        log_format = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.dict_tracebacks)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        logger_factory=_line_writer,
        wrapper_class=structlog.make_filtering_bound_logger(level.lower()),
        cache_logger_on_first_use=cache,
    )
    _handler.acquire()
    try:
        _handler.stream = stream
    finally:
        _handler.release()
    _handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _websocket_context],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(
        logging.INFO if level.lower() == "debug" else logging.WARNING
    )
