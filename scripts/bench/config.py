"""Benchmark sizes: ``smoke`` (CI, seconds), ``quick`` (under a minute), ``full``.

Every loop of the benchmark is bounded by these counts and by the timeouts derived
from them, so a broken gateway makes a run fail, never hang.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does."""

    mode: str
    #: Sequential SGD round trips and print latencies measured (after warm-up).
    latency_samples: int
    #: Samples of each floor hop (AMQP RPC, AMQP publish-to-consume, WebSocket).
    floor_samples: int
    #: Printers and 1 KiB labels per printer of the throughput run.
    throughput_printers: int
    labels_per_printer: int
    #: Printers held idle by one replica, and the idle window in seconds.
    idle_printers: int
    idle_window: float
    #: Printers of the reconnect storm.
    storm_printers: int
    #: Handshakes in flight from the fleet (all kinds).
    max_dialing: int = 64
    #: Seconds of quiet after a scenario's connects before measuring.
    settle: float = 3.0
    #: Seconds between connecting the idle printers and measuring their cost: the
    #: connect leaves a full garbage collection due (about 2 s of CPU at 8,000
    #: printers), a one-off cost of connecting, not of holding them.
    idle_settle: float = 3.0

    def connect_timeout(self, printers: int) -> float:
        """A generous bound for connecting ``printers`` (it only stops a broken run)."""
        return 60.0 + printers / 20.0


SMOKE = Sizes(
    mode="smoke",
    latency_samples=20,
    floor_samples=50,
    throughput_printers=5,
    labels_per_printer=4,
    idle_printers=10,
    idle_window=1.0,
    storm_printers=10,
    settle=0.5,
)
QUICK = Sizes(
    mode="quick",
    latency_samples=200,
    floor_samples=500,
    throughput_printers=100,
    labels_per_printer=20,
    idle_printers=1000,
    idle_window=20.0,
    storm_printers=500,
    settle=2.0,
    idle_settle=5.0,
)
FULL = Sizes(
    mode="full",
    latency_samples=1000,
    floor_samples=2000,
    throughput_printers=100,
    labels_per_printer=60,
    idle_printers=8000,
    # One gateway ping interval (60 s): every socket is pinged once in the window.
    idle_window=60.0,
    storm_printers=5000,
    settle=2.0,
    idle_settle=15.0,
)

MODES = {sizes.mode: sizes for sizes in (SMOKE, QUICK, FULL)}
