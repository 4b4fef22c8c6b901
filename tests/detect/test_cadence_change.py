"""Detectors other than packet_loss on a meter reconfigured after its state was learned (issue 14).

AMI meters are reconfigured mid-history (1 -> 5 or 15 min, 15 -> 5, 5 -> 1, 60 -> 15). cad39 made
packet_loss judge each stretch at the cadence its gaps show; measured on simulated meters so
reconfigured (cad43, docs/quality-log.md), two more detectors misjudged them at the learned cadence:

- firmware_drift left out every interval longer than 1.5 learned cadences as "across a lost
  reading": on a meter gone from 1 to 5 or 15 minutes, all of them, and a register counting 85 %
  of the energy was never found;
- neutral_tamper held a three-phase meter's departure over ``persist_min_n`` (12) readings at the
  learned cadence: gone from hourly to 15 minutes, over 12 hours, so its alert outlasted a partial
  earth return by hours; gone from 1 to 15 minutes, over an hour holding 4 readings, fewer than
  its median needs, so the return broke into pieces.

Both now judge at :func:`wattwatch.detect.cadence.stretch_cadence`, the one implementation
packet_loss and the batch's notice use, and stitched pieces cut at every reading near the change
and near the fault give the whole history's scores and alerts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import ENGINE, HEALTHY, run
from wattwatch.detect.cadence import stretch_cadence
from wattwatch.detect.frame import prepare
from wattwatch.sim import SimConfig, simulate

T0 = pd.Timestamp("2025-01-06", tz="UTC")
# (old cadence, new cadence, the cadence simulated: the finer of the two)
CHANGES = [("1min", "5min", "1min"), ("1min", "15min", "1min"), ("15min", "5min", "5min"),
           ("5min", "1min", "1min"), ("60min", "15min", "15min")]
IDS = [f"{a}-{b}" for a, b, _ in CHANGES]


def _reconfigured(frame: pd.DataFrame, old: str, new: str, days_old: float) -> pd.DataFrame:
    """``frame`` (simulated at the finer cadence, no jitter) read every ``old`` for its first
    ``days_old`` days, every ``new`` after."""
    f = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    ns = (f["ts"] - T0).astype("int64").to_numpy()
    early = (f["ts"] < T0 + pd.Timedelta(days=days_old)).to_numpy()
    keep = np.where(early, ns % pd.Timedelta(old).value == 0, ns % pd.Timedelta(new).value == 0)
    return f[keep].sort_values(["meter_id", "ts"]).reset_index(drop=True)


def _home(fine: str, days: float, seed: int = 5) -> pd.DataFrame:
    return simulate(SimConfig(meters=1, days=days, seed=seed, step=fine, commercial_share=0.0, **HEALTHY))["frame"]


def _drifted(f: pd.DataFrame, since: pd.Timestamp, factor: float) -> pd.DataFrame:
    """The register counting ``factor`` of the energy from ``since`` on."""
    f = f.copy()
    e = f["e_kwh"].to_numpy()
    inc = np.diff(e, prepend=e[0])
    inc[(f["ts"] >= since).to_numpy()] *= factor
    f["e_kwh"] = e[0] + np.cumsum(inc)
    return f


@pytest.mark.parametrize("old,new,fine", CHANGES, ids=IDS)
def test_a_register_drift_after_a_reconfiguration_is_found(old, new, fine):
    """Learned on 3 days at the old cadence, read at the new one from day 6: no firmware alert on
    the healthy meter; a register counting 85 % from day 8 on is found from then (1 -> 5 and
    1 -> 15 min: never found before, every interval left out)."""
    f = _reconfigured(_home(fine, 14), old, new, 6)
    assert run(f, ["firmware_drift"]) == []
    since = T0 + pd.Timedelta(days=8)
    got = run(_drifted(f, since, 0.85), ["firmware_drift"])
    assert got, (old, new)
    assert all(pd.Timestamp(a.start) >= since - pd.Timedelta(hours=2) for a in got), [str(a.start) for a in got]
    assert any("under-registers by 1" in a.message for a in got), [a.message for a in got]


def _three_phase(fine: str, seed: int) -> tuple[pd.DataFrame, dict]:
    r = simulate(SimConfig(meters=1, days=16, seed=seed, step=fine, commercial_share=1.0,
                           faults=("partial_earth_return",), profile_days=8.0, **{**HEALTHY, "fault_share": 1.0}))
    (ev,) = [e for e in r["events"] if e["type"] == "partial_earth_return"]
    return r["frame"], ev


@pytest.mark.parametrize("old,fine,seed", [("60min", "15min", 1), ("60min", "15min", 5), ("1min", "1min", 5)],
                         ids=["60-15-seed1", "60-15-seed5", "1-15-seed5"])
def test_a_partial_earth_return_after_a_reconfiguration_is_judged_at_the_new_cadence(old, fine, seed):
    """A three-phase meter read every ``old`` for 6 days, every 15 minutes after, with a partial
    earth return on day 9-11: one alert, the one the same meter read every 15 minutes throughout
    gets (60 -> 15: the alert ran 3-5 h past the fault's end, the departure held over 12 h;
    1 -> 15: three pieces, the hour's window holding 4 readings)."""
    frame, ev = _three_phase(fine, seed)
    got = run(_reconfigured(frame, old, "15min", 6), ["neutral_tamper"])
    want = run(_reconfigured(frame, "15min", "15min", 0), ["neutral_tamper"])
    assert len(want) == 1 and abs(pd.Timestamp(want[0].end) - pd.Timestamp(ev["end"])) <= pd.Timedelta(hours=1)
    assert [(a.start, a.end, a.code) for a in got] == [(a.start, a.end, a.code) for a in want]


@pytest.mark.parametrize("old,new,fine", CHANGES, ids=IDS)
def test_reconfigured_meters_cut_at_every_reading_near_the_change_give_the_whole_history(old, new, fine):
    """The stretch's cadence comes from the gaps either side of a reading (its reach in
    readings): a stitcher cut at every reading from 30 readings before the change to 60 after
    it, and around the start of a register drift, gives each reading's firmware_drift,
    neutral_tamper and packet_loss score and every alert exactly as the whole history does."""
    from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _stitched
    from wattwatch.detect import core, registry
    from wattwatch.detect.engine import profile

    home = _drifted(_reconfigured(_home(fine, 9), old, new, 5), T0 + pd.Timedelta(days=6), 0.8)
    three, _ = _three_phase(fine, 5)
    three = _reconfigured(three[pd.to_datetime(three["ts"], utc=True) < T0 + pd.Timedelta(days=9)], old, new, 5)
    f = pd.concat([home, three.assign(meter_id="T")], ignore_index=True)
    dets = registry.build_all(["firmware_drift", "neutral_tamper", "packet_loss"])
    p = prepare(f)
    profile(p, dets, ENGINE)
    whole = core.run(f, dets)
    t = np.unique(_epoch(home["ts"]))
    change = int(np.searchsorted(t, (T0 + pd.Timedelta(days=5) - pd.Timestamp(0, tz="UTC")).total_seconds()))
    drift = int(np.searchsorted(t, (T0 + pd.Timedelta(days=6) - pd.Timestamp(0, tz="UTC")).total_seconds()))
    near = np.r_[np.arange(change - 30, change + 60), np.arange(drift - 5, drift + 5)]
    cuts = t[np.clip(near, 0, len(t) - 1)] - 0.5
    steps = _stitched(f, dets, np.unique(cuts))
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:6])
    # ... and the stretch's cadence there is the new one (the check has something to check).
    c, _ = stretch_cadence(p["_seg"].to_numpy(), p["_dt"].to_numpy(float),
                           np.array([d.state_[m]["cadence_s"] for d in dets[:1] for m in ("M-00001", "T")]))
    late = (p["ts"] >= T0 + pd.Timedelta(days=6)).to_numpy()
    assert (c[late] == pd.Timedelta(new).total_seconds()).all()
