"""lead32's hold on phase_imbalance, live (rev33): a phase step near its allowance lasting two
days, with a night of light load in it (no phase judged) and an outage, streamed three hours of
poll cycles a step with phase_imbalance on the slow tier (judged every 3 hours of data). Once
caught up the alerts are exactly ``detect``'s, and no alert the stream reported ended (can no
longer grow) is written again later: a held alert is not reported closed and then re-opened."""

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
PHASES = ["i_l1_a", "i_l2_a", "i_l3_a"]


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


@pytest.mark.parametrize("step,seed", [("15min", 31), ("60min", 32)])
def test_a_held_imbalance_alert_streams_as_detect_and_never_reopens(tmp_path, step, seed):
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
        f = f[~((f.meter_id == m) & (f.ts >= a + pd.Timedelta(hours=32)) & (f.ts < a + pd.Timedelta(hours=36)))]
    path = tmp_path / "t.parquet"
    f.to_parquet(path)
    det = api.detect(path, db=tmp_path / "batch.duckdb", config=CONFIG)
    want = {a.id: _view(a) for a in det.alerts}
    held = [a for a in det.alerts if a.detector == "phase_imbalance"]
    assert held, "no phase imbalance alert: the comparison proves nothing"
    frame = api.read_frame(tmp_path / "batch.duckdb")

    # Three hours of polls a step (twelve readings a meter at 15 min, three at 60 min): the slow
    # tier, which holds phase_imbalance, judges on its 3-hour data clock as with a step per reading
    # (tt4: 120 steps, not 480, at 15 min; tt15: a third of those steps, the same 43 slow judgements
    # at 15 min; the held-alert bug it guards still fails the 15-min case so, docs/live-log.md).
    pieces = list(_pieces(frame, frame["ts"].min().floor("1D") + pd.Timedelta("1D"), "3h"))
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=1e9, slow_every_s=3 * 3600.0))
    assert "phase_imbalance" not in eng.fast_names
    ended_at: dict[str, int] = {}
    reopened = []
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
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    store.close()
    problems = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
                if want.get(i) != got.get(i)]
    assert not problems, "\n".join(problems[:10])
    assert not reopened, reopened
