"""(b2) Readings a source sends again (an MQTT QoS 1 redelivery, a gateway's replay after a
reconnect) through the whole stream engine. A copy that repeats a stored reading (the store's
match: its meter, within its duplicate tolerance, no value differing, no channel filled) is a
duplicate: counted, stored once, and it re-judges nothing, so the stream gives exactly what it
gives without it. A copy that gives other values (a correction: the store keeps its values) or
fills a channel the stored reading lacked is late data: the meter is re-judged, even when the copy
comes alone, and the alerts are ``detect``'s on the same store."""

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
CAD = 900.0          # 15 min: the store's duplicate tolerance is min(10 s, cadence / 4) = 10 s
STEP = pd.Timedelta("2h")


def _fleet(seed: int = 3) -> pd.DataFrame:
    """4 meters at 15 min over 2.5 days: six readings lost in a row on two meters (packet loss),
    a 2-hour supply outage on one, ``i_l1_a`` blank in a few readings of each (a copy may fill it)."""
    rng = np.random.default_rng(seed)
    n = int(2.5 * 86400 / CAD)
    parts = []
    for k, m in enumerate(["A", "B", "C", "D"]):
        t = T0 + pd.to_timedelta(np.arange(n) * CAD + rng.uniform(-2, 2, n), unit="s")
        f = pd.DataFrame({"meter_id": m, "ts": t, "v_l1_v": 230.0 + rng.normal(0, 0.5, n),
                          "i_l1_a": 4.5 + rng.normal(0, 0.2, n), "p_kw": 1.0 + rng.normal(0, 0.05, n)})
        if m == "B":
            out = slice(int(38 * 3600 / CAD), int(40 * 3600 / CAD))
            f.loc[f.index[out], ["v_l1_v", "i_l1_a", "p_kw"]] = 0.0
        f.loc[f.index[rng.choice(np.arange(100, n - 10), 4, replace=False)], "i_l1_a"] = np.nan
        lost = np.zeros(n, bool)
        for h in {"A": [31.0], "C": [44.0]}.get(m, []):
            i = int(h * 3600 / CAD)
            lost[i:i + 6] = True
        parts.append(f[~lost])
    return pd.concat(parts, ignore_index=True).sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)


def _pieces(f: pd.DataFrame) -> list[pd.DataFrame]:
    """The profiling day, then 2-hour pieces."""
    edges = [f["ts"].min() - pd.Timedelta("1s"), T0 + pd.Timedelta("1D")]
    while edges[-1] < f["ts"].max():
        edges.append(edges[-1] + STEP)
    return [f[(f["ts"] > lo) & (f["ts"] <= hi)] for lo, hi in zip(edges[:-1], edges[1:])]


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def _rows(store: Store) -> pd.DataFrame:
    return store.con.execute("SELECT * FROM readings ORDER BY meter_id, ts").df()


def _stream(path, batches: list[list[pd.DataFrame]]) -> tuple[dict, pd.DataFrame, dict]:
    """Every inner list's frames added one by one, then a step; a flush at the end. Returns the
    alerts (id -> view), the stored readings and the engine's counters."""
    store = Store(path)
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=1e9, slow_thread=False))
    for adds in batches:
        for p in adds:
            eng.add(p)
        eng.step()
    eng.flush()
    got = {i: _view(a) for i, a in eng.alerts.items()}
    rows = _rows(store)
    store.close()
    return got, rows, dict(eng.counters)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The stream without any copy: its alerts (both detectors alert) and stored readings."""
    f = _fleet()
    got, rows, c = _stream(tmp_path_factory.mktemp("plain") / "live.duckdb", [[p] for p in _pieces(f)])
    assert sorted({a["detector"] for a in got.values()}) == ["packet_loss", "supply_outage"], got
    assert c.get("rewinds", 0) == 0 and c.get("duplicates", 0) == 0, c
    return {"frame": f, "alerts": got, "rows": rows}


def test_identical_resends_are_counted_duplicates_and_change_nothing(plain, tmp_path):
    """A fifth of the judged readings (and a few not judged yet) re-sent 1-3 pieces later, inside
    a piece of new readings; half exactly, half with the time moved by up to 4 s (within the
    store's 10 s tolerance), some twice in one piece. The same alerts and stored readings as the
    stream without them, no rewind, no late reading, and every copy counted a duplicate."""
    rng = np.random.default_rng(11)
    pieces = _pieces(plain["frame"])
    batches, n_copies = [[pieces[0]]], 0
    for k in range(1, len(pieces)):
        old = pd.concat(pieces[max(0, k - 3):k])
        old = old[old["ts"] >= T0 + pd.Timedelta("1D") - STEP]   # (not the profiling day: before any judging)
        copies = old.sample(frac=0.2, random_state=int(rng.integers(1 << 30))) if len(old) else old
        copies = copies.copy()
        jit = rng.uniform(-4, 4, len(copies)) * (rng.random(len(copies)) < 0.5)
        copies["ts"] = copies["ts"] + pd.to_timedelta(jit, unit="s")
        twice = copies.iloc[: len(copies) // 5]
        batch = pd.concat([copies, pieces[k], twice], ignore_index=True)
        n_copies += len(copies) + len(twice)
        batches.append([batch])
    got, rows, c = _stream(tmp_path / "live.duckdb", batches)
    assert n_copies > 150
    assert c.get("rewinds", 0) == 0 and c.get("late", 0) == 0, c
    assert c.get("duplicates", 0) == n_copies, (c, n_copies)
    assert c["stored"] == len(plain["rows"]), c
    pd.testing.assert_frame_equal(rows, plain["rows"])
    want = plain["alerts"]
    bad = [f"{i}: plain {want.get(i)} != resent {got.get(i)}" for i in sorted(set(want) | set(got))
           if want.get(i) != got.get(i)]
    assert not bad, "\n".join(bad[:10])


@pytest.mark.parametrize("kind", ["corrected", "filling"])
def test_a_resent_reading_that_corrects_or_fills_is_late_data_and_rewinds(plain, tmp_path, kind):
    """Every third piece, alone in its own ingest (a gateway's replay; nothing new stored with it),
    a copy of a reading judged a piece or more before: ``corrected`` with other values for channels
    the stored reading has (the store keeps its values), ``filling`` giving ``i_l1_a`` to a stored
    reading that lacks it. Each re-judges its meter (one rewind each), none is a duplicate, and the
    stream's alerts are ``detect``'s on the same store."""
    rng = np.random.default_rng(12)
    pieces = _pieces(plain["frame"])
    blanks = plain["frame"][plain["frame"]["i_l1_a"].isna() & (plain["frame"]["ts"] >= T0 + pd.Timedelta("1D"))]
    batches, n = [[pieces[0]]], 0
    for k in range(1, len(pieces)):
        adds = [pieces[k]]
        if k % 3 == 0:
            lo, hi = pieces[max(0, k - 4)]["ts"].min(), pieces[k - 1]["ts"].min()
            if kind == "corrected":
                old = pd.concat(pieces[max(1, k - 4):k - 1])
                row = old.iloc[[int(rng.integers(len(old)))]].copy()
                row["p_kw"] = row["p_kw"] * 1.2 + 1.0
                row["v_l1_v"] = row["v_l1_v"] - 3.0
            else:
                cand = blanks[(blanks["ts"] >= lo) & (blanks["ts"] < hi)]
                if not len(cand):
                    batches.append(adds)
                    continue
                row = cand.iloc[[0]].copy()
                blanks = blanks.drop(cand.index[0])
                row["i_l1_a"] = 4.5
            row["ts"] = row["ts"] + pd.Timedelta(seconds=float(rng.uniform(-4, 4)))
            adds.append(row)
            n += 1
        batches.append(adds)
    got, rows, c = _stream(tmp_path / "live.duckdb", batches)
    assert n >= 3, n
    assert c.get("rewinds", 0) == n and c.get("late", 0) == n and c.get("duplicates", 0) == 0, (c, n)
    if kind == "corrected":   # the stored values were kept
        pd.testing.assert_frame_equal(rows, plain["rows"])
    else:
        assert int(rows["i_l1_a"].isna().sum()) == int(plain["rows"]["i_l1_a"].isna().sum()) - n
    want = {a.id: _view(a) for a in api.detect(rows, db=tmp_path / "batch.duckdb", config=CONFIG).alerts}
    bad = [f"{i}: detect {want.get(i)} != stream {got.get(i)}" for i in sorted(set(want) | set(got))
           if want.get(i) != got.get(i)]
    assert not bad, "\n".join(bad[:10])
