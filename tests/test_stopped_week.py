"""(pn, issue 14) A normal period whose weekdays were mostly stopped is said, per meter; nothing else is.

sw's held-out sweep (seed 1663, M-00086): a steel plant's profiled week was Chuseok, stopped three of
its five weekdays; ``baseline_macd`` learned the stopped level as the weekday profile and a later
theft went unseen, unsaid. :func:`stopped_week_notices` names such a meter, its days and two levels
and what to do; a commercial week with its weekend, a home, a plant with one holiday and PV sites are
not said, at 1, 15 and 60 min. A notice only: no score moves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect.engine import stopped_week_notices
from wattwatch.detect.frame import prepare

START = "2026-01-05"  # a Monday


def _meter(meter: str, freq: str, day_kw, days: int = 7) -> pd.DataFrame:
    """``day_kw(day_index, hour_of_day) -> kW`` over ``days`` days from Monday ``START``."""
    t = pd.date_range(START, periods=int(days * 86400 / pd.Timedelta(freq).total_seconds()), freq=freq, tz="UTC")
    h = (t.hour + t.minute / 60).to_numpy()
    d = (t.normalize() - t[0].normalize()).days.to_numpy()
    wiggle = 0.03 * np.sin(np.arange(len(t)) * 0.7)  # not a flat line
    return pd.DataFrame({"meter_id": meter, "ts": t, "p_kw": day_kw(d, h) * (1 + wiggle)})


def _plant(stopped: tuple) -> callable:
    def kw(d, h):
        work = (d % 7 < 5) & ~np.isin(d, stopped)
        return np.where(work, 80 + 30 * np.sin(np.pi * h / 24), 11.0)
    return kw


def _commercial(d, h):
    return np.where((d % 7 < 5) & (h >= 7) & (h < 19), 40.0, 6.0)


def _home(d, h):
    # Days of 0.25-1.0 kW mean over a 0.15 kW floor: two quiet weekdays, evenings and mornings.
    level = np.array([1.0, 0.3, 0.25, 0.6, 0.9, 0.7, 0.8])[d % 7]
    return 0.15 + level * (np.exp(-((h - 19) ** 2) / 6) * 3 + np.exp(-((h - 7) ** 2) / 2))


def _pv(d, h):
    # Generation read as positive: 0 at night, overcast Mon-Wed (a tenth of a sunny day).
    sun = np.clip(np.sin(np.pi * (h - 6) / 12), 0, None)
    return np.where(d % 7 < 3, 3.0, 30.0) * sun


def _prosumer(d, h):
    # Net metering: the house's 0.4 kW less the PV's noon export, overcast Mon-Wed.
    sun = np.clip(np.sin(np.pi * (h - 6) / 12), 0, None)
    return 0.4 + 0.8 * np.exp(-((h - 19) ** 2) / 4) - np.where(d % 7 < 3, 0.2, 3.0) * sun


def _levels(floor: float, weekdays: list, weekend: float) -> callable:
    """Nights at ``floor``, day hours (12-24) such that each day's mean is its level."""
    def kw(d, h):
        mean = np.where(d % 7 < 5, np.array(weekdays + [weekend] * 2)[d % 7], weekend)
        return np.where(h >= 12, floor + (mean - floor) * 2, floor)
    return kw


# Three weekdays low but no standby: a quiet home on a continuum (its quietest days under twice its
# floor, the next just above: one level, not two), a light week (three days at a quarter of the
# others, far above the nights' floor), a meter whose working days are themselves near its floor.
_quiet_home = _levels(0.08, [0.12, 0.14, 0.145, 0.22, 0.5], 0.3)
_light_week = _levels(2.0, [6.0, 6.0, 6.0, 21.0, 21.0], 2.0)
_near_floor = _levels(1.0, [1.8, 1.8, 1.8, 4.0, 4.0], 1.0)


def _said(frame: pd.DataFrame) -> list[str]:
    return stopped_week_notices(prepare(frame))


@pytest.mark.parametrize("freq", ["1min", "15min", "1h"])
def test_a_plant_stopped_three_of_five_weekdays_is_said_and_ordinary_weeks_are_not(freq):
    f = pd.concat([_meter("P3", freq, _plant((0, 1, 2))), _meter("P1", freq, _plant((2,))),
                   _meter("C", freq, _commercial), _meter("H", freq, _home), _meter("PV", freq, _pv),
                   _meter("NET", freq, _prosumer), _meter("QH", freq, _quiet_home), _meter("LW", freq, _light_week),
                   _meter("NF", freq, _near_floor)], ignore_index=True)
    said = _said(f)
    assert len(said) == 1, said
    n = said[0]
    assert n.startswith("meter P3: its normal period's weekdays ran at two levels: 3 stopped "
                        "(Mon 05 Jan, Tue 06 Jan, Wed 07 Jan: 11 kW) against 2 working (Thu 08 Jan, Fri 09 Jan: "), n
    assert "--normal-start/--normal-end" in n and "profile_days" in n


def test_two_stopped_of_five_or_a_two_week_period_with_one_holiday_week_is_not_said():
    # As many stopped as working is the bar: 2 of 5 leaves the median a working day.
    assert _said(_meter("P2", "15min", _plant((0, 1)))) == []
    # One stopped day against one working one (a two-day period) is too little to call two levels.
    assert _said(_meter("P6", "1h", _plant((0,)), days=2)) == []
    # Two weeks, four of ten weekdays stopped: not said; five of ten: said.
    assert _said(_meter("P4", "1h", _plant((0, 1, 2, 3)), days=14)) == []
    assert len(_said(_meter("P5", "1h", _plant((0, 1, 2, 3, 4)), days=14))) == 1


def test_api_fit_and_detect_say_it(tmp_path):
    f = pd.concat([_meter("P3", "15min", _plant((0, 1, 2)), days=10), _meter("C", "15min", _commercial, days=10)],
                  ignore_index=True)
    fitted = api.fit(f, days=7, detectors=["supply_outage"])
    said = [n for n in fitted.notices if "stopped" in n]
    assert len(said) == 1 and said[0].startswith("meter P3:"), fitted.notices
    found = api.detect(f, detectors=["supply_outage"])
    assert [n for n in found.notices if "stopped" in n] == said, found.notices
