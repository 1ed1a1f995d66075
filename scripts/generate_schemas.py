"""Write the JSON Schemas of the contract's JSON bodies to ``broker/schemas/``.

The schemas are generated from the pydantic models in ``broker/schemas.py`` (the same
models the gateway and the client use), so a producer in another language can
validate what it sends and receives. ``tests/unit/broker/test_schemas_files.py``
checks that the committed files are what this script writes now.

Usage::

    python scripts/generate_schemas.py          # write the files
    python scripts/generate_schemas.py --check  # exit 1 if a file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broker.schemas import (  # noqa: E402 (after the path set-up above)
    ChannelClosed,
    ChannelOpened,
    Event,
    JobEvent,
    PresenceReply,
    PrinterAlert,
    PrinterData,
    PrinterHold,
    PrinterOffline,
    PrinterOnline,
)

SCHEMA_DIR = ROOT / "broker" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: Event fields the gateway always sends (it leaves out fields that are null).
ALWAYS_SENT = ("schema", "event", "printer", "time")

EVENT_MODELS: dict[str, type[BaseModel]] = {
    "event-online.json": PrinterOnline,
    "event-offline.json": PrinterOffline,
    "event-channel_opened.json": ChannelOpened,
    "event-channel_closed.json": ChannelClosed,
    "event-alert.json": PrinterAlert,
    "event-data.json": PrinterData,
    "event-hold.json": PrinterHold,
    "event-job.json": JobEvent,
}

#: The body of a ``zebra.sgd`` request, written out by hand: pydantic has no model
#: for it (``broker.schemas.parse_sgd_body`` checks it).
SGD_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "SgdRequest",
    "description": (
        "Body of a zebra.sgd request: setting names to values. null reads a "
        'setting, a string or a number writes it: {"device.friendly_name": null}.'
    ),
    "type": "object",
    "minProperties": 1,
    "propertyNames": {"minLength": 1, "maxLength": 256},
    "additionalProperties": {"type": ["null", "string", "number"]},
}


def _mark_always_sent(schema: dict[str, Any]) -> dict[str, Any]:
    """List the envelope fields as required: they are in every event sent."""
    if "event" not in schema.get("properties", {}):
        return schema
    required = [name for name in ALWAYS_SENT if name in schema.get("properties", {})]
    required += [name for name in schema.get("required", []) if name not in required]
    return {**schema, "required": required}


def event_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the schema of one event model."""
    return _mark_always_sent(model.model_json_schema(by_alias=True))


def any_event_schema() -> dict[str, Any]:
    """Return the schema of any event (a union discriminated by ``event``)."""
    schema = TypeAdapter(Event).json_schema(by_alias=True)
    definitions = {
        name: _mark_always_sent(definition)
        for name, definition in schema.get("$defs", {}).items()
    }
    return {
        "title": "Event",
        "description": "Any event published to <ns>.events (contract section 3).",
        **schema,
        "$defs": definitions,
    }


def _text(schema: dict[str, Any]) -> str:
    return (
        json.dumps({"$schema": DIALECT, **schema}, indent=2, ensure_ascii=False) + "\n"
    )


def build_schemas() -> dict[str, str]:
    """Return every schema file's name and text."""
    files = {name: _text(event_schema(model)) for name, model in EVENT_MODELS.items()}
    files["event.json"] = _text(any_event_schema())
    files["presence-reply.json"] = _text(PresenceReply.model_json_schema(by_alias=True))
    files["sgd-request.json"] = _text(SGD_REQUEST_SCHEMA)
    return dict(sorted(files.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report files that are out of date"
    )
    args = parser.parse_args(argv)
    wanted = build_schemas()
    stale = sorted(
        name
        for name, text in wanted.items()
        if not (SCHEMA_DIR / name).is_file()
        or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
    )
    extra = sorted(
        path.name for path in SCHEMA_DIR.glob("*.json") if path.name not in wanted
    )
    if args.check:
        for name in stale:
            print(f"out of date: broker/schemas/{name}")
        for name in extra:
            print(f"not generated: broker/schemas/{name}")
        return 1 if stale or extra else 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (SCHEMA_DIR / name).write_text(wanted[name], encoding="utf-8")
        print(f"wrote broker/schemas/{name}")
    for name in extra:
        print(f"not generated (delete it?): broker/schemas/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
