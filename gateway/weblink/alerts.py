"""Printer alerts: ``{"alert": {...}}`` objects (``weblink-protocol.md`` §4.3).

A real printer logs alerts shaped like::

    { "alert" : { "unique_id" : "50J000000001", "time_stamp" : "2018-03-15 12:27:32",
      "type_id" : "ALERT", "condition_id" : "SGD SET", "condition_state" : "SET",
      "type" : "ALERT", "condition" : "SGD SET",
      "setting_name" : "capture.channel1.data.raw",
      "setting_value" : "8007500111023" } }

``setting_name``/``setting_value`` appear only for ``SGD SET``. Alerts are observed on
the main channel, but the core accepts them on any JSON channel.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.weblink.events import Alert

_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def normalize_condition(name: str) -> str:
    """Turn a printer condition name into an identifier.

    Args:
        name: The condition as the printer spells it, e.g. ``PQ JOB COMPLETED``.

    Returns:
        Lowercase ASCII letters and digits, runs of anything else as one ``_``, no
        ``_`` at either end (``pq_job_completed``); ``unknown`` if nothing is left.
    """
    return _NOT_ALPHANUMERIC.sub("_", name.lower()).strip("_") or "unknown"


def parse_alert(value: Any) -> Alert | None:
    """Read a decoded JSON value as a printer alert.

    Args:
        value: Any decoded JSON value from a WebLink channel.

    Returns:
        The alert, or ``None`` if ``value`` is not an ``{"alert": {...}}`` object or
        names no condition. The condition comes from ``condition_id``, else
        ``condition``; the state is ``clear`` when ``condition_state`` says CLEAR (any
        case), else ``set``. Non-string fields are converted with ``str()``.
    """
    if not isinstance(value, dict):
        return None
    body = value.get("alert")
    if not isinstance(body, dict):
        return None
    condition_name = (_field(body, "condition_id") or "").strip() or (
        _field(body, "condition") or ""
    ).strip()
    if not condition_name:
        return None
    state = (_field(body, "condition_state") or "SET").strip()
    return Alert(
        condition_name=condition_name,
        condition=normalize_condition(condition_name),
        state="clear" if state.lower() == "clear" else "set",
        printer_serial=_field(body, "unique_id"),
        setting_name=_field(body, "setting_name"),
        setting_value=_field(body, "setting_value"),
        printer_time=_field(body, "time_stamp"),
    )


def _field(body: dict[str, Any], name: str) -> str | None:
    """Return ``body[name]`` as a string (verbatim), or ``None`` when absent or null."""
    raw = body.get(name)
    if raw is None:
        return None
    return raw if isinstance(raw, str) else str(raw)


def encode_alert(
    *,
    printer_serial: str,
    condition: str,
    state: str = "SET",
    time_stamp: str = "2024-05-02 10:15:07",
    setting_name: str | None = None,
    setting_value: str | None = None,
) -> dict[str, Any]:
    """Build the alert object a printer sends (for the emulator).

    Args:
        printer_serial: Sent as ``unique_id``.
        condition: The condition as printers spell it, e.g. ``PQ JOB COMPLETED``.
        state: ``SET`` or ``CLEAR``.
        time_stamp: Printer local time, ``YYYY-MM-DD HH:MM:SS``.
        setting_name: For ``SGD SET`` alerts, the setting that changed.
        setting_value: For ``SGD SET`` alerts, its new value.

    Returns:
        ``{"alert": {...}}`` with the fields in the order printers send them; encode
        it with :func:`gateway.weblink.sgd.encode_json`.
    """
    body: dict[str, Any] = {
        "unique_id": printer_serial,
        "time_stamp": time_stamp,
        "type_id": "ALERT",
        "condition_id": condition,
        "condition_state": state,
        "type": "ALERT",
        "condition": condition,
    }
    if setting_name is not None:
        body["setting_name"] = setting_name
    if setting_value is not None:
        body["setting_value"] = setting_value
    return {"alert": body}
