"""Which alerts the server asked for, from ``configure_alert`` specs.

A spec is ``condition,destination,on-set,on-clear,…``, several joined by ``|``
(``weblink-protocol.md`` §4.3), e.g. ``"ALL MESSAGES,SDK,Y,Y,,,N"``. WebLink alerts go
to destination ``SDK``; rules for other destinations are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_MESSAGES = "ALL MESSAGES"
#: The WebLink destination in ``alerts.destinations``.
SDK_DESTINATION = "SDK"

#: Conditions the emulator raises, by their SGD name.
PQ_JOB_COMPLETED = "PQ JOB COMPLETED"
HEAD_OPEN = "HEAD OPEN"
PAPER_OUT = "PAPER OUT"
RIBBON_OUT = "RIBBON OUT"
PRINTER_PAUSED = "PRINTER PAUSED"

#: Fault names accepted by ``PrinterEmulator.set_fault``, mapped to their condition.
FAULT_CONDITIONS: dict[str, str] = {
    "head open": HEAD_OPEN,
    "paper out": PAPER_OUT,
    "ribbon out": RIBBON_OUT,
    "printer paused": PRINTER_PAUSED,
}


@dataclass(frozen=True)
class AlertRule:
    """One ``condition,destination,on-set,on-clear`` entry."""

    condition: str
    on_set: bool = True
    on_clear: bool = True


def parse_alert_spec(spec: str) -> list[AlertRule]:
    """Parse a ``configure_alert`` value into the rules aimed at WebLink.

    Args:
        spec: one or more specs joined by ``|``.

    Returns:
        The rules whose destination is ``SDK`` (or empty), in order.
    """
    rules: list[AlertRule] = []
    for part in spec.split("|"):
        fields = [item.strip() for item in part.split(",")]
        if not fields[0]:
            continue
        destination = fields[1].upper() if len(fields) > 1 else ""
        if destination not in ("", SDK_DESTINATION):
            continue
        on_set = len(fields) <= 2 or fields[2].upper() != "N"
        on_clear = len(fields) <= 3 or fields[3].upper() != "N"
        rules.append(AlertRule(fields[0].upper(), on_set, on_clear))
    return rules


@dataclass
class AlertSubscription:
    """The alert rules received on one main socket (they start empty)."""

    rules: list[AlertRule] = field(default_factory=list)

    @property
    def is_configured(self) -> bool:
        """Whether any ``configure_alert`` arrived."""
        return bool(self.rules)

    def add(self, spec: str) -> None:
        """Add the rules of a ``configure_alert`` spec.

        Args:
            spec: the ``configure_alert`` value.
        """
        self.rules.extend(parse_alert_spec(spec))

    def wants(self, condition: str, state: str = "SET") -> bool:
        """Whether an alert for ``condition`` in ``state`` should be sent.

        Args:
            condition: e.g. ``PQ JOB COMPLETED``.
            state: ``SET`` or ``CLEAR``.

        Returns:
            True if a rule names the condition (or ``ALL MESSAGES``) for that state.
        """
        condition = condition.upper()
        is_set = state.upper() != "CLEAR"
        return any(
            rule.condition in (ALL_MESSAGES, condition)
            and (rule.on_set if is_set else rule.on_clear)
            for rule in self.rules
        )
