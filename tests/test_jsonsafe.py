"""One strict-JSON helper (wattwatch.jsonsafe.finite) with the variants the CLI, the meter-state
table and the alerts wrote out as options: their JSON is the same bytes as before."""

from __future__ import annotations

import json

import duckdb
import numpy as np

from wattwatch.alerts.model import Alert
from wattwatch.detect import registry, state
from wattwatch.jsonsafe import finite

DOC = {"a": float("nan"), 2: [np.float64(2.5), (np.int64(3), float("inf"))], True: {None: np.float32(-np.inf)},
       "s": "x", "n": None, "ok": np.bool_(True)}


def test_keys_kept_or_as_strings():
    assert json.dumps(finite(DOC, str_keys=False)) == \
        '{"a": null, "2": [2.5, [3, null]], "true": {"null": null}, "s": "x", "n": null, "ok": true}'
    # str_keys (the default, for report and fleet summaries) names keys as Python does
    assert json.dumps(finite(DOC)) == \
        '{"a": null, "2": [2.5, [3, null]], "True": {"None": null}, "s": "x", "n": null, "ok": true}'


def test_arrays_only_when_asked():
    a = np.array([1.0, np.nan, 3.0])
    assert finite({"a": a}, arrays=True) == {"a": [1.0, None, 3.0]}
    assert finite({"a": a})["a"] is a
    assert finite(np.array(np.nan), arrays=True) is None and finite(np.array(2)) == 2


def test_state_params_with_a_nan_array_are_stored(tmp_path):
    # _json_default turned an array into a list after the NaN pass: a NaN in it made allow_nan=False raise.
    det = registry.build("supply_outage")
    det.state_ = {"M1": {"profile": np.array([1.0, np.nan]), "k": np.int64(4), "x": float("nan")}}
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state.save(con, [det]) == 1
    params = con.execute("SELECT params FROM meter_state").fetchone()[0]
    assert params == '{"profile": [1.0, null], "k": 4, "x": null}'


def test_alert_json_with_nan_evidence():
    a = Alert(meter_id="M", start="2025-01-01T00:00:00Z", end="2025-01-01T01:00:00Z", code="C", severity="info",
              score=float("nan"), detector="d", message="m", evidence={"r": np.array([np.inf, 1.0]), "v": 2})
    d = json.loads(a.to_json())
    assert d["score"] is None and d["evidence"] == {"r": [None, 1.0], "v": 2}
