"""The main channel of one printer on this replica.

On identification it claims the printer (older sockets anywhere close with 1001),
declares the printer's queues, publishes ``online``, asks the printer for its raw
channel and configures alerts. It then keeps the printer's secondary channels open
where they are needed, wherever they land:

- raw: always; asked again whenever the printer's raw sockets are all gone;
- config: on demand, when an SGD request is waiting (a copy of every SGD request
  reaches the replica that holds the main socket), and again when the printer closes
  it (code 1000 after a reply, a known firmware behaviour) while requests remain.

It learns where channels open and close from control messages, so it works the same
whether those sockets are on this replica or another one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from broker.errors import BrokerUnavailable, ChannelClosed
from broker.schemas import (
    HOLD_CONDITIONS,
    PrinterAlert,
    PrinterHold,
    PrinterOffline,
    PrinterOnline,
    PrinterPresence,
)
from broker.topology import Channel
from gateway.control import ControlMessage, ControlOp
from gateway.session import SocketSession
from gateway.signals import Mailbox
from gateway.socket import PrinterSocket
from gateway.weblink import ChannelKind, Discovery
from gateway.weblink.events import (
    AlertReceived,
    Event,
)

if TYPE_CHECKING:
    from gateway.bus import Bus
    from gateway.registry import Registry
    from gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

#: An action for the main session's worker: tell raw channels the hold state.
ANNOUNCE_HOLD = "announce_hold"
#: The alert condition of a finished label (what ``confirm=printed`` counts).
COMPLETION_CONDITION = "pq_job_completed"
#: Longest wait between attempts to get a channel the printer does not open.
MAX_REOPEN_DELAY = 300.0


class ChannelTracker:
    """What the main session knows about one kind of secondary channel.

    ``open_sockets`` holds the ids of that kind's sockets known to be open anywhere;
    ``opening`` is set between sending ``open`` and hearing that a socket opened.
    """

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        #: Socket id -> the replica that holds it.
        self.open_sockets: dict[str, str] = {}
        self.opening: asyncio.TimerHandle | None = None
        self.retry: asyncio.TimerHandle | None = None
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return bool(self.open_sockets)

    def cancel_timers(self) -> None:
        for handle in (self.opening, self.retry):
            if handle is not None:
                handle.cancel()
        self.opening = self.retry = None

    @property
    def next_delay(self) -> float:
        return min(MAX_REOPEN_DELAY, 2.0 ** min(self.failures, 10))


class MainSession(SocketSession):
    """One printer's main socket on this replica."""

    def __init__(
        self,
        socket: PrinterSocket,
        *,
        bus: Bus,
        registry: Registry,
        settings: GatewaySettings,
    ) -> None:
        super().__init__(
            socket, bus=bus, registry=registry, settings=settings, channel="main"
        )
        self.discovery: Discovery | None = socket.protocol.discovery
        self.since = datetime.now(UTC)
        self.trackers = {
            ChannelKind.RAW: ChannelTracker(ChannelKind.RAW),
            ChannelKind.CONFIG: ChannelTracker(ChannelKind.CONFIG),
        }
        self._actions: Mailbox[ChannelKind | str | None] = Mailbox()
        #: Conditions the printer reported that hold its jobs (``paper_out``...).
        self.hold: set[str] = set()

    def presence(self) -> PrinterPresence:
        d = self.discovery
        return PrinterPresence(
            printer=self.printer_serial,
            replica=self.bus.replica,
            since=self.since,
            model=d.product_name if d else None,
            firmware=d.firmware if d else None,
            system_name=d.system_name if d else None,
            ip=d.ip if d else None,
            mac=d.mac if d else None,
            held=sorted(self.hold) or None,
        )

    # -- life ------------------------------------------------------------------

    async def run(self, first_events: list[Event]) -> None:
        """Serve the main socket until it closes."""
        serial = self.printer_serial
        await self.registry.acquire(serial, self)
        try:
            online = False
            try:
                await self._start()
                self.bus.metrics.printer_online()
                online = True
                async with asyncio.TaskGroup() as group:
                    actions = group.create_task(self._act())
                    await self._handle(first_events)
                    async for events in self.socket.events():
                        await self._handle(events)
                    actions.cancel()
            finally:
                if online:
                    self.bus.metrics.printer_offline()
                for tracker in self.trackers.values():
                    tracker.cancel_timers()
                await self.registry.remove_main(self)
                await self._publish_offline()
        finally:
            await self.registry.release(serial, self)

    async def _start(self) -> None:
        """Claim the printer, make its queues routable, ask for its raw channel.

        The queues exist (and SGD requests wake this session) before the printer
        is asked for its raw channel: once that is open, requests are routable.
        """
        serial = self.printer_serial
        claim = ControlMessage(
            op=ControlOp.MAIN_CLAIMED,
            printer_serial=serial,
            replica=self.bus.replica,
            socket_id=self.socket.id,
            since=self.socket.identified_at,
        )
        await self.registry.send_control(claim)
        raw_spec, raw_key = self.bus.printer_routing(serial, Channel.RAW)
        _, config_waiting = await asyncio.gather(
            self.bus.declare_printer_queue(raw_spec, raw_key),
            self._config_waiting(),
        )
        self._request(ChannelKind.RAW)
        self.socket.protocol.configure_alerts()
        if config_waiting:
            self._request(ChannelKind.CONFIG)
        await self.socket.flush()
        await self._publish_online()

    async def _config_waiting(self) -> int:
        """Listen for SGD requests, then count those already waiting (none missed).

        A request published between the two is both counted and heard. (For a
        printer never seen before, one published in the instant between the two,
        before the queue exists, is taken by this replica's wake-up binding alone
        and lost: publish to new printers after ``provision`` or their ``online``.)
        """
        await self.registry.add_main(self)
        spec, key = self.bus.printer_routing(self.printer_serial, Channel.CONFIG)
        waiting, _ = await self.bus.declare_printer_queue(spec, key)
        return waiting

    async def _publish_online(self) -> None:
        serial = self.printer_serial
        d = self.discovery
        self.log.info(
            "printer.online",
            model=d.product_name if d else None,
            firmware=d.firmware if d else None,
            address=self.socket.transport.remote_address,
        )
        await self.bus.publish_event(
            self.bus.topology.online_key(serial),
            PrinterOnline(
                printer=serial,
                replica=self.bus.replica,
                model=d.product_name if d else None,
                firmware=d.firmware if d else None,
                system_name=d.system_name if d else None,
                ip=d.ip if d else None,
                mac=d.mac if d else None,
                since=self.since,
            ),
            confirm=False,
        )

    async def _publish_offline(self) -> None:
        code = self.socket.close_code
        self.log.info("printer.offline", close_code=code)
        try:
            await self.bus.publish_event(
                self.bus.topology.offline_key(self.printer_serial),
                PrinterOffline(
                    printer=self.printer_serial,
                    replica=self.bus.replica,
                    close_code=code,
                    close_reason=self.socket.protocol.close_reason,
                ),
                confirm=False,
            )
        except BrokerUnavailable as exc:
            self.log.warning("event.publish_failed", kind="offline", error=str(exc))

    async def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, AlertReceived):
                await publish_alert(
                    self.registry, self.socket, event, remote=self._raw_elsewhere()
                )
                await self._update_hold(event.alert.condition, event.alert.state)
            else:
                await self.handle_common(event)

    def _raw_elsewhere(self) -> bool:
        """Whether a raw socket of this printer may be on another replica."""
        holders = self.trackers[ChannelKind.RAW].open_sockets.values()
        return not holders or any(r != self.bus.replica for r in holders)

    async def _update_hold(self, condition: str, state: str) -> None:
        """Hold jobs while the printer reports a condition that would spoil a label."""
        if condition not in HOLD_CONDITIONS:
            return
        before = set(self.hold)
        if state == "clear":
            self.hold.discard(condition)
        else:
            self.hold.add(condition)
        if self.hold != before:
            self.log.info("printer.hold", conditions=sorted(self.hold))
            await self._announce_hold(event=True)

    async def _announce_hold(self, *, event: bool) -> None:
        """Tell the printer's raw channels (wherever they are) what holds its jobs."""
        serial = self.printer_serial
        conditions = sorted(self.hold)
        notice = ControlMessage(
            op=ControlOp.HOLD,
            printer_serial=serial,
            replica=self.bus.replica,
            socket_id=self.socket.id,
            since=self.socket.identified_at,
            conditions=conditions,
        )
        try:
            await self.registry.send_control(notice)
            if event:
                await self.bus.publish_event(
                    self.bus.topology.hold_key(serial),
                    PrinterHold(
                        printer=serial,
                        replica=self.bus.replica,
                        held=bool(conditions),
                        conditions=conditions,
                    ),
                    confirm=False,
                )
        except BrokerUnavailable as exc:
            self.log.warning("event.publish_failed", kind="hold", error=str(exc))

    # -- secondary channels ------------------------------------------------------

    def on_config_request(self) -> None:
        """An SGD request was published for this printer."""
        if not self.trackers[ChannelKind.CONFIG].is_open:
            self._actions.put_nowait(ChannelKind.CONFIG)

    def on_channel_notice(self, message: ControlMessage) -> None:
        """A secondary socket of this printer opened or closed somewhere."""
        try:
            kind = ChannelKind(message.kind or "")
        except ValueError:
            return
        tracker = self.trackers.get(kind)
        if tracker is None:
            return
        if message.op is ControlOp.CHANNEL_OPENED:
            if message.since < self.socket.identified_at - 1.0:
                # A socket of an older main generation: it is being closed.
                return
            tracker.open_sockets[message.socket_id] = message.replica
            if kind is ChannelKind.RAW and self.hold:
                self._actions.put_nowait(ANNOUNCE_HOLD)  # a new raw socket must know
            tracker.failures = 0
            tracker.cancel_timers()
        elif message.op is ControlOp.CHANNEL_CLOSED:
            if message.socket_id not in tracker.open_sockets:
                return
            del tracker.open_sockets[message.socket_id]
            if not tracker.is_open:
                self._actions.put_nowait(kind)

    def on_replica_gone(self, replica: str) -> None:
        """A replica died: its sockets of this printer are gone, unannounced."""
        for kind, tracker in self.trackers.items():
            lost = [
                sid for sid, holder in tracker.open_sockets.items() if holder == replica
            ]
            for socket_id in lost:
                del tracker.open_sockets[socket_id]
            if lost:
                self.log.warning(
                    "channel.lost_with_replica", kind=kind.value, replica=replica
                )
                if not tracker.is_open:
                    self._actions.put_nowait(kind)

    async def _act(self) -> None:
        """Carry out channel requests one at a time (the only writer besides _start)."""
        while True:
            kind = await self._actions.get()
            if kind is None:
                return
            if kind == ANNOUNCE_HOLD:
                await self._announce_hold(event=False)
                continue
            assert isinstance(kind, ChannelKind)
            tracker = self.trackers[kind]
            if tracker.is_open or tracker.opening is not None:
                continue
            if kind is ChannelKind.CONFIG:
                queue = self.bus.topology.printer_queue(
                    self.printer_serial, Channel.CONFIG
                )
                try:
                    if not await self.bus.queue_message_count(queue):
                        continue
                except BrokerUnavailable:
                    continue
            self._request(kind)
            try:
                await self.socket.flush()
            except ChannelClosed:
                return

    def _request(self, kind: ChannelKind) -> None:
        """Ask the printer to open a channel, with a deadline for it to appear."""
        tracker = self.trackers[kind]
        if tracker.retry is not None:
            tracker.retry.cancel()
            tracker.retry = None
        self.socket.protocol.request_channel(kind)
        loop = asyncio.get_running_loop()
        tracker.opening = loop.call_later(
            self.settings.channel_open_timeout, self._open_timed_out, tracker
        )
        self.log.debug("channel.requested", kind=kind.value)

    def _open_timed_out(self, tracker: ChannelTracker) -> None:
        tracker.opening = None
        tracker.failures += 1
        delay = tracker.next_delay
        self.log.warning(
            "channel.open_timeout",
            kind=tracker.kind.value,
            failures=tracker.failures,
            retry_in=delay,
        )
        tracker.retry = asyncio.get_running_loop().call_later(
            delay, self._actions.put_nowait, tracker.kind
        )


async def publish_alert(
    registry: Registry, socket: PrinterSocket, event: AlertReceived, *, remote: bool
) -> None:
    """Publish a printer alert as ``printer.<serial>.alert.<condition>``.

    A job completion (``PQ JOB COMPLETED``) also reaches the printer's raw sessions,
    which count them for ``x-zebra-confirm: printed``: this replica's at once, and
    other replicas' through the control exchange when ``remote`` (a raw socket of the
    printer may be elsewhere).
    """
    bus = registry.bus
    alert = event.alert
    printer_serial = socket.printer_serial
    state = "clear" if alert.state == "clear" else "set"
    try:
        if alert.condition == COMPLETION_CONDITION:
            notice = ControlMessage(
                op=ControlOp.ALERT,
                printer_serial=printer_serial,
                replica=bus.replica,
                socket_id=socket.id,
                since=socket.identified_at,
                condition=alert.condition,
                state=state,
            )
            await registry.send_control(notice, remote=remote)
        await bus.publish_event(
            bus.topology.alert_key(printer_serial, alert.condition),
            PrinterAlert(
                printer=printer_serial,
                replica=bus.replica,
                condition=alert.condition,
                condition_name=alert.condition_name,
                state=state,
                setting_name=alert.setting_name,
                setting_value=alert.setting_value,
                printer_time=alert.printer_time,
            ),
            confirm=False,
        )
    except BrokerUnavailable as exc:
        log.warning("event.publish_failed", kind="alert", error=str(exc))
