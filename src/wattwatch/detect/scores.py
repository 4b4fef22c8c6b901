"""Per-reading scores as one table (``detect --scores``, ``api.score``): rank, re-threshold, ROC/PR.

One row per (meter, reading) judged, sorted by ``meter_id`` then ``ts``; the columns, in this order:

``meter_id`` (string), ``ts`` (timestamp, UTC, microseconds)
    the reading.
one ``float64`` column per detector run, named after it, in the order the detectors were given
    that detector's score of the reading: its limit ratio (1.0 = at the detector's limit, where
    its alerts start; 2.0 = twice the limit; NaN = it cannot judge this reading: a channel it
    needs is missing, the meter has no state for it, or it is blanked, e.g. during an outage).
    A detector that judged nothing in the run still has its column (all NaN): the schema
    depends on the detectors asked for, never on the data.
``score`` (``float64``)
    the combined score, calibrated like an alert's score: ``1 - 0.5 ** max(detector columns)``,
    so 0.5 is at a limit, 0.75 twice it, 0.875 three times it, 0 for a reading no detector
    finds above zero; NaN when no detector could judge the reading.
``detector`` (string)
    the detector whose score gave ``score`` (the first in column order on a tie); null with it.

The scores are the exact, final ones a run over the whole history gives (a window or a stitched
stream gives the same values for the same readings). They are before the post-rules: a reading
at 0.6 is above a limit but may not be in an alert (persistence, suppression, merging).
:func:`write` stores the table as Parquet with a fixed schema and no wall-clock metadata, so the
same input gives a byte-identical file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.atomicfile import atomic_file
from wattwatch.detect.postrules import calibrated_array

KEYS = ("meter_id", "ts")
COMBINED = ("score", "detector")


def table(scores: pd.DataFrame | None, detectors: list[str]) -> pd.DataFrame:
    """The scores table (see the module) from what the engine returns: a wide frame (``meter_id``,
    ``ts``, one column per detector) or the stitcher's long one (``meter_id``, ``ts``,
    ``detector``, ``score``); ``detectors``: the names run, in column order."""
    detectors = list(dict.fromkeys(detectors))
    clash = [d for d in detectors if d in KEYS + COMBINED]
    if clash:
        raise ValueError(f"a detector named {clash[0]!r} would clash with a column of the scores table")
    if scores is None or not len(scores):
        wide = pd.DataFrame({"meter_id": pd.Series([], dtype=object), "ts": pd.Series([], dtype="datetime64[us, UTC]")})
    elif "detector" in scores.columns and "score" in scores.columns and not set(detectors) & set(scores.columns):
        long = scores.assign(meter_id=scores["meter_id"].astype(str))
        wide = (long.groupby(["meter_id", "ts", "detector"], sort=False, observed=True)["score"].last()
                .unstack("detector").reset_index())
        wide.columns.name = None
    else:
        wide = scores.assign(meter_id=scores["meter_id"].astype(str))
    ts = pd.DatetimeIndex(pd.to_datetime(wide["ts"], utc=True)).as_unit("us")
    out = pd.DataFrame({"meter_id": pd.Series(wide["meter_id"].astype(str).to_numpy(dtype=object), dtype=object),
                        "ts": pd.Series(ts)})
    for d in detectors:
        out[d] = wide[d].to_numpy(dtype=float) if d in wide.columns else np.full(len(out), np.nan)
    out = out.sort_values(list(KEYS), kind="stable").reset_index(drop=True)
    m = out[detectors].to_numpy(dtype=float) if detectors else np.full((len(out), 0), np.nan)
    judged = np.isfinite(m)
    any_judged = judged.any(axis=1)
    if m.shape[1]:
        filled = np.where(judged, m, -np.inf)
        best = np.argmax(filled, axis=1)  # the first detector on a tie
        top = filled[np.arange(len(out)), best]
    else:
        best, top = np.zeros(len(out), int), np.full(len(out), -np.inf)
    out["score"] = np.where(any_judged, calibrated_array(top), np.nan)
    out["detector"] = pd.Series(np.where(any_judged, np.asarray(detectors + [""], dtype=object)[best], None),
                                dtype=object)
    out["meter_id"] = out["meter_id"].astype("string")
    out["detector"] = out["detector"].astype("string")
    return out


def schema(detectors: list[str]):
    """The Parquet schema of a scores table for ``detectors``."""
    import pyarrow as pa

    return pa.schema([pa.field("meter_id", pa.string(), nullable=False),
                      pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
                      *(pa.field(d, pa.float64()) for d in detectors),
                      pa.field("score", pa.float64()), pa.field("detector", pa.string())])


def write(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a :func:`table` as Parquet (fixed schema, zstd, no pandas or wall-clock metadata):
    the same table gives the same bytes. Written through a temporary file in the same folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    detectors = [c for c in df.columns if c not in KEYS + COMBINED]
    sch = schema(detectors)
    arrow = pa.Table.from_pandas(df[[f.name for f in sch]], schema=sch, preserve_index=False)
    arrow = arrow.replace_schema_metadata(None)
    if path.exists() and not path.is_file():  # a device or FIFO: written in place
        pq.write_table(arrow, str(path), compression="zstd")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        pq.write_table(arrow, fh, compression="zstd", row_group_size=1_000_000)
    return path
