"""Log lines from ``broker.logs.configure_logging``: what a reader of the stream sees."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from broker.logs import configure_logging


class Stream(io.StringIO):
    """A text stream that keeps each ``write`` call apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines()]


@pytest.fixture
def stream() -> Iterator[Stream]:
    """A fresh stream; structlog and the root logger are put back afterwards."""
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    libraries = {
        name: logging.getLogger(name).level
        for name in ("aiormq", "aio_pika", "websockets")
    }
    yield Stream()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for name, level in libraries.items():
        logging.getLogger(name).setLevel(level)


def test_json_line_has_event_level_logger_and_utc_timestamp(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    structlog.get_logger("gateway.bus").info("job.finished", job_id="j-1")
    (line,) = stream.lines()
    assert set(line) == {"event", "level", "logger", "timestamp", "job_id"}
    assert line["event"] == "job.finished"
    assert line["level"] == "info"
    assert line["logger"] == "gateway.bus"
    assert line["job_id"] == "j-1"
    timestamp = datetime.fromisoformat(line["timestamp"])
    assert timestamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - timestamp) < timedelta(minutes=1)


def test_bound_and_context_values_appear(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    structlog.contextvars.bind_contextvars(channel="raw")
    log = structlog.get_logger("gateway.session").bind(printer_serial="XXZ1")
    log.warning("job.failed", job_id="j-2", reason="paper out")
    (line,) = stream.lines()
    assert line["printer_serial"] == "XXZ1"
    assert line["channel"] == "raw"
    assert line["job_id"] == "j-2"
    assert line["reason"] == "paper out"
    assert line["level"] == "warning"


def test_positional_arguments_are_formatted(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    structlog.get_logger("gateway").info("printer %s ready", "XXZ1")
    assert stream.lines()[0]["event"] == "printer XXZ1 ready"


def test_debug_is_dropped_at_info(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    log = structlog.get_logger("gateway.bus")
    log.debug("job.progress")
    log.info("job.finished")
    assert [line["event"] for line in stream.lines()] == ["job.finished"]


def test_debug_appears_at_debug(stream: Stream) -> None:
    configure_logging("debug", "json", cache=False, stream=stream)
    structlog.get_logger("gateway.bus").debug("job.progress", done=1)
    (line,) = stream.lines()
    assert (line["event"], line["level"], line["done"]) == ("job.progress", "debug", 1)


def test_info_is_dropped_at_warning(stream: Stream) -> None:
    configure_logging("WARNING", "json", cache=False, stream=stream)
    log = structlog.get_logger("gateway")
    log.info("quiet")
    logging.getLogger("other").info("quiet too")
    log.error("loud")
    assert [line["event"] for line in stream.lines()] == ["loud"]


def test_stdlib_lines_have_the_same_shape(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    structlog.contextvars.bind_contextvars(job_id="j-3")
    logging.getLogger("websockets.server").warning("printer %s gone", "XXZ1")
    structlog.get_logger("gateway.bus").warning("printer gone")
    stdlib_line, our_line = stream.lines()
    assert set(stdlib_line) == set(our_line)
    assert stdlib_line["event"] == "printer XXZ1 gone"
    assert stdlib_line["level"] == "warning"
    assert stdlib_line["logger"] == "websockets.server"
    assert stdlib_line["job_id"] == "j-3"
    assert datetime.fromisoformat(stdlib_line["timestamp"]).utcoffset() == timedelta(0)


def test_websocket_extra_becomes_connection_id(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    websocket = SimpleNamespace(id="0123456789abcdef")
    logging.getLogger("websockets.server").warning(
        "closed", extra={"websocket": websocket}
    )
    assert stream.lines()[0]["connection_id"] == "01234567"


def test_library_levels(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    for name in ("aiormq", "aio_pika", "websockets"):
        logging.getLogger(name).info("chatter")
        logging.getLogger(name).warning("problem")
    assert [line["logger"] for line in stream.lines()] == [
        "aiormq",
        "aio_pika",
        "websockets",
    ]


def test_exception_renders_its_traceback(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    log = structlog.get_logger("gateway.bridge")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("job.crashed", job_id="j-4")
        log.warning("job.retried", exc_info=True)
    crashed, retried = stream.lines()
    assert crashed["level"] == "error"
    assert crashed["job_id"] == "j-4"
    (exception,) = crashed["exception"]
    assert exception["exc_type"] == "ZeroDivisionError"
    assert exception["exc_value"] == "division by zero"
    assert exception["frames"][-1]["name"] == ("test_exception_renders_its_traceback")
    assert retried["exception"][0]["exc_type"] == "ZeroDivisionError"


def test_stdlib_exception_renders_its_traceback(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("aio_pika").exception("channel lost")
    (line,) = stream.lines()
    assert line["level"] == "error"
    assert line["exception"][0]["exc_type"] == "KeyError"


def test_console_format(stream: Stream) -> None:
    configure_logging("info", "console", cache=False, stream=stream)
    log = structlog.get_logger("gateway.bus").bind(printer_serial="XXZ1")
    log.info("job.finished")
    logging.getLogger("websockets.server").warning("printer gone")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        log.exception("job.crashed")
    text = stream.getvalue()
    finished, gone, crashed = text.splitlines()[:3]
    assert "job.finished" in finished
    assert "gateway.bus" in finished
    assert "printer_serial" in finished
    assert "XXZ1" in finished
    assert "printer gone" in gone
    assert "websockets.server" in gone
    assert "job.crashed" in crashed
    assert "Traceback (most recent call last)" in text
    assert "ZeroDivisionError: division by zero" in text


def test_auto_is_json_off_a_terminal(stream: Stream) -> None:
    configure_logging("info", "auto", cache=False, stream=stream)
    structlog.get_logger("gateway").info("hello")
    assert stream.lines()[0]["event"] == "hello"


def test_each_line_is_one_write(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    log = structlog.get_logger("gateway")
    for number in range(3):
        log.info("ours", number=number)
        logging.getLogger("websockets").warning("theirs %d", number)
    assert len(stream.writes) == 6
    assert all(
        write.count("\n") == 1 and write.endswith("\n") for write in stream.writes
    )
    events = [line["event"] for line in stream.lines()]
    assert events == ["ours", "theirs 0", "ours", "theirs 1", "ours", "theirs 2"]


def test_second_call_moves_every_line_to_the_new_stream(stream: Stream) -> None:
    configure_logging("info", "json", stream=stream)  # cached, as in production
    log = structlog.get_logger("gateway")
    log.info("first")
    second = Stream()
    configure_logging("info", "json", stream=second)
    log.info("second")
    logging.getLogger("websockets").warning("third")
    assert [line["event"] for line in stream.lines()] == ["first"]
    assert [line["event"] for line in second.lines()] == ["second", "third"]
    assert len(logging.getLogger().handlers) == 1


def test_capture_logs_still_sees_our_lines(stream: Stream) -> None:
    configure_logging("info", "json", cache=False, stream=stream)
    with structlog.testing.capture_logs() as captured:
        structlog.get_logger("gateway").info("channel.refused", reason="refused")
    assert captured == [
        {"event": "channel.refused", "reason": "refused", "log_level": "info"}
    ]
    assert stream.getvalue() == ""
