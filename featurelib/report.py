"""What every check and audit returns (validate, validate-pit, quality, freshness, drift,
skew-audit, restore-online): a report that is ``ok`` or not (exit code 0 or 1 in
``feature_utils.py``), printable as text (``render``) or JSON (``to_dict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"
"""How a check ends."""
MARK = {OK: "✅", WARN: "⚠️ ", FAIL: "❌"}


@dataclass
class Check:
    """One check of a report: its name, how it ended (``OK``, ``WARN``, ``FAIL``), a one-line
    summary, lines of detail, and the data its JSON carries."""

    name: str
    status: str
    summary: str
    details: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class Report:
    """Base of the report dataclasses. ``to_dict`` is ``ok`` followed by the dataclass's fields;
    a report with derived fields in its JSON extends it."""

    @property
    def ok(self) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}  # type: ignore[call-overload]  (subclasses are dataclasses)

    def render(self) -> str:
        raise NotImplementedError
