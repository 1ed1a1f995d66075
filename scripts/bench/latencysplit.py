"""``python -m scripts.bench.latencysplit``: where the print latency goes, hop by hop.

The benchmark's print latency (publish to bytes at the printer) is one number; this
splits it. One gateway replica runs in a child process under a small tracer (the
``python -c`` program :data:`TRACED_GATEWAY`) that appends a ``time.monotonic()``
stamp to a file at three places: when its consume connection receives a read of at
least a label's size (``read``), when that connection calls the consumer with the
delivery (``delivered``), and when the gateway sends a WebSocket message of at least a
label's size (``sent``). This process (the producer and one emulated printer) stamps
the start of ``BrokerClient.submit``, its socket write of the request (``written``)
and the label's arrival. ``CLOCK_MONOTONIC`` is one clock for every process on the
machine, so the stamps of both processes line up.

Requests are sequential (one at a time, after ``--warmup`` of them), so each sample's
stamps are the first of each kind after its start. Segments:

- ``producer``: submit called → request written to the socket (the client library);
- ``rabbitmq``: written → the gateway's socket read (RabbitMQ routing, persistence
  bookkeeping, publisher confirm, delivery; and both kernels);
- ``amqp client``: read → consumer called (frame parsing in gateway/amqpwire.py; with
  aiormq, before fix 17, its parsing and three task hops);
- ``gateway``: consumer called → WebSocket send (the bridge: checks, label count);
- ``websocket``: send → bytes at the printer (websockets both ends, the emulator).

The tracer patches three functions in the child: it measures the product, it is not
part of it. Expect a few microseconds of its own per stamp.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broker.logs import configure_logging
from scripts.bench import amqp
from scripts.bench.config import QUICK
from scripts.bench.scenarios import LABEL_SIZE, Run, make_label
from scripts.bench.stats import summary

#: ``python -c`` program: the gateway with three stamping wrappers (see above).
TRACED_GATEWAY = """
import asyncio, os, sys, time
import gateway.bus, gateway.amqpconn, gateway.server
from gateway.cli import main
out = open(os.environ["LATENCYSPLIT_FILE"], "w", buffering=1)
size = int(os.environ["LATENCYSPLIT_SIZE"])
received = gateway.amqpconn.AmqpConnection.data_received
def data_received(self, data):
    if len(data) >= size:
        out.write(f"read {time.monotonic():.7f}\\n")
    return received(self, data)
gateway.amqpconn.AmqpConnection.data_received = data_received
on_message = gateway.bus.Consumer._on_message
def delivered(self, message):
    out.write(f"delivered {time.monotonic():.7f}\\n")
    on_message(self, message)
gateway.bus.Consumer._on_message = delivered
send = gateway.server.WebSocketTransport.send
async def sent(self, data):
    if len(data) >= size:
        out.write(f"sent {time.monotonic():.7f}\\n")
    await send(self, data)
gateway.server.WebSocketTransport.send = sent
sys.exit(main(sys.argv[1:]))
"""

SEGMENTS = (
    ("producer", "start", "written"),
    ("rabbitmq", "written", "read"),
    ("amqp client", "read", "delivered"),
    ("gateway", "delivered", "sent"),
    ("websocket", "sent", "arrived"),
    ("total", "start", "arrived"),
)


@contextlib.contextmanager
def stamped_writes(size: int, stamps: list[float]) -> Iterator[None]:
    """Stamp every socket write of at least ``size`` bytes in this process."""
    import asyncio.selector_events as selector_events

    # asyncio's socket transport is private; the stamp is a diagnostic, not product.
    transport: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009
    original = transport.write

    def write(self: Any, data: Any) -> None:
        if len(data) >= size:
            stamps.append(time.monotonic())
        original(self, data)

    transport.write = write
    try:
        yield
    finally:
        transport.write = original


def _first_after(times: list[float], after: float) -> float | None:
    index = bisect.bisect_right(times, after)
    return times[index] if index < len(times) else None


def split(
    samples: list[dict[str, float]], gateway_stamps: dict[str, list[float]]
) -> dict[str, dict[str, float]]:
    """Pair each sample with the gateway's stamps; summarise every segment (ms)."""
    durations: dict[str, list[float]] = {name: [] for name, _, _ in SEGMENTS}
    for sample in samples:
        points = dict(sample)
        previous = sample["written"]
        for kind in ("read", "delivered", "sent"):
            stamp = _first_after(gateway_stamps.get(kind, []), previous)
            if stamp is None:
                break
            points[kind] = previous = stamp
        else:
            if not points["start"] <= points["sent"] <= points["arrived"]:
                continue
            for name, begin, end in SEGMENTS:
                durations[name].append(points[end] - points[begin])
    return {name: summary(values, 1000) for name, values in durations.items() if values}


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="latencysplit-"))
    run = Run(sizes=QUICK, amqp_url=args.amqp_url, out=out)
    run.connection = await amqp.connect(args.amqp_url, "latencysplit")
    stamps_file = out / "gateway-stamps.txt"
    gateway = run.gateway("split")
    gateway.args[1:3] = ["-c", TRACED_GATEWAY]
    os.environ["LATENCYSPLIT_FILE"] = str(stamps_file)
    os.environ["LATENCYSPLIT_SIZE"] = str(LABEL_SIZE)
    samples: list[dict[str, float]] = []
    written: list[float] = []
    try:
        async with run.running(gateway):
            fleet = run.fleet(gateway.url, 1, "BLSP")
            try:
                await run.start_printable(fleet, 30)
                async with run.client() as client:
                    serial = fleet.serials[0]
                    with stamped_writes(LABEL_SIZE, written):
                        for index in range(args.warmup + args.samples):
                            target = fleet.labels.value + 1
                            start = time.monotonic()
                            handle = await client.submit(serial, make_label(index))
                            await fleet.wait_labels(target, timeout=30)
                            arrived = fleet.label_times(serial)[-1]
                            await handle.outcome(timeout=30)
                            request_written = _first_after(written, start)
                            if index >= args.warmup and request_written is not None:
                                samples.append(
                                    {
                                        "start": start,
                                        "written": request_written,
                                        "arrived": arrived,
                                    }
                                )
            finally:
                await fleet.close()
    finally:
        await amqp.delete_namespace(run.bus, run.topology)
        await run.bus.close()
    gateway_stamps: dict[str, list[float]] = {}
    for line in stamps_file.read_text().splitlines():
        kind, _, stamp = line.partition(" ")
        gateway_stamps.setdefault(kind, []).append(float(stamp))
    return {"samples": len(samples), "segments_ms": split(samples, gateway_stamps)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.latencysplit", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    configure_logging("warning", "console", stream=sys.stderr)
    report = asyncio.run(measure(args))
    print(f"print latency by segment, {report['samples']} sequential 1 KiB labels (ms)")
    print(f"{'segment':<12} {'p50':>7} {'p90':>7} {'p99':>7}")
    for name, figures in report["segments_ms"].items():
        print(
            f"{name:<12} {figures['p50']:>7.3f} {figures['p90']:>7.3f} "
            f"{figures['p99']:>7.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
