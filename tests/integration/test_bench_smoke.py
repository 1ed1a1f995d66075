"""The benchmark in its smallest mode, so that it keeps working (no timed assertions).

It runs ``python -m scripts.bench --smoke`` against the test RabbitMQ, then checks
that every figure of the report has numbers and that the run deleted what it
declared. How fast anything was is not checked: that is the benchmark's business.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest

from broker.topology import Channel, Topology

ROOT = Path(__file__).resolve().parents[2]

FIGURES = (
    "SGD round trip p50",
    "SGD round trip p99",
    "Print latency, publish to bytes at printer p50",
    "Print latency, publish to bytes at printer p99",
    "Print throughput, 1 KiB, completion alerts on",
    "Print throughput, 1 KiB, no printer alerts",
    "Printers held idle by one replica",
    "Gateway memory per idle printer",
    "Gateway idle CPU",
    "Reconnect storm",
)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture
def smoke_report(amqp_url: str, tmp_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.bench",
            "--smoke",
            "--amqp-url",
            amqp_url,
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(
        (tmp_path / "bench-smoke-latest.json").read_text()
    )
    assert (tmp_path / "bench-smoke-latest.md").read_text().count("|") > 10
    return report


async def test_smoke_run_reports_every_figure(
    smoke_report: dict[str, Any], amqp_url: str
) -> None:
    report = smoke_report
    assert report["errors"] == []
    names = [row["figure"] for row in report["figures"]]
    for expected in FIGURES:
        assert any(name.startswith(expected) for name in names), (expected, names)
    for row in report["figures"]:
        assert _is_number(row["product"]), row
        assert _is_number(row["floor"]), row
        assert _is_number(row["ratio"]) or row["floor"] == 0, row
        assert row["goal"]
    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["rabbitmq"]["version"]
    assert machine["packages"]["websockets"]

    # The run cleaned up its namespace: no printer queue, no exchange.
    topology = Topology(namespace=report["namespace"])
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in (
            topology.printer_queue("BLAT000000001", Channel.RAW),
            topology.printer_queue("BIDL000000001", Channel.CONFIG),
            topology.dead_letter_queue,
        ):
            channel = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(name, passive=True)
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await channel.get_exchange(topology.requests_exchange, ensure=True)
