"""The README stays true: its settings table and its first two commands."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.settings_table import BEGIN, END, table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_matches_the_settings_classes():
    """The README's configuration table is the one generated from the settings."""
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == table(), "run: python -m scripts.settings_table --write"


def test_readme_starts_with_the_two_commands_ci_uses():
    """The README's first commands are `make demo` and `make test`, and CI runs the latter."""
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    assert "make demo" in head
    assert "make test" in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE)
