"""Property tests over the store (issue 12): any interleaving of ingest, re-ingest, late readings,
duplicates and compaction keeps (meter, ts) unique, every reading counted once, and the register
energy of every meter and hour equal to that of the same readings ingested at once."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store.test_integrity import T0, assert_hourly_equal, assert_unique, ingest_frame
from wattwatch.store import Store

SLOTS = 36  # 3 hours of 5-minute slots per meter
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def readings(draw) -> pd.DataFrame:
    """1-2 meters on a 5-min grid: present slots, register steps in quarter kWh (exact in binary,
    so sums are exact), resets, missing registers."""
    parts = []
    for m in range(draw(st.integers(1, 2))):
        present = np.array(draw(st.lists(st.booleans(), min_size=SLOTS, max_size=SLOTS)))
        steps = np.array(draw(st.lists(st.integers(0, 8), min_size=SLOTS, max_size=SLOTS))) * 0.25
        reset = np.array(draw(st.lists(st.sampled_from([False] * 9 + [True]), min_size=SLOTS, max_size=SLOTS)))
        nan = np.array(draw(st.lists(st.sampled_from([False] * 7 + [True]), min_size=SLOTS, max_size=SLOTS)))
        e = np.empty(SLOTS)
        acc = 100.0 * (m + 1)
        for i in range(SLOTS):
            acc = steps[i] if reset[i] else acc + steps[i]
            e[i] = acc
        e[nan] = np.nan
        ts = T0 + pd.to_timedelta(np.arange(SLOTS) * 5, unit="min")
        df = pd.DataFrame({"meter_id": f"M{m}", "ts": ts, "p_kw": steps * 12, "e_kwh": e})
        parts.append(df[present])
    return pd.concat(parts, ignore_index=True)


@st.composite
def scenarios(draw):
    df = draw(readings())
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["ingest", "ingest", "reingest", "compact"]))
        if kind == "compact":
            ops.append(("compact", draw(st.integers(0, 4))))  # cutoff T0 + k hours
        elif kind == "ingest":
            # a random subset, with exact duplicates inside the batch
            pick = np.array(draw(st.lists(st.booleans(), min_size=len(df), max_size=len(df))), bool)
            dup = np.array(draw(st.lists(st.booleans(), min_size=len(df), max_size=len(df))), bool) & pick
            ops.append(("ingest", np.flatnonzero(pick), np.flatnonzero(dup)))
        else:
            ops.append(("reingest",))
    return df, ops


@SETTINGS
@given(scenarios())
def test_any_interleaving_keeps_readings_unique_and_energy_per_hour(scenario):
    df, ops = scenario
    seen = np.zeros(len(df), bool)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as s:
        for op in ops:
            if op[0] == "compact":
                s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=op[1]))
            elif op[0] == "ingest":
                pick, dup = op[1], op[2]
                if len(pick) == 0:
                    continue
                batch = pd.concat([df.iloc[pick], df.iloc[dup]]).sample(frac=1.0, random_state=len(pick))
                c = ingest_frame(s, batch)
                new = ~seen[pick]
                assert c.stored == int(new.sum()), (c, int(new.sum()))
                assert c.read == len(batch) and c.rejected == 0
                seen[pick] = True
            else:
                if not seen.any():
                    continue
                c = ingest_frame(s, df[seen])
                assert c.stored == 0 and c.read == int(seen.sum())
            assert_unique(s, int(seen.sum()))
            assert_hourly_equal(s, df[seen])
