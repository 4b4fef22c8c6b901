"""A meter whose cadence changes twice, and windows of a store cut at a cadence change (rev43,
review of cad43; docs/quality-log.md).

cad43 made firmware_drift's intervals and neutral_tamper's held window follow the cadence of a
reading's stretch (:func:`wattwatch.detect.cadence.stretch_cadence`: the gaps either side of it, a
reach of ``gaps_per_side`` readings). Its own stitched test cuts around one change. Here: a meter
read every minute, every 5 minutes for a day, every minute again (and 5 -> 1 -> 5), stitched at
readings around both changes and between them; and ``detect --start/--end`` windows of a store
(the incremental path, which loads each detector's declared reach around the window and nothing
else) that start at the change, inside the readings that decide it, and where the reach loaded
back from the window's start ends at the change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import ENGINE
from tests.detect.test_cadence_change import T0, _drifted, _home, _reconfigured, _three_phase
from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _stitched
from wattwatch import api
from wattwatch.detect import core, registry
from wattwatch.detect.cadence import gaps_per_side, stretch_cadence
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare

NAMES = ["firmware_drift", "neutral_tamper", "packet_loss"]


def _read_at(frame: pd.DataFrame, cads: tuple[str, str, str], days: tuple[float, float]) -> pd.DataFrame:
    """``frame`` (simulated every minute, no jitter) read every ``cads[0]`` until day ``days[0]``,
    every ``cads[1]`` until day ``days[1]``, every ``cads[2]`` after."""
    f = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    since = (f["ts"] - T0).astype("int64").to_numpy()
    d = since / 86400e9
    k = np.where(d < days[0], 0, np.where(d < days[1], 1, 2))
    step = np.array([pd.Timedelta(c).value for c in cads])[k]
    return f[since % step == 0].sort_values(["meter_id", "ts"]).reset_index(drop=True)


@pytest.mark.parametrize("cads", [("1min", "5min", "1min"), ("5min", "1min", "5min")], ids=["1-5-1", "5-1-5"])
def test_a_meter_whose_cadence_changes_twice_stitched_around_both_changes_gives_the_whole_history(cads):
    days = (4.5, 5.5)
    home = _drifted(_read_at(_home("1min", 9), cads, days), T0 + pd.Timedelta(days=6), 0.8)
    three, _ = _three_phase("1min", 5)
    three = _read_at(three[pd.to_datetime(three["ts"], utc=True) < T0 + pd.Timedelta(days=9)], cads, days)
    f = pd.concat([home, three.assign(meter_id="T")], ignore_index=True)
    dets = registry.build_all(NAMES)
    p = prepare(f)
    profile(p, dets, ENGINE)
    # The stretch between the changes runs at its own cadence, the one after at the learned again.
    c, _ = stretch_cadence(p["_seg"].to_numpy(), p["_dt"].to_numpy(float),
                           np.array([dets[0].state_[m]["cadence_s"] for m in ("M-00001", "T")]))
    d = ((p["ts"] - T0).dt.total_seconds() / 86400).to_numpy()
    mid, after = (d > days[0] + 0.2) & (d < days[1] - 0.2), d > days[1] + 0.2
    assert (c[mid] == pd.Timedelta(cads[1]).total_seconds()).all()
    assert (c[after] == pd.Timedelta(cads[2]).total_seconds()).all()
    whole = core.run(f, dets)
    assert any(a.detector == "firmware_drift" for a in whole.alerts)   # the drift after the second change
    t = np.unique(_epoch(home["ts"]))
    n = int(gaps_per_side(60.0))
    cuts = []
    for day in days:   # readings either side of each change, within the gaps that decide a cadence
        i = int(np.searchsorted(t, (T0 + pd.Timedelta(days=day) - pd.Timestamp(0, tz="UTC")).total_seconds()))
        near = t[np.clip(np.arange(i - n - 2, i + n + 3, 3), 0, len(t) - 1)]
        cuts += [near - 0.5, near]   # between readings and exactly at one (it ends the piece)
    steps = _stitched(f, dets, np.unique(np.concatenate(cuts)))
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:6])


def test_store_windows_at_a_cadence_change_give_the_whole_runs_scores(tmp_path):
    """``detect --start/--end`` on a store loads each detector's declared reach around the window:
    windows starting at a 1 -> 15 min change, within the readings that decide it and where
    neutral_tamper's held window (3 h at 15 minutes, 1 h at the learned minute) reaches over it, and
    (firmware_drift alone) where the reach loaded back from the window's start ends at the change,
    and (neutral_tamper alone) 1-3 hours after it,
    give the whole run's scores there."""
    home = _drifted(_reconfigured(_home("1min", 12), "1min", "15min", 6), T0 + pd.Timedelta(days=7), 0.8)
    three, _ = _three_phase("1min", 5)
    three = _reconfigured(three[pd.to_datetime(three["ts"], utc=True) < T0 + pd.Timedelta(days=12)], "1min", "15min", 6)
    f = pd.concat([home, three.assign(meter_id="T")], ignore_index=True)
    f.to_parquet(tmp_path / "f.parquet")
    db = tmp_path / "s.duckdb"
    api.ingest(tmp_path / "f.parquet", db)
    change = T0 + pd.Timedelta(days=6)
    step = pd.Timedelta("15min")
    # firmware_drift's reach back at 1 minute as a window loads it (api._reach_back): its seconds,
    # then its readings and two more at 1.5 cadences.
    fw = registry.build("firmware_drift")
    fw_back = pd.Timedelta(seconds=float(fw.lookback_s(np.array([60.0]))[0]) + (int(gaps_per_side(60.0)) + 2) * 90)
    cases = [(NAMES, change + k * step) for k in (-9, -1, 0, 1, 3, 9, 13)] \
        + [(["firmware_drift"], change + fw_back + k * step) for k in (-12, -3, 0, 3, 12)] \
        + [(["neutral_tamper"], change + k * step) for k in (4, 8, 12)]
    for names in (NAMES, ["firmware_drift"], ["neutral_tamper"]):
        whole = api.detect(db, detectors=names, scores=True, keep=False).scores
        for lo in [lo for ns, lo in cases if ns == names]:
            hi = lo + pd.Timedelta(hours=4)
            win = api.detect(db, detectors=names, start=lo.isoformat(), end=hi.isoformat(), scores=True,
                             keep=False).scores
            inside = whole[(whole.ts >= lo) & (whole.ts < hi)].reset_index(drop=True)
            assert len(win) == len(inside) > 0, (names, lo)
            pd.testing.assert_frame_equal(win, inside, check_dtype=False, obj=f"{names} from {lo}")
