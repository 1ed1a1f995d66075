"""``python -m gateway.emulator``: the same as ``zebra-printer-emulator``."""

from __future__ import annotations

import sys

from gateway.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
