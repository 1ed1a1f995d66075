"""The emulator's settings table and JSON SGD answers (``weblink-protocol.md`` §5)."""

from __future__ import annotations

import pytest

from broker.errors import ConfigurationError
from gateway.emulator.options import EmulatorOptions
from gateway.emulator.sgd import (
    UNKNOWN,
    answer_sgd,
    default_settings,
    get_setting,
    set_setting,
)

SERIAL = "50J000000001"
URL = "ws://127.0.0.1:9/zebra/weblink/"


@pytest.fixture
def settings() -> dict[str, str]:
    return default_settings(printer_serial=SERIAL, url=URL, options=EmulatorOptions())


class TestDefaults:
    """The table a fresh printer starts with."""

    def test_identity(self, settings: dict[str, str]) -> None:
        """Friendly name and unique id are the serial; appl.name is the firmware."""
        assert settings["device.friendly_name"] == SERIAL
        assert settings["device.unique_id"] == SERIAL
        assert settings["appl.name"] == EmulatorOptions().firmware
        assert settings["weblink.ip.conn1.location"] == URL

    def test_options_override(self) -> None:
        """options.settings is applied on top of the defaults."""
        options = EmulatorOptions(
            settings={"device.friendly_name": "LINE-3", "x.y": "z"}, retry_interval=0.5
        )
        table = default_settings(printer_serial=SERIAL, url=URL, options=options)
        assert table["device.friendly_name"] == "LINE-3"
        assert table["x.y"] == "z"
        assert table["weblink.ip.conn1.retry_interval"] == "0.5"


class TestAnswerSgd:
    """{}{...} requests against the table."""

    def test_get(self, settings: dict[str, str]) -> None:
        """A null value reads the setting."""
        request = {"device.friendly_name": None, "appl.name": None}
        assert answer_sgd(settings, request) == {
            "device.friendly_name": SERIAL,
            "appl.name": EmulatorOptions().firmware,
        }

    def test_unknown_get(self, settings: dict[str, str]) -> None:
        """An unknown setting reads as ?."""
        assert answer_sgd(settings, {"no.such.setting": None}) == {
            "no.such.setting": UNKNOWN
        }
        assert get_setting(settings, "no.such.setting") == UNKNOWN

    def test_set(self, settings: dict[str, str]) -> None:
        """A set stores the string and answers the value now in effect."""
        assert answer_sgd(settings, {"device.friendly_name": "LINE-3"}) == {
            "device.friendly_name": "LINE-3"
        }
        assert settings["device.friendly_name"] == "LINE-3"

    def test_failed_sets_answer_the_old_value(self, settings: dict[str, str]) -> None:
        """Read-only settings and non-string values keep the old value."""
        reply = answer_sgd(settings, {"device.unique_id": "X", "ip.port": 1234})
        assert reply == {"device.unique_id": SERIAL, "ip.port": "9100"}
        assert settings["ip.port"] == "9100"

    def test_unknown_set(self, settings: dict[str, str]) -> None:
        """Setting an unknown name answers ? and stores nothing."""
        assert set_setting(settings, "no.such", "1") == UNKNOWN
        assert "no.such" not in settings

    def test_mixed_get_and_set(self, settings: dict[str, str]) -> None:
        """Several keys give one object back, in request order."""
        reply = answer_sgd(settings, {"ip.port": "6101", "appl.name": None})
        assert list(reply) == ["ip.port", "appl.name"]
        assert reply["ip.port"] == "6101"

    def test_branch_get(self, settings: dict[str, str]) -> None:
        """A branch name returns every setting under it."""
        reply = answer_sgd(settings, {"weblink": None})
        assert reply["weblink.ip.conn1.location"] == URL
        assert all(key.startswith("weblink.") for key in reply)

    def test_allvalues(self, settings: dict[str, str]) -> None:
        """allvalues returns the whole table."""
        assert answer_sgd(settings, {"allvalues": None}) == settings


class TestOptions:
    """EmulatorOptions validation."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"split_replies": 0},
            {"max_connections": 0},
            {"retry_interval": -1.0},
            {"refuse_channels": frozenset({"stream"})},
            {"refuse_channels": frozenset({"main"})},
            {"channel_urls": {"mian": "ws://x/"}},
        ],
    )
    def test_bad_values_fail_at_construction(self, kwargs: dict[str, object]) -> None:
        """Out-of-range knobs raise ConfigurationError naming the field."""
        with pytest.raises(ConfigurationError):
            EmulatorOptions(**kwargs)  # type: ignore[arg-type]
