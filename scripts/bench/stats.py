"""Summaries of samples: percentiles, rates and the floor's sum of two hops (pure)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the ``fraction`` quantile (0..1), interpolating between ranks.

    Raises:
        ValueError: no samples, or a fraction outside 0..1.
    """
    if not samples:
        raise ValueError("no samples")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, not {fraction}")
    ordered = sorted(samples)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    """Count, min, p50, p90, p99, max and mean of ``samples`` times ``scale``."""
    if not samples:
        return {"n": 0}
    scaled = [value * scale for value in samples]
    return {
        "n": len(scaled),
        "min": round(min(scaled), 4),
        "p50": round(percentile(scaled, 0.50), 4),
        "p90": round(percentile(scaled, 0.90), 4),
        "p99": round(percentile(scaled, 0.99), 4),
        "max": round(max(scaled), 4),
        "mean": round(sum(scaled) / len(scaled), 4),
    }


def paired_sum(
    first: Sequence[float], second: Sequence[float], seed: int = 7
) -> list[float]:
    """Samples of ``A + B`` for two independent hops measured apart.

    Each sample of the longer list is paired with a random sample of the other, so
    the result's percentiles estimate those of the sum (a p99 of the sum is not the
    sum of the p99s).
    """
    if not first or not second:
        return []
    rng = random.Random(seed)
    longer, shorter = (first, second) if len(first) >= len(second) else (second, first)
    return [value + rng.choice(shorter) for value in longer]


def ratio(product: float | None, floor: float | None) -> float | None:
    """``product / floor`` rounded, or ``None`` when either is missing or zero."""
    if product is None or floor is None or floor == 0:
        return None
    return round(product / floor, 3)


def rate(count: int, seconds: float) -> float | None:
    """Events per second, or ``None`` for an empty window."""
    return round(count / seconds, 1) if seconds > 0 else None
