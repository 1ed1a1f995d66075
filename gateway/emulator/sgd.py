"""The emulated printer's SGD settings table and its JSON SGD answers.

Pure functions over a plain ``dict[str, str]``, so tests can read and seed the live
table (``PrinterEmulator.settings``). Behaviour follows the programming guide's JSON SGD
section as summarised in ``weblink-protocol.md`` §5: a get (``null``) returns the
current value, ``"?"`` for an unknown setting; a set stores the string and returns the
value now in effect (the old one if the set failed); several keys give one object back;
a branch name (``"weblink"``) returns every setting under it; ``allvalues`` returns the
whole table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.emulator.options import EmulatorOptions

#: What an unknown setting reads as (classic SGD).
UNKNOWN = "?"

#: Settings whose sets fail (the old value comes back). The emulator updates the
#: dynamic ones itself.
READ_ONLY = frozenset(
    {
        "appl.name",
        "device.unique_id",
        "head.latch",
        "media.status",
        "odometer.total_label_count",
        "weblink.enable",
        "weblink.ip.conn1.num_connections",
    }
)


def default_settings(
    *, printer_serial: str, url: str, options: EmulatorOptions
) -> dict[str, str]:
    """Build the initial table of a printer, with ``options.settings`` on top.

    Args:
        printer_serial: the printer's serial number.
        url: the WebLink location the printer dials.
        options: the emulator options (firmware, address, retry interval, …).

    Returns:
        A new settings table.
    """
    settings = {
        "appl.name": options.firmware,
        "device.friendly_name": printer_serial,
        "device.languages": "zpl",
        "device.product_name": options.product_name,
        "device.unique_id": printer_serial,
        "head.latch": "ok",
        "interface.network.active.mac_addr": options.mac,
        "ip.addr": options.ip,
        "ip.port": "9100",
        "media.status": "ok",
        "odometer.total_label_count": "0",
        "weblink.enable": "on",
        "weblink.ip.conn1.location": url,
        "weblink.ip.conn1.maximum_simultaneous_connections": str(
            options.max_connections
        ),
        "weblink.ip.conn1.num_connections": "0",
        "weblink.ip.conn1.retry_interval": f"{options.retry_interval:g}",
        "weblink.ip.conn2.location": "",
    }
    settings.update(options.settings)
    return settings


def get_setting(settings: dict[str, str], name: str) -> str:
    """Return one setting's value, or ``"?"`` if the printer has no such setting.

    Args:
        settings: the table.
        name: the setting name.

    Returns:
        The value, or ``"?"``.
    """
    return settings.get(name, UNKNOWN)


def set_setting(settings: dict[str, str], name: str, value: Any) -> str:
    """Store a value if the setting exists and is writable; return the value in effect.

    Values are strings in JSON SGD; anything else fails the set.

    Args:
        settings: the table, changed in place.
        name: the setting name.
        value: the requested value.

    Returns:
        The value now in effect: the new one, the old one if the set failed, or
        ``"?"`` for an unknown setting.
    """
    if name not in settings:
        return UNKNOWN
    if isinstance(value, str) and name not in READ_ONLY:
        settings[name] = value
    return settings[name]


def answer_sgd(settings: dict[str, str], request: dict[str, Any]) -> dict[str, str]:
    """Execute a JSON SGD request (the object after ``{}``) and build the reply.

    Args:
        settings: the table, changed in place by sets.
        request: setting names mapped to ``None`` (get) or a value (set).

    Returns:
        One object with every requested setting (branch gets expanded), in request
        order.
    """
    reply: dict[str, str] = {}
    for name, value in request.items():
        if value is not None:
            reply[name] = set_setting(settings, name, value)
        elif name == "allvalues":
            reply.update(sorted(settings.items()))
        elif name in settings:
            reply[name] = settings[name]
        else:
            branch = {
                key: settings[key]
                for key in sorted(settings)
                if key.startswith(name + ".")
            }
            if branch:
                reply.update(branch)
            else:
                reply[name] = UNKNOWN
    return reply
