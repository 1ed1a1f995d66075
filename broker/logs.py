"""Logging setup: structlog for our lines, the same format for websockets and aio-pika.

Call :func:`configure_logging` once, from a process entry point; nothing configures
logging at import time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]


def _websocket_context(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Turn websockets' ``extra={"websocket": ...}`` into a ``connection_id`` key."""
    record = event_dict.get("_record")
    websocket = getattr(record, "websocket", None) if record is not None else None
    if websocket is not None:
        event_dict["connection_id"] = str(getattr(websocket, "id", ""))[:8]
    return event_dict


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
        structlog.stdlib.add_log_level,
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
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, _websocket_context],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("websockets").setLevel(
        logging.INFO if level.lower() == "debug" else logging.WARNING
    )
