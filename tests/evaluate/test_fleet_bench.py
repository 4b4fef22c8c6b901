"""`bench quality`: the default configuration on a simulated fleet at a chosen cadence."""

from __future__ import annotations

import pytest

from wattwatch.alerts.model import Alert
from wattwatch.evaluate.events import evaluate
from wattwatch.evaluate.fleet import per_type_precision, quality


def _alert(meter, code, start, end):
    return Alert(meter_id=meter, start=start, end=end, code=code, severity="warning", score=1.0, detector="t",
                 message="", evidence={}, action="")


def test_per_type_precision_counts_the_alerts_with_the_types_codes():
    events = [{"meter_id": "a", "type": "open_ct", "start": "2025-01-08T00:00:00Z", "end": "2025-01-08T06:00:00Z"}]
    alerts = [_alert("a", "SENSOR_FAULT", "2025-01-08T01:00:00Z", "2025-01-08T02:00:00Z"),
              _alert("b", "SENSOR_FAULT", "2025-01-08T01:00:00Z", "2025-01-08T02:00:00Z"),   # wrong meter
              _alert("a", "WARN_CONSUMPTION_ANOMALY", "2025-01-09T01:00:00Z", "2025-01-09T02:00:00Z")]
    r = evaluate(events, alerts)
    assert per_type_precision(r, alerts) == {"open_ct": 0.5}


def test_quality_on_a_tiny_hourly_fleet_reports_per_type_rows_or_the_crash(tmp_path):
    out = quality(step="60min", meters=4, days=8, seed=1, fault_share=0.5, workdir=tmp_path)
    assert out["config"]["step"] == "60min"
    if "error" in out:  # a crash is a result, with where it happened
        assert "Traceback" in out["traceback"]
        return
    ev = out["evaluation"]
    assert out["fault_types"] and all("precision" in ev["per_type"][k] and "f1" in ev["per_type"][k]
                                      for k in out["fault_types"])
    assert (tmp_path / "fleet" / "events.json").exists()


def test_quality_with_real_shapes_runs_end_to_end_and_keeps_the_alerts(tmp_path):
    from wattwatch.evaluate.real_data import find_data

    real = find_data()
    if real is None or not real.is_dir():
        pytest.skip("real-data extracts (shared/data/real) absent")
    out = quality(step="15min", meters=6, days=9, seed=2, fault_share=0.5, workdir=tmp_path, shapes="real", data=real)
    assert "error" not in out, out.get("traceback")
    assert out["config"]["shapes"] == "real"
    import json

    meters = json.loads((tmp_path / "fleet" / "meters.json").read_text())["meters"]
    assert all(m["shape"]["source"] for m in meters)
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    assert len(alerts) == out["evaluation"]["alerts"]


def test_quality_with_real_shapes_and_no_data_says_where_it_looked(tmp_path):
    with pytest.raises(ValueError, match="nowhere"):
        quality(step="15min", meters=2, days=3, seed=1, workdir=tmp_path, shapes="real", data=tmp_path / "nowhere")
