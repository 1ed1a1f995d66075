"""The report: every figure beside its floor, as JSON and as a Markdown table.

Each figure is a dict with ``figure`` (its name), ``product`` and ``floor`` (numbers
in ``unit``), ``ratio`` (product / floor), ``goal`` (the target in words) and ``met``
(``True``, ``False``, or ``None`` when the run was too small to tell). A run also adds
one line to ``history.jsonl`` beside the reports, so the effect of each change on the
headline figures stays visible.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.bench.stats import ratio

#: Printers the reconnect-storm goal is stated for, and its limit in seconds.
STORM_GOAL_PRINTERS = 5000
STORM_GOAL_S = 15.0
IDLE_GOAL_PRINTERS = 8000


def _figure(
    name: str,
    unit: str,
    product: float | None,
    floor: float | None,
    goal: str,
    met: bool | None,
    floor_note: str = "",
) -> dict[str, Any]:
    return {
        "figure": name,
        "unit": unit,
        "product": product,
        "floor": floor,
        "floor_note": floor_note,
        "ratio": ratio(product, floor),
        "goal": goal,
        "met": met,
    }


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


#: Floors that add a print request's durability (reported beside, not the goal's).
DURABLE_FLOORS = {"print_floor_ms": "print_floor_durable_ms"}


def figures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Turn the scenarios' results into the report's figures (missing ones skipped)."""
    rows: list[dict[str, Any]] = []
    floors = results.get("floors", {})
    for key, floor_key, title, parts in (
        ("sgd_ms", "sgd_floor_ms", "SGD round trip", ("amqp_rpc_ms", "ws_echo_ms")),
        (
            "print_latency_ms",
            "print_floor_ms",
            "Print latency, publish to bytes at printer",
            ("amqp_hop_ms", "ws_send_ms"),
        ),
    ):
        product, floor = results.get(key), floors.get(floor_key)
        if not product or not floor:
            continue
        for quantile in ("p50", "p99"):
            note = " + ".join(
                f"{floors[part][quantile]:.3f}" for part in parts if part in floors
            )
            durable = floors.get(DURABLE_FLOORS.get(floor_key, ""))
            if durable:
                durable_ratio = ratio(product[quantile], durable[quantile])
                note += (
                    f"; with a print request's durability (durable queue, "
                    f"persistent, confirmed) the floor is {durable[quantile]:.3f} "
                    f"and the product {durable_ratio} × that"
                )
            value = ratio(product[quantile], floor[quantile])
            rows.append(
                _figure(
                    f"{title} {quantile}",
                    "ms",
                    product[quantile],
                    floor[quantile],
                    "≤ 1.3 × floor" if quantile == "p50" else "(reported)",
                    _at_most(value, 1.3) if quantile == "p50" else None,
                    f"{' + '.join(parts)}: {note}",
                )
            )
    consume = floors.get("consume_ack", {}).get("per_s")
    for key, title in (
        ("throughput", "Print throughput, 1 KiB, completion alerts on"),
        ("throughput_no_alerts", "Print throughput, 1 KiB, no printer alerts"),
    ):
        throughput = results.get(key)
        if throughput is None:
            continue
        value = ratio(throughput["per_s"], consume)
        rows.append(
            _figure(
                f"{title} ({throughput['printers']} printers)",
                "labels/s",
                throughput["per_s"],
                consume,
                "≥ 0.5 × floor",
                None if value is None else value >= 0.5,
                "aio-pika consume+ack, prefetch 100",
            )
        )
    idle = results.get("idle")
    if idle is not None:
        held = idle["gateway"]["ready_at_end"]
        rows.append(
            _figure(
                "Printers held idle by one replica",
                "printers",
                held,
                idle["floor"]["ready_at_end"],
                f"{IDLE_GOAL_PRINTERS:,} on one replica",
                held >= IDLE_GOAL_PRINTERS if held >= IDLE_GOAL_PRINTERS else None,
                "websockets alone, same sockets",
            )
        )
        memory = ratio(
            idle["gateway"]["kib_per_printer"], idle["floor"]["kib_per_printer"]
        )
        rows.append(
            _figure(
                "Gateway memory per idle printer",
                "KiB",
                idle["gateway"]["kib_per_printer"],
                idle["floor"]["kib_per_printer"],
                "≤ 2 × floor",
                _at_most(memory, 2.0),
                "websockets alone (main + raw sockets)",
            )
        )
        cpu = idle["gateway"]["idle"]["core_percent"]
        rows.append(
            _figure(
                f"Gateway idle CPU, {idle['printers']:,} printers",
                "% of a core",
                cpu,
                idle["floor"]["idle"]["core_percent"],
                "< 5 % of a core",
                cpu < 5.0,
                "websockets alone",
            )
        )
    storm = results.get("storm")
    if storm is not None:
        count = storm["printers"]
        handshakes = storm["floor"]["handshakes_per_s"]
        floor_s = round(2 * count / handshakes, 3) if handshakes else None
        back = storm["back_online_s"]
        met: bool | None = None
        if back is not None and count >= STORM_GOAL_PRINTERS:
            met = back <= STORM_GOAL_S
        rows.append(
            _figure(
                f"Reconnect storm, {count:,} printers back online",
                "s",
                back,
                floor_s,
                f"{STORM_GOAL_PRINTERS:,} within {STORM_GOAL_S:g} s",
                met,
                f"{2 * count:,} handshakes at {handshakes} /s (websockets alone)",
            )
        )
    return rows


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    """The figures as a Markdown table, with the machine on one line."""
    machine = report["machine"]
    rabbit = machine.get("rabbitmq") or {}
    lines = [
        f"Benchmark `{report['mode']}` of {report['finished_at']} "
        f"(commit {machine.get('git_commit')}{' + changes' if machine.get('git_dirty') else ''}), "
        f"{report['duration_s']:.0f} s, gateway on {report.get('gateway_event_loop')}",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['memory_mib']:,} MiB, Python {machine['python']}, "
        f"RabbitMQ {rabbit.get('version')} ({rabbit.get('platform')}), "
        + ", ".join(
            f"{name} {version}"
            for name, version in machine["packages"].items()
            if version
        ),
        "",
        "| figure | product | floor | ratio | goal | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in report["figures"]:
        met = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        lines.append(
            f"| {row['figure']} ({row['unit']}) | {_number(row['product'])} "
            f"| {_number(row['floor'])} | {_number(row['ratio'])} | {row['goal']} "
            f"| {met} |"
        )
    notes = [row for row in report["figures"] if row.get("floor_note")]
    if notes:
        lines += ["", "Floors:"]
        lines += [f"- {row['figure']}: {row['floor_note']}" for row in notes]
    if report.get("notes"):
        lines += ["", "Notes:", *(f"- {note}" for note in report["notes"])]
    if report.get("errors"):
        lines += ["", "Errors:", *(f"- {error}" for error in report["errors"])]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``bench-<mode>-<time>.json`` and ``.md`` (and ``-latest`` copies)."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = out / f"bench-{report['mode']}-{stamp}"
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    text = json.dumps(report, indent=2, default=str) + "\n"
    table = markdown(report)
    json_path.write_text(text)
    md_path.write_text(table)
    (out / f"bench-{report['mode']}-latest.json").write_text(text)
    (out / f"bench-{report['mode']}-latest.md").write_text(table)
    history = {
        "finished_at": report["finished_at"],
        "mode": report["mode"],
        "commit": report["machine"].get("git_commit"),
        "dirty": report["machine"].get("git_dirty"),
        "label": report.get("label"),
        "gateway_event_loop": report.get("gateway_event_loop"),
        "figures": {row["figure"]: row["product"] for row in report["figures"]},
    }
    with (out / "history.jsonl").open("a") as lines:
        lines.write(json.dumps(history) + "\n")
    return json_path, md_path
