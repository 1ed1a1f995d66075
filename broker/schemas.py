"""Pydantic models of every message in the public contract (``docs/contract.md``).

The gateway and the client library use these same models, so both sides agree on the
wire format by construction. The AMQP mapping (properties and headers) is written out
here as plain dictionaries; no AMQP library is imported.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from broker.errors import SchemaError
from broker.topology import Channel, is_valid_serial

EVENT_SCHEMA = "zebra.event/1"
OUTCOME_TYPE = "zebra.outcome"
#: ``type`` of a presence query published to ``<ns>.presence`` (contract §4).
PRESENCE_QUERY_TYPE = "zebra.presence.query"
#: ``type`` of each replica's answer to it.
PRESENCE_REPLY_TYPE = "zebra.presence.reply"

HEADER_RESPONSE = "x-zebra-response"
HEADER_TIMEOUT = "x-zebra-timeout-ms"
HEADER_CONFIRM = "x-zebra-confirm"
HEADER_STATUS = "x-zebra-status"
HEADER_JOB_ID = "x-zebra-job-id"
HEADER_PRINTER = "x-zebra-printer"
HEADER_ERROR = "x-zebra-error"
HEADER_REDELIVERED = "x-zebra-redelivered"

#: Default time the gateway waits for a printer's answer, in milliseconds.
DEFAULT_TIMEOUT_MS = 5_000
#: Default time the gateway waits for ``PQ JOB COMPLETED`` with
#: ``x-zebra-confirm: printed`` (printing takes longer than answering), in ms.
DEFAULT_PRINTED_TIMEOUT_MS = 60_000
#: Longest answer timeout a request may ask for (RabbitMQ's consumer timeout is 30 min).
MAX_TIMEOUT_MS = 600_000


class RequestType(StrEnum):
    """The ``type`` property of a request (contract §1)."""

    #: Raw channel: send the body, expect nothing back.
    PRINT = "zebra.print"
    #: Raw channel: send the body, read the printer's answer.
    QUERY = "zebra.query"
    #: Config channel: a JSON SGD request.
    SGD = "zebra.sgd"


class JobStatus(StrEnum):
    """The status of an outcome (contract §2)."""

    #: Print data was written to the printer's raw channel.
    DELIVERED = "delivered"
    #: The printer reported the job complete.
    PRINTED = "printed"
    #: A query or SGD request was answered; the answer is the body.
    OK = "ok"
    #: The printer did not answer within the timeout.
    TIMEOUT = "timeout"
    #: The job's lifetime ran out before it could be sent.
    EXPIRED = "expired"
    #: The request itself is invalid; it is never retried.
    REJECTED = "rejected"
    #: It could not be done and will not be retried.
    FAILED = "failed"
    #: The connection broke between writing the bytes and the awaited confirmation.
    UNCERTAIN = "uncertain"

    @property
    def is_success(self) -> bool:
        return self in (JobStatus.DELIVERED, JobStatus.PRINTED, JobStatus.OK)


class Confirm(StrEnum):
    """``x-zebra-confirm``: when a print job counts as done."""

    DELIVERED = "delivered"
    PRINTED = "printed"


_FRAMING = re.compile(r"json|line|idle|frames:([1-9][0-9]{0,3})")


class ResponseFraming(BaseModel):
    """``x-zebra-response``: how the gateway knows a raw answer is complete."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["json", "frames", "line", "idle"]
    #: For ``frames``: how many STX ... ETX frames make the answer.
    frames: int = 0

    @classmethod
    def parse(cls, text: str) -> ResponseFraming:
        """Parse ``json``, ``line``, ``idle`` or ``frames:N`` (N from 1 to 9999)."""
        match = _FRAMING.fullmatch(text.strip())
        if match is None:
            raise SchemaError(
                f"unknown {HEADER_RESPONSE} {text[:40]!r}: "
                "use json, line, idle or frames:N"
            )
        if match.group(1):
            return cls(kind="frames", frames=int(match.group(1)))
        return cls(kind=match.group(0))

    def __str__(self) -> str:
        return f"frames:{self.frames}" if self.kind == "frames" else self.kind


class Request(BaseModel):
    """A request as the gateway understands it, validated from an AMQP message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    printer_serial: str
    channel: Channel
    type: RequestType
    body: bytes
    reply_to: str | None = None
    correlation_id: str | None = None
    #: For queries and SGD: seconds to wait for the answer once sent; for prints
    #: with ``confirm=printed``: for the printer to report the job complete.
    timeout: float = DEFAULT_TIMEOUT_MS / 1000
    #: For queries: how the answer ends.
    response: ResponseFraming | None = None
    #: For prints: when the job counts as done.
    confirm: Confirm = Confirm.DELIVERED
    #: For SGD: the JSON object to send.
    sgd: dict[str, Any] | None = None


def new_job_id() -> str:
    """Return a fresh job id (a UUID4 string)."""
    return str(uuid.uuid4())


def _header_text(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_request(
    *,
    printer_serial: str,
    channel: Channel,
    body: bytes,
    message_type: str | None,
    headers: Mapping[str, Any] | None,
    message_id: str | None,
    reply_to: str | None,
    correlation_id: str | None,
    max_body_size: int | None = None,
) -> Request:
    """Validate one request taken from a printer queue.

    Raises:
        SchemaError: the request is invalid; its message is the outcome's
            ``x-zebra-error`` (one sentence). ``err.job_id`` carries the job id.
    """
    job_id = message_id or new_job_id()
    headers = headers or {}
    try:
        if not is_valid_serial(printer_serial):
            raise SchemaError(f"invalid printer serial {printer_serial[:80]!r}")
        default = RequestType.PRINT if channel is Channel.RAW else RequestType.SGD
        try:
            kind = RequestType(message_type) if message_type else default
        except ValueError:
            raise SchemaError(
                f"unknown request type {(message_type or '')[:40]!r}: use zebra.print, "
                "zebra.query or zebra.sgd"
            ) from None
        if (kind is RequestType.SGD) != (channel is Channel.CONFIG):
            want = "config" if kind is RequestType.SGD else "raw"
            raise SchemaError(
                f"{kind.value} requests go to routing key '<serial>.{want}', "
                f"not '<serial>.{channel.value}'"
            )
        if max_body_size is not None and len(body) > max_body_size:
            raise SchemaError(
                f"body of {len(body)} bytes is larger than the limit of "
                f"{max_body_size} bytes"
            )
        fields: dict[str, Any] = {}
        timeout_text = _header_text(headers, HEADER_TIMEOUT)
        if timeout_text is not None:
            try:
                timeout_ms = int(timeout_text)
            except ValueError:
                timeout_ms = -1
            if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
                raise SchemaError(
                    f"{HEADER_TIMEOUT} must be a whole number of milliseconds from 1 "
                    f"to {MAX_TIMEOUT_MS}, not {timeout_text[:40]!r}"
                )
            fields["timeout"] = timeout_ms / 1000
        if kind is RequestType.QUERY:
            response_text = _header_text(headers, HEADER_RESPONSE)
            if response_text is None:
                raise SchemaError(
                    f"zebra.query needs a {HEADER_RESPONSE} header "
                    "(json, line, idle or frames:N)"
                )
            fields["response"] = ResponseFraming.parse(response_text)
        if kind is RequestType.PRINT:
            confirm_text = _header_text(headers, HEADER_CONFIRM)
            if confirm_text is not None:
                try:
                    fields["confirm"] = Confirm(confirm_text)
                except ValueError:
                    raise SchemaError(
                        f"unknown {HEADER_CONFIRM} {confirm_text[:40]!r}: "
                        "use delivered or printed"
                    ) from None
        if fields.get("confirm") is Confirm.PRINTED:
            fields.setdefault("timeout", DEFAULT_PRINTED_TIMEOUT_MS / 1000)
        if kind is not RequestType.SGD and not body:
            raise SchemaError(f"{kind.value} request has an empty body")
        if kind is RequestType.SGD:
            fields["sgd"] = parse_sgd_body(body)
        return Request(
            job_id=job_id,
            printer_serial=printer_serial,
            channel=channel,
            type=kind,
            body=body,
            reply_to=reply_to or None,
            correlation_id=correlation_id,
            **fields,
        )
    except SchemaError as exc:
        exc.job_id = job_id  # type: ignore[attr-defined]
        raise


def parse_sgd_body(body: bytes) -> dict[str, Any]:
    """Parse a ``zebra.sgd`` body: a non-empty JSON object of setting names."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"SGD body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict) or not value:
        raise SchemaError(
            'SGD body must be a non-empty JSON object, e.g. {"device.friendly_name": null}'
        )
    for name, setting in value.items():
        if not name or len(name) > 256:
            raise SchemaError(f"SGD setting name {name[:40]!r} is empty or too long")
        if setting is not None and (
            isinstance(setting, bool) or not isinstance(setting, str | int | float)
        ):
            raise SchemaError(
                f"SGD value of {name!r} must be null (read), a string or a number"
            )
    return value


class Outcome(BaseModel):
    """The one outcome of a request (contract §2)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    printer_serial: str
    status: JobStatus
    correlation_id: str | None = None
    error: str | None = None
    #: For ``ok``: the printer's answer (raw bytes, or the SGD reply's JSON bytes).
    body: bytes = b""
    #: RabbitMQ delivered the request more than once (a gateway or its connection
    #: died while it was in progress): it may have reached the printer twice.
    redelivered: bool = False

    def to_headers(self) -> dict[str, str]:
        """Return the outcome's AMQP headers."""
        headers = {
            HEADER_STATUS: self.status.value,
            HEADER_JOB_ID: self.job_id,
            HEADER_PRINTER: self.printer_serial,
        }
        if self.error is not None:
            headers[HEADER_ERROR] = self.error
        if self.redelivered:
            headers[HEADER_REDELIVERED] = "true"
        return headers

    @classmethod
    def from_message(
        cls,
        *,
        headers: Mapping[str, Any] | None,
        body: bytes,
        correlation_id: str | None,
    ) -> Outcome:
        """Build an outcome from a received AMQP message."""
        headers = headers or {}
        try:
            return cls(
                job_id=_header_text(headers, HEADER_JOB_ID) or "",
                printer_serial=_header_text(headers, HEADER_PRINTER) or "",
                status=JobStatus(_header_text(headers, HEADER_STATUS) or ""),
                correlation_id=correlation_id,
                error=_header_text(headers, HEADER_ERROR),
                body=body,
                redelivered=_header_text(headers, HEADER_REDELIVERED) == "true",
            )
        except (ValueError, ValidationError) as exc:
            raise SchemaError(f"malformed outcome message: {exc}") from exc

    def sgd_values(self) -> dict[str, Any]:
        """Return the body of an ``ok`` SGD outcome as a dictionary."""
        value = json.loads(self.body)
        if not isinstance(value, dict):
            raise SchemaError("SGD outcome body is not a JSON object")
        return value


def utc_now() -> datetime:
    return datetime.now(UTC)


class _EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Always ``zebra.event/1``.
    schema_: Literal["zebra.event/1"] = Field("zebra.event/1", alias="schema")
    printer: str
    time: datetime = Field(default_factory=utc_now)
    #: The gateway replica that published the event.
    replica: str | None = None


class PrinterOnline(_EventBase):
    """``printer.<serial>.online``: a printer's main channel was identified."""

    event: Literal["online"] = "online"
    model: str | None = None
    firmware: str | None = None
    system_name: str | None = None
    ip: str | None = None
    mac: str | None = None
    since: datetime | None = None


class PrinterOffline(_EventBase):
    """``printer.<serial>.offline``: its main channel is gone."""

    event: Literal["offline"] = "offline"
    close_code: int | None = None
    close_reason: str | None = None


class ChannelOpened(_EventBase):
    """``printer.<serial>.channel.<raw|config>.opened``."""

    event: Literal["channel_opened"] = "channel_opened"
    channel: Channel


class ChannelClosed(_EventBase):
    """``printer.<serial>.channel.<raw|config>.closed``."""

    event: Literal["channel_closed"] = "channel_closed"
    channel: Channel
    close_code: int | None = None
    close_reason: str | None = None


class PrinterAlert(_EventBase):
    """``printer.<serial>.alert.<condition>``: the printer sent an alert."""

    event: Literal["alert"] = "alert"
    #: Lowercased, non-alphanumerics as ``_``: ``paper_out``, ``pq_job_completed``.
    condition: str
    #: The condition as the printer spelled it: ``PAPER OUT``.
    condition_name: str
    state: Literal["set", "clear"]
    setting_name: str | None = None
    setting_value: str | None = None
    #: The printer's local time stamp, verbatim.
    printer_time: str | None = None


#: Printer conditions that would spoil a label: while any is set the gateway sends the
#: printer no new jobs (they wait in its queue, in order, their expiry running).
HOLD_CONDITIONS = frozenset({"paper_out", "ribbon_out", "head_open", "printer_paused"})


class PrinterHold(_EventBase):
    """``printer.<serial>.hold``: jobs stop (or resume) because of the printer's state."""

    event: Literal["hold"] = "hold"
    #: Whether jobs are held now.
    held: bool
    #: The conditions holding them (empty when released): ``paper_out``, ...
    conditions: list[str]


class PrinterData(_EventBase):
    """``printer.<serial>.data``: raw-channel bytes that answer no request."""

    event: Literal["data"] = "data"
    #: The bytes, base64.
    data: str

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.data)


class JobEvent(_EventBase):
    """``job.<serial>.<status>``: a request reached its outcome."""

    event: Literal["job"] = "job"
    job_id: str
    correlation_id: str | None = None
    status: JobStatus
    error: str | None = None
    type: RequestType | None = None
    #: Present (true) when the request was delivered more than once.
    redelivered: bool | None = None


Event = Annotated[
    PrinterOnline
    | PrinterOffline
    | ChannelOpened
    | ChannelClosed
    | PrinterAlert
    | PrinterData
    | PrinterHold
    | JobEvent,
    Field(discriminator="event"),
]

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode_event(event: _EventBase) -> bytes:
    """Serialize an event to its JSON body."""
    return event.model_dump_json(by_alias=True, exclude_none=True).encode()


def decode_event(body: bytes) -> Event:
    """Parse an event body."""
    try:
        return _event_adapter.validate_json(body)
    except ValidationError as exc:
        raise SchemaError(f"malformed event: {exc}") from exc


class PrinterPresence(BaseModel):
    """One online printer, as a replica reports it to a presence query."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    printer: str
    replica: str
    since: datetime
    model: str | None = None
    firmware: str | None = None
    system_name: str | None = None
    ip: str | None = None
    mac: str | None = None
    #: Conditions holding the printer's jobs (paper out, head open...), if any.
    held: list[str] | None = None


class PresenceReply(BaseModel):
    """A replica's answer to a presence query (contract §4)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_: Literal["zebra.presence/1"] = Field("zebra.presence/1", alias="schema")
    replica: str
    printers: list[PrinterPresence]
