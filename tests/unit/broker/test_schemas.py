"""The wire models of the public contract: requests, outcomes, events, presence."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.errors import SchemaError
from broker.schemas import (
    HEADER_CONFIRM,
    HEADER_ERROR,
    HEADER_JOB_ID,
    HEADER_PRINTER,
    HEADER_RESPONSE,
    HEADER_STATUS,
    HEADER_TIMEOUT,
    ChannelClosed,
    ChannelOpened,
    Confirm,
    JobEvent,
    JobStatus,
    Outcome,
    PresenceReply,
    PrinterAlert,
    PrinterData,
    PrinterOffline,
    PrinterOnline,
    PrinterPresence,
    RequestType,
    ResponseFraming,
    decode_event,
    encode_event,
    parse_request,
    parse_sgd_body,
)
from broker.topology import Channel

SERIAL = "50J161000398"
WHEN = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


def request(**overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "printer_serial": SERIAL,
        "channel": Channel.RAW,
        "body": b"^XA^XZ",
        "message_type": None,
        "headers": None,
        "message_id": "job-1",
        "reply_to": "amq.rabbitmq.reply-to.abc",
        "correlation_id": "job-1",
    }
    fields.update(overrides)
    return parse_request(**fields)


class TestResponseFraming:
    """``x-zebra-response`` (contract §1)."""

    @pytest.mark.parametrize(
        ("text", "kind", "frames"),
        [
            ("json", "json", 0),
            ("line", "line", 0),
            ("idle", "idle", 0),
            ("frames:3", "frames", 3),
            ("frames:9999", "frames", 9999),
            (" frames:1 ", "frames", 1),
        ],
    )
    def test_parse(self, text: str, kind: str, frames: int) -> None:
        """Every framing of the contract parses and prints back the same."""
        framing = ResponseFraming.parse(text)
        assert (framing.kind, framing.frames) == (kind, frames)
        assert str(framing) == text.strip()

    @pytest.mark.parametrize(
        "text", ["", "frames", "frames:0", "frames:10000", "frames:-1", "JSON", "bytes"]
    )
    def test_reject(self, text: str) -> None:
        """Anything else is a SchemaError that lists the valid framings."""
        with pytest.raises(SchemaError, match="json, line, idle or frames:N"):
            ResponseFraming.parse(text)


class TestParseRequest:
    """How the gateway validates a request (contract §1); the client mirrors it."""

    def test_print_defaults(self) -> None:
        """A raw-channel message without a type is a print confirmed on delivery."""
        parsed = request()
        assert parsed.type is RequestType.PRINT
        assert parsed.confirm is Confirm.DELIVERED
        assert parsed.job_id == "job-1"
        assert parsed.timeout == 5.0

    def test_config_defaults_to_sgd(self) -> None:
        """A config-channel message without a type is a JSON SGD request."""
        parsed = request(channel=Channel.CONFIG, body=b'{"device.friendly_name": null}')
        assert parsed.type is RequestType.SGD
        assert parsed.sgd == {"device.friendly_name": None}

    def test_query_with_headers(self) -> None:
        """A query carries its framing and timeout from the headers (bytes or str)."""
        parsed = request(
            message_type="zebra.query",
            body=b"~HS",
            headers={HEADER_RESPONSE: b"frames:3", HEADER_TIMEOUT: 2500},
        )
        assert parsed.response == ResponseFraming(kind="frames", frames=3)
        assert parsed.timeout == 2.5

    def test_missing_message_id_gets_one(self) -> None:
        """The gateway assigns a job id when the producer left message_id out."""
        assert len(request(message_id=None).job_id) == 36

    def test_printed_confirm(self) -> None:
        """x-zebra-confirm: printed is understood."""
        assert request(headers={HEADER_CONFIRM: "printed"}).confirm is Confirm.PRINTED

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"printer_serial": "a.b"}, "invalid printer serial"),
            ({"message_type": "zebra.fax"}, "unknown request type"),
            ({"message_type": "zebra.sgd"}, "routing key '<serial>.config'"),
            (
                {"channel": Channel.CONFIG, "message_type": "zebra.print"},
                "'<serial>.raw'",
            ),
            ({"body": b""}, "empty body"),
            (
                {"message_type": "zebra.query", "body": b"~HS"},
                "needs a x-zebra-response",
            ),
            (
                {
                    "message_type": "zebra.query",
                    "body": b"~HS",
                    "headers": {HEADER_RESPONSE: "frames:0"},
                },
                "unknown x-zebra-response",
            ),
            ({"headers": {HEADER_TIMEOUT: "0"}}, "from 1 to 600000"),
            ({"headers": {HEADER_TIMEOUT: "600001"}}, "from 1 to 600000"),
            ({"headers": {HEADER_TIMEOUT: "soon"}}, "from 1 to 600000"),
            ({"headers": {HEADER_CONFIRM: "eventually"}}, "use delivered or printed"),
            ({"body": b"x" * 11, "max_body_size": 10}, "larger than the limit"),
            ({"channel": Channel.CONFIG, "body": b"{"}, "not valid UTF-8 JSON"),
            ({"channel": Channel.CONFIG, "body": b"[]"}, "non-empty JSON object"),
            ({"channel": Channel.CONFIG, "body": b"{}"}, "non-empty JSON object"),
            ({"channel": Channel.CONFIG, "body": b'{"a": [1]}'}, "must be null"),
            ({"channel": Channel.CONFIG, "body": b'{"": null}'}, "empty or too long"),
        ],
    )
    def test_rejections(self, overrides: dict[str, Any], message: str) -> None:
        """Invalid requests fail with one sentence and keep their job id."""
        with pytest.raises(SchemaError, match=message) as caught:
            request(**overrides)
        assert caught.value.job_id == "job-1"  # type: ignore[attr-defined]


class TestSgdBody:
    """The body of ``zebra.sgd`` requests."""

    def test_reads_and_writes(self) -> None:
        """null reads, strings and numbers write, several keys are one request."""
        body = b'{"device.friendly_name": null, "media.speed": 4, "a.b": "x"}'
        assert parse_sgd_body(body) == {
            "device.friendly_name": None,
            "media.speed": 4,
            "a.b": "x",
        }

    def test_nested_object_rejected(self) -> None:
        """An object value is not an SGD value."""
        with pytest.raises(SchemaError, match="must be null"):
            parse_sgd_body(b'{"a": {"b": 1}}')


class TestOutcome:
    """Outcome messages (contract §2)."""

    def test_round_trip_through_headers(self) -> None:
        """An outcome survives to_headers() and from_message()."""
        outcome = Outcome(
            job_id="job-1",
            printer_serial=SERIAL,
            status=JobStatus.FAILED,
            correlation_id="c-1",
            error="the printer closed the raw channel",
        )
        headers = outcome.to_headers()
        assert headers == {
            HEADER_STATUS: "failed",
            HEADER_JOB_ID: "job-1",
            HEADER_PRINTER: SERIAL,
            HEADER_ERROR: "the printer closed the raw channel",
        }
        parsed = Outcome.from_message(headers=headers, body=b"", correlation_id="c-1")
        assert parsed == outcome

    def test_bytes_headers_and_body(self) -> None:
        """Header values may arrive as bytes; the ok body is kept verbatim."""
        parsed = Outcome.from_message(
            headers={HEADER_STATUS: b"ok", HEADER_JOB_ID: b"j", HEADER_PRINTER: b"P1"},
            body=b"\x02030,0,0\x03",
            correlation_id=None,
        )
        assert parsed.status is JobStatus.OK
        assert parsed.body == b"\x02030,0,0\x03"

    def test_unknown_status_is_schema_error(self) -> None:
        """A status outside the contract is a SchemaError."""
        with pytest.raises(SchemaError, match="malformed outcome"):
            Outcome.from_message(
                headers={HEADER_STATUS: "maybe"}, body=b"", correlation_id=None
            )

    def test_sgd_values(self) -> None:
        """The body of an ok SGD outcome reads as a dict."""
        outcome = Outcome(
            job_id="j",
            printer_serial=SERIAL,
            status=JobStatus.OK,
            body=b'{"device.friendly_name": "LINE-3"}',
        )
        assert outcome.sgd_values() == {"device.friendly_name": "LINE-3"}

    @pytest.mark.parametrize(
        ("status", "success"),
        [
            (JobStatus.DELIVERED, True),
            (JobStatus.PRINTED, True),
            (JobStatus.OK, True),
            (JobStatus.TIMEOUT, False),
            (JobStatus.EXPIRED, False),
            (JobStatus.REJECTED, False),
            (JobStatus.FAILED, False),
            (JobStatus.UNCERTAIN, False),
        ],
    )
    def test_is_success(self, status: JobStatus, success: bool) -> None:
        """Only delivered, printed and ok are successes."""
        assert status.is_success is success


EVENTS = [
    PrinterOnline(
        printer=SERIAL,
        time=WHEN,
        replica="gw-1",
        model="ZD621",
        firmware="V93.21.26Z",
        ip="10.0.0.7",
        since=WHEN,
    ),
    PrinterOffline(printer=SERIAL, time=WHEN, close_code=1006),
    ChannelOpened(printer=SERIAL, time=WHEN, channel=Channel.RAW),
    ChannelClosed(printer=SERIAL, time=WHEN, channel=Channel.CONFIG, close_code=1000),
    PrinterAlert(
        printer=SERIAL,
        time=WHEN,
        condition="paper_out",
        condition_name="PAPER OUT",
        state="set",
    ),
    PrinterData(
        printer=SERIAL, time=WHEN, data=base64.b64encode(b"\x02hi\x03").decode()
    ),
    JobEvent(
        printer=SERIAL,
        time=WHEN,
        job_id="j",
        status=JobStatus.EXPIRED,
        error="too late",
    ),
]


class TestEvents:
    """Event bodies (contract §3)."""

    @pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event)
    def test_round_trip(self, event: Any) -> None:
        """encode_event and decode_event are inverse; nulls are left out."""
        body = encode_event(event)
        fields = json.loads(body)
        assert fields["schema"] == "zebra.event/1"
        assert fields["event"] == event.event
        assert None not in fields.values()
        assert decode_event(body) == event

    def test_data_bytes(self) -> None:
        """A data event carries base64 and gives back the bytes."""
        event = EVENTS[5]
        assert isinstance(event, PrinterData)
        assert event.raw == b"\x02hi\x03"

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b'{"schema": "zebra.event/1", "event": "online"}',
            b'{"schema": "zebra.event/2", "event": "online", "printer": "P"}',
            b'{"schema": "zebra.event/1", "event": "reboot", "printer": "P"}',
            b'{"schema": "zebra.event/1", "event": "online", "printer": "P", "x": 1}',
        ],
    )
    def test_malformed(self, body: bytes) -> None:
        """Bodies that are not events are SchemaErrors."""
        with pytest.raises(SchemaError, match="malformed event"):
            decode_event(body)


class TestPresence:
    """A replica's presence reply (contract §4, docs/contract.md)."""

    def test_round_trip(self) -> None:
        """A presence reply serializes with its schema tag and parses back."""
        reply = PresenceReply(
            replica="gw-1",
            printers=[PrinterPresence(printer=SERIAL, replica="gw-1", since=WHEN)],
        )
        body = reply.model_dump_json(by_alias=True)
        assert json.loads(body)["schema"] == "zebra.presence/1"
        assert PresenceReply.model_validate_json(body) == reply
