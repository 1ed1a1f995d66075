"""Limits that keep one client from exhausting a replica. Pure: the clock is passed in.

* :class:`ConnectionRateLimiter`: a token bucket per client address for new
  connections (HTTP handshakes). Refused handshakes get ``429 Too Many Requests`` with
  ``Retry-After`` before any WebSocket exists.
* :class:`PrinterSocketLimiter`: how many identified sockets one printer serial may
  hold on this replica at once; past it the new socket closes with 1008.

Both use memory bounded by what is live: idle buckets are forgotten (a bucket idle
long enough to be full again is the same as no bucket), and a printer's counter goes
away with its last socket.

Budget for printers: a printer opens main, raw and (on demand) config sockets, and
with HTTP authentication each socket costs two handshakes (the 401, then the retry
with credentials). A whole site behind one NAT address reconnects at once after a
network blip, so size the burst for the site, not for one printer.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

#: Addresses tracked at most; past it the least recently seen bucket is dropped.
DEFAULT_MAX_ADDRESSES = 65_536
#: IPv6 clients are keyed by this prefix: one host usually owns a whole /64.
DEFAULT_IPV6_PREFIX = 64
#: Longest unparsable address kept as a key as it is (e.g. a Unix socket name).
_MAX_KEY_LENGTH = 64


def address_key(address: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """Return the bucket key of a client address.

    IPv4 (and IPv4-mapped IPv6) addresses stand for themselves; IPv6 addresses are
    grouped by their ``ipv6_prefix`` network, since one client can use a whole /64.
    Anything unparsable is kept as text, cut to 64 characters.
    """
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:_MAX_KEY_LENGTH]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, ipv6_prefix), strict=False))
    return str(parsed)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ConnectionRateLimiter:
    """A token bucket per client address for new connections.

    Each address may open ``rate`` connections per second on average and ``burst`` at
    once. Memory stays bounded: a bucket untouched for ``burst / rate`` seconds is full
    again and is forgotten, and at most ``max_addresses`` buckets are kept (past that
    the least recently seen goes, which only makes the limit more lenient).

    Args:
        rate: Connections per second refilled per address; above 0.
        burst: Bucket size; defaults to ``max(1, 5 * rate)`` (five seconds' worth).
        max_addresses: Most addresses tracked at once.
        ipv6_prefix: IPv6 clients share one bucket per network of this prefix.
        clock: Monotonic seconds (``time.monotonic``; a fake one in tests).

    Raises:
        ValueError: A non-positive rate, burst or size.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a positive number, not {rate!r}")
        burst = max(1.0, 5.0 * rate) if burst is None else float(burst)
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        if max_addresses < 1:
            raise ValueError(f"max_addresses must be at least 1, not {max_addresses}")
        if not 0 <= ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be 0..128, not {ipv6_prefix}")
        self.rate = float(rate)
        self.burst = burst
        self.max_addresses = max_addresses
        self.ipv6_prefix = ipv6_prefix
        self._clock = clock
        #: Seconds after which an untouched bucket is full again.
        self._refill_time = burst / self.rate
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """Return how many addresses are tracked right now."""
        return len(self._buckets)

    def allow(self, address: str) -> bool:
        """Take a token for a new connection from ``address``; ``False`` if none is left."""
        now = self._clock()
        self._forget_idle(now)
        key = address_key(address, self.ipv6_prefix)
        bucket = self._refill(key, now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def retry_after(self, address: str) -> float:
        """Return seconds until ``address`` has a token again (0 if it has one now).

        Round it up for a ``Retry-After`` header.
        """
        key = address_key(address, self.ipv6_prefix)
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        now = self._clock()
        tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        return max(0.0, (1 - tokens) / self.rate)

    def _refill(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        return bucket

    def _forget_idle(self, now: float) -> None:
        # Buckets are in order of last use: the idle ones are at the front.
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_time:
                break
            del self._buckets[key]


class SocketLease:
    """One counted socket of a printer; :meth:`release` it when the socket ends.

    Releasing twice is harmless. Also a context manager that releases on exit.
    """

    def __init__(self, limiter: PrinterSocketLimiter, printer_serial: str) -> None:
        self.printer_serial = printer_serial
        self._limiter: PrinterSocketLimiter | None = limiter

    @property
    def is_released(self) -> bool:
        return self._limiter is None

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release(self.printer_serial)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


class PrinterSocketLimiter:
    """At most ``max_sockets`` identified sockets per printer serial on this replica.

    A printer normally holds three (main, raw, config); a reconnect briefly adds the
    new sockets before the old ones close. Memory: one counter per printer with at
    least one socket.

    Args:
        max_sockets: Sockets allowed per serial; at least 1.

    Raises:
        ValueError: ``max_sockets`` below 1.
    """

    def __init__(self, max_sockets: int) -> None:
        if max_sockets < 1:
            raise ValueError(f"max_sockets must be at least 1, not {max_sockets}")
        self.max_sockets = max_sockets
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        """Return how many printers hold at least one socket."""
        return len(self._counts)

    def count(self, printer_serial: str) -> int:
        """Return the sockets ``printer_serial`` holds now."""
        return self._counts.get(printer_serial, 0)

    def try_acquire(self, printer_serial: str) -> SocketLease | None:
        """Count one more socket for ``printer_serial``; ``None`` if it is at the limit."""
        count = self._counts.get(printer_serial, 0)
        if count >= self.max_sockets:
            return None
        self._counts[printer_serial] = count + 1
        return SocketLease(self, printer_serial)

    def _release(self, printer_serial: str) -> None:
        count = self._counts.get(printer_serial, 0) - 1
        if count > 0:
            self._counts[printer_serial] = count
        else:
            self._counts.pop(printer_serial, None)


__all__ = [
    "DEFAULT_IPV6_PREFIX",
    "DEFAULT_MAX_ADDRESSES",
    "ConnectionRateLimiter",
    "PrinterSocketLimiter",
    "SocketLease",
    "address_key",
]
