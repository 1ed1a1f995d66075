"""The ``zebra-printer-emulator`` command line, without sockets."""

from __future__ import annotations

import pytest

from broker.errors import ConfigurationError
from gateway.emulator.cli import build_parser, expand_serials, main


class TestExpandSerials:
    """``--count`` numbers printers from ``--serial`` upwards."""

    def test_one(self) -> None:
        """A count of one keeps the serial as given."""
        assert expand_serials("ABC", 1) == ["ABC"]

    def test_counts_up_keeping_width(self) -> None:
        """Trailing digits count up with their zero padding kept."""
        assert expand_serials("50J000000009", 3) == [
            "50J000000009",
            "50J000000010",
            "50J000000011",
        ]

    @pytest.mark.parametrize(
        ("serial", "count"), [("ABC", 2), ("50J1", 0), ("bad serial", 1)]
    )
    def test_invalid(self, serial: str, count: int) -> None:
        """No trailing digits, a zero count or a bad serial are configuration errors."""
        with pytest.raises(ConfigurationError):
            expand_serials(serial, count)


class TestParser:
    """Flags map onto the emulator options."""

    def test_flags(self) -> None:
        """Every documented flag parses."""
        args = build_parser().parse_args(
            [
                "--url",
                "ws://127.0.0.1:1/",
                "--serial",
                "50J000000001",
                "--count",
                "2",
                "--retry-interval",
                "0.5",
                "--close-config-after-reply",
                "--split-replies",
                "64",
                "--legacy-discovery",
                "--log-level",
                "debug",
                "--log-format",
                "json",
            ]
        )
        assert args.count == 2
        assert args.retry_interval == 0.5
        assert args.close_config_after_reply
        assert args.split_replies == 64
        assert args.legacy_discovery
        assert args.log_format == "json"

    @pytest.mark.parametrize(
        "argv",
        [
            ["--serial", "50J000000001"],
            ["--url", "ws://x/", "--serial", "ABC", "--count", "2"],
            ["--url", "ws://x/", "--serial", "50J000000001", "--legacy-discovery"],
            ["--url", "ws://x/", "--serial", "50J1", "--split-replies", "0"],
        ],
    )
    def test_bad_arguments_exit_2(
        self, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Missing or invalid arguments exit with status 2 and a message."""
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "error" in capsys.readouterr().err
