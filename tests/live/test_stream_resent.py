"""(b2) Readings a source sends again (an MQTT QoS 1 redelivery, a gateway's replay after a
reconnect) through the whole stream engine. A copy that repeats a stored reading (the store's
match: its meter, within its duplicate tolerance, no value differing, no channel filled) is a
duplicate: counted, stored once, and it re-judges nothing. A copy that fills a channel a judged
reading lacked is late data: the meter is re-judged, even when the copy comes alone, and the
alerts are ``detect``'s on the same store. A copy filling a reading not judged yet is neither late
nor lost. (fast) A copy giving other values (a correction) changes nothing stored (the store keeps
its values): a conflict, counted and said, and it re-judges nothing (rb2 re-judged it).

(rb2) One stream holds every kind (was three streams and a baseline stream, ~8.5 s CPU; now ~2 s):
the baseline is ``detect`` on the store and the input frame itself."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["supply_outage", "packet_loss"]}
T0 = pd.Timestamp("2025-01-06", tz="UTC")
CAD = 900.0          # 15 min: the store's duplicate tolerance is min(10 s, cadence / 4) = 10 s
STEP = pd.Timedelta("3h")
CH = ["v_l1_v", "i_l1_a", "p_kw"]


def _fleet(seed: int = 3) -> pd.DataFrame:
    """4 meters at 15 min over 2 days: six readings lost in a row on A and C (packet loss), a
    2-hour supply outage on B, ``i_l1_a`` blank in a few readings of each (a copy may fill it):
    A's at 27.5 h and B's at 25.5 h, every one of D's from 36 h to 39.25 h."""
    rng = np.random.default_rng(seed)
    n = int(2 * 86400 / CAD)
    parts = []
    for m in ["A", "B", "C", "D"]:
        t = (T0 + pd.to_timedelta(np.arange(n) * CAD + rng.uniform(-2, 2, n), unit="s")).round("us")
        f = pd.DataFrame({"meter_id": m, "ts": t, "v_l1_v": 230.0 + rng.normal(0, 0.5, n),
                          "i_l1_a": 4.5 + rng.normal(0, 0.2, n), "p_kw": 1.0 + rng.normal(0, 0.05, n)})
        if m == "B":
            f.loc[f.index[int(31 * 3600 / CAD):int(33 * 3600 / CAD)], CH] = 0.0
        blank = {"A": [27.5], "B": [25.5], "D": np.arange(36, 39.5, CAD / 3600)}.get(m, [])
        at = np.concatenate([rng.choice(np.arange(100, n - 10), 4, replace=False),
                             (np.asarray(blank) * 3600 / CAD).astype(int)])
        f.loc[f.index[at], "i_l1_a"] = np.nan
        lost = np.zeros(n, bool)
        for h in {"A": [28.0], "C": [41.0]}.get(m, []):
            lost[int(h * 3600 / CAD):int(h * 3600 / CAD) + 6] = True
        parts.append(f[~lost])
    return pd.concat(parts, ignore_index=True).sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)


def _pieces(f: pd.DataFrame) -> list[pd.DataFrame]:
    """The profiling day, then 3-hour pieces."""
    edges = [f["ts"].min() - pd.Timedelta("1s"), T0 + pd.Timedelta("1D")]
    while edges[-1] < f["ts"].max():
        edges.append(edges[-1] + STEP)
    return [f[(f["ts"] > lo) & (f["ts"] <= hi)] for lo, hi in zip(edges[:-1], edges[1:])]


def _view(a) -> dict:
    d = json.loads(a.to_json())
    return {k: d[k] for k in ("id", "meter_id", "start", "end", "code", "detector", "severity", "score", "message",
                              "evidence")}


def _us(ts) -> np.ndarray:
    return pd.Series(ts).dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype(np.int64).to_numpy()


def _at(f: pd.DataFrame, m: str, hours: float) -> pd.DataFrame:
    """m's reading nearest ``hours`` after T0 (a copy of it)."""
    g = f[f["meter_id"] == m]
    return g.loc[[(g["ts"] - (T0 + pd.Timedelta(hours=hours))).abs().idxmin()]].copy()


def test_resent_readings_are_duplicates_and_corrections_or_fills_late_data(tmp_path, caplog):
    """Every 3-hour piece comes with copies of a fifth of the readings of the 3 pieces before it
    (judged ones and, the last of each meter, some not judged yet; half exact, half moved by up to
    4 s within the store's 10 s tolerance, a fifth of them twice in the batch). After some steps a
    copy comes alone in its own ingest: a correction of a judged reading of C (the store keeps its
    values: a conflict, fast), a copy filling ``i_l1_a`` of a judged reading of B 4 s early, and one filling it in D's
    very last judged reading, 4 s after it (rb2: a copy later than the last judged reading may
    still be of it), with another ``p_kw`` too (rfast: a fill and a conflict, alone in its ingest). Before one step a copy fills A's reading of the piece, not judged yet; a later
    copy of it lacking ``i_l1_a`` again is a duplicate. Each copy of a judged reading that fills
    re-judges its meter (one rewind, one late reading each), also when it gives another value too
    (a conflict as well); the correction is one conflict and re-judges nothing; every other copy is a duplicate and re-judges nothing; the store holds the input readings once, with the fills; the
    stream's alerts are ``detect``'s on that store."""
    rng = np.random.default_rng(11)
    f = _fleet()
    pieces = _pieces(f)
    store = Store(tmp_path / "live.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(checkpoint_s=1e9, slow_thread=False))
    n_dup = n_late = n_conflict = 0
    want = f.copy()
    try:
        for k, piece in enumerate(pieces):
            batch = piece
            if k:
                old = pd.concat(pieces[max(0, k - 3):k])
                old = old[old["ts"] >= T0 + pd.Timedelta("1D") - STEP]   # (not before any judging)
                copies = old.sample(frac=0.2, random_state=int(rng.integers(1 << 30))).copy()
                jit = rng.uniform(-4, 4, len(copies)) * (rng.random(len(copies)) < 0.5)
                copies["ts"] = copies["ts"] + pd.to_timedelta(jit, unit="s")
                twice = copies.iloc[: len(copies) // 5]
                batch = pd.concat([copies, piece, twice] + ([_at(f, "A", 27.5)] if k == 4 else []),
                                  ignore_index=True)
                n_dup += len(batch) - len(piece)
            eng.add(batch)
            if k == 2:   # A's reading at 27.5 h filled before it is judged: neither late nor a duplicate
                fill = _at(f, "A", 27.5)
                assert _us(fill["ts"])[0] > eng.fed["A"] and fill["i_l1_a"].isna().all()
                want.loc[fill.index, "i_l1_a"] = 4.25
                eng.add(fill.assign(i_l1_a=4.25, ts=fill["ts"] + pd.Timedelta(seconds=4)))
            eng.step()
            late = None
            if k == 2:   # a correction of a judged reading of C, 3 s off
                late = _at(f, "C", 26.0)
                late = late.assign(p_kw=late["p_kw"] * 1.2 + 1.0, v_l1_v=late["v_l1_v"] - 3.0,
                                   ts=late["ts"] + pd.Timedelta(seconds=3))
            elif k == 3:   # B's reading at 25.5 h (i_l1_a blank) filled by a copy 4 s early
                late = _at(f, "B", 25.5)
                assert late["i_l1_a"].isna().all()
                want.loc[late.index, "i_l1_a"] = 4.5
                late = late.assign(i_l1_a=4.5, ts=late["ts"] - pd.Timedelta(seconds=4))
            elif k == 5:   # D's last judged reading (i_l1_a blank) filled by a copy 4 s after it, which
                # also gives another p_kw (rfast: a fill and a conflict; the fill re-judges D)
                late = f[(f["meter_id"] == "D") & (_us(f["ts"]) == eng.fed["D"])]
                assert len(late) == 1 and late["i_l1_a"].isna().all()
                want.loc[late.index, "i_l1_a"] = 4.5
                late = late.assign(i_l1_a=4.5, p_kw=late["p_kw"] + 0.5, ts=late["ts"] + pd.Timedelta(seconds=4))
            if late is not None:
                assert _us(late["ts"])[0] - 4_000_000 <= eng.fed[late["meter_id"].iloc[0]]
                eng.add(late)
                n_late += k != 2
                n_conflict += k in (2, 5)
        eng.flush()
        got = {i: _view(a) for i, a in eng.alerts.items()}
        c = dict(eng.counters)
        rows = store.con.execute("SELECT * FROM readings ORDER BY meter_id, ts").df()
    finally:
        store.close()
    assert n_late == 2 and n_conflict == 2 and n_dup > 150, (n_late, n_dup)
    assert c.get("rewinds", 0) == n_late and c.get("late", 0) == n_late, c
    assert c.get("conflicts", 0) == n_conflict, c
    # (fast) The correction is said where a watcher's user reads (its log), with the meter and values
    # (rfast: and so is D's filling copy's other p_kw).
    said = [r.getMessage() for r in caplog.records if "given again with different values" in r.getMessage()]
    assert len(said) == 2 and "meter C " in said[0] and "meter D " in said[1], said
    assert all("p_kw" in x for x in said), said
    assert c.get("duplicates", 0) == n_dup, (c, n_dup)
    assert sorted({a["detector"] for a in got.values()}) == ["packet_loss", "supply_outage"], got
    # The store: every input reading once, with the fills (the stored values kept against the correction).
    want = want.assign(ts=want["ts"].astype("datetime64[us, UTC]")).sort_values(["meter_id", "ts"])
    assert c["stored"] == len(want) == len(rows), (c, len(want), len(rows))
    pd.testing.assert_frame_equal(rows[["meter_id", "ts", *CH]].astype({"meter_id": str}),
                                  want[["meter_id", "ts", *CH]].reset_index(drop=True), check_dtype=False)
    det = {a.id: _view(a) for a in api.detect(rows, db=tmp_path / "batch.duckdb", config=CONFIG).alerts}
    bad = [f"{i}: detect {det.get(i)} != stream {got.get(i)}" for i in sorted(set(det) | set(got))
           if det.get(i) != got.get(i)]
    assert not bad, "\n".join(bad[:10])
