"""Store side of extra channels: columns added on first ingest, query, compaction, old stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.mapping import Mapping
from wattwatch.ingest.pipeline import ingest_frame, ingest_path
from wattwatch.schema import CHANNEL_NAMES
from wattwatch.store import Store

UPS = Mapping(extra={"ups_battery_pct": "battery", "ups_load_kw": "load"})


def _ups_frame(meter: str, start: str, n: int, cadence_s: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "meter_id": meter,
        "ts": pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * cadence_s, unit="s"),
        "p_kw": rng.uniform(0, 5, n).round(3),
        "battery": rng.uniform(50, 100, n).round(2),
        "load": rng.uniform(0, 3, n).round(3),
    })


def test_channels_are_added_once_in_order_and_queried_like_canonical_ones(store):
    ingest_frame(store, _ups_frame("U1", "2025-01-01T00:00Z", 6), UPS)
    pdu = _ups_frame("P1", "2025-01-01T00:00Z", 6).drop(columns="battery").rename(columns={"load": "outlet"})
    ingest_frame(store, pdu, Mapping(extra={"pdu_outlet_1_a": "outlet"}))
    assert store.channels() == [*CHANNEL_NAMES, "ups_battery_pct", "ups_load_kw", "pdu_outlet_1_a"]
    cols = [r[0] for r in store.con.execute("DESCRIBE readings").fetchall()]
    assert cols[-3:] == ["ups_battery_pct", "ups_load_kw", "pdu_outlet_1_a"]
    # Channels that are all NULL for the returned rows are dropped, unless asked for.
    assert list(store.query("U1").columns) == ["meter_id", "ts", "p_kw", "ups_battery_pct", "ups_load_kw"]
    assert list(store.query("P1").columns) == ["meter_id", "ts", "p_kw", "pdu_outlet_1_a"]
    asked = store.query("P1", columns=["ups_load_kw", "pdu_outlet_1_a"])
    assert asked.ups_load_kw.isna().all() and asked.pdu_outlet_1_a.notna().all()


def test_a_failed_file_does_not_add_its_channels(store):
    bad = _ups_frame("U1", "2025-01-01T00:00Z", 3)
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.ingest(_raising_after_first_batch(bad), source="x")
    assert store.channels() == list(CHANNEL_NAMES) and store.info()["readings"] == 0
    assert store.con.execute("SELECT count(*) FROM channels").fetchall()[0][0] == 0


def _raising_after_first_batch(frame: pd.DataFrame):
    from wattwatch.ingest.normalize import build_select
    from wattwatch.ingest.readers import read_frame

    batch = next(read_frame(frame))
    yield build_select(batch.table.schema, UPS), batch.table, "x", [], 0, None
    raise RuntimeError("disk on fire")


def test_compaction_aggregates_extras_per_hour_and_combines_late_readings(store):
    a = _ups_frame("U1", "2025-01-01T00:00Z", 12)  # two hours at 10 min
    ingest_frame(store, a, UPS)
    store.compact(older_than_days=1, as_of="2025-01-03T00:00Z")
    assert store.query().empty
    h = store.query_hourly().set_index("hour")
    for name, src in (("ups_battery_pct", "battery"), ("ups_load_kw", "load")):
        g = a.groupby(a.ts.dt.floor("h"))[src]
        np.testing.assert_allclose(h[f"{name}_mean"], g.mean())
        np.testing.assert_allclose(h[f"{name}_min"], g.min())
        np.testing.assert_allclose(h[f"{name}_max"], g.max())
    # A late reading into a compacted hour, with a channel the store has not seen before.
    late = pd.DataFrame({"meter_id": ["U1"], "ts": [pd.Timestamp("2025-01-01T00:05Z")], "battery": [10.0],
                         "load": [9.0], "fan": [1200.0]})
    ingest_frame(store, late, Mapping(extra={**UPS.extra, "fan_rpm": "fan"}))
    store.compact(older_than_days=1, as_of="2025-01-03T00:00Z")
    first = store.query_hourly().iloc[0]
    assert first.n == 7 and first.ups_battery_pct_min == 10.0 and first.ups_load_kw_max == 9.0
    assert first.ups_battery_pct_mean == pytest.approx((a.battery.iloc[:6].sum() + 10.0) / 7)
    assert first.fan_rpm_max == 1200.0


def _old_store(path: Path, tmp_path: Path) -> None:
    """A store as written before extra channels existed: no ``channels`` table."""
    (tmp_path / "old.csv").write_text("meter_id,ts,p_kw\nM1,2025-01-01T00:00:00Z,1.5\nM1,2025-01-01T00:05:00Z,1.6\n")
    with Store(path) as s:
        ingest_path(s, tmp_path / "old.csv")
        s.con.execute("DROP TABLE channels")


def test_an_old_store_without_a_channels_table_still_opens(tmp_path: Path):
    db = tmp_path / "old.duckdb"
    _old_store(db, tmp_path)
    with Store(db, read_only=True) as s:
        assert s.channels() == list(CHANNEL_NAMES)
        assert s.query().p_kw.tolist() == [1.5, 1.6]
        with pytest.raises(ValueError, match="unknown column"):
            s.query(columns=["ups_load_kw"])
    with Store(db) as s:  # opening for write adds the table; extras then work
        ingest_frame(s, _ups_frame("U1", "2025-01-01T00:00Z", 3), UPS)
        assert s.channels()[-2:] == ["ups_battery_pct", "ups_load_kw"]
        assert s.query("M1").p_kw.tolist() == [1.5, 1.6]
    with Store(db, read_only=True) as s:
        assert len(s.query("U1").ups_load_kw) == 3
