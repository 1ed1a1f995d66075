"""Printer alerts: ``weblink-protocol.md`` §4.3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.weblink.alerts import encode_alert, normalize_condition, parse_alert
from gateway.weblink.events import Alert
from tests.unit.weblink.frames import (
    ALERT_HEAD_OPEN_CLEAR,
    ALERT_PQ_JOB_COMPLETED,
    ALERT_SGD_SET,
)


class TestNormalizeCondition:
    """Condition names become identifiers."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("PQ JOB COMPLETED", "pq_job_completed"),
            ("SGD SET", "sgd_set"),
            ("  HEAD  OPEN ", "head_open"),
            ("RFID-ERROR/2", "rfid_error_2"),
            ("paper_out", "paper_out"),
            ("", "unknown"),
            ("!!!", "unknown"),
        ],
    )
    def test_cases(self, name: str, expected: str) -> None:
        """Lowercase, runs of other characters as one ``_``, no ``_`` at the ends."""
        assert normalize_condition(name) == expected


class TestParseAlert:
    """``{"alert": {...}}`` objects become Alert values."""

    def test_pq_job_completed(self) -> None:
        """The §9 job-completed alert maps every field."""
        assert parse_alert(json.loads(ALERT_PQ_JOB_COMPLETED)) == Alert(
            condition_name="PQ JOB COMPLETED",
            condition="pq_job_completed",
            state="set",
            printer_serial="50J000000001",
            printer_time="2024-05-02 10:15:07",
        )

    def test_sgd_set(self) -> None:
        """An SGD SET alert carries the setting name and value verbatim."""
        alert = parse_alert(json.loads(ALERT_SGD_SET))
        assert alert is not None
        assert alert.condition == "sgd_set"
        assert alert.setting_name == "capture.channel1.data.raw"
        assert alert.setting_value == "8007500111023"
        assert alert.printer_time == "2018-03-15 12:27:32"

    def test_clear(self) -> None:
        """condition_state CLEAR gives state ``clear``; absent fields are None."""
        alert = parse_alert(json.loads(ALERT_HEAD_OPEN_CLEAR))
        assert alert is not None
        assert alert.state == "clear"
        assert alert.printer_time is None
        assert alert.setting_name is None

    @pytest.mark.parametrize(
        ("state", "expected"),
        [
            ("clear", "clear"),
            ("Clear ", "clear"),
            ("SET", "set"),
            ("odd", "set"),
            (None, "set"),
        ],
    )
    def test_state(self, state: str | None, expected: str) -> None:
        """The state is read case-insensitively and defaults to ``set``."""
        alert = parse_alert(
            {"alert": {"condition": "PAPER OUT", "condition_state": state}}
        )
        assert alert is not None
        assert alert.state == expected

    def test_condition_fallback(self) -> None:
        """Without condition_id (or with an empty one) ``condition`` names the alert."""
        alert = parse_alert({"alert": {"condition_id": " ", "condition": "PAPER OUT"}})
        assert alert is not None
        assert alert.condition_name == "PAPER OUT"

    def test_non_string_values(self) -> None:
        """Non-string field values are converted with str()."""
        alert = parse_alert(
            {"alert": {"condition_id": 7, "unique_id": 50, "setting_value": 1.5}}
        )
        assert alert is not None
        assert (alert.condition_name, alert.printer_serial) == ("7", "50")
        assert alert.setting_value == "1.5"

    @pytest.mark.parametrize(
        "value",
        [
            None,
            [],
            "alert",
            {"alarm": {}},
            {"alert": "PAPER OUT"},
            {"alert": {}},
            {"alert": {"condition_id": "", "condition": None}},
            {"alert": {"type": "ALERT"}},
        ],
    )
    def test_not_an_alert(self, value: Any) -> None:
        """Values that are not alert objects, or name no condition, give None."""
        assert parse_alert(value) is None


class TestEncodeAlert:
    """The emulator's alert builder."""

    def test_shape(self) -> None:
        """The object has the printer's field order and values."""
        assert encode_alert(
            printer_serial="50J000000001", condition="PQ JOB COMPLETED"
        ) == {
            "alert": {
                "unique_id": "50J000000001",
                "time_stamp": "2024-05-02 10:15:07",
                "type_id": "ALERT",
                "condition_id": "PQ JOB COMPLETED",
                "condition_state": "SET",
                "type": "ALERT",
                "condition": "PQ JOB COMPLETED",
            }
        }

    def test_sgd_set_round_trip(self) -> None:
        """An SGD SET alert with a setting parses back to the same values."""
        alert = parse_alert(
            encode_alert(
                printer_serial="50J000000001",
                condition="SGD SET",
                state="CLEAR",
                setting_name="capture.channel1.data.raw",
                setting_value="123",
            )
        )
        assert alert == Alert(
            condition_name="SGD SET",
            condition="sgd_set",
            state="clear",
            printer_serial="50J000000001",
            setting_name="capture.channel1.data.raw",
            setting_value="123",
            printer_time="2024-05-02 10:15:07",
        )
