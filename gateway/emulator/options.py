"""The emulator's knobs: how this printer behaves on the wire.

Defaults follow a healthy, current Link-OS printer. Each field that reproduces a field
behaviour names its section of ``weblink-protocol.md`` (§8 lists them all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.errors import ConfigurationError

#: Channel kinds a WebLink printer knows, as used in ``channel_urls`` and
#: ``refuse_channels``.
KNOWN_CHANNELS = frozenset({"main", "raw", "config"})


@dataclass
class EmulatorOptions:
    """Behaviour of one emulated printer.

    Durations are float seconds; ``None`` disables a feature where the field says so.

    Raises:
        ConfigurationError: from the constructor when a value is out of range.
    """

    # -- what the printer sends ---------------------------------------------------

    #: Pretty-print JSON the printer's way (two-space indent, ``" : "``, CRLF; §2).
    pretty_json: bool = True
    #: Split every message the printer sends (JSON and raw replies) into messages of
    #: at most this many bytes; ``None`` sends each whole. Printers split big
    #: replies (§8.3).
    split_replies: int | None = None
    #: Close the config socket with 1000 right after each SGD reply, as some firmware
    #: does (§5, §8.2).
    close_config_after_reply: bool = False
    #: Credentials this printer answers a 401 Basic challenge with, as set by
    #: ``weblink.ip.conn1.authentication.add "server user password"`` (§1.1, §1.3).
    username: str | None = None
    password: str | None = None
    #: Abort (no close frame) any raw or config socket that receives these bytes,
    #: before acting on them: a printer that crashes on one particular request.
    abort_on: bytes | None = None
    #: Answer JSON SGD on the config channel. Off, requests are recorded and left
    #: unanswered, like a printer in line-print mode or a wedged one (§8.9).
    answer_sgd: bool = True
    #: Send the legacy (version 3) discovery packet instead of the v4 one (§4.1).
    legacy_discovery: bool = False

    # -- raw channel (§6) ---------------------------------------------------------

    #: Answer ``~HS`` with its three ``STX … ETX CR LF`` lines, in one message unless
    #: ``split_replies`` says otherwise.
    answer_host_status: bool = True
    #: Answer ``~HS`` even while the head is open, or paper or ribbon are out. Real
    #: printers stay silent then (§6); the flags in the answer show the fault.
    host_status_when_faulted: bool = False
    #: Answer ``! U1 getvar "name"`` (and ``{}{...}`` JSON SGD) on the raw channel
    #: from the settings table.
    answer_getvar: bool = True
    #: Bytes after a getvar answer's closing quote. Printers are believed to send
    #: none (unverified, §12); ``"\r\n"`` suits hosts that read up to a line end.
    getvar_line_end: str = ""
    #: Send one ``PQ JOB COMPLETED`` alert on main for each printed label: every
    #: ``^XA…^XZ`` format prints ``^PQ`` labels (default 1).
    job_completed_alerts: bool = True
    #: Seconds each label takes to print before its completion alert.
    label_print_time: float = 0.0

    # -- alerts (§4.3) ------------------------------------------------------------

    #: Send alerts only once the server sent ``configure_alert`` on this main socket,
    #: and only for the conditions it asked for. ``False`` sends every alert.
    alerts_only_when_configured: bool = True

    # -- connections (§1, §7) -----------------------------------------------------

    #: Dial main again after it was lost (``weblink.ip.conn1.retry_interval``).
    reconnect: bool = True
    #: Seconds between losing main (or failing to reach it) and the next attempt.
    retry_interval: float = 10.0
    #: Sockets this printer opens at once, main included
    #: (``maximum_simultaneous_connections``); ``open`` beyond it is ignored.
    max_connections: int = 10
    #: Channel kinds (``raw``, ``config``) this printer never opens.
    refuse_channels: frozenset[str] = frozenset()
    #: Per-channel URL override (``main``, ``raw``, ``config``): lets a test put main
    #: on one gateway replica and the channels on another. Others use the printer URL.
    channel_urls: dict[str, str] = field(default_factory=dict)
    #: Refuse a 101 that lacks ``Content-Length: 0``, like some firmware (§1.4).
    require_content_length: bool = True
    #: Seconds between WebSocket pings; printers ping about every 60 s (§7).
    ping_interval: float | None = 60.0
    #: Seconds without a pong before the socket counts as lost (about three missed
    #: pings, §7); ``None`` waits forever.
    ping_timeout: float | None = 180.0
    #: Seconds allowed for the TCP, TLS and WebSocket handshakes of one socket.
    open_timeout: float | None = 10.0
    #: Forward proxy for every socket (``weblink.ip.conn1.proxy``), e.g.
    #: ``http://proxy:3128/``; ``None`` connects directly and ignores ``*_proxy``
    #: environment variables, as a printer would.
    proxy: str | None = None
    #: Largest message the printer accepts, in bytes; ``None`` for no limit. Print
    #: jobs can be big, so this is far above websockets' 1 MiB default (§2).
    max_message_size: int | None = 64 * 2**20

    # -- identity (discovery packet, §4.1, and the SGD table) ---------------------

    #: Product name in the discovery packet.
    product_name: str = "ZTC ZD620-203dpi ZPL"
    #: Firmware version in the discovery packet and ``appl.name``.
    firmware: str = "V84.20.23Z"
    #: System name in the discovery packet; ``None`` uses the serial.
    system_name: str | None = None
    #: MAC address in the discovery packet.
    mac: str = "00:07:4d:00:00:01"
    #: IPv4 address in the discovery packet and ``ip.addr``.
    ip: str = "192.168.0.100"
    #: Initial SGD settings, on top of the defaults the emulator derives (friendly
    #: name, firmware, URL, …); see ``gateway.emulator.sgd.default_settings``.
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check ranges once, so a bad knob fails at construction, not mid-test."""
        if self.split_replies is not None and self.split_replies < 1:
            raise ConfigurationError(
                f"split_replies must be at least 1 byte or None, not "
                f"{self.split_replies}"
            )
        if self.max_connections < 1:
            raise ConfigurationError(
                f"max_connections must be at least 1 (the main socket), not "
                f"{self.max_connections}"
            )
        for name in ("retry_interval", "label_print_time"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        unknown = (set(self.refuse_channels) | set(self.channel_urls)) - KNOWN_CHANNELS
        if unknown:
            raise ConfigurationError(
                f"unknown channel kind(s) {sorted(unknown)} in refuse_channels or "
                f"channel_urls; use {sorted(KNOWN_CHANNELS)}"
            )
        if "main" in self.refuse_channels:
            raise ConfigurationError(
                "refuse_channels cannot contain 'main': the printer always dials main"
            )
        self.refuse_channels = frozenset(self.refuse_channels)
