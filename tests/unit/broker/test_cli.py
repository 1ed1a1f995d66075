"""``zebra-broker``: argument parsing, settings precedence, output and exit status.

The CLI runs against :class:`FakeClient`, which records calls and returns canned
answers. It does not emulate RabbitMQ, publisher confirms, timeouts, reconnects or
the validation ``BrokerClient`` does itself (``tests/unit/broker/test_client.py`` and
``tests/integration/test_client.py`` cover those); it only stands in for the
client's methods so that the CLI's own behaviour can be checked.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import pytest

from broker import cli
from broker.client import PresenceList
from broker.errors import PrintBrokerError, QueueFull, UnroutableMessage
from broker.schemas import (
    Event,
    JobEvent,
    JobStatus,
    Outcome,
    PrinterAlert,
    PrinterData,
    PrinterOnline,
    PrinterPresence,
)
from broker.settings import ClientSettings

SERIAL = "50J161000398"
WHEN = datetime(2026, 1, 31, 12, 0, 0, 123000, tzinfo=UTC)


class FakeEvents:
    """Stands in for ``client.events()``: yields the given events, then ends."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.closed = False

    async def __aenter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        for event in self.events:
            yield event

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.closed = True


class FakeClient:
    """Records every call and returns what the test put in ``answers``."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.entered = self.exited = False

    async def __aenter__(self) -> Self:
        self.entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.exited = True

    def _answer(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        answer = self.answers[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def print(self, printer_serial: str, /, data: Any, **kwargs: Any) -> Outcome:
        return self._answer("print", printer_serial, data, **kwargs)  # type: ignore[no-any-return]

    async def query(self, printer_serial: str, /, data: Any, **kwargs: Any) -> bytes:
        return self._answer("query", printer_serial, data, **kwargs)  # type: ignore[no-any-return]

    async def sgd_get(self, printer_serial: str, /, *names: str, **kwargs: Any) -> Any:
        return self._answer("sgd_get", printer_serial, *names, **kwargs)

    async def sgd_set(
        self,
        printer_serial: str,
        /,
        name_or_mapping: Any,
        value: Any = None,
        **kwargs: Any,
    ) -> Any:
        return self._answer("sgd_set", printer_serial, name_or_mapping, value, **kwargs)

    async def printers(self, timeout: float = 3.0) -> PresenceList:
        return self._answer("printers", timeout=timeout)  # type: ignore[no-any-return]

    async def provision(self, printer_serial: str, /) -> tuple[str, ...]:
        return self._answer("provision", printer_serial)  # type: ignore[no-any-return]

    def events(self, pattern: str = "#") -> FakeEvents:
        return self._answer("events", pattern)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Leave global logging alone and read no developer .env."""
    monkeypatch.setattr(cli, "setup_logging", lambda settings: None)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake() -> FakeClient:
    """The client the CLI will get (its settings are filled in by main())."""
    return FakeClient(ClientSettings())


def run(fake: FakeClient, *argv: str) -> int:
    def factory(settings: ClientSettings) -> FakeClient:
        fake.settings = settings
        return fake

    return cli.main(list(argv), client_factory=factory)


def outcome(status: JobStatus, error: str | None = None, body: bytes = b"") -> Outcome:
    return Outcome(
        job_id="1234", printer_serial=SERIAL, status=status, error=error, body=body
    )


class TestPrint:
    """``zebra-broker print``."""

    def test_success(self, fake: FakeClient, tmp_path: Path, capsys: Any) -> None:
        """A delivered job prints one line and exits 0."""
        label = tmp_path / "label.zpl"
        label.write_bytes(b"^XA^FDhi^FS^XZ")
        fake.answers["print"] = outcome(JobStatus.DELIVERED)
        status = run(
            fake, "print", "--printer", SERIAL, str(label), "--confirm", "printed",
            "--expiration", "60",
        )  # fmt: skip
        assert status == 0
        assert capsys.readouterr().out == "job 1234: delivered\n"
        assert fake.calls == [
            (
                "print",
                (SERIAL, b"^XA^FDhi^FS^XZ"),
                {"confirm": "printed", "expiration": 60.0},
            )
        ]
        assert fake.entered
        assert fake.exited

    def test_failure_outcome(
        self, fake: FakeClient, tmp_path: Path, capsys: Any
    ) -> None:
        """A job that did not succeed exits 1 with the error sentence on stderr."""
        (tmp_path / "l.zpl").write_bytes(b"^XA^XZ")
        fake.answers["print"] = outcome(
            JobStatus.EXPIRED, "the job expired in the queue"
        )
        assert run(fake, "print", "--printer", SERIAL, "l.zpl") == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (
            "zebra-broker: job 1234: expired (the job expired in the queue)\n"
        )

    def test_stdin(self, fake: FakeClient, monkeypatch: Any, capsys: Any) -> None:
        """FILE - reads the print data from stdin, as bytes."""
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"^XA\xff^XZ")))
        fake.answers["print"] = outcome(JobStatus.PRINTED)
        assert run(fake, "print", "--printer", SERIAL, "-") == 0
        assert fake.calls[0][1] == (SERIAL, b"^XA\xff^XZ")
        assert capsys.readouterr().out == "job 1234: printed\n"

    def test_missing_file(self, fake: FakeClient, capsys: Any) -> None:
        """A file that cannot be read is one error line and exit 1."""
        fake.answers["print"] = outcome(JobStatus.DELIVERED)
        assert run(fake, "print", "--printer", SERIAL, "nope.zpl") == 1
        assert capsys.readouterr().err.startswith(
            "zebra-broker: error: cannot read nope.zpl"
        )
        assert fake.calls == []

    @pytest.mark.parametrize(
        "error",
        [
            UnroutableMessage(SERIAL, f"{SERIAL}.raw"),
            QueueFull(SERIAL, "zebra.printer.x.raw"),
        ],
    )
    def test_library_error(
        self, fake: FakeClient, tmp_path: Path, capsys: Any, error: PrintBrokerError
    ) -> None:
        """Library errors print their sentence on one stderr line and exit 1."""
        (tmp_path / "l.zpl").write_bytes(b"^XA^XZ")
        fake.answers["print"] = error
        assert run(fake, "print", "--printer", SERIAL, "l.zpl") == 1
        err = capsys.readouterr().err
        assert err == f"zebra-broker: error: {error}\n"


class TestSgd:
    """``zebra-broker sgd get|set``."""

    def test_get(self, fake: FakeClient, capsys: Any) -> None:
        """Values print as name = JSON value lines."""
        fake.answers["sgd_get"] = {
            "device.friendly_name": "LINE-3",
            "x.y": None,
            "n": 4,
        }
        assert run(fake, "sgd", "get", SERIAL, "device.friendly_name", "x.y", "n") == 0
        assert capsys.readouterr().out.splitlines() == [
            'device.friendly_name = "LINE-3"',
            "x.y = null",
            "n = 4",
        ]
        assert fake.calls == [
            (
                "sgd_get",
                (SERIAL, "device.friendly_name", "x.y", "n"),
                {"timeout_ms": None},
            )
        ]

    def test_get_json(self, fake: FakeClient, capsys: Any) -> None:
        """--json prints the answer as one JSON object."""
        fake.answers["sgd_get"] = {"device.friendly_name": "Zébra"}
        assert run(fake, "sgd", "get", SERIAL, "device.friendly_name", "--json") == 0
        assert json.loads(capsys.readouterr().out) == {"device.friendly_name": "Zébra"}

    def test_set(self, fake: FakeClient, capsys: Any) -> None:
        """sgd set sends the name and the value as a string."""
        fake.answers["sgd_set"] = {"device.friendly_name": "LINE-3"}
        argv = (
            "sgd",
            "set",
            SERIAL,
            "device.friendly_name",
            "LINE-3",
            "--timeout-ms",
            "900",
        )
        assert run(fake, *argv) == 0
        assert fake.calls == [
            ("sgd_set", (SERIAL, "device.friendly_name", "LINE-3"), {"timeout_ms": 900})
        ]
        assert capsys.readouterr().out == 'device.friendly_name = "LINE-3"\n'

    def test_action_required(self, fake: FakeClient, capsys: Any) -> None:
        """sgd without get or set is a usage error."""
        assert run(fake, "sgd") == 2
        assert "required" in capsys.readouterr().err


class TestQuery:
    """``zebra-broker query``."""

    def test_escaped_output(self, fake: FakeClient, capsys: Any) -> None:
        """Control characters in the answer are shown escaped."""
        fake.answers["query"] = b"\x02030,0,0\x03\r\n\x02001\x03\r\n"
        argv = (
            "query",
            SERIAL,
            "~HS",
            "--response",
            "frames:3",
            "--timeout-ms",
            "2000",
        )
        assert run(fake, *argv) == 0
        assert capsys.readouterr().out == "\\x02030,0,0\\x03\\r\n\\x02001\\x03\\r\n"
        assert fake.calls == [
            ("query", (SERIAL, b"~HS"), {"response": "frames:3", "timeout_ms": 2000})
        ]

    def test_escapes_in_data(self, fake: FakeClient) -> None:
        r"""DATA understands \r \n \xNN and keeps other backslashes."""
        fake.answers["query"] = b'"ZD621"'
        argv = (
            "query",
            SERIAL,
            r'! U1 getvar "device.x"\r\n\x1e^FH\^',
            "--response",
            "line",
        )
        assert run(fake, *argv) == 0
        assert fake.calls[0][1][1] == b'! U1 getvar "device.x"\r\n\x1e^FH\\^'

    def test_raw_output(self, fake: FakeClient, capsysbinary: Any) -> None:
        """--raw writes the answer's bytes verbatim."""
        fake.answers["query"] = b"\x02\xff\x03"
        assert run(fake, "query", SERIAL, "~HS", "--response", "idle", "--raw") == 0
        assert capsysbinary.readouterr().out == b"\x02\xff\x03"

    @pytest.mark.parametrize(
        "argv",
        [
            ("query", SERIAL, "~HS"),
            ("query", SERIAL, "~HS", "--response", "frames:0"),
            ("query", SERIAL, "~HS", "--response", "idle", "--timeout-ms", "0"),
            ("query", SERIAL, "~HS", "--response", "idle", "--timeout-ms", "600001"),
            ("query", "not.a.serial", "~HS", "--response", "idle"),
        ],
    )
    def test_usage_errors(
        self, fake: FakeClient, argv: tuple[str, ...], capsys: Any
    ) -> None:
        """A missing or invalid --response, --timeout-ms or serial exits 2."""
        assert run(fake, *argv) == 2
        assert "error:" in capsys.readouterr().err
        assert fake.calls == []


class TestWatch:
    """``zebra-broker watch``."""

    EVENTS: ClassVar[list[Event]] = [
        PrinterOnline(
            printer=SERIAL, time=WHEN, model="ZD621", ip="10.0.0.7", replica="gw-1"
        ),
        PrinterAlert(
            printer=SERIAL,
            time=WHEN,
            condition="paper_out",
            condition_name="PAPER OUT",
            state="set",
        ),
        PrinterData(
            printer=SERIAL, time=WHEN, data=base64.b64encode(b"\x02ok\x03").decode()
        ),
        JobEvent(
            printer=SERIAL, time=WHEN, job_id="j1", status=JobStatus.FAILED, error="no"
        ),
    ]

    def test_lines(self, fake: FakeClient, capsys: Any) -> None:
        """Each event is one line: time, printer, event, fields."""
        stream = FakeEvents(self.EVENTS)
        fake.answers["events"] = stream
        assert run(fake, "watch", "printer.#") == 0
        assert capsys.readouterr().out.splitlines() == [
            f"2026-01-31T12:00:00.123Z {SERIAL} online replica=gw-1 model=ZD621 ip=10.0.0.7",
            f"2026-01-31T12:00:00.123Z {SERIAL} alert condition=paper_out "
            'condition_name="PAPER OUT" state=set',
            f"2026-01-31T12:00:00.123Z {SERIAL} data data=\\x02ok\\x03",
            f"2026-01-31T12:00:00.123Z {SERIAL} job job_id=j1 status=failed error=no",
        ]
        assert fake.calls[0][1] == ("printer.#",)
        assert stream.closed

    def test_default_pattern_and_json(self, fake: FakeClient, capsys: Any) -> None:
        """The default pattern is #; --json prints the event bodies."""
        fake.answers["events"] = FakeEvents(self.EVENTS[:1])
        assert run(fake, "watch", "--json") == 0
        line = json.loads(capsys.readouterr().out)
        assert line["event"] == "online"
        assert line["schema"] == "zebra.event/1"
        assert fake.calls[0][1] == ("#",)

    def test_interrupted(self, fake: FakeClient) -> None:
        """Ctrl-C ends the watch with status 130."""
        fake.answers["events"] = KeyboardInterrupt()
        assert run(fake, "watch") == 130


class TestPrinters:
    """``zebra-broker printers``."""

    ROWS: ClassVar[list[PrinterPresence]] = [
        PrinterPresence(
            printer=SERIAL, replica="gw-1", since=WHEN, model="ZD621", ip="10.0.0.7"
        ),
        PrinterPresence(
            printer="B2",
            replica="gateway-2",
            since=WHEN,
            firmware="V1",
            held=["head_open", "paper_out"],
        ),
    ]

    def test_table(self, fake: FakeClient, capsys: Any) -> None:
        """The printers print as an aligned table, with what holds their jobs."""
        fake.answers["printers"] = PresenceList(
            self.ROWS, expected_replicas=2, replicas=["gw-1", "gateway-2"]
        )
        assert run(fake, "printers", "--wait", "1.5") == 0
        captured = capsys.readouterr()
        assert captured.out.splitlines() == [
            "SERIAL        MODEL  FIRMWARE  IP        REPLICA    SINCE"
            "                 HELD",
            f"{SERIAL}  ZD621  -         10.0.0.7  gw-1       2026-01-31T12:00:00Z  -",
            "B2            -      V1        -         gateway-2  2026-01-31T12:00:00Z"
            "  head_open,paper_out",
        ]
        assert captured.err == ""
        assert fake.calls == [("printers", (), {"timeout": 1.5})]

    def test_incomplete(self, fake: FakeClient, capsys: Any) -> None:
        """Missing replica answers are reported on stderr."""
        fake.answers["printers"] = PresenceList(
            self.ROWS[:1], expected_replicas=3, replicas=["gw-1"]
        )
        assert run(fake, "printers", "--json") == 0
        captured = capsys.readouterr()
        assert [row["printer"] for row in json.loads(captured.out)] == [SERIAL]
        assert "1 of 3 gateway replicas answered within 3 s" in captured.err

    def test_no_replica(self, fake: FakeClient, capsys: Any) -> None:
        """Without any replica, stderr says so."""
        fake.answers["printers"] = PresenceList(expected_replicas=0)
        assert run(fake, "printers") == 0
        assert "no gateway replica is running" in capsys.readouterr().err


class TestProvisionAndSettings:
    """``zebra-broker provision`` and the global settings flags."""

    def test_provision(self, fake: FakeClient, capsys: Any) -> None:
        """Each serial is provisioned and reported with its queues."""
        fake.answers["provision"] = ("q.raw", "q.config")
        assert run(fake, "provision", "A1", "B2") == 0
        assert capsys.readouterr().out.splitlines() == [
            "provisioned A1: q.raw, q.config",
            "provisioned B2: q.raw, q.config",
        ]
        assert [call[1] for call in fake.calls] == [("A1",), ("B2",)]

    def test_flags_override_environment(
        self, fake: FakeClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Typed flags beat ZEBRA_BROKER_* variables; untyped ones leave them."""
        monkeypatch.setenv("ZEBRA_BROKER_NAMESPACE", "fromenv")
        monkeypatch.setenv("ZEBRA_BROKER_REQUEST_TIMEOUT", "12")
        fake.answers["provision"] = ()
        argv = ("--namespace", "fromflag", "provision", "A1", "--queue-type", "quorum")
        assert run(fake, *argv) == 0
        assert fake.settings.namespace == "fromflag"
        assert fake.settings.request_timeout == 12.0
        assert fake.settings.queue_type == "quorum"

    def test_flags_after_the_command(self, fake: FakeClient) -> None:
        """Global flags are accepted after the command too."""
        fake.answers["provision"] = ()
        assert (
            run(fake, "provision", "A1", "--timeout", "2.5", "--amqp-url", "amqp://h/")
            == 0
        )
        assert fake.settings.request_timeout == 2.5
        assert fake.settings.amqp_url.get_secret_value() == "amqp://h/"

    def test_bad_setting(self, fake: FakeClient, capsys: Any) -> None:
        """An invalid setting is a usage error naming the flag and the variable."""
        assert run(fake, "--namespace", "a.b", "provision", "A1") == 2
        assert "--namespace / ZEBRA_BROKER_NAMESPACE" in capsys.readouterr().err
        assert fake.calls == []

    def test_no_command(self, fake: FakeClient, capsys: Any) -> None:
        """No command is a usage error."""
        assert run(fake) == 2
        assert "usage: zebra-broker" in capsys.readouterr().err

    def test_help(self, fake: FakeClient, capsys: Any) -> None:
        """--help lists the environment variables and exits 0."""
        assert run(fake, "--help") == 0
        out = capsys.readouterr().out
        assert "ZEBRA_BROKER_AMQP_URL" in out
        assert "ZEBRA_BROKER_REQUEST_TIMEOUT" in out


class TestFormatting:
    """The CLI's formatting helpers."""

    @pytest.mark.parametrize(
        ("data", "text"),
        [
            (b"plain text\n", "plain text\n"),
            (b"\x02a\x03\r\n", "\\x02a\\x03\\r\n"),
            (b"tab\there", "tab\there"),
            (b"back\\slash", "back\\\\slash"),
            (b"caf\xc3\xa9", "café"),
            (b"bad\xff", "bad\\xff"),
            (b"\x7f\x00", "\\x7f\\x00"),
        ],
    )
    def test_escape_bytes(self, data: bytes, text: str) -> None:
        """Printable text stays; control and undecodable bytes are escaped."""
        assert cli.escape_bytes(data) == text

    @pytest.mark.parametrize(
        ("text", "data"),
        [
            (r"~HS", b"~HS"),
            (r"a\r\nb", b"a\r\nb"),
            (r"\x02\x03", b"\x02\x03"),
            (r"\\", b"\\"),
            (r"^FH\^FD", b"^FH\\^FD"),
            ("é", "é".encode()),
            ("trailing\\", b"trailing\\"),
        ],
    )
    def test_unescape_text(self, text: str, data: bytes) -> None:
        """Command-line escapes become bytes; unknown ones are kept."""
        assert cli.unescape_text(text) == data

    def test_format_time_naive_is_utc(self) -> None:
        """A time without a zone is taken as UTC."""
        assert cli.format_time(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"  # noqa: DTZ001
