"""An open CT is not heat its load does not explain (seed 601 M-00011, seed 607 M-00002).

The enclosure is heated by the current that flows; a CT whose secondary is open reports ~0 A
while the load runs on. The thermal model, fed the reported current, predicts a device cooling
towards ambient while the device stays as warm as its real load keeps it: on a busy afternoon
that read as 7-24 C of heat "its load does not explain", a second alert beside the open-CT
one, on a meter whose temperature is fine. The sensor fault's spans explain the temperature
(padded by the cooling lag, as an outage's); a real drift elsewhere on the meter is still found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.detect.conftest import HEALTHY, load_raised, run, window
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


def test_an_open_ct_is_not_read_as_unexplained_heat_and_a_real_drift_still_is():
    f = _busy_home()
    ct = window(f, "2025-01-10T14:00Z", 10)
    f.loc[ct, "i_l1_a"] = 0.002  # the CT open; the neutral still carries the load
    drift = window(f, "2025-01-09T09:00Z", 6)
    f.loc[drift, "temp_c"] += np.linspace(0, 15, drift.sum())
    # The thermal rule alone reads the open CT's afternoon as heat (the physics the fix rests on).
    alone = [a for a in run(f, ["thermal_drift"]) if a.code == "WARN_THERM_DRIFT"]
    assert any(pd.Timestamp(a.start) >= f.ts[ct].min() for a in alone), [(a.start, a.end) for a in alone]
    alerts = run(f, ["sensor_fault", "thermal_drift"])
    sf = [a for a in alerts if a.code == "SENSOR_FAULT"]
    assert len(sf) == 1 and sf[0].evidence["channel"] == "i_l1_a"
    therm = [a for a in alerts if a.code == "WARN_THERM_DRIFT"]
    assert len(therm) == 1, [(a.start, a.end) for a in therm]
    ts = f.ts[drift]
    assert ts.min() <= pd.Timestamp(therm[0].start) and pd.Timestamp(therm[0].end) <= ts.max() + pd.Timedelta(hours=1)
