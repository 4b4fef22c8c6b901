"""seasonal_profile leaves out readings that caught a motor start: a snapshot of a few seconds of
starting current is not its interval's consumption (q22: two starts in a row on a school read at
15 minutes were "a single reading spiking to 118.9 where 42.72 was expected")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.detect.test_seasonal import building, run

V = 230.0
PF = 0.93


def _metered(step: str, seed: int) -> pd.DataFrame:
    """The office of ``test_seasonal`` read at ``step`` with its three phase currents, voltages and
    power factor (balanced phases)."""
    df = building(weeks=14, step=step, seed=seed)
    i = df["p_kw"].to_numpy() * 1000 / (3 * V * PF)
    rng = np.random.default_rng(seed + 100)
    for k in (1, 2, 3):
        df[f"v_l{k}_v"] = V
        df[f"i_l{k}_a"] = i * (1 + 0.01 * rng.standard_normal(len(df)))
    df["pf"] = PF
    return df


def _start(df: pd.DataFrame, at: str, factor: float, pf: float | None) -> None:
    """One reading at ``at``: every phase current ``factor`` times; with ``pf`` a motor starting
    (the power factor falls to ``pf``: the power is V x I x pf), without it a resistive load
    switched on for the reading (power with the current)."""
    k = df.index[df.ts == pd.Timestamp(at)][0]
    cols = ["i_l1_a", "i_l2_a", "i_l3_a"]
    df.loc[k, cols] *= factor
    if pf is None:
        df.loc[k, "p_kw"] *= factor
    else:
        df.loc[k, "pf"] = pf
        df.loc[k, "p_kw"] = 3 * V * df.loc[k, cols].mean() * pf / 1000


def test_motor_starts_read_in_a_reading_are_no_consumption_spike():
    for step, seed in (("15min", 1), ("15min", 2), ("1h", 3)):
        df = _metered(step, seed)
        per = pd.Timedelta(step)
        for day in ("2024-03-13", "2024-03-20"):  # two starts in a row on a quiet evening, then one
            t = pd.Timestamp(f"{day} 21:00")
            _start(df, str(t), 3.5, 0.40)
            _start(df, str(t + per), 5.2, 0.42)
        _start(df, "2024-03-27 02:00", 5.0, 0.38)
        _, res = run(df)
        assert res.alerts == [], (step, seed, [(a.start, a.message) for a in res.alerts])


def test_a_resistive_spike_at_the_same_place_is_still_found():
    for step, seed in (("15min", 1), ("1h", 3)):
        df = _metered(step, seed)
        _start(df, "2024-03-27 02:00", 5.0, None)
        _, res = run(df)
        assert [a.start[:16] for a in res.alerts] == ["2024-03-27T02:00"], (step, [a.message for a in res.alerts])
        assert res.alerts[0].evidence["kind"] == "spike"
