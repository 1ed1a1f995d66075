"""The committed JSON Schemas in broker/schemas/ match the pydantic models."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "generate_schemas.py"
SCHEMA_DIR = ROOT / "broker" / "schemas"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """scripts/generate_schemas.py, imported as a module."""
    spec = importlib.util.spec_from_file_location("generate_schemas", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def wanted(generator: ModuleType) -> dict[str, str]:
    """What the script would write now."""
    files: dict[str, str] = generator.build_schemas()
    return files


def test_files_are_up_to_date(wanted: dict[str, str]) -> None:
    """Every schema file is what the script generates (run it after model changes)."""
    stale = [
        name
        for name, text in wanted.items()
        if not (SCHEMA_DIR / name).is_file()
        or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run: python scripts/generate_schemas.py"


def test_no_stray_files(wanted: dict[str, str]) -> None:
    """broker/schemas/ holds only generated files."""
    assert sorted(path.name for path in SCHEMA_DIR.glob("*.json")) == sorted(wanted)


def test_expected_set(wanted: dict[str, str]) -> None:
    """There is a schema per event, one for any event, presence and the SGD body."""
    assert set(wanted) == {
        "event.json",
        "event-online.json",
        "event-offline.json",
        "event-channel_opened.json",
        "event-channel_closed.json",
        "event-alert.json",
        "event-data.json",
        "event-hold.json",
        "event-job.json",
        "presence-reply.json",
        "sgd-request.json",
    }


def test_event_envelope_required(wanted: dict[str, str]) -> None:
    """Each event schema requires the envelope fields the gateway always sends."""
    for name, text in wanted.items():
        if name.startswith("event-"):
            schema = json.loads(text)
            assert schema["required"][:4] == ["schema", "event", "printer", "time"], (
                name
            )
            assert schema["additionalProperties"] is False


def test_sgd_request_values(wanted: dict[str, str]) -> None:
    """SGD request values are null, strings or numbers."""
    schema = json.loads(wanted["sgd-request.json"])
    assert schema["additionalProperties"] == {"type": ["null", "string", "number"]}
    assert schema["minProperties"] == 1
