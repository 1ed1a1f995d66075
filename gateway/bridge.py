"""Raw and config channels: requests from the printer's queue to its socket and back.

The ack policy, in one place:

- Requests are taken from the queue one at a time (``prefetch`` 1), in order. (With
  a larger ``prefetch`` the ones waiting here go back to the queue when the channel
  stops consuming, and one whose ``expiration`` ran out while it waited here ends
  ``expired``, as it would have in the queue.)
- Print data: written to the socket, then the ``delivered`` outcome is published
  (with a publisher confirm), then the request is acked. If the socket is gone before
  the bytes were written, the request is nacked back to its queue and goes out again,
  in order, when the printer is reachable: at least once. A gateway that dies between
  the write and the ack makes RabbitMQ redeliver the request: a label may print twice,
  never zero times.
- Queries and SGD requests: the answer (or ``timeout``) is the outcome; then ack. If the
  socket closes before the answer, the request goes back to its queue (reads are safe
  to repeat, and SGD sets write the same value again).
- An invalid request ends as ``rejected`` at once and is acked: never requeued.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from broker.errors import BrokerUnavailable, ChannelClosed, SchemaError
from broker.logs import bound
from broker.schemas import (
    ChannelClosed as ChannelClosedEvent,
)
from broker.schemas import (
    ChannelOpened,
    Confirm,
    JobStatus,
    Outcome,
    PrinterData,
    Request,
    RequestType,
    new_job_id,
    parse_request,
)
from broker.topology import Channel
from gateway.control import ControlMessage, ControlOp
from gateway.deadletters import unsent_outcome
from gateway.main_channel import COMPLETION_CONDITION, publish_alert
from gateway.metrics import publish_time
from gateway.session import SocketSession
from gateway.signals import Flag
from gateway.socket import PrinterSocket
from gateway.weblink import ChannelKind, CloseCode, count_labels
from gateway.weblink.events import (
    AlertReceived,
    Event,
    QueryAnswered,
    RawDataReceived,
    SgdReplyReceived,
)

if TYPE_CHECKING:
    from gateway.bus import Bus, Consumer, Delivery
    from gateway.registry import Registry
    from gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)


class Waitable(Protocol):
    """An ``asyncio.Event`` or a :class:`Flag`."""

    async def wait(self) -> Any: ...


#: How many times a new channel re-checks that older consumers are gone (each after a
#: close notice or ``channel_open_timeout``) before relying on single active consumer.
OWNERSHIP_CHECKS = 3


def _attempt_key(delivery: Delivery) -> str:
    """Identify a request across redeliveries (its message_id, else its content)."""
    if delivery.message_id:
        return delivery.message_id
    digest = hashlib.sha256(delivery.body)
    digest.update((delivery.correlation_id or "").encode())
    return digest.hexdigest()


def _expired_here(delivery: Delivery) -> bool:
    """Whether a request's ``expiration`` ran out since this replica received it.

    Only time spent here counts (the time in the queue is not known), so this errs
    on the side of sending; RabbitMQ expires what waits in the queue itself.
    """
    if not delivery.expiration:
        return False
    try:
        ttl = int(delivery.expiration) / 1000
    except ValueError:
        return False
    return time.time() - delivery.received_at > ttl


async def _first_of(*events: Waitable) -> None:
    """Return as soon as any of the events is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class RequestSession(SocketSession):
    """One raw or config socket of a printer on this replica."""

    def __init__(
        self,
        socket: PrinterSocket,
        *,
        bus: Bus,
        registry: Registry,
        settings: GatewaySettings,
    ) -> None:
        self.channel = Channel.RAW if socket.kind is ChannelKind.RAW else Channel.CONFIG
        super().__init__(
            socket,
            bus=bus,
            registry=registry,
            settings=settings,
            channel=self.channel.value,
        )
        self.queue_name = bus.topology.printer_queue(self.printer_serial, self.channel)
        self._answer: asyncio.Future[Any] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._closed = Flag()
        #: Set when the socket closes or the replica drains: wakes every wait.
        self._wake = Flag()
        self._released = Flag()
        self._worker_done = Flag()
        self._draining = False
        self._busy = False
        self._consumer: Consumer | None = None
        self._lost = False
        #: Conditions holding the printer's jobs, as the main session reported them.
        self._held: set[str] = set()
        self._unheld = Flag(True)
        #: Labels written on this socket, and ``PQ JOB COMPLETED`` alerts heard since
        #: it opened: a job with ``confirm=printed`` is printed when the completions
        #: reach the labels written up to and including it.
        self.labels_sent = 0
        self.labels_completed = 0
        self._printed: list[tuple[int, asyncio.Future[None]]] = []

    def on_printer_alert(self, condition: str, state: str) -> None:
        """Count job completions (the alert may have come through another replica)."""
        if self.channel is not Channel.RAW:
            return
        if condition != COMPLETION_CONDITION or state != "set":
            return
        self.labels_completed += 1
        for target, waiter in self._printed:
            if self.labels_completed >= target and not waiter.done():
                waiter.set_result(None)

    # -- life ------------------------------------------------------------------

    async def run(self, first_events: list[Event]) -> None:
        """Serve the socket: consume the printer's queue until the socket closes."""
        serial = self.printer_serial
        await self.registry.acquire(serial, self)
        try:
            await self._notify(ControlOp.CHANNEL_OPENED)
            self.log.info("channel.opened", channel_id=self.socket.protocol.channel_id)
            try:
                async with asyncio.TaskGroup() as group:
                    worker = group.create_task(self._work())
                    await self._handle(first_events)
                    async for events in self.socket.events():
                        await self._handle(events)
                    self._closed.set()
                    self._wake.set()
                    self._fail_pending()
                    await self._cancel_consumer()
                    await worker
            finally:
                await self._cancel_consumer()
                await self._notify(ControlOp.CHANNEL_CLOSED)
        finally:
            await self.registry.release(serial, self)

    # -- consuming ---------------------------------------------------------------

    def is_live(self) -> bool:
        """The socket is open and the replica is not draining."""
        return not self._closed.is_set() and not self._draining

    def wants_consumer(self) -> bool:
        """Whether this session should be consuming its queue now."""
        return self.is_live() and not self._held

    @property
    def consumer_missing(self) -> bool:
        """The consumer was lost (broker outage) and is not back yet."""
        return self._lost and self.wants_consumer()

    async def stop_consuming(self) -> None:
        """Drain: finish the request in progress; the rest stay queued for others."""
        self._release()
        await self._worker_done.wait()

    async def close(self, code: CloseCode, reason: str) -> None:
        """Stop consuming at once, then close the socket.

        A superseded socket may be half-open: its close can take until
        ``ws_close_timeout``, and the printer's new channel must not wait that long
        for the queue.
        """
        self._release()
        await super().close(code, reason)

    def _release(self) -> None:
        self._draining = True
        self._wake.set()
        self._stop_taking()

    def _stop_taking(self) -> None:
        """Take no new request (the one in progress finishes)."""
        consumer = self._consumer
        if consumer is not None and not self._busy:
            consumer.stop()  # the worker cancels it and announces the release

    async def _cancel_consumer(self) -> None:
        consumer = self._consumer
        if consumer is not None:
            await consumer.cancel()

    async def _work(self) -> None:
        """Consume while the socket lives: across broker reconnects, one at a time."""
        try:
            while self.is_live():
                if not await self._wait_until_ready():
                    continue
                try:
                    await self._take_ownership()
                    if not self.wants_consumer():
                        return
                    consumer = await self.bus.consume(
                        self.queue_name,
                        consumer_tag=f"{self.bus.replica} {self.printer_serial} "
                        f"{self.channel.value}",
                    )
                except BrokerUnavailable as exc:
                    if self.bus.is_ready.is_set():
                        # Not a broker outage: something is wrong with this queue.
                        self.log.error("consumer.failed", error=str(exc))
                        await self.socket.close(
                            CloseCode.INTERNAL_ERROR, "cannot consume"
                        )
                        return
                    continue
                await self._consume(consumer)
        finally:
            self._worker_done.set()

    async def _consume(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._lost = False
        self.bus.metrics.consumer_started(self.channel.value)
        try:
            while self.wants_consumer():
                delivery = await consumer.get()
                if not self.wants_consumer():
                    await delivery.nack(requeue=True)
                    return
                self._busy = True
                try:
                    if _expired_here(delivery):
                        await self._expire(delivery)
                    else:
                        await self._process(delivery)
                finally:
                    self._busy = False
                    # Not kept while waiting for the next one: a job's body can be
                    # megabytes, and a printer may wait idle for days.
                    del delivery
        except BrokerUnavailable:
            if self.wants_consumer():
                self._lost = True
                self.log.warning("consumer.lost", reason="broker connection lost")
        finally:
            self._consumer = None
            await consumer.cancel()
            self.bus.forget(consumer)
            self.bus.metrics.consumer_stopped(self.channel.value)
            if not self._lost:
                await self._publish_notice(ControlOp.CONSUMER_RELEASED)

    async def _wait_until_ready(self) -> bool:
        """Wait for the broker connection and no hold; ``False`` if not there yet."""
        if not self.bus.is_ready.is_set():
            await _first_of(self.bus.is_ready, self._wake)
        if self._held and self.is_live():
            await _first_of(self._unheld, self._wake)
        return self.bus.is_ready.is_set() and self.wants_consumer()

    def on_hold(self, conditions: list[str]) -> None:
        """Stop taking jobs while the printer would spoil them; resume in order after."""
        if self.channel is not Channel.RAW:
            return
        held = set(conditions)
        if held == self._held:
            return
        self._held = held
        self.log.info("channel.hold", conditions=sorted(held))
        if held:
            self._unheld.clear()
            self._stop_taking()
        else:
            self._unheld.set()

    async def _take_ownership(self) -> None:
        """Make sure no other connection drains this queue before consuming it.

        If the queue has consumers (an older socket of this printer, perhaps a
        half-open one on another replica), claim it: older sockets of this kind
        close and cancel their consumers, wherever they are, and announce it. The
        queue's single-active-consumer flag is only the backstop if that fails.
        """
        self._released.clear()
        claim = ControlMessage(
            op=ControlOp.CHANNEL_CLAIMED,
            printer_serial=self.printer_serial,
            replica=self.bus.replica,
            socket_id=self.socket.id,
            since=self.socket.identified_at,
            kind=self.channel.value,
        )
        # Older sockets of this kind on this replica yield at once, whatever the
        # queue says: two of them could otherwise both find it free and consume.
        await self.registry.send_control(claim, remote=False)
        # Checked right before consuming: an older socket elsewhere may have
        # started consuming since this one opened. The main session declared the
        # queue before asking for this channel; a queue deleted since then is
        # declared again here.
        counts = await self.bus.queue_counts(self.queue_name)
        if counts is None:
            spec, key = self.bus.printer_routing(self.printer_serial, self.channel)
            counts = await self.bus.declare_printer_queue(spec, key)
        if counts[1] == 0:
            return
        self.log.info("consumer.claiming", consumers=counts[1])
        await self.registry.send_control(claim, local=False)
        for _ in range(OWNERSHIP_CHECKS):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.channel_open_timeout):
                    await _first_of(self._released, self._wake)
            self._released.clear()
            if not self.wants_consumer():
                return
            counts = await self.bus.queue_counts(self.queue_name)
            if counts is None or counts[1] == 0:
                return
        self.log.warning("consumer.ownership_unconfirmed", consumers=counts[1])

    def on_replica_gone(self, replica: str) -> None:
        """A replica died: if we wait for its consumer to go, check again now."""
        self._released.set()

    def on_channel_notice(self, message: ControlMessage) -> None:
        """An older socket of this kind closed: its consumer is gone."""
        if (
            message.op in (ControlOp.CHANNEL_CLOSED, ControlOp.CONSUMER_RELEASED)
            and message.kind == self.channel.value
            and message.socket_id != self.socket.id
        ):
            self._released.set()

    async def _publish_notice(self, op: ControlOp) -> None:
        """Tell the printer's other sessions, wherever they are, about this one."""
        notice = ControlMessage(
            op=op,
            printer_serial=self.printer_serial,
            replica=self.bus.replica,
            socket_id=self.socket.id,
            since=self.socket.identified_at,
            kind=self.channel.value,
            close_code=self.socket.close_code,
        )
        try:
            await self.registry.send_control(notice)
        except BrokerUnavailable as exc:
            self.log.warning("control.publish_failed", op=op.value, error=str(exc))

    async def _notify(self, op: ControlOp) -> None:
        """Announce this channel opening or closing: control notice, then event."""
        serial = self.printer_serial
        code = self.socket.close_code
        await self._publish_notice(op)
        event: ChannelOpened | ChannelClosedEvent
        if op is ControlOp.CHANNEL_OPENED:
            event = ChannelOpened(
                printer=serial, replica=self.bus.replica, channel=self.channel
            )
            what = "opened"
        else:
            event = ChannelClosedEvent(
                printer=serial,
                replica=self.bus.replica,
                channel=self.channel,
                close_code=code,
                close_reason=self.socket.protocol.close_reason,
            )
            what = "closed"
            self.log.info("channel.closed", close_code=code)
        try:
            await self.bus.publish_event(
                self.bus.topology.channel_key(serial, self.channel, what),
                event,
                confirm=False,
            )
        except BrokerUnavailable as exc:
            self.log.warning(
                "event.publish_failed", kind=f"channel_{what}", error=str(exc)
            )

    # -- from the printer --------------------------------------------------------

    async def _handle(self, events: list[Event]) -> None:
        if self._idle is not None and self.socket.protocol.has_pending_query:
            self._restart_idle_timer()
        for event in events:
            if isinstance(event, (QueryAnswered, SgdReplyReceived)):
                answer = event.data if isinstance(event, QueryAnswered) else event.reply
                if self._answer is not None and not self._answer.done():
                    self._answer.set_result(answer)
            elif isinstance(event, RawDataReceived):
                await self._publish_data(event.data)
            elif isinstance(event, AlertReceived):
                # This raw socket is the one whose labels complete: no remote copy.
                await publish_alert(self.registry, self.socket, event, remote=False)
            else:
                await self.handle_common(event)

    async def _publish_data(self, data: bytes) -> None:
        try:
            await self.bus.publish_event(
                self.bus.topology.data_key(self.printer_serial),
                PrinterData(
                    printer=self.printer_serial,
                    replica=self.bus.replica,
                    data=base64.b64encode(data).decode(),
                ),
                confirm=False,
            )
        except BrokerUnavailable as exc:
            self.log.warning("event.publish_failed", kind="data", error=str(exc))

    def _fail_pending(self) -> None:
        waiters = [waiter for _, waiter in self._printed]
        if self._answer is not None:
            waiters.append(self._answer)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ChannelClosed("the printer channel closed"))

    def _restart_idle_timer(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(
            self.settings.idle_response_window, self._idle_elapsed
        )

    def _idle_elapsed(self) -> None:
        self._idle = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(self.socket.protocol.finish_query())

    # -- from the queue ----------------------------------------------------------

    async def _process(self, delivery: Delivery) -> None:
        try:
            request = parse_request(
                printer_serial=self.printer_serial,
                channel=self.channel,
                body=delivery.body,
                message_type=delivery.message_type,
                headers=delivery.headers,
                message_id=delivery.message_id,
                reply_to=delivery.reply_to,
                correlation_id=delivery.correlation_id,
                max_body_size=self.settings.max_request_size,
            )
        except SchemaError as exc:
            job_id = getattr(exc, "job_id", None) or new_job_id()
            await self._finish(
                delivery,
                Outcome(
                    job_id=job_id,
                    printer_serial=self.printer_serial,
                    status=JobStatus.REJECTED,
                    correlation_id=delivery.correlation_id,
                    error=str(exc),
                ),
                None,
            )
            return
        with bound(job_id=request.job_id, correlation_id=request.correlation_id):
            try:
                outcome = await self._execute(request)
            except ChannelClosed:
                attempts = self.registry.count_attempt(_attempt_key(delivery))
                if attempts < self.settings.max_attempts:
                    self.log.info(
                        "job.requeued",
                        reason="printer channel closed",
                        attempts=attempts,
                    )
                    await delivery.nack(requeue=True)
                    return
                outcome = self._outcome(
                    request,
                    JobStatus.FAILED,
                    error=f"the printer's {self.channel.value} channel closed {attempts} "
                    "times while this request was in progress; it is not retried again",
                )
            self.registry.forget_attempts(_attempt_key(delivery))
            await self._finish(delivery, outcome, request.type)

    async def _expire(self, delivery: Delivery) -> None:
        """End a request whose TTL ran out while it waited behind another here."""
        waited = time.time() - delivery.received_at
        outcome, request_type = unsent_outcome(
            delivery,
            self.printer_serial,
            JobStatus.EXPIRED,
            f"its expiration of {delivery.expiration} ms ran out while it waited "
            f"{waited * 1000:.0f} ms behind an earlier request; not sent",
        )
        await self._finish(delivery, outcome, request_type)

    async def _finish(
        self, delivery: Delivery, outcome: Outcome, request_type: RequestType | None
    ) -> None:
        """Publish the outcome, then ack (if publishing fails, RabbitMQ redelivers)."""
        if delivery.redelivered:
            outcome = outcome.model_copy(update={"redelivered": True})
        try:
            await self.bus.publish_outcome(outcome, delivery.reply_to, request_type)
        except BrokerUnavailable as exc:
            self.log.warning("job.outcome_unpublished", error=str(exc))
            return
        await delivery.ack()
        started = publish_time(
            received_at=delivery.received_at,
            headers=delivery.headers,
            timestamp=delivery.timestamp,
        )
        self.bus.metrics.request_finished(
            request_type, outcome.status, time.time() - started
        )
        # Every outcome is also a ``job.*`` event and counted in the metrics: a
        # line per successful job would cost more than the job (debug shows it).
        log = self.log.debug if outcome.status.is_success else self.log.info
        log(
            "job.finished",
            job_id=outcome.job_id,
            status=outcome.status.value,
            error=outcome.error,
            size=len(delivery.body),
        )

    async def _execute(self, request: Request) -> Outcome:
        """Carry out one valid request. Raises ChannelClosed if it must be retried."""
        if request.type is RequestType.PRINT:
            return await self._print(request)
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        protocol = self.socket.protocol
        try:
            if request.type is RequestType.QUERY:
                assert request.response is not None
                protocol.send_query(
                    request.body, request.response.kind, request.response.frames
                )
                if request.response.kind == "idle":
                    self._restart_idle_timer()
            else:
                assert request.sgd is not None
                protocol.send_sgd(request.sgd)
            await self.socket.flush()
            try:
                async with asyncio.timeout(request.timeout):
                    answer = await self._answer
            except TimeoutError:
                return await self._timed_out(request)
        finally:
            self._answer = None
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
        if request.type is RequestType.QUERY:
            return self._outcome(request, JobStatus.OK, body=answer)
        return self._outcome(
            request,
            JobStatus.OK,
            body=json.dumps(answer, separators=(",", ":")).encode(),
        )

    async def _print(self, request: Request) -> Outcome:
        labels = count_labels(request.body)
        confirm_printed = request.confirm is Confirm.PRINTED
        if confirm_printed and not labels:
            return self._outcome(
                request,
                JobStatus.REJECTED,
                error="x-zebra-confirm printed needs complete ZPL formats (^XA…^XZ) "
                "whose labels the printer reports",
            )
        self.labels_sent += labels
        try:
            await self.socket.send_chunked(
                request.body, self.settings.ws_send_chunk_size
            )
        except ChannelClosed:
            self.labels_sent -= labels
            raise
        if not confirm_printed:
            return self._outcome(request, JobStatus.DELIVERED)
        target = self.labels_sent
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.labels_completed >= target:
            waiter.set_result(None)
        entry = (target, waiter)
        self._printed.append(entry)
        try:
            async with asyncio.timeout(request.timeout):
                await waiter
        except TimeoutError:
            return self._outcome(
                request,
                JobStatus.TIMEOUT,
                error=f"the printer did not report the job's {labels} label(s) printed "
                f"within {request.timeout:g} s",
            )
        except ChannelClosed:
            return self._outcome(
                request,
                JobStatus.UNCERTAIN,
                error="the raw channel closed after the job was written and before the "
                "printer reported it printed; it may or may not have printed and is "
                "not resent",
            )
        finally:
            self._printed.remove(entry)
        return self._outcome(request, JobStatus.PRINTED)

    async def _timed_out(self, request: Request) -> Outcome:
        protocol = self.socket.protocol
        if request.type is RequestType.QUERY:
            partial = protocol.finish_query()
            if (
                partial
                and request.response is not None
                and request.response.kind == "idle"
            ):
                return self._outcome(request, JobStatus.OK, body=partial)
            error = (
                f"the printer did not complete its answer within {request.timeout:g} s "
                f"({len(partial)} bytes received)"
            )
            return self._outcome(request, JobStatus.TIMEOUT, error=error)
        protocol.abandon_sgd()
        # A late reply would pair with the next request: start over on a new socket.
        await self.socket.close(CloseCode.GOING_AWAY, "no SGD reply in time")
        return self._outcome(
            request,
            JobStatus.TIMEOUT,
            error=f"the printer did not answer the SGD request within {request.timeout:g} s",
        )

    def _outcome(
        self,
        request: Request,
        status: JobStatus,
        *,
        body: bytes = b"",
        error: str | None = None,
    ) -> Outcome:
        return Outcome(
            job_id=request.job_id,
            printer_serial=self.printer_serial,
            status=status,
            correlation_id=request.correlation_id,
            error=error,
            body=body,
        )
