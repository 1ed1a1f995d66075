"""``python -m broker``: the ``zebra-broker`` command line."""

from __future__ import annotations

from broker.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
