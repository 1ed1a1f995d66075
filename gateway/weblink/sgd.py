"""JSON SGD on the config channel, and the JSON the core puts on the wire.

``weblink-protocol.md`` §5, after the SGD guide's *JSON* section: every command is an
object prefixed by ``{}``; a get names settings with ``null`` values
(``{}{"device.friendly_name":null}``), a set gives string values, and the reply is one
object with the settings' values now in effect. Replies carry no request id, so the
channel pairs them with requests in order; :func:`reply_matches` is the key-set check
sessions can log alongside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: A request for these pseudo-settings returns every setting (§5, full dump).
_DUMP_KEYS = ("allvalues", "allconfig")


def encode_json(value: Any, *, pretty: bool = False) -> bytes:
    """Encode ``value`` as UTF-8 JSON bytes for one binary WebSocket message.

    Args:
        value: Any JSON-serialisable value.
        pretty: Lay it out the way printers do (§2): two-space indent, ``" : "``
            between key and value, CRLF line ends, e.g.
            ``{\\r\\n  "discovery_b64" : "..."\\r\\n}``. Otherwise compact.

    Returns:
        The encoded bytes (non-ASCII text is sent as UTF-8, not ``\\u`` escapes).

    Raises:
        TypeError: ``value`` is not JSON-serialisable.
        ValueError: ``value`` contains a reference cycle.
    """
    if not pretty:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    text = json.dumps(value, indent=2, separators=(",", " : "), ensure_ascii=False)
    # Safe: json.dumps always escapes line feeds inside strings, so every "\n" left is
    # a line break of the layout.
    return text.replace("\n", "\r\n").encode()


def encode_sgd_request(request: Mapping[str, Any]) -> bytes:
    """Encode a JSON SGD command for the config channel: ``{}`` then the request.

    Args:
        request: Setting names mapped to ``None`` (get) or a string value (set).

    Returns:
        For example ``b'{}{"device.friendly_name":null}'``.
    """
    # §5: "Every command is prefixed by {}" (SGD guide, JSON section).
    return b"{}" + encode_json(dict(request))


def reply_matches(request: Mapping[str, Any], reply: Mapping[str, Any]) -> bool:
    """Tell whether ``reply`` plausibly answers ``request`` (§5, correlation by keys).

    A reply key matches a request key when it is equal to it, or lies below it: a
    branch get such as ``{"weblink": null}`` is answered with ``weblink.*`` keys.

    Args:
        request: The request as sent (without the ``{}`` prefix).
        reply: The decoded reply object.

    Returns:
        ``True`` when the reply is non-empty and every reply key matches a request key,
        or when the request is a full dump (``allvalues`` / ``allconfig``).
    """
    if not reply:
        return False
    if any(key in request for key in _DUMP_KEYS):
        return True
    return all(_matches_one(key, request) for key in reply)


def _matches_one(key: str, request: Mapping[str, Any]) -> bool:
    return any(key == asked or key.startswith(asked + ".") for asked in request)
