"""``python -m scripts.bench.authcost [--printers 5000] [--scrypt-sample 40]``.

What checking a printer's password costs, for each hash scheme of the credentials
file (``gateway/auth/passwords.py``), and what a failover costs the surviving replica,
whose caches are empty: every reconnecting printer needs one check.

- ``µs/check``: one ``matches`` call (best of ``--repeats`` runs);
- ``µs CPU/login``: a first login through ``Authenticator.authenticate`` (parse the
  ``Authorization`` header, miss the cache, check, remember), process CPU time over
  all threads, for a storm of distinct printers all at once: ``--printers`` of them
  for hmac-sha256, ``--scrypt-sample`` for scrypt (then scaled up);
- ``CPU-s`` and ``wall s``: the same scaled to ``--printers``. scrypt runs on at most
  two threads at a time (``DEFAULT_CONCURRENT_HASHES``), so its wall time is at least
  half its CPU time on any machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from collections.abc import Callable, Sequence

from websockets.datastructures import Headers

from gateway.auth import (
    Authenticator,
    Credential,
    CredentialStore,
    PasswordHash,
    Principal,
    SecretHash,
    StoredHash,
    generate_password,
)


def per_call_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``calls`` calls, in µs per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def authorization(username: str, password: str) -> Headers:
    """Return the headers of a printer's second handshake (after the 401)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Headers(Authorization=f"Basic {token}")


async def storm(hashes: Sequence[tuple[StoredHash, str]]) -> tuple[float, float]:
    """Log in one printer per ``(hash, password)`` at once on a cold store.

    Returns:
        CPU seconds (all threads) and wall seconds, for all of them.
    """
    serials = [f"50J{index:09d}" for index in range(len(hashes))]
    store = CredentialStore(
        Credential(username=serial, password_hash=hashed, serials=frozenset({serial}))
        for serial, (hashed, _) in zip(serials, hashes, strict=True)
    )
    auth = Authenticator(store=store)
    requests = [
        authorization(serial, password)
        for serial, (_, password) in zip(serials, hashes, strict=True)
    ]
    cpu, wall = time.process_time(), time.perf_counter()
    results = await asyncio.gather(
        *(auth.authenticate(headers, "203.0.113.9") for headers in requests)
    )
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    refused = sum(not isinstance(result, Principal) for result in results)
    if refused:
        raise SystemExit(f"{refused} logins refused: the benchmark is broken")
    return cpu, wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.authcost")
    parser.add_argument("--printers", type=int, default=5000)
    parser.add_argument("--scrypt-sample", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    secret = generate_password()
    fast, slow = SecretHash.new(secret), PasswordHash.new(secret)
    check_us = {
        "hmac-sha256": per_call_us(lambda: fast.matches(secret), 20_000, args.repeats),
        "scrypt": per_call_us(lambda: slow.matches(secret), 10, args.repeats),
    }
    fast_logins = []
    for _ in range(args.printers):
        password = generate_password()
        fast_logins.append((SecretHash.new(password), password))
    # One scrypt hash for every sampled printer: the cache is per username, so each
    # still costs a full scrypt, and building the sample stays cheap.
    slow_logins = [(slow, secret)] * args.scrypt_sample
    storms = {
        "hmac-sha256": (args.printers, asyncio.run(storm(fast_logins))),
        "scrypt": (args.scrypt_sample, asyncio.run(storm(slow_logins))),
    }

    printers = f"{args.printers:,}"
    print(f"{'scheme':<13}{'µs/check':>12}{'µs CPU/login':>14}", end="")
    print(f"{'CPU-s, ' + printers:>16}{'wall s, ' + printers:>17}")
    for scheme, (count, (cpu, wall)) in storms.items():
        scale = args.printers / count
        print(
            f"{scheme:<13}{check_us[scheme]:>12,.1f}{cpu / count * 1e6:>14,.1f}"
            f"{cpu * scale:>16,.2f}{wall * scale:>17,.2f}"
        )
    print(
        f"(scrypt: {args.scrypt_sample} printers measured, scaled to {printers}; "
        "CPU is process time over all threads)"
    )


if __name__ == "__main__":
    main()
