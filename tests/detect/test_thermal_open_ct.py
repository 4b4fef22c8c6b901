"""An open CT is not heat its load does not explain (seed 601 M-00011, seed 607 M-00002).

The enclosure is heated by the current that flows; a CT whose secondary is open reports ~0 A
while the load runs on. The thermal model, fed the reported current, predicted a device cooling
towards ambient while the device stayed as warm as its real load kept it: on a busy afternoon
that read as 7-40 C of heat "its load does not explain", a second alert beside the open-CT
one, on a meter whose temperature is fine. thermal_drift itself (no other rule's help, so its
reach ahead is unchanged) takes the heating of a single-phase meter from its neutral, which
carries the same current, and does not judge a three-phase meter while a phase that normally
carries its share reads ~0 (nor for the cooling lag after); a real drift elsewhere is still found."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from tests.detect.conftest import CURRENTS, HEALTHY, load_raised, run, thermal_alerts, window
from wattwatch.sim import SimConfig, simulate


def _busy_home() -> pd.DataFrame:
    """A single-phase home, 6 days at 5 min, whose load (and the heat its physics gives for it)
    is 2.5x the simulated one throughout, so that its afternoons warm the meter by several degrees."""
    sim = simulate(SimConfig(meters=1, days=6, seed=5, commercial_share=0.0, **HEALTHY))
    f, m = sim["frame"].reset_index(drop=True), sim["meters"][0]
    load_raised(f, m, np.ones(len(f), bool), 2.5)
    for c in ("i_n_a", "p_kw", "q_kvar", "s_kva"):
        f[c] *= 2.5
    return f


def _unbalanced_building() -> pd.DataFrame:
    """A three-phase building, 6 days at 5 min, whose L3 carries 1.7x its simulated current (and
    the enclosure the heat the simulator's physics gives for it): L3 is the most loaded phase."""
    sim = simulate(SimConfig(meters=1, days=6, seed=5, commercial_share=1.0, **HEALTHY))
    f, m = sim["frame"].reset_index(drop=True), sim["meters"][0]
    heat = lambda: m["rise_c"] * (f[CURRENTS].max(axis=1).to_numpy() / m["rated_a"]) ** 2  # noqa: E731
    before = heat()
    f["i_l3_a"] *= 1.7
    a = np.exp(-5 / m["tau_min"])
    f["temp_c"] += lfilter([1 - a], [1, -a], heat() - before)
    return f


def _only_the_drift(f: pd.DataFrame, drift: np.ndarray, alerts) -> None:
    therm = [a for a in alerts if a.code == "WARN_THERM_DRIFT"]
    assert len(therm) == 1, [(a.start, a.end) for a in therm]
    ts = f.ts[drift]
    assert ts.min() <= pd.Timestamp(therm[0].start) and pd.Timestamp(therm[0].end) <= ts.max() + pd.Timedelta(hours=1)


def test_a_homes_open_ct_is_not_read_as_unexplained_heat_and_a_real_drift_still_is():
    f = _busy_home()
    ct = window(f, "2025-01-10T14:00Z", 10)
    f.loc[ct, "i_l1_a"] = 0.002  # the CT open; the neutral still carries the load
    drift = window(f, "2025-01-09T09:00Z", 6)
    f.loc[drift, "temp_c"] += np.linspace(0, 15, drift.sum())
    # The thermal rule alone (no sensor_fault to lean on): the neutral is the load.
    _only_the_drift(f, drift, thermal_alerts(f))
    alerts = run(f, ["sensor_fault", "thermal_drift"])
    sf = [a for a in alerts if a.code == "SENSOR_FAULT"]
    assert len(sf) == 1 and sf[0].evidence["channel"] == "i_l1_a"
    _only_the_drift(f, drift, alerts)


def test_a_buildings_open_ct_on_its_most_loaded_phase_is_not_judged_and_a_real_drift_still_is():
    f = _unbalanced_building()
    # L3 open from before dawn to noon on a working day; L1 and L2 carry on. Bridged from the
    # night's heating over the span, the model would see the morning's load rise on L1 and L2
    # only: 40 C of "unexplained" heat on the readings it cannot know.
    ct = window(f, "2025-01-09T05:00Z", 7)
    f.loc[ct, "i_l3_a"] = 0.002
    drift = window(f, "2025-01-11T09:00Z", 6)  # a Saturday (a weekday noon's limit is 40 % of a large rise)
    f.loc[drift, "temp_c"] += np.linspace(0, 15, drift.sum())
    _only_the_drift(f, drift, thermal_alerts(f))


def test_a_home_without_a_neutral_reading_at_no_load_is_still_judged():
    """A single-phase meter without a neutral channel whose load is off every night (an empty
    home, a pump): its ~0 A cannot be told from an open CT, and is taken for what it reads, so a
    real overheating at night is found (rq5b: q5b left such readings, and 2 h after, unjudged)."""
    sim = simulate(SimConfig(meters=1, days=6, seed=5, commercial_share=0.0, **HEALTHY))
    f = sim["frame"].reset_index(drop=True)
    night = (f.ts.dt.hour < 7).to_numpy()
    for c in ("i_l1_a", "p_kw", "q_kvar", "s_kva"):
        f.loc[night, c] = 0.0
    f["i_n_a"] = np.nan
    drift = window(f, "2025-01-10T01:00Z", 5)
    f.loc[drift, "temp_c"] += np.linspace(0, 15, drift.sum())
    _only_the_drift(f, drift, thermal_alerts(f))
