"""rev56: q56's data gap (three hourly or half-hourly readings lost in a row) through the whole
stream engine, its steps cut on the gaps' edges and inside them: exactly ``detect``'s alerts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["supply_outage", "packet_loss"]}
T0 = pd.Timestamp("2025-01-06", tz="UTC")


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def _meter(name: str, cad_s: float, lost_at_h: list[float], seed: int, days: int = 5) -> pd.DataFrame:
    n = int(days * 86400 / cad_s)
    lost = np.zeros(n, bool)
    for h in lost_at_h:
        i = int(round(h * 3600 / cad_s))
        lost[i:i + 3] = True
    ts = T0 + pd.to_timedelta(np.arange(n) * cad_s + np.random.default_rng(seed).uniform(-2, 2, n), unit="s")
    f = pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    return f[~lost]


def _streamed_as_detect(tmp_path, want: dict, again: bool, gap: float, step_s: float | None) -> None:
    """The batch store's readings streamed through one ``StreamEngine`` in steps cut at the profiling
    day's end and at and around every gap over ``gap`` times its meter's median spacing (its edges, a
    second before each, its middle), and every ``step_s`` between the cuts (None: no more); ``again``:
    each step starts with every meter's last reading of the step before. Asserts ``want`` (detect's)."""
    frame = api.read_frame(tmp_path / "batch.duckdb").sort_values("ts", kind="stable")
    t = ((frame["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    cuts = [t.min() + 86400.0]
    for _, g in frame.groupby(frame["meter_id"].astype(str)):
        x = np.sort(((g["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy())
        for i in np.flatnonzero(np.diff(x) > gap * np.median(np.diff(x))):
            cuts += [x[i] - 1, x[i], (x[i] + x[i + 1]) / 2, x[i + 1] - 1, x[i + 1]]
    edges = [-np.inf] + sorted(set(cuts)) + [np.inf]
    if step_s:
        fine = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            fine.append(lo)
            if np.isfinite(lo) and np.isfinite(hi):
                fine += list(np.arange(lo + step_s, hi, step_s))
        edges = fine + [np.inf]
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG), StreamConfig(checkpoint_s=1e9))
    prev = None
    for lo, hi in zip(edges[:-1], edges[1:]):
        p = frame[(t > lo) & (t <= hi)]
        if again and prev is not None and len(prev):
            p = pd.concat([prev.groupby(prev["meter_id"].astype(str), sort=False).tail(1), p])
        prev = p
        eng.add(p)
        eng.step()
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    store.close()
    problems = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
                if want.get(i) != got.get(i)]
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("again", [False, True])
def test_hourly_and_half_hourly_gaps_streamed_in_steps_cut_on_them_give_detects_alerts(tmp_path, again):
    """``again``: each step starts with every meter's last reading of the step before it again (a
    gateway re-sending the reading before a silence)."""
    frame = pd.concat([_meter("H0", 3600.0, [40.0], 0), _meter("H1", 3600.0, [50.0, 90.0], 1),
                       _meter("S0", 1800.0, [61.5], 2), _meter("S1", 1800.0, [75.0], 4),
                       _meter("Q", 3600.0, [], 5)], ignore_index=True)
    frame.to_parquet(tmp_path / "f.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "f.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert sorted(a["meter_id"] for a in want.values() if a["detector"] == "packet_loss") == \
        ["H0", "H1", "H1", "S0", "S1"]

    # (cut on gaps over 2.5 spacings, and every hour and a half between the cuts)
    _streamed_as_detect(tmp_path, want, again, 2.5, 5400.0)


@pytest.mark.parametrize("again", [False, True])
def test_silences_after_a_supply_loss_streamed_in_steps_cut_on_them_give_detects_alerts(tmp_path, again):
    """q64: meters that lose their supply and fall silent (the outage's, not packet loss), one that
    reports the voltage back before falling silent (packet loss), streamed in steps cut at and
    around the silences' edges: exactly ``detect``'s alerts."""
    from tests.detect.test_outage_silence import METERS, _meter as _outage_meter

    frame = pd.concat([_outage_meter(m, c, d, s, i, days=5) for i, (m, (c, d, s, _)) in enumerate(METERS.items())
                       if m in ("OUT", "OUT0", "TWO", "BACK", "Q15", "Q")], ignore_index=True)
    frame.to_parquet(tmp_path / "f.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "f.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert sorted((a["meter_id"], a["detector"]) for a in want.values()) == [
        ("BACK", "packet_loss"), ("BACK", "supply_outage"), ("OUT", "supply_outage"), ("OUT0", "supply_outage"),
        ("Q15", "supply_outage"), ("TWO", "supply_outage"), ("TWO", "supply_outage")]

    _streamed_as_detect(tmp_path, want, again, 1.6, None)
