"""Connection rate limits and per-printer socket counts, with a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.limits import (
    ConnectionRateLimiter,
    PrinterSocketLimiter,
    address_key,
)

SERIAL = "50J161000398"


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock."""
    return FakeClock()


class TestAddressKey:
    """Which addresses share a bucket."""

    @pytest.mark.parametrize(
        ("address", "key"),
        [
            ("203.0.113.9", "203.0.113.9"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
            ("fe80::1%eth0", "fe80::/64"),
            ("not-an-address", "not-an-address"),
            ("x" * 100, "x" * 64),
        ],
    )
    def test_keys(self, address, key):
        """IPv4 stands alone, IPv6 groups by /64, junk is cut to 64 characters."""
        assert address_key(address) == key

    def test_prefix_is_configurable(self):
        """A /56 prefix groups wider."""
        assert address_key("2001:db8:1:2::1", 56) == "2001:db8:1::/56"


class TestConnectionRateLimiter:
    """A token bucket per client address."""

    def test_burst_then_rate(self, clock):
        """A fresh address gets the burst at once, then `rate` per second."""
        limiter = ConnectionRateLimiter(2.0, burst=4, clock=clock)
        assert [limiter.allow("203.0.113.9") for _ in range(5)] == [True] * 4 + [False]
        assert limiter.retry_after("203.0.113.9") == pytest.approx(0.5)
        clock.advance(0.5)
        assert limiter.retry_after("203.0.113.9") == 0.0
        assert limiter.allow("203.0.113.9")
        assert not limiter.allow("203.0.113.9")
        clock.advance(10)
        assert [limiter.allow("203.0.113.9") for _ in range(5)] == [True] * 4 + [False]

    def test_addresses_are_independent(self, clock):
        """One address running out does not affect another."""
        limiter = ConnectionRateLimiter(1.0, burst=1, clock=clock)
        assert limiter.allow("203.0.113.9")
        assert not limiter.allow("203.0.113.9")
        assert limiter.allow("203.0.113.10")

    def test_ipv6_network_shares_a_bucket(self, clock):
        """Addresses of one /64 draw from one bucket."""
        limiter = ConnectionRateLimiter(1.0, burst=2, clock=clock)
        assert limiter.allow("2001:db8::1")
        assert limiter.allow("2001:db8::2")
        assert not limiter.allow("2001:db8::3")
        assert limiter.allow("2001:db8:0:1::1")

    def test_default_burst_is_five_seconds(self, clock):
        """Without a burst, five seconds' worth (at least one) is allowed at once."""
        assert ConnectionRateLimiter(10, clock=clock).burst == 50
        assert ConnectionRateLimiter(0.1, clock=clock).burst == 1

    def test_unknown_address_needs_no_wait(self, clock):
        """An address never seen can connect now."""
        assert ConnectionRateLimiter(1, clock=clock).retry_after("198.51.100.1") == 0

    def test_idle_buckets_are_forgotten(self, clock):
        """A bucket idle long enough to be full again is dropped."""
        limiter = ConnectionRateLimiter(1.0, burst=2, clock=clock)
        for number in range(100):
            limiter.allow(f"10.0.0.{number}")
        assert len(limiter) == 100
        clock.advance(1.0)
        limiter.allow("10.0.1.1")
        assert len(limiter) == 101
        clock.advance(1.0)  # the first 100 are full again
        limiter.allow("10.0.1.2")
        assert len(limiter) == 2

    def test_forgetting_loses_nothing(self, clock):
        """A forgotten address starts with a full bucket, which it had anyway."""
        limiter = ConnectionRateLimiter(1.0, burst=2, clock=clock)
        assert limiter.allow("10.0.0.1")
        assert limiter.allow("10.0.0.1")
        clock.advance(2.0)
        limiter.allow("10.0.0.2")
        assert len(limiter) == 1
        assert limiter.allow("10.0.0.1")
        assert limiter.allow("10.0.0.1")
        assert not limiter.allow("10.0.0.1")

    def test_memory_is_bounded(self, clock):
        """Past max_addresses the least recently seen address is dropped."""
        limiter = ConnectionRateLimiter(1.0, burst=1, max_addresses=3, clock=clock)
        for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            assert limiter.allow(address)
        assert not limiter.allow("10.0.0.1")  # 10.0.0.1 is now the most recent
        assert limiter.allow("10.0.0.4")  # 10.0.0.2 goes
        assert len(limiter) == 3
        assert limiter.allow("10.0.0.2")  # forgotten: a fresh bucket
        assert not limiter.allow("10.0.0.1")

    def test_clock_going_backwards(self, clock):
        """A clock step backwards neither adds tokens nor raises."""
        limiter = ConnectionRateLimiter(1.0, burst=1, clock=clock)
        assert limiter.allow("10.0.0.1")
        clock.advance(-100)
        assert not limiter.allow("10.0.0.1")

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"rate": 0}, "rate"),
            ({"rate": float("inf")}, "rate"),
            ({"rate": 1, "burst": 0.5}, "burst"),
            ({"rate": 1, "max_addresses": 0}, "max_addresses"),
            ({"rate": 1, "ipv6_prefix": 129}, "ipv6_prefix"),
        ],
    )
    def test_invalid_arguments(self, kwargs, message):
        """Non-positive rates and sizes are refused."""
        with pytest.raises(ValueError, match=message):
            ConnectionRateLimiter(**kwargs)

    @given(
        steps=st.lists(
            st.tuples(
                st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "2001:db8::9"]),
                st.floats(min_value=0, max_value=3),
            ),
            max_size=60,
        )
    )
    @settings(max_examples=200)
    def test_never_more_than_burst_plus_rate(self, steps):
        """Over any run an address gets at most burst + rate * elapsed connections."""
        clock = FakeClock()
        start = clock.now
        limiter = ConnectionRateLimiter(2.0, burst=3, clock=clock)
        allowed: dict[str, int] = {}
        for address, pause in steps:
            clock.advance(pause)
            if limiter.allow(address):
                key = address_key(address)
                allowed[key] = allowed.get(key, 0) + 1
        elapsed = clock.now - start
        for count in allowed.values():
            assert count <= 3 + 2.0 * elapsed + 1e-9

    @given(
        steps=st.lists(
            st.tuples(
                st.ip_addresses().map(str) | st.text(max_size=80),
                st.floats(min_value=0, max_value=2),
            ),
            max_size=100,
        )
    )
    @settings(max_examples=100)
    def test_tracked_addresses_stay_bounded(self, steps):
        """Whatever addresses arrive, at most max_addresses buckets are kept."""
        clock = FakeClock()
        limiter = ConnectionRateLimiter(1.0, burst=2, max_addresses=5, clock=clock)
        for address, pause in steps:
            clock.advance(pause)
            limiter.allow(address)
            assert len(limiter) <= 5


class TestPrinterSocketLimiter:
    """Sockets per printer serial on this replica."""

    def test_limit_and_release(self):
        """Past the limit no lease is given; releasing frees a slot."""
        limiter = PrinterSocketLimiter(2)
        first = limiter.try_acquire(SERIAL)
        second = limiter.try_acquire(SERIAL)
        assert first is not None
        assert second is not None
        assert limiter.try_acquire(SERIAL) is None
        assert limiter.count(SERIAL) == 2
        assert limiter.try_acquire("OTHER") is not None
        first.release()
        assert first.is_released
        assert limiter.count(SERIAL) == 1
        assert limiter.try_acquire(SERIAL) is not None

    def test_release_is_idempotent(self):
        """Releasing a lease twice frees one slot only."""
        limiter = PrinterSocketLimiter(3)
        leases = [limiter.try_acquire(SERIAL) for _ in range(3)]
        assert leases[0] is not None
        leases[0].release()
        leases[0].release()
        assert limiter.count(SERIAL) == 2

    def test_context_manager(self):
        """A lease used as a context manager releases on exit, even on error."""
        limiter = PrinterSocketLimiter(1)
        lease = limiter.try_acquire(SERIAL)
        assert lease is not None
        with pytest.raises(RuntimeError), lease:
            raise RuntimeError("session crashed")
        assert limiter.count(SERIAL) == 0

    def test_memory_follows_live_printers(self):
        """A printer's counter disappears with its last socket."""
        limiter = PrinterSocketLimiter(10)
        leases = [limiter.try_acquire(f"P{number}") for number in range(1000)]
        assert len(limiter) == 1000
        for lease in leases:
            assert lease is not None
            lease.release()
        assert len(limiter) == 0

    def test_invalid_limit(self):
        """A limit below one is refused."""
        with pytest.raises(ValueError, match="max_sockets"):
            PrinterSocketLimiter(0)
