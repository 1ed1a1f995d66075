"""The WebLink server: the only gateway module that imports ``websockets``.

- The 101 selects ``v1.weblink.zebra.com`` and carries ``Content-Length: 0`` (some
  firmware drops the handshake without it; ``docs/weblink.md`` §1.4).
- ``/healthz`` (the event loop answers) and ``/readyz`` (RabbitMQ connected, not
  draining) answer plain HTTP on the same port; any other path is a printer, unless
  ``ws_path`` restricts it.
- Each socket's first message says what it is; the matching session serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import time
import uuid
import weakref
from typing import Any

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from broker.errors import BrokerUnavailable
from broker.errors import ChannelClosed as ChannelClosedError
from broker.logs import bound
from gateway.auth import Principal, server_tls_context
from gateway.bridge import RequestSession
from gateway.bus import Bus
from gateway.deadletters import handle_dead_letter
from gateway.guard import Guard, Refusal
from gateway.keepalive import PrinterConnection, QuietPinger
from gateway.main_channel import MainSession
from gateway.metrics import Metrics
from gateway.registry import Registry
from gateway.settings import GatewaySettings
from gateway.socket import PrinterSocket
from gateway.weblink import SUBPROTOCOL, ChannelKind, ChannelProtocol, CloseCode, Role
from gateway.weblink.events import Event, PrinterIdentified, ProtocolViolation

log = structlog.get_logger(__name__)

HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")


class WebSocketTransport:
    """Adapts a websockets connection to ``gateway.socket.Transport``."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self._closed = False
        #: The task waiting in :meth:`recv`, if one is.
        self._reader: asyncio.Task[Any] | None = None
        self._interrupted = False

    async def recv(self) -> bytes | str:
        """Return the next message; stop at once when the gateway closes the socket.

        The close handshake with a half-open peer lasts until ``ws_close_timeout``;
        the session must not wait for it, so :meth:`close` interrupts a waiting
        ``recv`` by cancelling its task (websockets documents that cancelling
        ``recv`` loses no data). Only that cancellation is turned into
        ``ChannelClosed``; any other one goes on as a cancellation.
        """
        if self._closed:
            raise ChannelClosedError("closed by the gateway")
        task = asyncio.current_task()
        self._reader = task
        try:
            return await self.connection.recv()
        except ConnectionClosed as exc:
            raise ChannelClosedError(str(exc)) from exc
        except asyncio.CancelledError:
            if self._interrupted and task is not None:
                self._interrupted = False
                if task.uncancel() == 0:
                    raise ChannelClosedError("closed by the gateway") from None
            raise
        finally:
            self._reader = None

    async def send(self, data: bytes) -> None:
        try:
            await self.connection.send(data)
        except ConnectionClosed as exc:
            raise ChannelClosedError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        if not self._closed:
            self._closed = True
            reader = self._reader
            if reader is not None and reader is not asyncio.current_task():
                self._interrupted = True
                reader.cancel()
        await self.connection.close(code, reason[:120])

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    @property
    def remote_address(self) -> str:
        address = self.connection.remote_address
        return f"{address[0]}:{address[1]}" if address else "?"


class Gateway:
    """One gateway replica: the WebLink server, its sessions and its bus."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.replica)
        self.bus = Bus(settings, self.metrics)
        self._socket_channels: dict[uuid.UUID, str] = {}
        self.registry = Registry(self.bus)
        self.guard = Guard(settings)  # refuses to run open unless told to
        self._principals: weakref.WeakKeyDictionary[ServerConnection, Principal] = (
            weakref.WeakKeyDictionary()
        )
        self.server: Server | None = None
        self._credentials_watch: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.draining = False
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def is_ready(self) -> bool:
        return not self.readiness_problems()

    def readiness_problems(self) -> list[str]:
        """Why this replica should not get new printers now (empty when ready).

        Consumers are counted, not assumed: a printer channel that lost its
        consumer and has not got it back makes the replica unready.
        """
        problems = []
        if self.draining:
            problems.append("draining")
        if not self.bus.is_ready.is_set():
            problems.append("no RabbitMQ connection")
        missing = self.registry.missing_consumers()
        if missing:
            problems.append(f"{missing} printer channel(s) without a consumer")
        return problems

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Connect to RabbitMQ, then listen for printers."""
        await self.bus.start(
            on_control=self.registry.handle_control,
            on_dead_letter=lambda delivery: handle_dead_letter(self.bus, delivery),
            on_connection_lost=self._broker_lost,
            on_reconnected=self.registry.restore,
        )
        self.registry.start_heartbeats(self.settings.replica_heartbeat_interval)
        self.guard.log_start()
        self._credentials_watch = asyncio.get_running_loop().create_task(
            self.guard.watch_credentials()
        )
        self.server = await serve(
            self._handle,
            self.settings.host,
            self.settings.port,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            process_request=self._process_request,
            process_response=self._process_response,
            compression=None,
            # Our own keep-alive pings only quiet sockets (gateway/keepalive.py).
            create_connection=PrinterConnection,
            ping_interval=None,
            close_timeout=self.settings.ws_close_timeout,
            ssl=server_tls_context(
                self.settings.tls_certfile, self.settings.tls_keyfile
            ),
            max_size=self.settings.ws_max_message_size,
            open_timeout=self.settings.identify_timeout,
        )
        if self.settings.ws_ping_interval is not None:
            pinger = QuietPinger(
                self.settings.ws_ping_interval,
                self.settings.ws_ping_timeout or self.settings.ws_ping_interval,
            )
            server = self.server
            self._keepalive = asyncio.get_running_loop().create_task(
                pinger.run(lambda: server.connections)
            )
        log.info(
            "gateway.listening",
            host=self.settings.host,
            port=self.port,
            path=self.settings.ws_path or "any",
            replica=self.settings.replica,
        )

    async def stop(self) -> None:
        """Drain and stop, in the order that loses and duplicates nothing.

        1. Fail readiness, so load balancers stop sending printers here.
        2. Stop accepting connections.
        3. Stop consuming: requests in progress finish (up to ``shutdown_timeout``);
           the rest stay in their queues for the replicas the printers move to.
        4. Close printer sockets with 1001 in batches spread over
           ``shutdown_grace_period``, so the other replicas are not stormed.
        5. Leave RabbitMQ (anything still unacked goes back to its queue).
        """
        self.draining = True
        if self._credentials_watch is not None:
            self._credentials_watch.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        await self.registry.stop_heartbeats()
        printers = self.registry.printer_count
        log.info("gateway.draining", printers=printers)
        if self.server is not None:
            self.server.close(close_connections=False)
        sessions = self.registry.request_sessions()
        try:
            async with asyncio.timeout(self.settings.shutdown_timeout):
                await asyncio.gather(*(s.stop_consuming() for s in sessions))
        except TimeoutError:
            log.warning("gateway.drain_timeout", requests_in_progress=len(sessions))
        await self.registry.close_in_batches(
            CloseCode.GOING_AWAY,
            "gateway shutting down",
            period=self.settings.shutdown_grace_period,
        )
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_timeout):
                    await self.server.wait_closed()
        if self._sessions:
            _, stuck = await asyncio.wait(
                set(self._sessions), timeout=self.settings.shutdown_timeout
            )
            for task in stuck:
                task.cancel()
            if stuck:
                log.warning("gateway.sessions_cancelled", sessions=len(stuck))
                await asyncio.gather(*stuck, return_exceptions=True)
        await self.bus.close()
        log.info("gateway.stopped", printers=printers)

    def _broker_lost(self) -> None:
        # Printer sockets stay open: requests wait in their queues, consumers and
        # bindings come back when the bus reconnects (Registry.restore).
        log.warning("gateway.not_ready", reason="no RabbitMQ connection")

    # -- handshake -------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            problems = self.readiness_problems()
            if not problems:
                return connection.respond(http.HTTPStatus.OK, "ready\n")
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE,
                "not ready: " + "; ".join(problems) + "\n",
            )
        if path == "/metrics":
            body, content_type = self.metrics.render()
            response = connection.respond(http.HTTPStatus.OK, "")
            del response.headers["Content-Type"]
            del response.headers["Content-Length"]
            response.headers["Content-Type"] = content_type
            response.headers["Content-Length"] = str(len(body))
            response.body = body
            return response
        if self.settings.ws_path is not None and path != self.settings.ws_path:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown path\n")
        peer = connection.remote_address[0] if connection.remote_address else None
        client = self.guard.client_address(
            peer, request.headers.get_all("X-Forwarded-For")
        )
        refusal = self.guard.rate_limited(client)
        # Cheap checks only: counting consumers walks every session (that is
        # /readyz's job), and a storm of handshakes must not cost O(n) each.
        accepting = self.bus.is_ready.is_set() and not self.draining
        if refusal is None and not accepting:
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "gateway not ready, retry later\n"
            )
        if refusal is None:
            result = await self.guard.authenticate(request.headers, peer, client)
            if isinstance(result, Refusal):
                refusal = result
            else:
                self._principals[connection] = result
        if refusal is None:
            return None
        response = connection.respond(refusal.status, refusal.body)
        for name, value in refusal.headers:
            response.headers[name] = value
        return response

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if request.path.split("?", 1)[0] not in HEALTH_PATHS:
            self.metrics.handshake(
                response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS
            )
        if response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS:
            # Zebra's servlet sends it; some firmware drops a 101 without it.
            response.headers["Content-Length"] = "0"
        return None

    # -- sockets ---------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve_socket(connection)
        except ChannelClosedError:
            pass  # the printer went away mid-setup; its session already cleaned up
        except BrokerUnavailable as exc:
            log.warning("session.broker_unavailable", error=str(exc))
            await connection.close(
                int(CloseCode.GOING_AWAY), "message broker unavailable"
            )
        except Exception:
            log.exception("session.crashed")
            await connection.close(int(CloseCode.INTERNAL_ERROR), "internal error")
        finally:
            self._sessions.discard(task)
            channel = self._socket_channels.pop(connection.id, None)
            if channel is not None:
                self.metrics.socket_closed(channel, connection.close_code)

    async def _serve_socket(self, connection: ServerConnection) -> None:
        # The handshake's headers (~4 KiB per socket, kept by websockets for the
        # connection's life) have served their purpose: _process_request read them.
        # The request and response objects themselves stay: websockets uses them.
        if connection.request is not None:
            connection.request.headers.clear()
        if connection.response is not None:
            connection.response.headers.clear()
        transport = WebSocketTransport(connection)
        protocol = ChannelProtocol(
            Role.GATEWAY, max_buffer_size=self.settings.ws_max_buffer_size
        )
        socket = PrinterSocket(transport, protocol)
        first = await self._identify(socket)
        if first is None:
            return
        identified, events = first
        if self.draining:
            # Identified after the drain closed the others: nobody would close it.
            await socket.close(CloseCode.GOING_AWAY, "gateway shutting down")
            return
        admitted = self.guard.admit(
            self._principals.get(connection),
            identified.printer_serial,
            identified.kind.value,
            socket.transport.remote_address,
        )
        if isinstance(admitted, str):
            await socket.close(CloseCode.POLICY_VIOLATION, admitted)
            return
        with admitted:
            await self._run_session(connection, socket, identified, events)

    async def _run_session(
        self,
        connection: ServerConnection,
        socket: PrinterSocket,
        identified: PrinterIdentified,
        events: list[Event],
    ) -> None:
        socket.identified_at = time.time()
        self._socket_channels[connection.id] = identified.kind.value
        self.metrics.socket_opened(identified.kind.value)
        session: MainSession | RequestSession
        if identified.kind is ChannelKind.MAIN:
            session = MainSession(
                socket, bus=self.bus, registry=self.registry, settings=self.settings
            )
        else:
            session = RequestSession(
                socket, bus=self.bus, registry=self.registry, settings=self.settings
            )
        with bound(
            printer_serial=identified.printer_serial, channel=identified.kind.value
        ):
            await session.run(events)

    async def _identify(
        self, socket: PrinterSocket
    ) -> tuple[PrinterIdentified, list[Event]] | None:
        """Read until the socket names its printer; close it on anything else."""
        try:
            async with asyncio.timeout(self.settings.identify_timeout):
                async for events in socket.events():
                    for index, event in enumerate(events):
                        if isinstance(event, PrinterIdentified):
                            return event, events[index + 1 :]
                        if isinstance(event, ProtocolViolation):
                            log.warning(
                                "channel.rejected",
                                reason=event.reason,
                                close_code=int(event.close_code),
                                address=socket.transport.remote_address,
                            )
                            await socket.close(event.close_code, event.reason)
                            return None
        except TimeoutError:
            log.warning(
                "channel.rejected",
                reason="no identification in time",
                address=socket.transport.remote_address,
            )
            await socket.close(
                CloseCode.POLICY_VIOLATION,
                f"no discovery or channel hello within {self.settings.identify_timeout:g} s",
            )
        return None


__all__ = ["Gateway", "WebSocketTransport"]
