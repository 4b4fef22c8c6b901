"""Thermal drift on enclosures of hours: transformer rooms, switchgear and large cabinets have
thermal time constants of 2-5 h. With lag candidates stopping at 2 h, the model of such an
enclosure cools with its 2-h lag when the load falls away (closing time, the end of a level
shift) while the device holds its heat: the difference read as heat the load does not explain
(robustness sweep with enclosure constants x3, q21: 3 false alerts after level shifts ended,
7-14 C "above what its load explains")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from tests.detect.conftest import HEALTHY, run, window
from wattwatch.sim import SimConfig, simulate
from wattwatch.sim.fleet import SimKnobs

CURRENTS = ["i_l1_a", "i_l2_a", "i_l3_a"]


def _heavy_run(seed: int) -> tuple[pd.DataFrame, dict]:
    """A three-phase site at 5 min whose enclosure's time constant is 2-4.5 h (the simulator's x3),
    its load 3x for two days from day 5 (a production run), the temperature its physics gives."""
    cfg = SimConfig(meters=1, days=10, seed=seed, commercial_share=1.0, knobs=SimKnobs(tau_scale=3.0), **HEALTHY)
    sim = simulate(cfg)
    f, m = sim["frame"].reset_index(drop=True), sim["meters"][0]
    run_ = window(f, str(f.ts.min().normalize() + pd.Timedelta(days=5)), 48)
    heat = m["rise_c"] * (f[CURRENTS].max(axis=1).to_numpy() / m["rated_a"]) ** 2  # the simulator's physics
    a = np.exp(-5 / m["tau_min"])
    f["temp_c"] += lfilter([1 - a], [1, -a], np.where(run_, heat * (3.0 ** 2 - 1), 0.0))
    f.loc[run_, CURRENTS] *= 3.0
    return f, m


def _therm(f: pd.DataFrame):
    return [a for a in run(f, ["thermal_drift"]) if a.code == "WARN_THERM_DRIFT"]


@pytest.mark.parametrize("seed", [1, 12])
def test_a_slow_enclosure_holding_its_heat_when_the_load_falls_is_not_unexplained_heat(seed):
    f, m = _heavy_run(seed)
    assert m["tau_min"] > 180  # well beyond 2 h, the slowest lag tried before
    alerts = _therm(f)
    assert alerts == [], [(a.start, a.end, a.message) for a in alerts]


def test_a_cooling_fault_on_a_slow_enclosure_is_still_found():
    f, _ = _heavy_run(12)
    start = f.ts.min().normalize() + pd.Timedelta(days=8, hours=6)  # after the run, at the profiled load
    w = window(f, str(start), 10)
    f.loc[w, "temp_c"] += np.minimum(1, np.linspace(0, 3, w.sum())) * 8.0  # +8 C at the same load
    alerts = _therm(f)
    assert len(alerts) == 1, [(a.start, a.end) for a in alerts]
    assert f.ts[w].min() <= pd.Timestamp(alerts[0].start) <= f.ts[w].max()
    assert alerts[0].evidence["excess_c"] > 5
