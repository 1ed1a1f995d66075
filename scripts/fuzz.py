"""A long fuzzing session of the WebLink core (and, optionally, of a live gateway).

::

    python scripts/fuzz.py --examples 100000            # Hypothesis properties of the core
    python scripts/fuzz.py --examples 5000 --sockets 500 # also hostile sockets (RabbitMQ)
    python scripts/fuzz.py --atheris -- -max_total_time=600  # coverage-guided, if installed

The properties are ``tests/unit/weblink/test_fuzz_core.py`` (and with ``--sockets``
``tests/integration/test_hostile_sockets.py``), run with more examples than CI uses
(``ZEBRA_BROKER_FUZZ_EXAMPLES``, ``ZEBRA_BROKER_FUZZ_SOCKET_EXAMPLES``) and without
pytest's per-test timeout. Failures are shrunk by Hypothesis and kept in
``.hypothesis/``, so the next plain ``pytest`` run replays them first.

``--atheris`` runs the same invariants under atheris (``pip install atheris``), a
coverage-guided fuzzer; arguments after ``--`` go to libFuzzer. Exit status: 0 when
nothing was found.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORE_TESTS = "tests/unit/weblink/test_fuzz_core.py"
SOCKET_TESTS = "tests/integration/test_hostile_sockets.py"


def run_hypothesis(args: argparse.Namespace) -> int:
    """Run the property tests with ``args.examples`` examples each."""
    env = dict(os.environ)
    env["ZEBRA_BROKER_FUZZ_EXAMPLES"] = str(args.examples)
    targets = [CORE_TESTS]
    if args.sockets:
        env["ZEBRA_BROKER_FUZZ_SOCKET_EXAMPLES"] = str(args.sockets)
        targets.append(SOCKET_TESTS)
    command = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "--timeout=0",
        "--hypothesis-show-statistics",
        "-q",
    ]
    if args.seed is not None:
        command.append(f"--hypothesis-seed={args.seed}")
    if args.k:
        command += ["-k", args.k]
    print("$", " ".join(command), f"(ZEBRA_BROKER_FUZZ_EXAMPLES={args.examples})")
    return subprocess.call(command, cwd=ROOT, env=env)


def run_atheris(libfuzzer_args: list[str]) -> int:
    """Fuzz ``ChannelProtocol`` with atheris, checking the core's invariants."""
    try:
        atheris: Any = importlib.import_module("atheris")
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports():
        channel_module = importlib.import_module("gateway.weblink.channel")
        constants = importlib.import_module("gateway.weblink.constants")
    invariants = importlib.import_module("tests.unit.weblink.test_fuzz_core")
    roles = [
        (constants.Role.GATEWAY, None),
        *((constants.Role.PRINTER, kind) for kind in constants.ChannelKind),
    ]

    def one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        role, kind = roles[provider.ConsumeIntInRange(0, len(roles) - 1)]
        max_buffer_size = 16 << provider.ConsumeIntInRange(0, 16)
        if kind is None:
            channel = channel_module.ChannelProtocol(
                role, max_buffer_size=max_buffer_size
            )
        else:
            channel = channel_module.ChannelProtocol(
                role,
                kind=kind,
                printer_serial="50J000000001",
                max_buffer_size=max_buffer_size,
            )
        messages: list[bytes | str] = []
        if kind is None and provider.ConsumeBool():
            # Start from a real hello half of the time, to reach open channels.
            hellos = list(invariants.HELLOS.values())
            messages.append(hellos[provider.ConsumeIntInRange(0, len(hellos) - 1)])
        while provider.remaining_bytes() and len(messages) < 32:
            size = provider.ConsumeIntInRange(0, 4096)
            if provider.ConsumeBool():
                messages.append(provider.ConsumeUnicodeNoSurrogates(size))
            else:
                messages.append(provider.ConsumeBytes(size))
        invariants.deliver(channel, messages)
        invariants.close_and_check(channel)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    libfuzzer_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, libfuzzer_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description="Fuzz the WebLink core with many more examples than CI does."
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=10_000,
        help="Hypothesis examples per core property (CI uses 200)",
    )
    parser.add_argument(
        "--sockets",
        type=int,
        default=0,
        metavar="N",
        help="also run the hostile-socket tests with N random sequences "
        "(needs RabbitMQ; CI uses 25)",
    )
    parser.add_argument("--seed", type=int, help="Hypothesis seed, to repeat a run")
    parser.add_argument("-k", help="only properties matching this pytest expression")
    parser.add_argument(
        "--atheris",
        action="store_true",
        help="coverage-guided fuzzing with atheris instead (arguments after -- go "
        "to libFuzzer, e.g. -max_total_time=600)",
    )
    args = parser.parse_args(argv)
    if args.atheris:
        return run_atheris(libfuzzer_args)
    return run_hypothesis(args)


if __name__ == "__main__":
    sys.exit(main())
