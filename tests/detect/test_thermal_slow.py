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

from tests.detect.conftest import HEALTHY, load_raised, thermal_alerts, window
from wattwatch.sim import SimConfig, simulate
from wattwatch.sim.fleet import SimKnobs


def _heavy_run(seed: int) -> tuple[pd.DataFrame, dict]:
    """A three-phase site at 5 min whose enclosure's time constant is 2-4.5 h (the simulator's x3),
    its load 3x for two days from day 5 (a production run), the temperature its physics gives."""
    cfg = SimConfig(meters=1, days=10, seed=seed, commercial_share=1.0, knobs=SimKnobs(tau_scale=3.0), **HEALTHY)
    sim = simulate(cfg)
    f, m = sim["frame"].reset_index(drop=True), sim["meters"][0]
    run_ = window(f, str(f.ts.min().normalize() + pd.Timedelta(days=5)), 48)
    load_raised(f, m, run_, 3.0)
    return f, m


@pytest.mark.parametrize("seed", [1, 12])
def test_a_slow_enclosure_holding_its_heat_when_the_load_falls_is_not_unexplained_heat(seed):
    f, m = _heavy_run(seed)
    assert m["tau_min"] > 180  # well beyond 2 h, the slowest lag tried before
    alerts = thermal_alerts(f)
    assert alerts == [], [(a.start, a.end, a.message) for a in alerts]


def test_a_cooling_fault_on_a_slow_enclosure_is_still_found():
    f, _ = _heavy_run(12)
    start = f.ts.min().normalize() + pd.Timedelta(days=8, hours=6)  # after the run, at the profiled load
    w = window(f, str(start), 10)
    f.loc[w, "temp_c"] += np.minimum(1, np.linspace(0, 3, w.sum())) * 8.0  # +8 C at the same load
    alerts = thermal_alerts(f)
    assert len(alerts) == 1, [(a.start, a.end) for a in alerts]
    assert f.ts[w].min() <= pd.Timestamp(alerts[0].start) <= f.ts[w].max()
    assert alerts[0].evidence["excess_c"] > 5
