"""``schema.utc_times``: the one public way to read a ``ts`` column as UTC instants (the stream
imported the stitcher's private ``_utc`` for it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

import wattwatch.runners.stream as stream
from wattwatch.schema import utc_times


def test_utc_times_keeps_a_utc_column_and_reads_any_other():
    utc = pd.Series(pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"], utc=True))
    assert utc_times(utc) is utc  # no copy at every live step
    paris = utc.dt.tz_convert("Europe/Paris")
    got = utc_times(paris)
    assert str(got.dtype.tz) == "UTC" and got.equals(utc)
    text = pd.Series(["2026-01-01T01:00:00+01:00", "not a time"])
    coerced = utc_times(text, errors="coerce")
    assert coerced.iloc[0] == utc.iloc[0] and coerced.isna().tolist() == [False, True]
    with pytest.raises(ValueError):
        utc_times(text)  # without errors="coerce", an unreadable time is an error


def test_stream_imports_no_private_name_of_another_module():
    """``runners/stream.py`` takes from other wattwatch modules only their public names (a private
    helper moved or renamed by its owner would break the stream at import)."""
    tree = ast.parse(Path(stream.__file__).read_text(encoding="utf-8"))
    private = [(n.module, a.name, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               and (n.module or "").startswith("wattwatch") for a in n.names if a.name.startswith("_")]
    assert not private, private
