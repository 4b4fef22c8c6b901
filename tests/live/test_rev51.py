"""(rev51) Review of liv51's MQTT value drops: the same JSON readings through the MQTT source
and through batch ``ingest`` (a .jsonl file) store the same values and give the same reasons."""

from __future__ import annotations

import math

import pandas as pd

from wattwatch.ingest.pipeline import ingest_live, ingest_path
from wattwatch.sources.mqtt import MqttSource
from wattwatch.store.duck import Store

BIG = "1" + "0" * 400
# e_kwh as a meter's firmware may send it; v_l1_v is always good.
VALUES = ['"abc"', "true", "NaN", "Infinity", "-Infinity", "1e400", BIG, "-" + BIG, "[1]", '"1.5"', '" 2.5 "',
          '"1e3"', '"n/a"', '"NaN"', '"null"', '"inf"', '"١٢"', '"0x10"', "1e7", "-5", "null", "12.5"]


def test_the_mqtt_source_and_batch_ingest_store_the_same_values_and_say_the_same_reasons(tmp_path):
    lines = ['{"meter_id": "m1", "ts": "2026-01-05T%02d:%02d:00Z", "e_kwh": %s, "v_l1_v": 230.0}' % (k // 60, k % 60, v)
             for k, v in enumerate(VALUES)]
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    batch = Store(tmp_path / "b.duckdb")
    counts = ingest_path(batch, tmp_path / "b.jsonl")
    assert counts.rejected == 0, counts.rejects
    want = {line: why for _, line, _, why in counts.dropped}

    src = MqttSource("m", host="x", topics=["t/+"], meter="topic:1")
    rows, got = [], {}
    for k, body in enumerate(lines):
        drops: list = []
        r, bad = src.parse_items("t/m1", body.encode(), drops)
        assert not bad, (body, bad)
        rows += r
        for _, _, _, why in drops:
            got[k + 1] = why
    live = Store(tmp_path / "l.duckdb")
    lc, _, _ = ingest_live(live, pd.DataFrame(rows), None, source="watch:m")
    assert lc.rejected == 0, lc.rejects
    got.update({line: why for _, line, _, why in lc.dropped})   # one row per message: line k + 1
    assert got == want

    q = "SELECT ts, e_kwh, v_l1_v FROM readings ORDER BY ts"
    a, b = batch.con.execute(q).fetchall(), live.con.execute(q).fetchall()
    assert len(a) == len(b) == len(VALUES)
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[2] == y[2] == 230.0, (x, y)
        assert (x[1] is None or math.isnan(x[1])) == (y[1] is None or math.isnan(y[1])) and (
            x[1] is None or math.isnan(x[1]) or x[1] == y[1]), (x, y)
    batch.close()
    live.close()
