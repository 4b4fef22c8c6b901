"""lead32's hold on phase_imbalance, live (rev33): a phase step near its allowance lasting two
days, with a night of light load in it (no phase judged) and an outage, streamed three hours of
poll cycles a step with phase_imbalance on the slow tier (judged every 3 hours of data). Once
caught up the alerts are exactly ``detect``'s, and no alert the stream reported ended (can no
longer grow) is written again later: a held alert is not reported closed and then re-opened.

At 60 minutes the fleet runs phase_imbalance with the two rules whose alerts blank it at once
(supply_outage, harmonic_noise), not every rule: at hourly cadence loose_ct's blanking horizon
(19-82 h on these meters) holds phase_imbalance's final point back ~4 days, so on this 6-day fleet
with every rule no imbalance alert came out before the final flush, and none was ever held open
across a step (t1: 1 step of 49 ended with one open; none of the hold bugs of docs/live-log.md
failed the case). Without loose_ct phase_imbalance's reach at 60 minutes is a few hours: the
case's ``fast_reach_s`` (2 h) keeps it on the slow tier, as every rule keeps it at 15 minutes
(asserted once the tiers are split). Each case checks that at least 10 steps end with one of
``detect``'s imbalance alerts open (else the comparison proves nothing about the hold)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.live.test_rejudge import _pieces
from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}
# (t1) phase_imbalance and the rules that blank it within a reading or so (see the module's doc).
HOURLY = ["supply_outage", "harmonic_noise", "phase_imbalance"]
PHASES = ["i_l1_a", "i_l2_a", "i_l3_a"]


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


# (t1) The outage at 60 minutes lasts 6 hours, not 4: whatever its phase it then holds a whole
# 3-hour slow piece with no reading of its meter (a held meter silent for a slow judgement, rtt15's
# h4). Four hourly readings lost hold one only when the outage starts within about an hour after a
# piece's start and the jitter puts no reading at its edge (on seed 32: two meters of four).
@pytest.mark.parametrize("step,seed,names,outage_h,fast_reach_s",
                         [("15min", 31, None, 4, 43200.0), ("60min", 32, HOURLY, 6, 7200.0)])
def test_a_held_imbalance_alert_streams_as_detect_and_never_reopens(tmp_path, step, seed, names, outage_h,
                                                                     fast_reach_s):
    config = CONFIG if names is None else {**CONFIG, "detectors": names}
    out = tmp_path / "fleet"
    simulate(SimConfig(meters=5, days=6, step=step, seed=seed, commercial_share=1.0, fault_share=0.5,
                       profile_days=1.0, outage_share=0.4), out)
    f = pd.read_parquet(out / "telemetry.parquet")
    rng = np.random.default_rng(seed)
    t0 = f.ts.min()
    for m in sorted(f.meter_id.unique())[:4]:
        a = t0 + pd.Timedelta(days=float(rng.uniform(1.5, 3)))
        w = (f.meter_id == m) & (f.ts >= a) & (f.ts < a + pd.Timedelta(days=2))
        f.loc[w, PHASES[int(rng.integers(0, 3))]] *= 1.16
        night = (f.meter_id == m) & (f.ts >= a + pd.Timedelta(hours=20)) & (f.ts < a + pd.Timedelta(hours=28))
        f.loc[night, PHASES] *= 0.002
        gone = (f.ts >= a + pd.Timedelta(hours=32)) & (f.ts < a + pd.Timedelta(hours=32 + outage_h))
        f = f[~((f.meter_id == m) & gone)]
    path = tmp_path / "t.parquet"
    f.to_parquet(path)
    det = api.detect(path, db=tmp_path / "batch.duckdb", config=config)
    want = {a.id: _view(a) for a in det.alerts}
    imb = {a.id for a in det.alerts if a.detector == "phase_imbalance"}
    assert imb, "no phase imbalance alert: the comparison proves nothing"
    frame = api.read_frame(tmp_path / "batch.duckdb")

    # Three hours of polls a step (twelve readings a meter at 15 min, three at 60 min): the slow
    # tier, which holds phase_imbalance, judges on its 3-hour data clock as with a step per reading
    # (tt4: 120 steps, not 480, at 15 min; tt15: a third of those steps, the same 43 slow judgements
    # at 15 min; the held-alert bug it guards still fails the 15-min case so, docs/live-log.md).
    pieces = list(_pieces(frame, frame["ts"].min().floor("1D") + pd.Timedelta("1D"), "3h"))
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, config), api._engine(config),
                       StreamConfig(checkpoint_s=1e9, slow_every_s=3 * 3600.0, fast_reach_s=fast_reach_s))
    ended_at: dict[str, int] = {}
    reopened = []
    open_steps = 0   # steps that end with one of detect's imbalance alerts open (may still grow)
    for k, p in enumerate(pieces):
        eng.add(p)
        rep = eng.step()
        # (rtt15) The slow tier's judgement taken before the next poll, as ``watch``'s step does
        # when a checkpoint is due (``_work``: ``_deliver_held`` merged into the step's report):
        # else, three hours a step, the worker is still busy at the next step about half the time
        # and the slow tier judges 26 times, half of them six hours at once (43 times, three hours
        # each, at one-hour steps): a held meter silent for a whole slow piece is then left to luck.
        held = eng.take_held()
        for r in (rep, held) if held is not None else (rep,):
            for a in r.alerts:
                if a.id in ended_at:
                    reopened.append((a.id, a.detector, ended_at[a.id], k, a.start, a.end))
            for i in r.ended:
                ended_at.setdefault(i, k)
        open_steps += bool(eng.open_ids & imb)
    # (t1) Asserted once the tiers are split (at the first profiled step; empty before).
    assert eng.fast_names and "phase_imbalance" not in eng.fast_names, eng.fast_names
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    store.close()
    problems = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
                if want.get(i) != got.get(i)]
    assert not problems, "\n".join(problems[:10])
    assert not reopened, reopened
    assert open_steps >= 10, f"an imbalance alert open at the end of {open_steps} steps: no hold streamed"
