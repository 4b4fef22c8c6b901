"""The hold on phase_imbalance (lead32) keeps an alert open over readings it cannot judge (a
night or a weekend of light load) while the deviation has not returned to normal. A step on
another phase, or the other way on the same phase, is not the same deviation: it is a new alert,
however closely it follows (rev33: Friday's L2 fault and Monday's L3 fault across a closed
weekend were one alert about L2 from Friday to Monday)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.detect.conftest import healthy, run, window

PHASES = ["i_l1_a", "i_l2_a", "i_l3_a"]


def _closed_weekend(f: pd.DataFrame) -> pd.DataFrame:
    """The site closed from Friday 18:00 to Monday 07:00: too little current to judge a phase."""
    w = window(f, "2025-01-10T18:00:00Z", 61)
    f.loc[w, PHASES] *= 0.002
    return f


@pytest.mark.parametrize("second,factor", [("i_l3_a", 1.4), ("i_l2_a", 0.6)])
def test_a_step_on_another_phase_or_the_other_way_after_a_closed_weekend_is_a_second_alert(second, factor):
    f = healthy("commercial", days=10, seed=8)
    f.loc[window(f, "2025-01-10T10:00:00Z", 8), "i_l2_a"] *= 1.4     # Friday 10:00 to the closing
    f = _closed_weekend(f)
    f.loc[window(f, "2025-01-13T07:00:00Z", 8), second] *= factor    # Monday from the opening
    alerts = sorted(run(f, ["phase_imbalance"]), key=lambda a: a.start)
    spans = [(a.start, a.end, a.evidence["phase"], a.evidence.get("step")) for a in alerts]
    assert len(alerts) == 2, spans
    fri, mon = alerts
    assert fri.evidence["phase"] == "L2" and fri.evidence["step"] > 0, spans
    assert pd.Timestamp(fri.end) < pd.Timestamp("2025-01-10T18:00:00Z"), spans
    assert mon.evidence["phase"] == f"L{PHASES.index(second) + 1}", spans
    assert (mon.evidence["step"] > 0) == (factor > 1), spans
    assert pd.Timestamp(mon.start) >= pd.Timestamp("2025-01-13T07:00:00Z"), spans


def test_the_same_step_before_and_after_a_closed_weekend_is_one_alert():
    """What the hold is for: the same phase still off the same way on Monday morning."""
    f = healthy("commercial", days=10, seed=8)
    f.loc[window(f, "2025-01-10T10:00:00Z", 8), "i_l2_a"] *= 1.4
    f = _closed_weekend(f)
    f.loc[window(f, "2025-01-13T07:00:00Z", 8), "i_l2_a"] *= 1.4
    alerts = run(f, ["phase_imbalance"])
    spans = [(a.start, a.end, a.evidence["phase"]) for a in alerts]
    assert len(alerts) == 1 and alerts[0].evidence["phase"] == "L2", spans
    assert pd.Timestamp(alerts[0].start) < pd.Timestamp("2025-01-10T11:00:00Z") < \
        pd.Timestamp("2025-01-13T14:00:00Z") < pd.Timestamp(alerts[0].end), spans


def test_a_step_that_ends_with_the_week_ends_its_alert_on_friday():
    """Held over the closed weekend, the alert still ends on Friday's last anomalous reading when
    Monday's first readings are back to normal (not on Monday, nor open)."""
    f = healthy("commercial", days=10, seed=8)
    f.loc[window(f, "2025-01-10T10:00:00Z", 8), "i_l2_a"] *= 1.4
    f = _closed_weekend(f)
    alerts = run(f, ["phase_imbalance"])
    spans = [(a.start, a.end, a.status) for a in alerts]
    assert len(alerts) == 1, spans
    assert pd.Timestamp("2025-01-10T17:00:00Z") < pd.Timestamp(alerts[0].end) < pd.Timestamp("2025-01-10T18:00:00Z"), spans
