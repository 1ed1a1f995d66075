"""Every accepted job ends in exactly one outcome, under faults, and the labels agree.

Thousands of jobs across 50 printers behind a small balancer with two gateway replicas,
while printers drop mid-job, one replica is restarted, some jobs expire and a queue
fills up. At the end the test checks, job by job:

- exactly one job event per accepted job id (the audit trail), and the producer got
  that same status;
- each `delivered`/`printed` job's label reached its printer, once, unless the outcome
  says `uncertain` or `redelivered`;
- `expired` jobs never printed; jobs refused by a full queue were never accepted.

It prints the tally.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from broker.errors import QueueFull
from broker.schemas import Confirm, JobEvent, JobStatus
from tests.support.events import watching
from tests.support.tcp_proxy import TcpProxy
from tests.support.timing import LONG, SHORT

PRINTERS = 50
ROUNDS = 40  # jobs per printer: 2,000 in all
OFFLINE = "50J800000099"  # provisioned, never connects: its short-lived jobs expire
SMALL = "50J800000098"  # a queue of 20 that is filled past its limit while offline


async def test_every_job_has_exactly_one_outcome_under_faults(harness):
    """2,000 jobs, 50 printers, drops, a restart, expiry, a full queue: all accounted."""
    started = time.monotonic()
    a = await harness.gateway(replica="acct-a", shutdown_grace_period=0.5)
    b = await harness.gateway(replica="acct-b", shutdown_grace_period=0.5)
    balancer = await TcpProxy("127.0.0.1", a.port, ("127.0.0.1", b.port)).start()
    try:
        url = f"ws://127.0.0.1:{balancer.port}/"
        serials = [f"50J8{n:08d}" for n in range(PRINTERS)]
        printers = {
            serial: await harness.printer(url, serial, retry_interval=0.2)
            for serial in serials
        }
        client = await harness.client(queue_max_length=20)
        await client.provision(OFFLINE)
        await client.provision(SMALL)
        harness.serials |= {OFFLINE, SMALL}

        jobs: dict[
            str, tuple[str, bytes, Any]
        ] = {}  # job id -> (printer, body, handle)
        refused = 0

        async def submit(serial: str, body: bytes, **options: Any) -> None:
            handle = await client.submit(serial, body, **options)
            jobs[handle.job_id] = (serial, body, handle)

        async with watching(client, "job.#") as audit:
            for round_ in range(ROUNDS):
                for index, serial in enumerate(serials):
                    body = b"^XA^FD%s-%d^FS^XZ" % (serial.encode(), round_)
                    confirm = Confirm.PRINTED if index % 10 == 0 else Confirm.DELIVERED
                    await submit(serial, body, confirm=confirm)
                await submit(OFFLINE, b"^XA^FDstale-%d^XZ" % round_, expiration=0.2)
                if round_ < 30:
                    try:
                        await submit(SMALL, b"^XA^FDsmall-%d^XZ" % round_)
                    except QueueFull:
                        refused += 1
                if round_ == 10:
                    for serial in serials[:5]:  # printers dropping mid-stream
                        await printers[serial].drop()
                if round_ == 20:  # a rolling restart of one replica
                    await a.stop()
                    a2 = await harness.gateway(replica="acct-a2")
                    balancer.target = ("127.0.0.1", a2.port)
            small = await harness.printer(url, SMALL, retry_interval=0.2)

            outcomes = {}
            for job_id, (_, _, handle) in jobs.items():
                outcomes[job_id] = await handle.outcome(timeout=LONG)
            # The audit trail: one job event per accepted job.
            async with asyncio.timeout(LONG), audit.changed:
                await audit.changed.wait_for(
                    lambda: (
                        len({e.job_id for e in audit.events if isinstance(e, JobEvent)})
                        >= len(jobs)
                    )
                )
            events = [e for e in audit.events if isinstance(e, JobEvent)]

        per_job = collections.Counter(e.job_id for e in events)
        assert set(per_job) == set(jobs), "an outcome for a job nobody submitted?"
        assert max(per_job.values()) == 1, "a job with two outcomes"
        for event in events:
            assert event.status is outcomes[event.job_id].status

        labels = {
            serial: collections.Counter(p.labels) for serial, p in printers.items()
        }
        labels[SMALL] = collections.Counter(small.labels)
        statuses = collections.Counter(o.status.value for o in outcomes.values())
        duplicates = 0
        for job_id, (serial, body, _) in jobs.items():
            outcome = outcomes[job_id]
            printed = labels.get(serial, collections.Counter())[body]
            if outcome.status in (JobStatus.DELIVERED, JobStatus.PRINTED):
                assert printed >= 1, (
                    f"{outcome.status} job {job_id} never reached {serial}"
                )
                if printed > 1:
                    assert outcome.redelivered, f"unflagged duplicate of {job_id}"
                    duplicates += printed - 1
            elif outcome.status is JobStatus.UNCERTAIN:
                assert printed <= 1
            else:
                assert outcome.status is JobStatus.EXPIRED, outcome
                assert printed == 0
        assert statuses["expired"] == ROUNDS  # every OFFLINE job, none printed
        assert refused == 10  # 30 sent to a queue of 20 while its printer was away
        await small.wait_for_labels(20, timeout=SHORT)
        print(
            f"accounting: {len(jobs)} jobs accepted, {refused} refused (queue full), "
            f"outcomes {dict(statuses)}, {duplicates} duplicate label(s), "
            f"{time.monotonic() - started:.1f} s"
        )
    finally:
        await balancer.close()
