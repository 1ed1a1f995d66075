"""Replicas stopped (SIGTERM) or killed (SIGKILL) under a stream of jobs, behind nginx."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.schemas import JobEvent, JobStatus
from tests.support.events import watching
from tests.support.nginx import NginxProxy
from tests.support.processes import GatewayProcess
from tests.support.timing import LONG
from tests.support.tls import make_test_certificates

PRINTERS = 9
JOBS_PER_PRINTER = 12


@contextlib.asynccontextmanager
async def fleet(harness: Any, tmp_path: Path) -> AsyncIterator[tuple[Any, ...]]:
    """Three gateway processes behind nginx (TLS) and printers connected through it."""
    certificates = make_test_certificates(tmp_path)
    replicas = [
        await GatewayProcess(
            harness.amqp_url,
            harness.namespace,
            f"replica-{n}",
            shutdown_grace_period=1.0,
        ).start()
        for n in range(3)
    ]
    try:
        upstreams = [f"127.0.0.1:{replica.port}" for replica in replicas]
        async with NginxProxy(upstreams, certificates) as nginx:
            printers = [
                await harness.printer(
                    nginx.url(),
                    f"50J2000000{n:02d}",
                    ssl=certificates.client_context(),
                    retry_interval=0.3,
                )
                for n in range(PRINTERS)
            ]
            yield replicas, printers
    finally:
        for replica in replicas:
            await replica.stop(signal.SIGKILL)


def raw_holders(replica: GatewayProcess) -> set[str]:
    """Printers whose raw channel this replica opened (from its JSON log)."""
    return {
        line["printer_serial"]
        for line in replica.lines
        if line.get("event") == "channel.opened" and line.get("channel") == "raw"
    }


async def stream_jobs(
    client: Any, printers: list[Any], on_round: Any
) -> dict[str, list[tuple[bytes, Any]]]:
    """Publish JOBS_PER_PRINTER jobs to each printer, calling ``on_round(i)`` between."""
    jobs: dict[str, list[tuple[bytes, Any]]] = {p.printer_serial: [] for p in printers}
    for index in range(JOBS_PER_PRINTER):
        for printer in printers:
            body = b"^XA^FD%s-%d^XZ" % (printer.printer_serial.encode(), index)
            handle = await client.submit(printer.printer_serial, body)
            jobs[printer.printer_serial].append((body, handle))
        await on_round(index)
    return jobs


async def test_sigterm_moves_printers_and_prints_every_job_exactly_once(
    harness, tmp_path
):
    """SIGTERM under load: exit 0, printers move, each job prints exactly once."""
    async with fleet(harness, tmp_path) as (replicas, printers):
        client = await harness.client()
        victim = max(replicas, key=lambda r: len(raw_holders(r)))
        moved = raw_holders(victim)
        assert moved, "nginx put no raw channel on any replica?"
        stopping: list[asyncio.Task[int]] = []

        async def on_round(index: int) -> None:
            if index == JOBS_PER_PRINTER // 3:
                stopping.append(asyncio.create_task(victim.stop(signal.SIGTERM)))

        jobs = await stream_jobs(client, printers, on_round)
        assert await stopping[0] == 0
        drained = [
            line for line in victim.lines if line.get("event") == "gateway.stopped"
        ]
        assert drained, "the replica did not drain"
        for printer in printers:
            bodies = [body for body, _ in jobs[printer.printer_serial]]
            for _, handle in jobs[printer.printer_serial]:
                outcome = await handle.outcome(timeout=LONG)
                assert outcome.status is JobStatus.DELIVERED
            labels = await printer.wait_for_labels(len(bodies), timeout=LONG)
            assert labels == bodies, printer.printer_serial
        print(
            f"SIGTERM: {len(moved)} printers' raw channels moved off {victim.replica}"
        )


async def test_kill_9_prints_every_job_and_bounds_visible_duplicates(harness, tmp_path):
    """SIGKILL under load: every job prints; duplicates only of in-flight, flagged jobs."""
    async with fleet(harness, tmp_path) as (replicas, printers):
        client = await harness.client()
        victim = max(replicas, key=lambda r: len(raw_holders(r)))
        in_flight_possible = raw_holders(victim)
        killed: list[asyncio.Task[int]] = []

        async def on_round(index: int) -> None:
            if index == JOBS_PER_PRINTER // 3:
                killed.append(asyncio.create_task(victim.stop(signal.SIGKILL)))

        async with watching(client, "job.#") as log:
            jobs = await stream_jobs(client, printers, on_round)
            assert await killed[0] == -signal.SIGKILL
            for printer in printers:
                for _, handle in jobs[printer.printer_serial]:
                    outcome = await handle.outcome(timeout=LONG)
                    assert outcome.status is JobStatus.DELIVERED
            duplicates = 0
            for printer in printers:
                bodies = [body for body, _ in jobs[printer.printer_serial]]
                labels = await printer.wait_for_labels(len(bodies), timeout=LONG)
                assert set(labels) == set(bodies)  # nothing lost
                for body, handle in jobs[printer.printer_serial]:
                    extra = labels.count(body) - 1
                    if not extra:
                        continue
                    duplicates += extra
                    # Only a job in flight on the killed replica, and flagged as such.
                    assert printer.printer_serial in in_flight_possible

                    def redelivered(event: object, job_id: str = handle.job_id) -> bool:
                        return (
                            isinstance(event, JobEvent)
                            and event.job_id == job_id
                            and bool(event.redelivered)
                        )

                    flagged = await log.wait_for(redelivered)
                    assert flagged.status is JobStatus.DELIVERED
        # prefetch 1: at most one job in flight per raw consumer on the victim
        assert duplicates <= len(in_flight_possible)
        print(
            f"kill -9: {duplicates} duplicate label(s); bound "
            f"{len(in_flight_possible)} (raw consumers on {victim.replica})"
        )


@pytest.fixture(autouse=True)
def _needs_nginx() -> None:
    from tests.support.nginx import nginx_binary

    nginx_binary()  # fails under CI=true, skips locally, when nginx is missing
