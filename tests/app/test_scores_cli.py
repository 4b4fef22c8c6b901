"""Per-reading scores out of the CLI and the API (issue 14): one table, a stable Parquet file, the
same values from files, a store, a window and a stitched stream; ROC/PR-AUC against labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.support.cli import ww
from wattwatch import api
from wattwatch.detect import scores as score_table
from wattwatch.detect.engine import EngineConfig, detect as engine_detect
from wattwatch.detect.registry import build_all
from wattwatch.detect.stitch import Stitcher
from wattwatch.errors import StoreError
from wattwatch.evaluate.events import score_auc

RULES = ["supply_outage", "neutral_tamper", "sensor_fault", "packet_loss", "frozen_readings"]


def test_detect_scores_file_is_one_stable_table(tmp_path: Path, small_fleet):
    files = small_fleet["files"]
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        summary = json.loads(ww("detect", files["parquet"], "--out", str(tmp_path / "x.jsonl"), "--scores", str(out),
                                "--detectors", ",".join(RULES), "--json").stdout)
    # Same input, same bytes (no wall-clock or pandas metadata, rows sorted).
    assert a.read_bytes() == b.read_bytes()
    schema = pq.read_schema(a)
    assert schema.names == ["meter_id", "ts", *RULES, "score", "detector"]
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]" and schema.metadata is None
    df = pd.read_parquet(a)
    assert len(df) == summary["readings"]  # one row per reading judged
    assert df.equals(df.sort_values(["meter_id", "ts"]).reset_index(drop=True))
    # The combined score is the calibrated worst detector (0.5 at a limit), and names it.
    m = df[RULES].to_numpy(float)
    judged = np.isfinite(m).any(axis=1)
    worst = np.nanmax(np.where(np.isfinite(m), m, -np.inf), axis=1)
    want = np.where(judged, 1 - 0.5 ** np.maximum(worst, 0), np.nan)
    np.testing.assert_allclose(df["score"].to_numpy(float), want, equal_nan=True)
    top = df.loc[judged].apply(lambda r: r[r["detector"]], axis=1).to_numpy(float)
    np.testing.assert_allclose(top, worst[judged])
    assert df["score"].max() > 0.5  # this fleet has faults above their limits
    # The alerts' scores are the combined scores of their readings (same calibration).
    alerts = [json.loads(x) for x in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert alerts
    for al in alerts[:5]:
        span = df[(df.meter_id == al["meter_id"]) & (df.ts >= pd.Timestamp(al["start"])) & (df.ts <= pd.Timestamp(al["end"]))]
        assert 1 - 0.5 ** span[al["detector"]].max() == pytest.approx(al["score"], abs=1e-4)


def test_scores_from_a_store_and_a_window_equal_the_files_run(tmp_path: Path, small_fleet):
    files = small_fleet["files"]
    db = tmp_path / "s.duckdb"
    whole = api.score(files["parquet"], detectors=RULES)
    ww("ingest", files["parquet"], "--db", str(db))
    out = tmp_path / "db.parquet"
    ww("detect", "--db", str(db), "--out", str(tmp_path / "x.jsonl"), "--scores", str(out), "--detectors", ",".join(RULES))
    from_store = pd.read_parquet(out)
    pd.testing.assert_frame_equal(from_store, whole, check_dtype=False)
    # A window (the incremental path: reach loaded around it) gives the whole run's scores there.
    lo, hi = "2025-01-07T00:00:00Z", "2025-01-08T12:00:00Z"
    win = api.detect(db, detectors=RULES, start=lo, end=hi, scores=True, keep=False).scores
    inside = whole[(whole.ts >= pd.Timestamp(lo)) & (whole.ts < pd.Timestamp(hi))].reset_index(drop=True)
    assert len(win) == len(inside) > 0
    pd.testing.assert_frame_equal(win, inside, check_dtype=False)


def test_stitched_scores_make_the_same_table(small_fleet):
    frame = api.read_frame(small_fleet["files"]["parquet"])
    dets = build_all(RULES)
    batch = engine_detect(frame, dets, EngineConfig(workers=1), keep_scores=True).scores
    want = score_table.table(batch, RULES)
    st = Stitcher(dets)
    frame = frame.sort_values("ts", kind="stable")
    cuts = np.quantile(frame["ts"].astype("int64"), [0.3, 0.6])
    parts = []
    lo = None
    for c in [*cuts, None]:
        t = frame["ts"].astype("int64")
        piece = frame[((t >= lo) if lo is not None else True) & ((t < c) if c is not None else True)]
        parts.append(st.feed(piece).scores)
        lo = c
    parts.append(st.flush().scores)
    got = score_table.table(pd.concat([p for p in parts if p is not None], ignore_index=True), RULES)
    assert len(got) == len(want)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_an_empty_run_still_writes_the_schema(tmp_path: Path):
    df = score_table.table(None, RULES)
    assert list(df.columns) == ["meter_id", "ts", *RULES, "score", "detector"] and len(df) == 0
    p = score_table.write(df, tmp_path / "e.parquet")
    assert pq.read_schema(p).names == list(df.columns)
    with pytest.raises(ValueError, match="clash"):
        score_table.table(None, ["score"])


def test_scores_output_never_overwrites_an_input_or_the_store(tmp_path: Path, small_fleet):
    files = small_fleet["files"]
    db = tmp_path / "s.duckdb"
    ww("ingest", files["parquet"], "--db", str(db))
    r = ww("detect", "--db", str(db), "--out", str(tmp_path / "x.jsonl"), "--scores", str(db), check=False)
    assert r.returncode == 2 and "--scores" in r.stderr and "store" in r.stderr
    with pytest.raises(StoreError, match="--scores"):
        api.detect(files["parquet"], scores=files["parquet"], detectors=RULES)
    with pytest.raises(StoreError, match="--scores"):
        api.detect(db, scores=db, detectors=RULES)
    p = tmp_path / "api.parquet"
    res = api.detect(db, scores=p, detectors=RULES, keep=False)
    pd.testing.assert_frame_equal(pd.read_parquet(p), res.scores, check_dtype=False)


def test_score_auc_against_labels():
    ts = pd.date_range("2025-01-01", periods=10, freq="h", tz="UTC")
    df = pd.DataFrame({"meter_id": "M1", "ts": ts,
                       "a": [0.1, 0.2, 0.1, 3.0, 2.0, 0.3, np.nan, 0.1, 0.2, 0.1],
                       "b": [5.0, 0.2, 0.1, 4.0, 4.0, 0.3, 0.1, 0.1, 0.2, 0.1]})
    df = score_table.table(df, ["a", "b"])
    events = [{"meter_id": "M1", "type": "neutral_bypass", "start": "2025-01-01T03:00:00Z", "end": "2025-01-01T04:00:00Z"},
              {"meter_id": "M1", "type": "supply_outage", "start": "2025-01-01T06:00:00Z", "end": "2025-01-01T06:00:00Z"},
              {"meter_id": "M1", "type": "motor_start", "start": "2025-01-01T09:00:00Z", "end": "2025-01-01T09:00:00Z"}]
    r = score_auc(events, df)
    assert r["positives"] == 2 and r["left_out_in_outages"] == 1 and r["rated"] == 9
    assert r["overall"]["a"]["roc_auc"] == 1.0 and r["overall"]["a"]["pr_auc"] == 1.0
    # b ranks one negative above both positives: 2 x 7 pairs, 2 of them wrong.
    assert r["overall"]["b"]["roc_auc"] == pytest.approx(12 / 14)
    assert r["overall"]["score"]["roc_auc"] == pytest.approx(12 / 14)
    assert r["per_type"]["neutral_bypass"]["positives"] == 2
    # Per detector: its column on the faults its code names (b raises another code: not rated).
    r = score_auc(events, df, codes={"a": "ERR_IMBAL_LIMIT_EXCEEDED", "b": "WARN_THERM_DRIFT"})
    assert r["per_detector"]["a"]["fault_types"] == ["neutral_bypass"] and r["per_detector"]["a"]["roc_auc"] == 1.0
    assert "b" not in r["per_detector"]
    with pytest.raises(ValueError, match="no column 'zz'"):
        score_auc(events, df, columns=["zz"])


def test_evaluate_scores_on_the_command_line(tmp_path: Path, small_fleet):
    files = small_fleet["files"]
    s = tmp_path / "s.parquet"
    ww("detect", files["parquet"], "--out", str(tmp_path / "x.jsonl"), "--scores", str(s), "--detectors", ",".join(RULES))
    r = json.loads(ww("evaluate", "--events", files["events"], "--scores", str(s), "--json").stdout)
    assert r["positives"] > 0 and 0.5 < r["overall"]["score"]["roc_auc"] <= 1
    assert set(r["per_kind"]) == {"residential", "commercial"}
    assert r["per_detector"]["neutral_tamper"]["fault_types"] == ["neutral_bypass", "partial_earth_return"]
    both = json.loads(ww("evaluate", "--events", files["events"], "--scores", str(s), "--alerts",
                         str(tmp_path / "x.jsonl"), "--json").stdout)
    assert set(both) == {"alerts", "scores"} and "recall" in both["alerts"]
    assert "ROC-AUC" in ww("evaluate", "--events", files["events"], "--scores", str(s)).stdout
    bad = ww("evaluate", "--events", files["events"], check=False)
    assert bad.returncode == 2 and "--scores" in bad.stderr
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    bad = ww("evaluate", "--events", files["events"], "--scores", str(junk), check=False)
    assert bad.returncode == 2 and "junk.parquet" in bad.stderr
