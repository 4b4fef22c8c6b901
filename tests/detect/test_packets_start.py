"""rpkt (review of pkt, issue 16): with the share window ending at its reading, a window truncated at
the meter's first reading held as few as ``min_expected`` (20) readings, so four readings lost in a
row in a meter's first half hour (1 minute) or two hours (5 minutes) were "more than 5 %" and an
alert, while the same four lost a day later are 4 of 80 or 360, not evidence (nor a data gap:
under ``gap_s``). The start of the data must not change the verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api

CONFIG = {"engine": {"profile_days": 1.0}, "detectors": ["packet_loss"]}
T0 = pd.Timestamp("2025-01-06", tz="UTC")


def _meter(name: str, cad_s: float, days: float, lost_from: int) -> pd.DataFrame:
    n = int(days * 86400 / cad_s)
    keep = np.ones(n, bool)
    keep[lost_from:lost_from + 4] = False
    ts = T0 + pd.to_timedelta(np.arange(n) * cad_s, unit="s")
    return pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})[keep]


def test_four_lost_in_a_row_at_the_data_start_are_judged_as_later(tmp_path):
    # (name, cadence, lost from reading): the first 20-30 readings, and the same a day and a half in
    meters = [("M1_start", 60.0, 25), ("M5_start", 300.0, 22), ("M1_later", 60.0, 2000), ("M5_later", 300.0, 450)]
    frame = pd.concat([_meter(m, c, 2.0, k) for m, c, k in meters], ignore_index=True)
    frame.to_parquet(tmp_path / "f.parquet")
    det = api.detect(tmp_path / "f.parquet", db=tmp_path / "b.duckdb", config=CONFIG)
    assert [(a.meter_id, a.message) for a in det.alerts if a.detector == "packet_loss"] == []
