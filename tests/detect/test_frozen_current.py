"""Issue 14 (fx): a logger frozen on a reading that caught a motor start is frozen readings, not 31 h of
phase imbalance and an earth return.

Fleet 1583 M-00116 (qr's held-out sweep, at 5, 15 and 60 min): the logger repeated one reading with
387.7 A on L1 (a motor start caught in it) for 31.5 h; ``phase_imbalance`` and ``neutral_tamper`` judged
the stale current as live. ``frozen_readings`` explains the level of a current it repeats
(``current_level``, reading by reading), which the rules judging the phases' and the neutral's currents
(and an open CT's zero: ``sensor_fault``) judge; not ``current`` (loose_ct: a repeat cannot make an erratic current)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare

T0 = pd.Timestamp("2025-01-06", tz="UTC")
CAD = 900.0
FREEZE_AT = 60 * 4     # hour 60 at 15 min
FROZEN_N = 120         # 30 h of the same reading
RULES = ["frozen_readings", "phase_imbalance", "neutral_tamper", "sensor_fault", "loose_ct"]


def _meter(name: str, seed: int, frozen: bool, caught: dict | None = None) -> pd.DataFrame:
    """A balanced three-phase meter every 15 min for 4 days (~20 A a phase, the neutral a few A), one
    reading at hour 60 that caught a motor start on L1 (387.7 A, the neutral not yet following; or the
    values ``caught``), then, if ``frozen``, that reading repeated bit for bit ``FROZEN_N`` times while the
    load ran on."""
    rng = np.random.default_rng(seed)
    n = 4 * 96
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k * CAD + rng.uniform(-2, 2, n), unit="s")
    base = 20 + 5 * np.sin(2 * np.pi * k / 96)
    f = pd.DataFrame({"meter_id": name, "ts": ts})
    for j, ph in enumerate(("l1", "l2", "l3")):
        f[f"v_{ph}_v"] = np.round(230 + rng.normal(0, 1, n), 1)
        f[f"i_{ph}_a"] = np.round(base * (1 + 0.03 * (j - 1)) + rng.normal(0, 0.3, n), 2)
    f["i_n_a"] = np.round(np.abs(rng.normal(1.5, 0.3, n)), 2)
    f["pf"] = np.round(0.95 + rng.normal(0, 0.005, n), 3)
    for c, x in (caught or {"i_l1_a": 387.7, "pf": 0.41}).items():
        f.loc[FREEZE_AT, c] = x
    cur = f[[f"i_{p}_a" for p in ("l1", "l2", "l3")]].to_numpy()
    f["p_kw"] = np.round((cur * f[[f"v_{p}_v" for p in ("l1", "l2", "l3")]].to_numpy()).sum(1) * f["pf"] / 1000, 3)
    f["e_kwh"] = np.round(5000 + np.cumsum(f["p_kw"].to_numpy() * CAD / 3600), 2)
    f["temp_c"] = np.round(30 + 2 * np.sin(2 * np.pi * k / 96) + rng.normal(0, 0.2, n), 2)
    if frozen:
        cols = [c for c in f.columns if c not in ("meter_id", "ts")]
        f.loc[FREEZE_AT + 1:FREEZE_AT + FROZEN_N, cols] = f.loc[FREEZE_AT, cols].to_numpy()
    return f


def test_a_frozen_motor_start_is_frozen_readings_not_an_imbalance_or_an_earth_return():
    # ZERO: the frozen reading caught L3's clamp reading 0 A (a momentary dropout): no open CT either.
    frame = pd.concat([_meter("FROZEN", 1, True), _meter("ZERO", 3, True, {"i_l3_a": 0.0}),
                       _meter("LIVE", 2, False)], ignore_index=True)
    dets = registry.build_all(RULES)
    profile(prepare(frame), dets, EngineConfig(profile_days=2.0, workers=1))
    alerts = core.run(frame, dets).alerts
    at = lambda x: int(round((pd.Timestamp(x) - T0) / pd.Timedelta(seconds=CAD)))  # noqa: E731
    got = sorted((a.meter_id, a.detector, at(a.start), at(a.end)) for a in alerts)
    # The freeze: from its first repeat to its last; nothing judges the stale 387.7 A or 0 A. The live
    # reading that caught them (one reading) is no alert either.
    assert got == [(m, "frozen_readings", FREEZE_AT + 1, FREEZE_AT + FROZEN_N) for m in ("FROZEN", "ZERO")], got
