"""Alert subscriptions from ``configure_alert`` (``weblink-protocol.md`` §4.3)."""

from __future__ import annotations

from gateway.emulator.alerts import AlertRule, AlertSubscription, parse_alert_spec


class TestAlertSpec:
    """Parsing ``condition,destination,on-set,on-clear,…`` specs."""

    def test_all_messages(self) -> None:
        """Zebra's default spec enables every condition on set and clear."""
        assert parse_alert_spec("ALL MESSAGES,SDK,Y,Y,,,N") == [
            AlertRule("ALL MESSAGES", on_set=True, on_clear=True)
        ]

    def test_several_specs(self) -> None:
        """Specs joined by | each become a rule; other destinations are ignored."""
        spec = "PQ JOB COMPLETED,SDK,Y,N,,,N,|head open,SDK,N,Y|PAPER OUT,TCP,Y,Y"
        assert parse_alert_spec(spec) == [
            AlertRule("PQ JOB COMPLETED", on_set=True, on_clear=False),
            AlertRule("HEAD OPEN", on_set=False, on_clear=True),
        ]


class TestAlertSubscription:
    """Which alerts a main socket gets."""

    def test_empty_wants_nothing(self) -> None:
        """Before configure_alert nothing is wanted."""
        subscription = AlertSubscription()
        assert not subscription.is_configured
        assert not subscription.wants("PQ JOB COMPLETED")

    def test_all_messages_wants_everything(self) -> None:
        """ALL MESSAGES covers every condition and state."""
        subscription = AlertSubscription()
        subscription.add("ALL MESSAGES,SDK,Y,Y,,,N")
        assert subscription.wants("HEAD OPEN", "CLEAR")
        assert subscription.wants("pq job completed")

    def test_specific_conditions(self) -> None:
        """Only the named conditions, and only in the enabled states."""
        subscription = AlertSubscription()
        subscription.add("HEAD OPEN,SDK,Y,N")
        assert subscription.wants("HEAD OPEN", "SET")
        assert not subscription.wants("HEAD OPEN", "CLEAR")
        assert not subscription.wants("PAPER OUT")
