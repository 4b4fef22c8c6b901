"""seasonal_profile: a meter that has run at ``level_max`` times its profile or more for its last
``level_days`` days has left the profile. BDG2 Rat_education_Veronica read 0.5 kW for its first 12
days (a school not yet in use) and 245 kW after; profiled on its first week, every busy hour of the
next five months was "245 vs 0.78 expected": 147 alerts. The change is reported where it begins;
once the level's median sits at its clamp the readings are not judged against that profile
(zeros and frozen runs still are)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.detect.test_seasonal import building, run

IN_USE = pd.Timestamp("2024-01-15")   # the normal period (2 weeks) is the building before it opened


def _not_yet_in_use(seed: int = 0, weeks: int = 12) -> pd.DataFrame:
    df = building(weeks=weeks, seed=seed)
    rng = np.random.default_rng(seed + 100)
    dead = (df.ts < IN_USE).to_numpy()
    df.loc[dead, "p_kw"] = 0.5 * (1 + 0.2 * rng.standard_normal(int(dead.sum())))
    return df


def test_a_building_profiled_before_it_was_in_use_alerts_where_it_opened_not_for_months():
    """Alerts in the opening's first days only (fails without the rule: 16 alerts from the second
    week open on, one every working day or two, on seed 0)."""
    for seed in range(2):
        _, res = run(_not_yet_in_use(seed), normal_end=str(IN_USE.date()))
        starts = [pd.Timestamp(a.start).tz_localize(None) for a in res.alerts]
        assert starts and min(starts) < IN_USE + pd.Timedelta(days=1), starts
        late = [s for s in starts if s >= IN_USE + pd.Timedelta(days=7)]
        assert not late, (seed, len(late), late[:5])
        assert any("refit" in a.action for a in res.alerts), [a.action for a in res.alerts]


def test_the_opening_is_still_reported_and_a_zero_run_after_it_still_is():
    """After it opened, a day at zero is still a zero run of its own (the zero evidence is not the
    profile's; without the rule it is lost inside the opening's long "readings off profile" alerts)."""
    df = _not_yet_in_use()
    zero = ((df.ts >= "2024-03-06") & (df.ts < "2024-03-07")).to_numpy()
    df.loc[zero, "p_kw"] = 0.0
    _, res = run(df, normal_end=str(IN_USE.date()))
    hit = [a for a in res.alerts if "2024-03-06" <= a.start[:10] <= "2024-03-07"]
    assert hit and hit[0].evidence["kind"] in ("zero_run", "zero_reading"), [a.message for a in res.alerts]


def test_a_meter_that_grew_past_the_clamp_is_still_judged_when_it_drops():
    """Only what is above the clamped level is let go: an office profiled at an eighth of its later
    use (a season, a site brought into fuller use) and judged at the clamp, that then loses 60 % for
    ten days (a phase, a bypass), reads below even five times its profile: still alerted on the
    drop's first day (fails when the rule caps readings and days below the level too: no alert)."""
    df = building(weeks=12)
    df.loc[(df.ts < IN_USE).to_numpy(), "p_kw"] /= 8.0
    drop = ((df.ts >= "2024-03-04") & (df.ts < "2024-03-14")).to_numpy()
    df.loc[drop, "p_kw"] *= 0.4
    _, res = run(df, normal_end=str(IN_USE.date()))
    hit = [a for a in res.alerts if "2024-03-04" <= a.start[:10] <= "2024-03-05"]
    assert hit, [(a.start, a.message) for a in res.alerts]


def test_windows_of_the_history_score_as_the_whole_history_where_exact():
    """The rule reads the level (the last ``level_days`` days), inside the declared reach: a window
    starting hours into the period the meter has left its profile scores every exact reading as
    the whole history does (a guard for streams and windowed detects; passes without the rule too)."""
    from wattwatch.detect import core, registry
    from wattwatch.detect.engine import EngineConfig, profile
    from wattwatch.detect.frame import prepare

    df = _not_yet_in_use(weeks=20)   # the reach is ``zero_routine_days`` + 1 (92 days) back
    dets = registry.build_all(["seasonal_profile"])
    profile(prepare(df), dets, EngineConfig(profile_days=14, workers=1))
    whole = core.run(df, dets).judged[0].scores
    t = df.ts.to_numpy()
    exact, bad = 0, []
    for start in ("2024-01-20 05:00", "2024-01-26 13:00"):
        sub = t >= np.datetime64(start)
        j = core.run(df[sub], dets, origin={"office": False}).judged[0]
        ok = j.exact & np.isfinite(whole[sub])
        exact += int(ok.sum())
        if not np.allclose(j.scores[ok], whole[sub][ok], rtol=1e-9, atol=1e-9, equal_nan=True):
            bad.append(start)
    assert exact > 500 and not bad, (exact, bad)
