"""prof1's no-copy shortcut of the stitcher gives what the long way gave, values exact (rprof1).

``stitch._utc`` returns a time column as it is only when it is already exactly what
``pd.to_datetime(col, utc=True)`` makes (``datetime.timezone.utc``); every other UTC spelling
(pytz, zoneinfo, dateutil) must still be converted, else the stitched piece's dtype carries the
caller's tz object (pytz.UTC, ZoneInfo("UTC"), a named timezone(0)): 15 of these cases fail
with the check loosened to ``str(tz) == "UTC"``.
"""

from __future__ import annotations

import datetime
import zoneinfo

import numpy as np
import pandas as pd
import pytest
import pytz
from dateutil import tz as dtz

from wattwatch.detect.stitch import _by_meter, _utc

ZONES = {"utc-str": "UTC", "timezone.utc": datetime.timezone.utc, "pytz": pytz.UTC,
         "zoneinfo": zoneinfo.ZoneInfo("UTC"), "dateutil": dtz.tzutc(), "etc-utc": zoneinfo.ZoneInfo("Etc/UTC"),
         "named-0": datetime.timezone(datetime.timedelta(0), "UTC"), "berlin": "Europe/Berlin", "naive": None}


def _times(zone, unit: str, n: int = 60, nat: bool = True) -> pd.Series:
    t = pd.date_range("2026-03-28 22:00", periods=n, freq="15min", tz="UTC").array.as_unit(unit)
    t = t.tz_convert(zone) if zone is not None else t.tz_convert(None)
    s = pd.Series(t.copy(), name="ts", index=pd.RangeIndex(7, 7 + n))
    if nat:
        s.iloc[5] = pd.NaT
    return s


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", list(ZONES))
def test_utc_gives_what_to_datetime_gives(zone, unit):
    col = _times(ZONES[zone], unit)
    got, want = _utc(col), pd.to_datetime(col, utc=True)
    assert got.dtype == want.dtype and got.dtype.tz is want.dtype.tz   # the tz object itself
    # (pickles may differ by the input array's memo of its unit, pandas' cache_readonly: not a value)
    pd.testing.assert_series_equal(got, want, check_freq=True, check_exact=True)


@pytest.mark.parametrize("zone", list(ZONES))
def test_by_meter_piece_keeps_to_datetime_dtype(zone):
    ts = _times(ZONES[zone], "ms", nat=False)   # (sorted: a NaT would sort first)
    n = len(ts)
    df = pd.DataFrame({"meter_id": np.repeat(["a", "b"], n // 2), "ts": ts.to_numpy() if zone == "naive" else ts.array,
                       "p": np.arange(n, dtype=float)})
    out = _by_meter(df)
    want = pd.to_datetime(df["ts"], utc=True)
    assert out["ts"].dtype == want.dtype and out["ts"].dtype.tz is datetime.timezone.utc
    pd.testing.assert_series_equal(out["ts"], want, check_freq=True, check_exact=True)
