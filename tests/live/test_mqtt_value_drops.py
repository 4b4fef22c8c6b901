"""(liv51) The MQTT source drops a bad channel value, not its reading, as batch ``ingest`` does (fld46).

Before, one field that was not a number, not finite or too large for a float refused the whole item
("field 'p_kw' is not a number") before the store saw it: a meter whose power register glitched lost
its voltage and current too and then looked like packet loss, where ``ingest`` of the same readings
stored them without that value. Now the value is dropped (counted ``values_dropped``, logged with the
meter, time, field and reason, rate-limited) and the reading kept; the item is refused whole
(``malformed``) only when its meter or time is bad or no channel value is left. Against a real
mosquitto on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.live.test_mqtt import _publisher, _Watcher
from wattwatch import api
from wattwatch.sources.mqtt import MqttSource

BIG = "1" + "0" * 400          # valid JSON and a valid CSV cell; no float holds it
DETECTORS = ["packet_loss", "frozen_readings"]


def _wait(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.05)
    return pred()


def test_a_bad_field_costs_that_value_not_the_reading_and_is_counted_apart_from_malformed(mqtt_broker, tmp_path,
                                                                                           caplog):
    base = f"vd{uuid.uuid4().hex[:8]}"
    src = MqttSource("meters", host=mqtt_broker.host, port=mqtt_broker.port, topics=[f"{base}/+"], meter="topic:1",
                     client_id=f"ww-{base}", batch_s=0.05)
    w = _Watcher(tmp_path / "v.duckdb", src)
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)
    bodies = [
        '{"ts": "2026-01-05T00:00:00Z", "p_kw": "abc", "v_l1_v": 230.5, "i_l1_a": 4.0}',     # text power
        '{"ts": "2026-01-05T00:01:00Z", "p_kw": 1.5, "v_l1_v": Infinity, "i_l1_a": 4.1}',    # not finite
        '{"ts": "2026-01-05T00:02:00Z", "p_kw": 1.6, "e_kwh": ' + BIG + ', "i_l1_a": 4.2}',  # too large
        '[{"ts": "2026-01-05T00:03:00Z", "p_kw": true, "v_l1_v": 231.0},'                    # a bool is not a number
        ' {"ts": "2026-01-05T00:04:00Z", "p_kw": "x", "v_l1_v": NaN}]',                      # nothing left: refused
        '{"ts": "yesterday", "p_kw": 1.0}',                                                  # bad time: refused
    ]
    try:
        with caplog.at_level("WARNING", logger="wattwatch.watch"):
            for b in bodies:
                pub.publish(f"{base}/m1", b, qos=1).wait_for_publish(5)
            assert _wait(lambda: w.stored() >= 4), dict(src.counters)
            assert _wait(lambda: src.counters["messages"] == len(bodies))
    finally:
        pub.disconnect()
        pub.loop_stop()
        frame = w.stop()
    assert src.counters["values_dropped"] == 4, dict(src.counters)      # abc, Infinity, BIG, true
    assert src.counters["malformed"] == 2, dict(src.counters)           # the all-bad item, the bad time
    f = frame.sort_values("ts").reset_index(drop=True)
    assert len(f) == 4 and list(f["ts"].dt.minute) == [0, 1, 2, 3]
    assert np.isnan(f["p_kw"][0]) and f["v_l1_v"][0] == 230.5 and f["i_l1_a"][0] == 4.0
    assert f["p_kw"][1] == 1.5 and np.isnan(f["v_l1_v"][1]) and f["i_l1_a"][1] == pytest.approx(4.1)
    assert f["p_kw"][2] == 1.6 and f["i_l1_a"][2] == pytest.approx(4.2)
    assert "e_kwh" not in f or f["e_kwh"].isna().all()                 # the only energy value was dropped
    assert np.isnan(f["p_kw"][3]) and f["v_l1_v"][3] == 231.0
    text = caplog.text
    assert "kept without a value (#1, on " in text
    # Worded as batch ingest words it (rev51): "p_kw: 'abc' is not a number", "v_l1_v: infinite".
    assert ": meter 'm1' at 2026-01-05 00:00:00+00:00: p_kw: 'abc' is not a number" in text
    assert "meter 'm1' at 2026-01-05 00:01:00+00:00: v_l1_v: infinite" in text
    assert "meter 'm1' at 2026-01-05 00:02:00+00:00: e_kwh: infinite" in text
    assert "item 1: p_kw: 'x' is not a number; no channel value left" in text    # NaN is missing, as in ingest


def test_a_meter_that_keeps_sending_a_bad_value_is_logged_the_first_five_then_every_hundredth(caplog):
    src = MqttSource("meters", topics=["x/#"], meter="topic:1")

    class _Msg:
        qos, mid = 0, 1
        topic = "x/m9"

    with caplog.at_level("WARNING", logger="wattwatch.watch"):
        for k in range(250):
            _Msg.payload = json.dumps({"ts": 1767225600 + 60 * k, "p_kw": "err", "v_l1_v": 230.0}).encode()
            src._on_message(None, None, _Msg())
    said = [r for r in caplog.records if "kept without a value" in r.getMessage()]
    assert [int(r.getMessage().split("#")[1].split(",")[0]) for r in said] == [1, 2, 3, 4, 5, 100, 200]
    assert src.counters["values_dropped"] == 250 and src.counters["malformed"] == 0
    assert len(src._rows) == 250 and all("p_kw" not in r and r["v_l1_v"] == 230.0 for r in src._rows)


def _readings() -> pd.DataFrame:
    """Two meters at 15 min for 8 days. P7's power is text for 6 h, its current infinite for 3 h,
    one energy register too large for a float, one reading with no readable channel at all; a real
    gap of 10 h on P8 (packet loss both ways)."""
    t = pd.date_range("2026-10-01", periods=8 * 96, freq="15min", tz="UTC")
    k = np.arange(len(t))
    out = []
    for m, ph in (("P7", 0.0), ("P8", 1.0)):
        f = pd.DataFrame({"meter_id": m, "ts": t, "p_kw": (5 + np.sin(k / 8.0 + ph)).round(4),
                          "v_l1_v": (230 + np.cos(k / 5.0 + ph)).round(3),
                          "i_l1_a": (20 + np.sin(k / 3.0 + ph)).round(4), "e_kwh": (1000 + 1.25 * k).round(3)})
        out.append(f.astype({c: object for c in ("p_kw", "v_l1_v", "i_l1_a", "e_kwh")}))   # text cells fit
    a, b = out
    a.loc[400:423, "p_kw"] = "abc"
    a.loc[300:311, "i_l1_a"] = "inf"
    a.loc[200, "e_kwh"] = BIG
    a.loc[500, ["p_kw", "v_l1_v", "i_l1_a", "e_kwh"]] = ["x", "y", "inf", "z"]
    b = b.drop(index=range(600, 640))
    return pd.concat([a, b], ignore_index=True)


def _json_value(v):
    if isinstance(v, str):
        if v == "inf":
            return float("inf")         # json.dumps writes Infinity, as a meter's firmware may
        if v == BIG:
            return int(BIG)
    return v


def _alerts_view(alerts) -> list[tuple]:
    return sorted((a.id, a.meter_id, a.code, str(a.start), str(a.end), round(float(a.score), 9)) for a in alerts)


def test_stream_equals_batch_for_readings_with_bad_values(mqtt_broker, tmp_path: Path):
    frame = _readings()
    # Batch: the readings as a CSV through ingest, then detect.
    csv = tmp_path / "r.csv"
    out = frame.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(csv, index=False)
    counts = api.ingest(str(csv), tmp_path / "batch.duckdb")
    stored = sum(c.stored for c in counts)
    dropped = sum(sum(c.values_dropped.values()) for c in counts)
    assert (stored, sum(c.rejected for c in counts), dropped) == (len(frame) - 1, 1, 24 + 12 + 1)
    want = api.detect(str(tmp_path / "batch.duckdb"), detectors=DETECTORS).alerts
    assert any(a.meter_id == "P8" and a.code == "ALRM_PKT_LOSS_CRIT" for a in want), [a.code for a in want]
    assert not any(a.meter_id == "P7" for a in want), [(a.code, a.start) for a in want]

    # Stream: the same readings pushed as JSON through mosquitto into watch, an hour per message.
    base = f"eq{uuid.uuid4().hex[:8]}"
    src = MqttSource("meters", host=mqtt_broker.host, port=mqtt_broker.port, topics=[f"{base}/+"], meter="topic:1",
                     client_id=f"ww-{base}", batch_s=0.1)
    w = _Watcher(tmp_path / "live.duckdb", src, DETECTORS)
    pub = _publisher(mqtt_broker.host, mqtt_broker.port)
    try:
        for (m, hour), g in frame.groupby(["meter_id", frame["ts"].dt.floor("1h")], sort=True):
            items = [{"ts": r.ts.isoformat(), **{c: _json_value(getattr(r, c)) for c in ("p_kw", "v_l1_v", "i_l1_a",
                                                                                        "e_kwh")}}
                     for r in g.itertuples()]
            pub.publish(f"{base}/{m}", json.dumps(items), qos=1).wait_for_publish(5)
        assert _wait(lambda: w.stored() >= stored, timeout=60), (w.stored(), dict(src.counters))
    finally:
        pub.disconnect()
        pub.loop_stop()
        w.halt()
    eng = w.engine
    eng.flush()
    assert src.counters["values_dropped"] == dropped and src.counters["malformed"] == 1, dict(src.counters)
    got = list(eng.alerts.values())
    assert _alerts_view(got) == _alerts_view(want)
    live = w.store.query().sort_values(["meter_id", "ts"]).reset_index(drop=True)
    batch = api.read_frame(tmp_path / "batch.duckdb").sort_values(["meter_id", "ts"]).reset_index(drop=True)
    cols = ["p_kw", "v_l1_v", "i_l1_a", "e_kwh"]
    assert len(live) == len(batch) == stored
    assert (live["meter_id"].astype(str).to_numpy() == batch["meter_id"].astype(str).to_numpy()).all()
    assert (live["ts"].to_numpy() == batch["ts"].to_numpy()).all()
    np.testing.assert_allclose(live[cols].to_numpy(float), batch[cols].to_numpy(float), rtol=0, atol=1e-9)
    w.store.close()
