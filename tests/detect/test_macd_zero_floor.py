"""baseline_macd: a floor at zero is no standby. Behind a home's import meter a battery that
discharges through the night (or panels at noon) takes the day's lowest reading to exactly zero;
a bypass or a meter taking a share leaves its share of the standby. The fit already leaves days
whose lowest reading is at or below zero out of the profiled floor; the judged floor now does the
same for a drop (OPSD residential6, a battery from March 2017: "base-load floor 100 % below (0 kW
vs 0.193 kW expected)" for three to four days, twice)."""

from __future__ import annotations

from tests.detect.test_macd_away import _alerts, _stretch, home

BATTERY = ("2025-01-22", "2025-02-10")   # from the Wednesday of the second judged week to the end
JUDGED = ("2025-01-20", "2025-02-10")
FIT_DAYS = 14   # two weeks: the home's floor learned from 14 nights


def _battery(df, lo=BATTERY[0], hi=BATTERY[1]):
    """The night (22:00-06:00) read as zero import from ``lo``: the battery covers the standby."""
    h = df.ts.dt.hour.to_numpy()
    night = _stretch(df, lo, hi) & ((h >= 22) | (h < 6))
    df.loc[night, "p_kw"] = 0.0
    return df


def _floor_alerts(alerts) -> list:
    return [a for a in alerts if "base-load floor" in a.message]


def test_a_home_whose_nights_read_zero_behind_a_battery_has_no_floor_alert():
    """Nights at exactly 0 kW from the battery's first night: no "base-load floor 100 % below"
    (fails without the rule: four such alerts on seed 0, "0 kW vs 0.109 kW expected"), and no
    alert at all: the energy the nights no longer import is the standby's few per cent of the day."""
    got = []
    for seed in range(3):
        df = _battery(home(days=35, seed=seed))
        got += _alerts(df, *JUDGED, fit_days=FIT_DAYS)
    assert not _floor_alerts(got), [a.message for a in got]
    assert not got, [a.message for a in got]


def test_a_bypass_of_the_night_leaving_a_share_still_alerts_on_its_floor():
    """The same nights at 30 % of their load (a share taken, not a zero): the floor still judges
    and alerts ("base-load floor 66-74 % below") on each of the three seeds, as before the rule."""
    n = 0
    for seed in range(3):
        df = home(days=35, seed=seed)
        h = df.ts.dt.hour.to_numpy()
        night = _stretch(df, *BATTERY) & ((h >= 22) | (h < 6))
        df.loc[night, "p_kw"] *= 0.3
        n += bool(_floor_alerts(_alerts(df, *JUDGED, fit_days=FIT_DAYS)))
    assert n == 3, n
