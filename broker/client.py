"""The producer library: publish print, query and SGD requests, wait for outcomes.

::

    async with BrokerClient(amqp_url="amqp://guest:guest@rabbitmq/") as client:
        outcome = await client.print("50J161000398", "^XA^FO50,50^FDHello^FS^XZ")
        names = await client.sgd_get("50J161000398", "device.friendly_name")

Everything here speaks the public contract (``docs/contract.md``) through
``broker/amqp.py``; no AMQP library is imported in this module.

How outcomes come back: every request is published with ``reply_to`` set to RabbitMQ
direct reply-to and ``correlation_id`` equal to the job id, on the channel that also
consumes the replies. One consumer feeds one dictionary of futures keyed by
correlation id, and each :class:`JobHandle` waits on its own future.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import structlog
from pydantic import ValidationError

from broker.amqp import (
    AmqpConnection,
    OutgoingMessage,
    ReceivedMessage,
    ReplyChannel,
    Subscription,
    events_exchange_spec,
)
from broker.errors import (
    BrokerUnavailable,
    PrinterError,
    RequestTimeout,
    SchemaError,
    UnroutableMessage,
)
from broker.schemas import (
    DEFAULT_PRINTED_TIMEOUT_MS,
    HEADER_CONFIRM,
    HEADER_RESPONSE,
    HEADER_TIMEOUT,
    MAX_TIMEOUT_MS,
    PRESENCE_QUERY_TYPE,
    PRESENCE_REPLY_TYPE,
    Confirm,
    Event,
    JobStatus,
    Outcome,
    PresenceReply,
    PrinterPresence,
    RequestType,
    ResponseFraming,
    decode_event,
    new_job_id,
    parse_sgd_body,
)
from broker.settings import ClientSettings, load_settings
from broker.topology import Channel, Topology, is_valid_serial

log = structlog.stdlib.get_logger("broker.client")

#: Default seconds :meth:`BrokerClient.printers` waits for the replicas' answers.
DEFAULT_PRESENCE_TIMEOUT = 3.0
#: Extra seconds a client waits beyond a request's ``timeout_ms`` by default, for
#: queueing and the trip through RabbitMQ and the gateway.
ANSWER_TIMEOUT_MARGIN = 5.0

SgdValue = str | int | float | None


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Keep asyncio from logging an exception that nobody awaited."""
    if future.done() and not future.cancelled():
        future.exception()


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        _mark_retrieved(future)


def _check_serial(printer_serial: str) -> str:
    if not isinstance(printer_serial, str) or not is_valid_serial(printer_serial):
        raise SchemaError(
            f"invalid printer serial {str(printer_serial)[:80]!r}: only "
            "[A-Za-z0-9_-]{1,64} is allowed"
        )
    return printer_serial


def _check_timeout_ms(timeout_ms: int) -> int:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
        raise SchemaError(f"timeout_ms must be an int, not {timeout_ms!r}")
    if not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise SchemaError(
            f"timeout_ms must be from 1 to {MAX_TIMEOUT_MS} milliseconds, not {timeout_ms}"
        )
    return timeout_ms


def _to_bytes(data: bytes | bytearray | memoryview | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def merge_presence(replies: Iterable[PresenceReply]) -> list[PrinterPresence]:
    """Merge replicas' presence replies into one row per printer, sorted by serial.

    A printer claimed by two replicas (it reconnected and the old replica has not
    noticed yet) is reported once, from the claim with the newest ``since``.
    """
    merged: dict[str, PrinterPresence] = {}
    for reply in replies:
        for printer in reply.printers:
            known = merged.get(printer.printer)
            if known is None or printer.since > known.since:
                merged[printer.printer] = printer
    return [merged[serial] for serial in sorted(merged)]


class PresenceList(list[PrinterPresence]):
    """The printers online, as a list, with how complete the answer is.

    Attributes:
        expected_replicas: consumers of ``<ns>.replicas`` when the query was sent.
        replicas: the replicas that answered, sorted.
    """

    def __init__(
        self,
        printers: Iterable[PrinterPresence] = (),
        *,
        expected_replicas: int = 0,
        replicas: Iterable[str] = (),
    ) -> None:
        super().__init__(printers)
        self.expected_replicas = expected_replicas
        self.replicas = tuple(sorted(replicas))

    @property
    def is_complete(self) -> bool:
        """Whether every replica counted when the query was sent answered."""
        return len(self.replicas) >= self.expected_replicas


class JobHandle:
    """One submitted request; ``await handle.outcome(timeout=...)`` waits for it.

    Attributes:
        job_id: the request's ``message_id`` (also its ``correlation_id``).
        printer_serial: the printer it was sent to.
        request_type: ``zebra.print``, ``zebra.query`` or ``zebra.sgd``.
    """

    def __init__(
        self,
        client: BrokerClient,
        *,
        job_id: str,
        printer_serial: str,
        request_type: RequestType,
        future: asyncio.Future[Outcome],
    ) -> None:
        self._client = client
        self.job_id = job_id
        self.printer_serial = printer_serial
        self.request_type = request_type
        self._future = future

    @property
    def correlation_id(self) -> str:
        return self.job_id

    def __repr__(self) -> str:
        return (
            f"<JobHandle {self.request_type.value} {self.job_id} "
            f"printer={self.printer_serial} done={self.done()}>"
        )

    def done(self) -> bool:
        """Return whether the outcome (or a failure to get it) is known."""
        return self._future.done()

    # The timeout is part of the result (RequestTimeout names the job), not just a
    # cancellation, so it stays a parameter.
    async def outcome(self, timeout: float | None = None) -> Outcome:
        """Wait for the request's outcome and return it, whatever its status.

        Waiting again after a timeout is allowed: the handle keeps listening until
        the outcome arrives, :meth:`discard` is called or the client closes.

        Args:
            timeout: seconds to wait; ``None`` waits without limit.

        Raises:
            RequestTimeout: no outcome within ``timeout``.
            BrokerUnavailable: the connection was lost or the client closed while
                waiting; the job itself may still reach its outcome (watch
                ``job.<serial>.*`` events).
            SchemaError: the outcome message did not follow the contract.
        """
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await asyncio.shield(self._future)
        except TimeoutError:
            if deadline.expired():
                raise RequestTimeout(self.job_id, timeout or 0.0) from None
            raise

    def discard(self) -> None:
        """Stop listening for this job's outcome (a late one is then ignored)."""
        self._client._forget(self.job_id)
        self._future.cancel()


class EventStream:
    """Events from ``<ns>.events`` matching one binding pattern.

    Use it as ``async with client.events("printer.*.alert.#") as events:`` and then
    ``async for event in events``. Entering declares an exclusive, auto-delete queue
    bound with the pattern (so events published after ``async with`` returns are not
    missed); leaving deletes it. Messages that are not valid events are logged and
    skipped. Iteration ends when the client is closed. If the connection drops, the
    queue is declared again when it comes back; events published meanwhile are lost.
    """

    def __init__(
        self, client: BrokerClient, subscription: Subscription, pattern: str
    ) -> None:
        self._client = client
        self._subscription = subscription
        self.pattern = pattern
        self._entered = False

    async def __aenter__(self) -> Self:
        await self._subscription.__aenter__()
        self._entered = True
        self._client._streams.add(self)
        return self

    def end(self) -> None:
        """End the iteration: ``async for`` stops after the events already taken."""
        self._subscription.end()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client._streams.discard(self)
        await self._subscription.__aexit__(exc_type, exc, traceback)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if not self._entered:
            raise RuntimeError("use 'async with client.events(...) as events' first")
        while True:
            message = await self._subscription.__anext__()
            try:
                return decode_event(message.body)
            except SchemaError as exc:
                log.warning(
                    "event.malformed", routing_key=message.routing_key, error=str(exc)
                )


class BrokerClient:
    """A producer's connection to the print broker.

    Use it as an async context manager::

        async with BrokerClient(settings) as client:
            ...

    Args:
        settings: the client settings; by default read from ``ZEBRA_BROKER_*``
            variables and ``.env`` (:class:`~broker.settings.ClientSettings`).
        amqp_url: overrides ``settings.amqp_url``.
        namespace: overrides ``settings.namespace``.
        connection_name: the name of the AMQP connection in the management UI
            (default ``zebra-broker <hostname> <pid>``).

    Raises:
        ConfigurationError: invalid settings or overrides.
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        amqp_url: str | None = None,
        namespace: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if amqp_url is not None:
            overrides["amqp_url"] = amqp_url
        if namespace is not None:
            overrides["namespace"] = namespace
        if settings is None:
            settings = load_settings(ClientSettings, **overrides)
        elif overrides:
            settings = load_settings(
                type(settings), **(settings.model_dump() | overrides)
            )
        self.settings: ClientSettings = settings
        self.topology: Topology = settings.topology
        self.connection_name = (
            connection_name or f"zebra-broker {socket.gethostname()} {os.getpid()}"
        )
        self._amqp: AmqpConnection | None = None
        self._replies: ReplyChannel | None = None
        self._pending: dict[str, asyncio.Future[Outcome]] = {}
        self._presence: dict[str, asyncio.Queue[PresenceReply]] = {}
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._requests_exchange_seen = False

    # connection

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect to RabbitMQ and start consuming replies.

        Raises:
            BrokerUnavailable: RabbitMQ cannot be reached or refused the login.
        """
        if self._amqp is not None:
            return
        amqp = await AmqpConnection.connect(
            self.settings.amqp_url.get_secret_value(),
            connection_name=self.connection_name,
            url_for_logs=self.settings.amqp_url_for_logs,
        )
        try:
            self._replies = await amqp.open_reply_channel(
                self._on_reply, self._on_replies_lost
            )
        except BaseException:
            await amqp.close()
            raise
        self._amqp = amqp

    async def close(self) -> None:
        """Close the connection; handles still waiting fail with BrokerUnavailable."""
        amqp, replies = self._amqp, self._replies
        self._amqp = self._replies = None
        for stream in list(self._streams):
            stream.end()
        self._on_replies_lost(
            BrokerUnavailable("the client was closed before the outcome arrived")
        )
        if amqp is None:
            return
        try:
            if replies is not None:
                await replies.close()
        finally:
            await amqp.close()

    def _connection(self) -> tuple[AmqpConnection, ReplyChannel]:
        if self._amqp is None or self._replies is None:
            raise BrokerUnavailable(
                "the client is not connected: use 'async with BrokerClient(...)' or "
                "await client.connect()"
            )
        return self._amqp, self._replies

    # replies

    def _on_reply(self, message: ReceivedMessage) -> None:
        correlation_id = message.correlation_id
        if message.type == PRESENCE_REPLY_TYPE:
            collector = self._presence.get(correlation_id or "")
            if collector is None:
                log.debug("presence.late_reply", correlation_id=correlation_id)
                return
            try:
                collector.put_nowait(PresenceReply.model_validate_json(message.body))
            except ValidationError as exc:
                log.warning(
                    "presence.malformed_reply",
                    correlation_id=correlation_id,
                    error=str(exc),
                )
            return
        future = self._pending.pop(correlation_id or "", None)
        if future is None:
            log.debug("job.unexpected_reply", correlation_id=correlation_id)
            return
        if future.done():
            return
        try:
            outcome = Outcome.from_message(
                headers=message.headers,
                body=message.body,
                correlation_id=correlation_id,
            )
        except SchemaError as exc:
            _fail(future, exc)
            return
        log.debug(
            "job.outcome",
            job_id=outcome.job_id,
            correlation_id=correlation_id,
            printer_serial=outcome.printer_serial,
            status=outcome.status.value,
        )
        future.set_result(outcome)

    def _on_replies_lost(self, exc: BrokerUnavailable) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            _fail(future, exc)

    def _forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)

    # requests

    async def submit(
        self,
        printer_serial: str,
        /,
        body: bytes,
        *,
        type: RequestType | str = RequestType.PRINT,
        response: str | None = None,
        timeout_ms: int | None = None,
        confirm: Confirm | str | None = None,
        headers: Mapping[str, Any] | None = None,
        expiration: float | None = None,
        job_id: str | None = None,
    ) -> JobHandle:
        """Publish one request and return a handle to wait for its outcome.

        The request goes to ``<ns>.requests`` with routing key ``<serial>.config``
        for ``zebra.sgd`` and ``<serial>.raw`` otherwise; it is persistent and
        mandatory, and this returns once RabbitMQ confirmed it.

        Args:
            printer_serial: the printer's serial number.
            body: print data, a raw query, or a JSON SGD object (bytes).
            type: the request type.
            response: ``x-zebra-response`` (``json``, ``line``, ``idle``,
                ``frames:N``); required for, and only allowed with, ``zebra.query``.
            timeout_ms: ``x-zebra-timeout-ms`` (1 to 600000), for queries and SGD.
            confirm: ``x-zebra-confirm`` (``delivered`` or ``printed``), for prints.
            headers: further message headers, sent as given.
            expiration: the job's lifetime in seconds; still queued after that, it
                ends with outcome ``expired`` and is never sent.
            job_id: the job id (``message_id`` and ``correlation_id``); a UUID by
                default. It must not be in flight on this client already.

        Raises:
            SchemaError: the request is invalid (and was not sent).
            UnroutableMessage: no queue exists for that printer.
            QueueFull: the printer's queue is at its length limit.
            BrokerUnavailable: RabbitMQ is unreachable or did not confirm in time.
        """
        serial = _check_serial(printer_serial)
        try:
            request_type = RequestType(type)
        except ValueError:
            raise SchemaError(
                f"unknown request type {type!r}: use zebra.print, zebra.query or zebra.sgd"
            ) from None
        message_headers: dict[str, Any] = dict(headers or {})
        if response is not None:
            if request_type is not RequestType.QUERY:
                raise SchemaError(
                    f"response= is for zebra.query, not {request_type.value}"
                )
            message_headers[HEADER_RESPONSE] = str(ResponseFraming.parse(response))
        elif request_type is RequestType.QUERY:
            raise SchemaError(
                "zebra.query needs response= (json, line, idle or frames:N), "
                f"sent as {HEADER_RESPONSE}"
            )
        if timeout_ms is not None:
            if request_type is RequestType.PRINT and confirm != Confirm.PRINTED:
                raise SchemaError(
                    "timeout_ms= is for zebra.query, zebra.sgd and prints with "
                    "confirm=printed"
                )
            message_headers[HEADER_TIMEOUT] = _check_timeout_ms(timeout_ms)
        if confirm is not None:
            if request_type is not RequestType.PRINT:
                raise SchemaError(
                    f"confirm= is for zebra.print, not {request_type.value}"
                )
            try:
                message_headers[HEADER_CONFIRM] = Confirm(confirm).value
            except ValueError:
                raise SchemaError(
                    f"unknown confirm {confirm!r}: use delivered or printed"
                ) from None
        body = _to_bytes(body)
        if request_type is RequestType.SGD:
            parse_sgd_body(body)
        elif not body:
            raise SchemaError(f"{request_type.value} request has an empty body")
        if expiration is not None and not expiration > 0:
            raise SchemaError(
                f"expiration must be a positive number of seconds, not {expiration!r}"
            )
        job_id = job_id or new_job_id()
        if job_id in self._pending:
            raise SchemaError(f"job id {job_id!r} is already in flight on this client")

        amqp, replies = self._connection()
        channel = Channel.CONFIG if request_type is RequestType.SGD else Channel.RAW
        routing_key = self.topology.request_key(serial, channel)
        if not self._requests_exchange_seen:
            # Publishing to a missing exchange would close the reply channel.
            if not await amqp.exchange_exists(self.topology.requests_exchange):
                raise UnroutableMessage(serial, routing_key)
            self._requests_exchange_seen = True

        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        # Registered before publishing: the outcome may beat the publisher confirm.
        self._pending[job_id] = future
        try:
            await replies.publish(
                self.topology.requests_exchange,
                routing_key,
                OutgoingMessage(
                    body=body,
                    message_id=job_id,
                    correlation_id=job_id,
                    reply_to=replies.reply_to,
                    type=request_type.value,
                    headers=message_headers,
                    content_type="application/json"
                    if request_type is RequestType.SGD
                    else "application/octet-stream",
                    expiration=expiration,
                ),
                mandatory=True,
                printer_serial=serial,
                queue=self.topology.printer_queue(serial, channel),
            )
        except BaseException:
            self._forget(job_id)
            future.cancel()
            raise
        log.debug(
            "job.submitted",
            job_id=job_id,
            correlation_id=job_id,
            printer_serial=serial,
            type=request_type.value,
            size=len(body),
        )
        return JobHandle(
            self,
            job_id=job_id,
            printer_serial=serial,
            request_type=request_type,
            future=future,
        )

    async def _wait(self, handle: JobHandle, seconds: float) -> Outcome:
        try:
            return await handle.outcome(seconds)
        except RequestTimeout:
            handle.discard()
            raise

    def _answer_timeout(self, timeout: float | None, timeout_ms: int | None) -> float:
        if timeout is not None:
            return timeout
        if timeout_ms is None:
            return self.settings.request_timeout
        return max(
            self.settings.request_timeout, timeout_ms / 1000 + ANSWER_TIMEOUT_MARGIN
        )

    async def print(
        self,
        printer_serial: str,
        /,
        data: bytes | str,
        *,
        confirm: Confirm | str = Confirm.DELIVERED,
        expiration: float | None = None,
        timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> Outcome:
        """Print ``data`` (ZPL, CPCL...) and return the job's outcome.

        The outcome is returned whatever its status: ``delivered`` or ``printed`` is
        success; ``expired``, ``rejected``, ``failed`` and ``timeout`` mean nothing
        was printed; ``uncertain`` means the label may have printed and the system
        will not resend it (check ``outcome.status.is_success``).

        Args:
            data: the print data (a ``str`` is sent as UTF-8).
            confirm: ``delivered`` (written to the printer) or ``printed`` (the
                printer reported the job complete).
            expiration: seconds the job may wait in the queue before it expires.
            timeout_ms: with ``confirm=printed``, how long the gateway waits for the
                printer to report the job complete (gateway default 60 s).
            timeout: seconds to wait for the outcome (default: the
                ``request_timeout`` setting, or longer for ``confirm=printed``).

        Raises:
            RequestTimeout: no outcome within ``timeout`` (the job may still print).
            UnroutableMessage, QueueFull, BrokerUnavailable, SchemaError: see
                :meth:`submit`.
        """
        handle = await self.submit(
            printer_serial,
            _to_bytes(data),
            type=RequestType.PRINT,
            confirm=confirm,
            expiration=expiration,
            timeout_ms=timeout_ms,
        )
        if confirm == Confirm.PRINTED and timeout_ms is None:
            timeout_ms = DEFAULT_PRINTED_TIMEOUT_MS
        return await self._wait(handle, self._answer_timeout(timeout, timeout_ms))

    async def query(
        self,
        printer_serial: str,
        /,
        data: bytes | str,
        *,
        response: str = "idle",
        timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """Send ``data`` on the raw channel and return the printer's answer.

        Args:
            data: the query (``~HS``, ``! U1 getvar "device.languages"\\r\\n``).
            response: how the answer ends: ``json``, ``line``, ``idle`` or
                ``frames:N`` (``frames:3`` for ``~HS``).
            timeout_ms: how long the gateway waits for the answer (gateway default
                5000 ms).
            timeout: seconds this client waits for the outcome (default: the
                ``request_timeout`` setting, or ``timeout_ms`` plus 5 s if longer).

        Raises:
            PrinterError: the outcome is not ``ok``; ``err.outcome`` has it.
            RequestTimeout, UnroutableMessage, QueueFull, BrokerUnavailable,
                SchemaError: see :meth:`submit`.
        """
        handle = await self.submit(
            printer_serial,
            _to_bytes(data),
            type=RequestType.QUERY,
            response=response,
            timeout_ms=timeout_ms,
        )
        outcome = await self._wait(handle, self._answer_timeout(timeout, timeout_ms))
        if outcome.status is not JobStatus.OK:
            raise PrinterError(outcome)
        return outcome.body

    async def sgd(
        self,
        printer_serial: str,
        /,
        request: Mapping[str, SgdValue],
        *,
        timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> Outcome:
        """Send one JSON SGD request and return its outcome, whatever its status.

        Args:
            request: setting names to values; ``None`` reads a setting, a string or
                number writes it. Several keys are one request.

        Raises:
            SchemaError: ``request`` is not a non-empty object of such values.
            RequestTimeout, UnroutableMessage, QueueFull, BrokerUnavailable: see
                :meth:`submit`.
        """
        if not isinstance(request, Mapping):
            raise SchemaError("an SGD request is a mapping of setting names to values")
        for name, value in request.items():
            if isinstance(value, bool) or not isinstance(
                value, str | int | float | None
            ):
                raise SchemaError(
                    f"SGD value of {name!r} must be None (read), a string or a number"
                )
        body = json.dumps(dict(request), ensure_ascii=False).encode("utf-8")
        handle = await self.submit(
            printer_serial, body, type=RequestType.SGD, timeout_ms=timeout_ms
        )
        return await self._wait(handle, self._answer_timeout(timeout, timeout_ms))

    async def _sgd_values(
        self,
        printer_serial: str,
        request: Mapping[str, SgdValue],
        timeout_ms: int | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        outcome = await self.sgd(
            printer_serial, request, timeout_ms=timeout_ms, timeout=timeout
        )
        if outcome.status is not JobStatus.OK:
            raise PrinterError(outcome)
        try:
            return outcome.sgd_values()
        except ValueError as exc:
            raise SchemaError(
                f"SGD answer of job {outcome.job_id} is not JSON: {exc}"
            ) from exc

    async def sgd_get(
        self,
        printer_serial: str,
        /,
        *names: str,
        timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Read settings and return the printer's answer (names to values).

        Raises:
            PrinterError: the outcome is not ``ok``.
            SchemaError: no names, or the answer is not a JSON object.
        """
        if not names:
            raise SchemaError("sgd_get needs at least one setting name")
        request: dict[str, SgdValue] = dict.fromkeys(names)
        return await self._sgd_values(printer_serial, request, timeout_ms, timeout)

    async def sgd_set(
        self,
        printer_serial: str,
        /,
        name_or_mapping: str | Mapping[str, SgdValue],
        value: SgdValue = None,
        *,
        timeout_ms: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Write one setting (``name, value``) or several (a mapping).

        Returns:
            The printer's answer (names to values).

        Raises:
            PrinterError: the outcome is not ``ok``.
            SchemaError: a value is missing or is not a string or a number.
        """
        if isinstance(name_or_mapping, str):
            if value is None:
                raise SchemaError(f"sgd_set needs a value for {name_or_mapping!r}")
            request: dict[str, SgdValue] = {name_or_mapping: value}
        else:
            request = dict(name_or_mapping)
            if any(item is None for item in request.values()):
                raise SchemaError(
                    "sgd_set writes settings: None (a read) is not allowed"
                )
        return await self._sgd_values(printer_serial, request, timeout_ms, timeout)

    # presence, provisioning, events

    async def printers(
        self,
        timeout: float = DEFAULT_PRESENCE_TIMEOUT,
    ) -> PresenceList:
        """List the printers online on any gateway replica (contract §4).

        Counts the replicas (consumers of ``<ns>.replicas``), sends one presence
        query to ``<ns>.presence`` and waits for that many answers or ``timeout``
        seconds, whichever comes first. After a timeout the list holds what arrived
        and ``is_complete`` is false.
        """
        amqp, replies = self._connection()
        expected = await amqp.queue_consumer_count(self.topology.replicas_queue) or 0
        if expected == 0:
            return PresenceList(expected_replicas=0)
        if not await amqp.exchange_exists(self.topology.presence_exchange):
            return PresenceList(expected_replicas=expected)
        correlation_id = str(uuid.uuid4())
        collector: asyncio.Queue[PresenceReply] = asyncio.Queue()
        answers: dict[str, PresenceReply] = {}
        self._presence[correlation_id] = collector
        try:
            await replies.publish(
                self.topology.presence_exchange,
                "",
                OutgoingMessage(
                    body=b"",
                    message_id=correlation_id,
                    correlation_id=correlation_id,
                    reply_to=replies.reply_to,
                    type=PRESENCE_QUERY_TYPE,
                    persistent=False,
                    expiration=timeout,
                ),
                # Every replica is known to be there; a fanout with no binding is
                # simply no answer.
                mandatory=False,
            )
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    while len(answers) < expected:
                        reply = await collector.get()
                        answers[reply.replica] = reply
            except TimeoutError:
                if not deadline.expired():
                    raise
        finally:
            del self._presence[correlation_id]
        if len(answers) < expected:
            log.warning(
                "presence.incomplete", expected=expected, answered=sorted(answers)
            )
        return PresenceList(
            merge_presence(answers.values()),
            expected_replicas=expected,
            replicas=answers,
        )

    async def provision(self, printer_serial: str, /) -> tuple[str, ...]:
        """Declare the public exchanges and one printer's two queues and bindings.

        The declarations are the gateway's (``docs/contract.md`` §5), so requests
        for this printer queue up before it ever connects.

        Returns:
            The names of the printer's queues.

        Raises:
            ConfigurationError: a queue exists with other arguments.
        """
        serial = _check_serial(printer_serial)
        amqp, _ = self._connection()
        names = await amqp.provision(self.topology, serial)
        self._requests_exchange_seen = True
        log.debug("printer.provisioned", printer_serial=serial, queues=list(names))
        return names

    def events(self, pattern: str = "#") -> EventStream:
        """Subscribe to events whose routing key matches ``pattern``.

        ``pattern`` is an AMQP topic binding key: ``#`` (all),
        ``printer.*.alert.#``, ``job.50J161000398.*``. Use the result as an async
        context manager, then iterate (see :class:`EventStream`).
        """
        if not pattern or len(pattern.encode("utf-8")) > 255:
            raise SchemaError("an event pattern is 1 to 255 bytes, e.g. 'printer.#'")
        amqp, _ = self._connection()
        subscription = amqp.subscribe(
            events_exchange_spec(self.topology),
            pattern,
            queue_name=f"{self.topology.namespace}.watch.{uuid.uuid4().hex[:16]}",
        )
        return EventStream(self, subscription, pattern)


#: The name the style guide uses for the client.
PrintClient = BrokerClient

__all__ = [
    "BrokerClient",
    "EventStream",
    "JobHandle",
    "PresenceList",
    "PrintClient",
    "merge_presence",
]
