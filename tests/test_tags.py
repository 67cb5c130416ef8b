"""The tag protocol (featurelib/tags.py): what the definitions write is what the checks read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from featurelib import tags


@pytest.mark.parametrize(("declared", "read"), [
    ({}, {"min": None, "max": None, "allowed": None, "max_null_share": None}),
    ({"min": 0, "max": 1.5}, {"min": 0.0, "max": 1.5, "allowed": None, "max_null_share": None}),
    ({"allowed": (True, False)}, {"min": None, "max": None, "allowed": ("true", "false"), "max_null_share": None}),
    ({"allowed": ("DE", "US"), "max_null_share": 0.25},
     {"min": None, "max": None, "allowed": ("DE", "US"), "max_null_share": 0.25}),
])
def test_expectations_written_are_read_back(declared: dict, read: dict) -> None:
    written = tags.field_tags("count", "5m", **declared)
    assert written[tags.UNIT] == "count" and written[tags.WINDOW] == "5m"
    assert tags.expectations(written) == read
    assert tags.drift_compared(written)


def test_drift_skip_and_on_demand_output_docs() -> None:
    assert not tags.drift_compared(tags.field_tags("flag", "request", drift=False))
    view_tags = tags.output_doc_tags("ratio", "Amount over the average.", "ratio", "5m")
    field = SimpleNamespace(name="ratio", description="declared", tags={})
    assert tags.output_doc(view_tags, field) == {"description": "Amount over the average. Unit: ratio. Window: 5m.",
                                                 "unit": "ratio", "window": "5m"}
    assert tags.output_doc({}, field) == {"description": "declared", "unit": "", "window": ""}
    assert all(k.startswith(tags.HIDDEN_PREFIXES) for k in view_tags)
