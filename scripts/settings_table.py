"""Print the README's configuration table from the settings classes' fields.

``python -m scripts.settings_table`` prints it (``--write`` updates the README); ``tests/unit/test_readme.py`` checks that
the README carries exactly this table, so the two cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from broker.settings import ENV_PREFIX, BaseBrokerSettings, ClientSettings
from gateway.settings import GatewaySettings

BEGIN = "<!-- settings-table: begin -->"
END = "<!-- settings-table: end -->"


def _default(name: str, field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(generated)"
    value = field.get_default()
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return "off" if value is None else f"`{value}`"


def table() -> str:
    """Return the Markdown table, between its marker comments."""
    rows = [
        BEGIN,
        "| variable | flag | used by | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    sources = [
        ("all", BaseBrokerSettings.model_fields),
        (
            "gateway",
            {
                k: v
                for k, v in GatewaySettings.model_fields.items()
                if k not in BaseBrokerSettings.model_fields
            },
        ),
        (
            "client",
            {
                k: v
                for k, v in ClientSettings.model_fields.items()
                if k not in BaseBrokerSettings.model_fields
            },
        ),
    ]
    for used_by, fields in sources:
        for name, field in fields.items():
            rows.append(
                f"| `{ENV_PREFIX}{name.upper()}` | `--{name.replace('_', '-')}` "
                f"| {used_by} | {_default(name, field)} | {field.description or ''} |"
            )
    rows.append(END)
    return "\n".join(rows)


def write_readme(path: Path) -> None:
    """Replace the table between the markers in ``path``."""
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + table() + text[end:])


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_readme(Path(__file__).resolve().parents[1] / "README.md")
    else:
        print(table())
