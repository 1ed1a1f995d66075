"""Timeouts for tests, scaled by ``ZEBRA_BROKER_TEST_TIMEOUT_FACTOR`` for slow machines.

These bound how long a test waits for an event before it fails; they never measure
speed.
"""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("ZEBRA_BROKER_TEST_TIMEOUT_FACTOR", "1"))

#: A generous wait for something that normally takes milliseconds.
SHORT = 5.0 * FACTOR
#: A wait for something that involves reconnects or several round trips.
LONG = 20.0 * FACTOR
