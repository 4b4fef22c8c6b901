"""(pl1) Readings stamped to the nanosecond (a float-second clock, a parquet replay) streamed as they
come, not read back from a store first: the store keeps a time to the microsecond, rounded (DuckDB's
cast: ``...01.284057692`` is stored ``...01.284058``), while the stream took a meter's newest stamp
floored, so a newest reading stored a microsecond later was in no step's window and, at the end of
the stream, never judged. Here a packet-loss alert's evidence (its worst window's share, truncated at
the meter's last reading) said so: b2 found 0.125 against ``detect``'s 0.1225. Every stored reading
is judged once, and the alerts are ``detect``'s (ids, spans, scores, messages, evidence)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["supply_outage", "packet_loss"]}
T0 = pd.Timestamp("2025-01-06", tz="UTC")
CAD = 900.0


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def _fleet(seed: int = 3) -> pd.DataFrame:
    """Three meters at 15 min over 2 days, stamps jittering by +-2 s to the nanosecond; ``C`` loses
    six readings in a row 2.25 h before its last (the alert's window reaches the end of its data)."""
    rng = np.random.default_rng(seed)
    n = int(2 * 86400 / CAD)
    parts = []
    for m in ["A", "B", "C"]:
        t = T0 + pd.to_timedelta(np.arange(n) * CAD + rng.uniform(-2, 2, n), unit="s")
        f = pd.DataFrame({"meter_id": m, "ts": t, "v_l1_v": 230.0 + rng.normal(0, 0.5, n),
                          "i_l1_a": 4.5 + rng.normal(0, 0.2, n), "p_kw": 1.0 + rng.normal(0, 0.05, n)})
        if m == "C":
            i = int(44 * 3600 / CAD)
            f = f.drop(f.index[i:i + 6])
        parts.append(f)
    return pd.concat(parts, ignore_index=True).sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)


def test_nanosecond_stamps_streamed_give_every_reading_judged_and_detects_alerts(tmp_path):
    f = _fleet()
    last = f.groupby("meter_id")["ts"].max()
    # (the case: a meter's newest stamp the store rounds up, C's among them)
    assert last["C"].round("us") > last["C"].floor("us")
    f.to_parquet(tmp_path / "f.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "f.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert [(a["meter_id"], a["evidence"]["kind"]) for a in want.values() if a["detector"] == "packet_loss"] == \
        [("C", "data_gap")]

    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=1e9, slow_thread=False))
    edges = [f["ts"].min() - pd.Timedelta("1s"), T0 + pd.Timedelta("1D")]
    while edges[-1] < f["ts"].max():
        edges.append(edges[-1] + pd.Timedelta("2h"))
    for lo, hi in zip(edges[:-1], edges[1:]):
        eng.add(f[(f["ts"] > lo) & (f["ts"] <= hi)])
        eng.step()
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    store.close()
    c = eng.counters
    assert c["stored"] == len(f) and c["judged"] == len(f) and c.get("rewinds", 0) == 0, dict(c)
    bad = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
           if want.get(i) != got.get(i)]
    assert not bad, "\n".join(bad)
