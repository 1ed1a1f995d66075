"""This replica's printer sockets, by serial, and the routing of control messages.

A printer's sockets may be spread over several replicas, so the registry only knows
what *this* replica holds. While it holds any socket of a printer, its control queue
is bound with that printer's serial; while it holds the printer's main socket, it is
also bound to the printer's config requests (a copy of each SGD request is the signal
to open a config channel).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from broker.errors import BrokerUnavailable
from broker.schemas import (
    PRESENCE_QUERY_TYPE,
    PRESENCE_REPLY_TYPE,
    PresenceReply,
)
from broker.topology import Channel
from gateway.bridge import RequestSession
from gateway.bus import Bus, Delivery
from gateway.control import ALL_REPLICAS_KEY, ControlMessage, ControlOp
from gateway.weblink import CloseCode

if TYPE_CHECKING:
    from gateway.main_channel import MainSession

log = structlog.get_logger(__name__)

#: Requests whose lost attempts are remembered (the oldest are forgotten first).
MAX_TRACKED_ATTEMPTS = 10_000
#: Shortest pause between two batches of sockets closed on shutdown.
BATCH_INTERVAL = 0.1


class Session(Protocol):
    """Anything that holds one printer socket on this replica."""

    @property
    def socket_id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def identified_at(self) -> float: ...

    async def close(self, code: CloseCode, reason: str) -> None: ...

    def on_printer_alert(self, condition: str, state: str) -> None: ...

    def on_channel_notice(self, message: ControlMessage) -> None: ...

    def on_hold(self, conditions: list[str]) -> None: ...


class Registry:
    """Sessions on this replica, keyed by printer serial."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._sessions: dict[str, set[Session]] = {}
        self._mains: dict[str, list[MainSession]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Other replicas heard from: name -> (loop time last heard, their interval).
        self._replicas: dict[str, tuple[float, float]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._interval = 2.0
        #: Job id -> times a printer channel was lost while it was in progress here.
        self._attempts: OrderedDict[str, int] = OrderedDict()

    # -- membership ------------------------------------------------------------

    def _lock(self, printer_serial: str) -> asyncio.Lock:
        return self._locks.setdefault(printer_serial, asyncio.Lock())

    async def acquire(self, printer_serial: str, session: Session) -> None:
        """Add a session; bind the control queue for its printer if it is the first."""
        async with self._lock(printer_serial):
            sessions = self._sessions.setdefault(printer_serial, set())
            first = not sessions
            sessions.add(session)
            if first:
                try:
                    await self.bus.bind_control(printer_serial)
                except BaseException:
                    sessions.discard(session)
                    if not sessions:
                        del self._sessions[printer_serial]
                    raise

    async def release(self, printer_serial: str, session: Session) -> None:
        """Remove a session; unbind the printer's control key if it was the last."""
        async with self._lock(printer_serial):
            sessions = self._sessions.get(printer_serial)
            if sessions is None or session not in sessions:
                return
            sessions.discard(session)
            if sessions:
                return
            del self._sessions[printer_serial]
            # If the connection is gone, so is the binding.
            with contextlib.suppress(BrokerUnavailable):
                await self.bus.unbind_control(printer_serial)
        if (
            printer_serial not in self._sessions
            and not self._lock(printer_serial).locked()
        ):
            self._locks.pop(printer_serial, None)

    async def add_main(self, main: MainSession) -> None:
        """Register a main session (after :meth:`acquire`) and listen for SGD requests."""
        serial = main.printer_serial
        mains = self._mains.setdefault(serial, [])
        mains.append(main)
        if len(mains) == 1:
            await self.bus.bind_control(
                self.bus.topology.request_key(serial, Channel.CONFIG), wakeup=True
            )

    async def remove_main(self, main: MainSession) -> None:
        serial = main.printer_serial
        mains = self._mains.get(serial, [])
        if main not in mains:
            return
        mains.remove(main)
        if not mains:
            del self._mains[serial]
            with contextlib.suppress(BrokerUnavailable):
                await self.bus.unbind_control(
                    self.bus.topology.request_key(serial, Channel.CONFIG), wakeup=True
                )

    def main_for(self, printer_serial: str) -> MainSession | None:
        """The newest main session of a printer on this replica."""
        mains = self._mains.get(printer_serial)
        return mains[-1] if mains else None

    @property
    def mains(self) -> Iterable[MainSession]:
        return [mains[-1] for mains in self._mains.values() if mains]

    def all_sessions(self) -> list[Session]:
        return [s for sessions in self._sessions.values() for s in sessions]

    @property
    def printer_count(self) -> int:
        return len(self._mains)

    # -- control messages --------------------------------------------------------

    async def handle_control(self, delivery: Delivery) -> None:
        """Route one message from this replica's control queue."""
        if delivery.message_type == PRESENCE_QUERY_TYPE:
            await self._answer_presence(delivery)
            return
        if delivery.exchange == self.bus.topology.requests_exchange:
            parsed = self.bus.topology.parse_request_key(delivery.routing_key)
            main = self.main_for(parsed[0]) if parsed else None
            if main is not None:
                main.on_config_request()
            return
        if delivery.app_id == self.bus.replica:
            return  # our own message: delivered in-process when it was sent
        try:
            message = ControlMessage.decode(delivery.body)
        except ValueError as exc:
            log.warning("control.malformed", error=str(exc))
            return
        # Any message proves its sender alive: a replica that opened a channel of one
        # of our printers and died before its first heartbeat is still missed.
        self._heard_from(message)
        if message.op in (ControlOp.REPLICA_ALIVE, ControlOp.REPLICA_LEAVING):
            return
        self._deliver(message)

    async def send_control(
        self, message: ControlMessage, *, local: bool = True, remote: bool = True
    ) -> None:
        """Tell a printer's sessions, here at once and (``remote``) on other replicas.

        This replica's sessions hear it before this returns, in the order sent, so
        a main socket learns in microseconds that its raw channel opened next to it;
        the copy through RabbitMQ is for the replicas holding its other sockets.

        Raises:
            BrokerUnavailable: the copy for other replicas could not be sent.
        """
        if local:
            self._deliver(message)
        if remote:
            await self.bus.publish_control(message.printer_serial, message.encode())

    def _deliver(self, message: ControlMessage) -> None:
        """Hand a control message to this replica's sessions of its printer."""
        sessions = list(self._sessions.get(message.printer_serial, ()))
        if message.op is ControlOp.MAIN_CLAIMED:
            self._close_older(message, sessions)
        elif message.op is ControlOp.CHANNEL_CLAIMED:
            same_kind = [s for s in sessions if s.kind == message.kind]
            self._close_older(message, same_kind)
        elif message.op is ControlOp.HOLD:
            for session in sessions:
                session.on_hold(message.conditions or [])
        elif message.op is ControlOp.ALERT:
            for session in sessions:
                session.on_printer_alert(message.condition or "", message.state or "")
        else:
            for session in sessions:
                session.on_channel_notice(message)

    def _close_older(self, claim: ControlMessage, sessions: list[Session]) -> None:
        """Newest wins: close the sessions identified before the claim (1001).

        A main claim covers every socket of the printer (Zebra's servlet closes the
        old main and all its channels); a channel claim covers that kind only.
        """
        for session in sessions:
            if session.socket_id == claim.socket_id:
                continue
            if session.identified_at < claim.since:
                log.info(
                    "session.superseded",
                    printer_serial=claim.printer_serial,
                    socket_id=session.socket_id,
                    by_replica=claim.replica,
                )
                self._spawn(
                    session.close(
                        CloseCode.GOING_AWAY, "a newer main connection of this printer"
                    )
                )

    async def _answer_presence(self, delivery: Delivery) -> None:
        if not delivery.reply_to:
            return
        reply = PresenceReply(
            replica=self.bus.replica,
            printers=[main.presence() for main in self.mains],
        )
        try:
            await self.bus.publish_reply(
                delivery.reply_to,
                reply.model_dump_json(by_alias=True).encode(),
                message_type=PRESENCE_REPLY_TYPE,
                correlation_id=delivery.correlation_id,
                content_type="application/json",
            )
        except BrokerUnavailable as exc:
            log.warning("presence.reply_failed", error=str(exc))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def count_attempt(self, job_key: str) -> int:
        """Count one more lost attempt at a request; return the total (bounded memory)."""
        attempts = self._attempts.pop(job_key, 0) + 1
        self._attempts[job_key] = attempts
        while len(self._attempts) > MAX_TRACKED_ATTEMPTS:
            self._attempts.popitem(last=False)
        return attempts

    def forget_attempts(self, job_key: str) -> None:
        self._attempts.pop(job_key, None)

    # -- replica liveness -----------------------------------------------------------

    def start_heartbeats(self, interval: float) -> None:
        """Tell the other replicas we live, and notice when one of them dies.

        A replica killed outright cannot announce that its printer sockets are gone;
        the replicas holding those printers' main sockets learn it from the silence
        and ask the printers for their channels again. One timer per replica.
        """
        self._interval = interval
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(interval))

    async def stop_heartbeats(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._send_liveness(ControlOp.REPLICA_LEAVING, 0.0)

    async def _beat(self, interval: float) -> None:
        while True:
            await self._send_liveness(ControlOp.REPLICA_ALIVE, interval)
            self._bury_silent()
            await asyncio.sleep(interval)  # the heartbeat's own period

    async def _send_liveness(self, op: ControlOp, interval: float) -> None:
        message = ControlMessage(
            op=op,
            printer_serial="",
            replica=self.bus.replica,
            socket_id="",
            since=0.0,
            interval=interval,
        )
        with contextlib.suppress(BrokerUnavailable):
            await self.bus.publish_control(ALL_REPLICAS_KEY, message.encode())

    def _heard_from(self, message: ControlMessage) -> None:
        if message.replica == self.bus.replica:
            return
        if message.op is ControlOp.REPLICA_LEAVING:
            self._replicas.pop(message.replica, None)
            return
        now = asyncio.get_running_loop().time()
        if message.replica not in self._replicas:
            log.info("replica.seen", replica=message.replica)
        self._replicas[message.replica] = (now, message.interval or self._interval)

    def _bury_silent(self) -> None:
        """Replicas silent for three of their intervals are taken as dead."""
        if not self.bus.is_ready.is_set():
            return  # we hear nobody while we are cut off ourselves
        now = asyncio.get_running_loop().time()
        for replica, (heard, interval) in list(self._replicas.items()):
            if now - heard <= 3 * interval:
                continue
            del self._replicas[replica]
            log.warning(
                "replica.silent", replica=replica, silent_for=round(now - heard, 1)
            )
            for main in self.mains:
                main.on_replica_gone(replica)
            for session in self.request_sessions():
                session.on_replica_gone(replica)

    async def restore(self) -> None:
        """After a reconnect: bind the control queue again for every local printer."""
        for serial in list(self._sessions):
            with contextlib.suppress(BrokerUnavailable):
                await self.bus.bind_control(serial)
        for serial in list(self._mains):
            with contextlib.suppress(BrokerUnavailable):
                await self.bus.bind_control(
                    self.bus.topology.request_key(serial, Channel.CONFIG), wakeup=True
                )
                # SGD requests published while the binding was gone woke nobody:
                # the main session checks the config queue and asks for the
                # channel if any wait.
                main = self.main_for(serial)
                if main is not None:
                    main.on_config_request()
        log.info("registry.restored", printers=len(self._sessions))

    def request_sessions(self) -> list[RequestSession]:
        """This replica's raw and config sessions."""
        return [s for s in self.all_sessions() if isinstance(s, RequestSession)]

    def missing_consumers(self) -> int:
        """Printer channels that lost their consumer and have not got it back."""
        return sum(1 for s in self.request_sessions() if s.consumer_missing)

    async def close_in_batches(
        self, code: CloseCode, reason: str, *, period: float
    ) -> None:
        """Close every printer socket, in batches spread evenly over ``period`` s."""
        by_printer: dict[str, list[Session]] = {}
        for serial, sessions in self._sessions.items():
            by_printer[serial] = list(sessions)
        printers = list(by_printer.values())
        if not printers:
            return
        batches = max(1, min(len(printers), int(period / BATCH_INTERVAL)))
        size = -(-len(printers) // batches)
        for start in range(0, len(printers), size):
            if start:
                # Pacing between batches (not a wait for anything).
                await asyncio.sleep(period / batches)
            batch = [s for sessions in printers[start : start + size] for s in sessions]
            await asyncio.gather(
                *(s.close(code, reason) for s in batch), return_exceptions=True
            )
        log.info("registry.closed", printers=len(printers), batches=batches)
