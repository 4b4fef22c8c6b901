"""q66: packet_loss's short window (four hourly readings lost within 20 h) through the whole
stream engine, its steps cut on and around the lost readings: exactly ``detect``'s alerts."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.detect.test_packets_dense import METERS, _meter
from tests.live.test_stream_gap_cuts import CONFIG, _streamed_as_detect, _view
from wattwatch import api


@pytest.mark.parametrize("again", [False, True])
def test_dense_losses_streamed_in_steps_cut_on_them_give_detects_alerts(tmp_path, again):
    """``again``: each step starts with every meter's last reading of the step before it again."""
    keep = ("PAIRS", "SPREAD", "FAR", "HALF", "TWOH", "Q")
    frame = pd.concat([_meter(m, c, h, seed=i) for i, (m, (c, h, _)) in enumerate(METERS.items()) if m in keep],
                      ignore_index=True)
    frame.to_parquet(tmp_path / "f.parquet")
    want = {a.id: _view(a) for a in api.detect(tmp_path / "f.parquet", db=tmp_path / "batch.duckdb",
                                                 config=CONFIG).alerts}
    assert sorted(a["meter_id"] for a in want.values() if a["detector"] == "packet_loss") == ["HALF", "PAIRS", "SPREAD", "TWOH"]
    # (cut on gaps over 1.6 spacings, and every two hours between the cuts)
    _streamed_as_detect(tmp_path, want, again, 1.6, 7200.0)
