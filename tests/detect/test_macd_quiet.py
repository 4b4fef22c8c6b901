"""baseline_macd's quiet-hours gate on a floor drop (solar panels take a home's lowest reading to zero
at noon and leave its night alone; a bypass scales both) decides only where the quiet hours can tell
the two apart. On the real UCI household profiled in January the quietest profiled hours are its
evenings and heated nights, whose energy varies by 0.5-1.4 (log) from day to day: there the gate
vetoed the floor's drop under a bypass on most days (real-shape fleets, seeds 67 and 71: four thefts
of 40-70 % on homes missed with the floor 0.35-0.8 below its profile)."""

from __future__ import annotations

import numpy as np

from tests.detect.test_macd_floor import home
from wattwatch.detect import registry


def office_home(seed: int):
    """The lively home of ``test_macd_floor`` profiled as the UCI household was: a 1.5 kW heater
    through three of its five weekday nights (22-07 h), so its quietest profiled hours are the
    middle of the day, and there a 1 kW load (a home office) on three of its seven days."""
    df = home(days=7, seed=seed)
    day = ((df.ts - df.ts.iloc[0]).dt.days).to_numpy()
    h = df.ts.dt.hour.to_numpy()
    night_of = np.where(h >= 22, day + 1, day)
    df.loc[np.isin(night_of, (0, 1, 3)) & ((h >= 22) | (h < 7)), "p_kw"] += 1.5
    df.loc[np.isin(day, (2, 4, 5)) & (h >= 9) & (h < 17), "p_kw"] += 1.0
    return df


def test_the_quiet_hours_day_spread_is_learned():
    steady = registry.build("baseline_macd").fit(home(days=7, seed=0)).state_["home"]["quiet_spread"]
    swinging = registry.build("baseline_macd").fit(office_home(0)).state_["home"]["quiet_spread"]
    # (the gate then decides a floor drop of 0.6 on the steady home, not on the swinging one)
    assert steady / np.sqrt(2) < 0.5 * 0.6 < swinging / np.sqrt(2), (steady, swinging)


def test_the_gate_vetoes_a_floor_drop_only_where_the_quiet_hours_can_tell():
    """Three days whose quiet hours (00-06 h) read exactly their profile and a floor 0.6 (log) below
    its own: on steady quiet hours that is solar at noon (the drop vetoed), on quiet hours whose
    days swing by 1.0 it says nothing (the drop kept)."""
    d = registry.build("baseline_macd")
    n = 72
    t_bin = (1736121600.0 + 3600.0 * np.arange(n))[None, :]
    prof = np.where(np.arange(24) < 6, 0.2, 1.0)[None, :]
    m = expected = prof[0][((t_bin % 86400) // 3600).astype(int)]
    z = np.full((1, n), -0.6)
    vetoed = d._floor_quiet_gate(z, m, expected, t_bin, prof, 24, spread=np.array([0.1]))
    kept = d._floor_quiet_gate(z, m, expected, t_bin, prof, 24, spread=np.array([1.0]))
    assert (vetoed[:, 48:] == 0).all() and (kept == -0.6).all()
    # A meter fitted before the spread was kept: the gate as it was.
    assert (d._floor_quiet_gate(z, m, expected, t_bin, prof, 24, spread=np.array([np.nan]))[:, 48:] == 0).all()
