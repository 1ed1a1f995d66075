"""``ChannelProtocol``: the sans-I/O state machine of one WebLink WebSocket.

One object per socket, for either side (``style.md`` §4, after websockets'
``Protocol``):

* input: :meth:`~ChannelProtocol.receive_message` once per WebSocket message and
  :meth:`~ChannelProtocol.receive_closed` when the socket is gone;
* output: :meth:`~ChannelProtocol.events_received` and
  :meth:`~ChannelProtocol.data_to_send`, each item one **binary** message
  (``weblink-protocol.md`` §2: printers only support binary frames);
* commands in between, which raise :class:`InvalidChannelState` when the side, channel
  kind or state does not allow them (a bug in the caller).

The core has no clock: hello, SGD-reply and query deadlines belong to the session,
which calls :meth:`~ChannelProtocol.abandon_sgd`, :meth:`~ChannelProtocol.finish_query`
or :meth:`~ChannelProtocol.close` when one expires. Bad input never raises: it becomes a
:class:`ProtocolViolation` event, the state moves to ``CLOSING`` and later input is
ignored; the session then closes the socket with ``close_code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.errors import InvalidChannelState
from gateway.weblink.alerts import parse_alert
from gateway.weblink.base import ChannelBase
from gateway.weblink.constants import (
    CHANNEL_NAMES,
    DEFAULT_ALERT_SPEC,
    ChannelKind,
    ChannelState,
    CloseCode,
    Role,
)
from gateway.weblink.events import (
    AlertReceived,
    Event,
    QueryAnswered,
    RawDataReceived,
    SgdReplyReceived,
    SgdRequestReceived,
    UnsolicitedMessage,
)
from gateway.weblink.framing import ResponseCollector
from gateway.weblink.jsonstream import JsonStreamError, decode_json
from gateway.weblink.messages import (
    HelloError,
    build_hello,
    identify,
    parse_server_message,
)
from gateway.weblink.sgd import encode_sgd_request

_GATEWAY, _PRINTER = Role.GATEWAY, Role.PRINTER
_MAIN, _RAW, _CONFIG = ChannelKind.MAIN, ChannelKind.RAW, ChannelKind.CONFIG
_ANY_KIND = (_MAIN, _RAW, _CONFIG)


class ChannelProtocol(ChannelBase):
    """The WebLink protocol on one WebSocket, as the gateway or as a printer.

    Construction arguments are those of :class:`ChannelBase`.
    """

    # -- input ----------------------------------------------------------------------

    def receive_message(self, data: bytes | str) -> None:
        """Process one WebSocket message from the peer; never raises on bad input.

        Args:
            data: The message payload; a ``str`` means the peer sent a text frame.
        """
        if self._state not in (ChannelState.AWAITING_HELLO, ChannelState.OPEN):
            return  # after a violation or close(), input is discarded
        if isinstance(data, str):
            # §2: WebLink only uses binary frames.
            self._violate(
                "text frames are not supported; WebLink uses binary frames",
                CloseCode.UNSUPPORTED_DATA,
            )
        elif self._state is ChannelState.AWAITING_HELLO:
            self._receive_hello(bytes(data))
        elif self._kind is _RAW:
            self._receive_raw(bytes(data))
        else:
            self._receive_json(bytes(data))

    # -- gateway commands -----------------------------------------------------------

    def request_channel(self, kind: ChannelKind) -> None:
        """Ask the printer to open a raw or config channel (main channel, §3).

        Raises:
            ValueError: ``kind`` is not RAW or CONFIG.
        """
        self._require("request_channel", _GATEWAY, _MAIN)
        if kind not in CHANNEL_NAMES:
            raise ValueError(
                f"only raw and config channels can be requested, not {kind}"
            )
        self._send_json({"open": CHANNEL_NAMES[kind]})

    def configure_alerts(self, spec: str = DEFAULT_ALERT_SPEC) -> None:
        """Send ``{"configure_alert": spec}`` on the main channel (§4.3)."""
        self._require("configure_alerts", _GATEWAY, _MAIN)
        self._send_json({"configure_alert": spec})

    def send_query(self, data: bytes, kind: str, frames: int = 0) -> None:
        """Send bytes on the raw channel and collect the answer under a framing (§6).

        Args:
            data: The query, e.g. ``b"~HS"``.
            kind: The answer framing (see :class:`ResponseCollector`).
            frames: For ``frames`` framing, the number of frames.

        Raises:
            InvalidChannelState: Not a gateway raw channel, not open, or a query is
                already pending (one at a time: answers carry no id).
            ValueError: Bad framing arguments.
        """
        self._require("send_query", _GATEWAY, _RAW)
        if self._query is not None:
            raise InvalidChannelState("send_query: a raw query is already pending")
        query = ResponseCollector(kind, frames, max_size=self.max_buffer_size)
        self._queue(data)
        self._query = query

    def finish_query(self) -> bytes:
        """End the pending query with whatever has arrived (idle framing, timeouts).

        Returns:
            The bytes collected for the query; no event is produced.

        Raises:
            InvalidChannelState: Not a gateway raw channel, or no query is pending.
        """
        self._require("finish_query", _GATEWAY, _RAW, any_state=True)
        if self._query is None:
            raise InvalidChannelState("finish_query: no raw query is pending")
        query, self._query = self._query, None
        return query.finish()

    def send_sgd(self, request: Mapping[str, Any]) -> None:
        """Send one JSON SGD command on the config channel (§5).

        Raises:
            InvalidChannelState: Not a gateway config channel, not open, or a request
                is already pending (replies are paired in order, one at a time).
        """
        self._require("send_sgd", _GATEWAY, _CONFIG)
        if self._pending_sgd is not None:
            raise InvalidChannelState("send_sgd: an SGD request is already pending")
        self._outgoing.append(encode_sgd_request(request))
        self._pending_sgd = dict(request)

    def abandon_sgd(self) -> None:
        """Forget the pending SGD request (after a timeout); a no-op if there is none.

        A reply that still arrives later is reported as :class:`UnsolicitedMessage`.
        """
        self._require("abandon_sgd", _GATEWAY, _CONFIG, any_state=True)
        self._pending_sgd = None

    # -- commands for both sides ----------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Queue ``data`` as one binary message; callers chunk large payloads.

        The gateway may use it on raw channels only. The printer may use it on any
        channel, e.g. to send a JSON reply in pieces as real printers do (§2).
        Empty data is not sent.
        """
        if self.role is _GATEWAY:
            self._require("send_raw", _GATEWAY, _RAW)
        else:
            self._require("send_raw", _PRINTER, *_ANY_KIND)
        self._queue(data)

    # -- printer commands -----------------------------------------------------------

    def send_discovery(self, discovery_b64: str, *, pretty: bool = True) -> None:
        """Send the main channel's first message, ``{"discovery_b64": ...}`` (§4.1)."""
        self._require("send_discovery", _PRINTER, _MAIN)
        self._send_json({"discovery_b64": discovery_b64}, pretty=pretty)

    def send_hello(self, channel_id: str) -> None:
        """Send a raw/config channel's first message (§3), pretty-printed."""
        self._require("send_hello", _PRINTER, _RAW, _CONFIG)
        assert self._kind is not None  # the printer role always has both
        assert self._printer_serial is not None
        self._channel_id = channel_id
        hello = build_hello(self._kind, self._printer_serial, channel_id)
        self._send_json(hello, pretty=True)

    def send_alert(self, alert: dict[str, Any], *, pretty: bool = True) -> None:
        """Send an alert object (see :func:`encode_alert`) on main or config (§4.3)."""
        self._require("send_alert", _PRINTER, _MAIN, _CONFIG)
        self._send_json(alert, pretty=pretty)

    def send_json(self, value: Any, *, pretty: bool = True) -> None:
        """Send any JSON value as one message, e.g. an SGD reply (§5)."""
        self._require("send_json", _PRINTER, *_ANY_KIND)
        self._send_json(value, pretty=pretty)

    # -- input internals ------------------------------------------------------------

    def _receive_hello(self, data: bytes) -> None:
        # §3: the first complete JSON value names the socket; it may arrive in pieces.
        try:
            first = self._stream.split_first(data)
            if first is None:
                return
            head, rest = first
            hello = identify(decode_json(head))
        except JsonStreamError as exc:
            self._violate_stream(exc)
            return
        except HelloError as exc:
            self._violate(str(exc), CloseCode.POLICY_VIOLATION)
            return
        self._kind, self._printer_serial = hello.kind, hello.printer_serial
        self._discovery, self._channel_id = hello.discovery, hello.channel_id
        self._state = ChannelState.OPEN
        self._events.append(hello)
        if rest:
            # On raw, bytes after the hello are raw data; on main/config, more JSON.
            self.receive_message(rest)

    def _receive_raw(self, data: bytes) -> None:
        if self.role is _GATEWAY and self._query is not None:
            answer, data = self._query.feed(data)
            if answer is not None:
                self._query = None
                self._events.append(QueryAnswered(answer))
        if data:
            self._events.append(RawDataReceived(data))

    def _receive_json(self, data: bytes) -> None:
        try:
            values = self._stream.feed(data)
        except JsonStreamError as exc:
            for value in exc.values:
                self._dispatch(value)
            self._violate_stream(exc)
            return
        for value in values:
            self._dispatch(value)

    def _dispatch(self, value: Any) -> None:
        """Turn one complete JSON value on an open main/config channel into an event."""
        if self.role is _PRINTER:
            event = self._printer_event(value)
            if event is not None:
                self._events.append(event)
            return
        alert = parse_alert(value)
        if alert is not None:
            self._events.append(AlertReceived(alert))
        elif (
            self._kind is _CONFIG
            and self._pending_sgd is not None
            and isinstance(value, dict)
        ):
            # §5: replies carry no id; they pair with the one pending request in order.
            self._pending_sgd = None
            self._events.append(SgdReplyReceived(value))
        else:
            self._events.append(UnsolicitedMessage(value))

    def _printer_event(self, value: Any) -> Event | None:
        if self._kind is not _CONFIG:
            return parse_server_message(value)
        if not isinstance(value, dict):
            return UnsolicitedMessage(value)
        # §5: "Every command is prefixed by {}"; a lone object is accepted too.
        if not value and not self._sgd_prefix_seen:
            self._sgd_prefix_seen = True
            return None
        self._sgd_prefix_seen = False
        return SgdRequestReceived(value)
