"""The NAB corpus on disk: data files, labelled windows, cost profiles, published results.

Layout (as in github.com/numenta/NAB)::

    data/<category>/<name>.csv            timestamp,value
    labels/combined_windows.json          {"<category>/<name>.csv": [[start, end], ...]}
    config/profiles.json                  cost matrices of the three profiles
    results/final_results.json            published normalised scores per detector
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from wattwatch.evaluate.nab.scorer import STANDARD_PROFILES, CostProfile, FileLayout, layout
from wattwatch.userfile import open_file, read_text


class NabError(ValueError):
    """The corpus is missing or inconsistent (names the file)."""


@dataclass
class DataFile:
    key: str                 # "<category>/<name>.csv", as in the label file
    timestamps: pd.Series    # naive, as written in the file
    values: np.ndarray
    windows: list[tuple[int, int]]  # inclusive row ranges

    @property
    def layout(self) -> FileLayout:
        return layout(len(self.values), self.windows)

    @property
    def labels(self) -> np.ndarray:
        lab = np.zeros(len(self.values), int)
        for lo, hi in self.windows:
            lab[lo:hi + 1] = 1
        return lab


@dataclass
class Corpus:
    root: Path
    files: list[DataFile]
    profiles: tuple[CostProfile, ...]

    @property
    def n_windows(self) -> int:
        return sum(len(f.windows) for f in self.files)

    def published(self) -> dict:
        """``results/final_results.json`` (empty when the corpus ships without it)."""
        p = self.root / "results" / "final_results.json"
        if not p.exists():
            return {}
        doc = _read_json(p, "published results")
        if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
            raise NabError(f"{p}: expected {{detector: {{profile: score}}}}")
        return {str(k): {str(p_): float(x) for p_, x in v.items() if isinstance(x, (int, float))}
                for k, v in doc.items()}


def _read_json(path: Path, what: str):
    text = read_text(path, f"{what} file", NabError, article="the", expect=f"the {what} file is UTF-8 JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NabError(f"{path}: {what}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:
        raise NabError(f"{path}: {what}: not valid JSON ({exc})") from None


def safe_key(key, wpath: Path) -> PurePosixPath:
    """A label key as a relative path inside the corpus: ``<category>/<name>.csv``. Absolute keys,
    ``..``, backslashes and control characters are refused (they reached files outside ``--data``
    and results outside ``--out``)."""
    if not isinstance(key, str) or not key:
        raise NabError(f"{wpath}: label key {key!r} is not a file name")
    bad = next((c for c in key if ord(c) < 32 or c in "\\\x7f"), None)
    rel = PurePosixPath(key)
    if bad is not None or rel.is_absolute() or PureWindowsPath(key).drive or \
            any(part in ("..", ".") for part in key.split("/")) or "" in key.split("/") or rel.suffix != ".csv":
        raise NabError(f"{wpath}: label key {key!r} must be a relative path <category>/<name>.csv inside data/ "
                       "(no absolute path, '..', empty part or backslash)")
    return rel


def _inside(path: Path, root: Path, what: str, wpath: Path) -> None:
    try:
        real, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:
        raise NabError(f"{path}: cannot resolve: {exc}") from None
    if real != base and base not in real.parents:
        raise NabError(f"{wpath}: {path} leads outside {what} (to {real})")


def _windows(key: str, spans, wpath: Path) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    if not isinstance(spans, list):
        raise NabError(f"{wpath}: {key}: expected a list of [start, end] windows, got {type(spans).__name__}")
    out = []
    for k, w in enumerate(spans):
        if not (isinstance(w, list) and len(w) == 2 and all(isinstance(x, str) for x in w)):
            raise NabError(f"{wpath}: window {k} of {key}: expected [start, end] as two time strings, got {w!r}")
        try:
            a, b = pd.Timestamp(w[0]), pd.Timestamp(w[1])
            if a is pd.NaT or b is pd.NaT:
                raise ValueError("NaT")
        except (ValueError, TypeError, OverflowError):
            raise NabError(f"{wpath}: window {k} of {key}: {w!r} is not a pair of times") from None
        if a.tz is not None or b.tz is not None:
            a, b = a.tz_convert(None) if a.tz else a, b.tz_convert(None) if b.tz else b
        if b < a:
            raise NabError(f"{wpath}: window {k} of {key}: end {w[1]} is before start {w[0]}")
        out.append((a, b))
    return out


def _data_file(path: Path, key: str):
    with open_file(path, "data file", NabError) as fh:
        try:
            df = pd.read_csv(fh, encoding="utf-8")
        except OSError as exc:
            raise NabError(f"{path}: cannot read data file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise NabError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except pd.errors.EmptyDataError:
            raise NabError(f"{path}: empty; expected columns timestamp,value") from None
        except (pd.errors.ParserError, ValueError) as exc:
            raise NabError(f"{path}: not a CSV file: {str(exc).strip()}") from None
    if list(df.columns[:2]) != ["timestamp", "value"]:
        raise NabError(f"{path}: expected columns timestamp,value, found {list(df.columns)}")
    if len(df) < 2:
        raise NabError(f"{path}: {len(df)} data row(s); a NAB file needs at least 2")
    try:
        ts = pd.to_datetime(df["timestamp"])
    except (ValueError, TypeError, OverflowError):
        ts = pd.to_datetime(df["timestamp"], errors="coerce", format="mixed")
        bad = np.flatnonzero(ts.isna().to_numpy())
        line = f"line {bad[0] + 2}: timestamp {df['timestamp'].iat[bad[0]]!r}" if len(bad) else "timestamps"
        raise NabError(f"{path}: {line} is not a time (or the times mix formats or offsets)") from None
    bad = np.flatnonzero(ts.isna().to_numpy())
    if len(bad):
        raise NabError(f"{path}: line {bad[0] + 2}: timestamp is missing")
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert(None)
    values = pd.to_numeric(df["value"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise NabError(f"{path}: line {bad[0] + 2}: value {df['value'].iat[bad[0]]!r} is not a finite number")
    return ts, values


def load_corpus(root: Path, windows_file: str = "labels/combined_windows.json") -> Corpus:
    """The corpus under ``root``; ``NabError`` naming the file (and key, window or line) when it
    is incomplete or malformed. Only files inside ``root/data`` are read."""
    root = Path(root)
    if not root.is_dir():
        raise NabError(f"{root}: no such folder (expected the NAB repository layout: data/, labels/, config/)")
    wpath = root / windows_file
    if not wpath.exists():
        raise NabError(f"{wpath}: no NAB label file (expected the NAB repository layout under {root})")
    windows = _read_json(wpath, "NAB label")
    if not isinstance(windows, dict):
        raise NabError(f"{wpath}: expected an object {{\"<category>/<name>.csv\": [[start, end], ...]}}, "
                       f"got {type(windows).__name__}")
    if not windows:
        raise NabError(f"{wpath}: lists no data files")
    ppath = root / "config" / "profiles.json"
    if ppath.exists():
        doc = _read_json(ppath, "cost profiles")
        try:
            if not isinstance(doc, dict) or not doc:
                raise TypeError("expected an object of profiles")
            profiles = tuple(CostProfile.from_nab(k, v) for k, v in doc.items())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NabError(f"{ppath}: expected {{profile: {{\"CostMatrix\": {{\"tpWeight\", \"fpWeight\", "
                           f"\"fnWeight\"}}}}}} ({type(exc).__name__}: {exc})") from None
        if not all(np.isfinite([p.tp_weight, p.fp_weight, p.fn_weight]).all() for p in profiles):
            raise NabError(f"{ppath}: cost weights must be finite numbers")
    else:
        profiles = STANDARD_PROFILES
    data = root / "data"
    files = []
    for key in sorted(windows, key=str):
        rel = safe_key(key, wpath)
        spans = _windows(key, windows[key], wpath)
        path = data.joinpath(*rel.parts)
        if not path.exists():
            raise NabError(f"{path}: listed in {wpath} but missing")
        _inside(path, data, "data/", wpath)
        ts, values = _data_file(path, key)
        rows = []
        stamps = ts.to_numpy()
        for k, (start, end) in enumerate(spans):
            lo = np.flatnonzero(stamps == np.datetime64(start))
            hi = np.flatnonzero(stamps == np.datetime64(end))
            if not len(lo) or not len(hi):
                raise NabError(f"{wpath}: window {k} of {key} ({start} .. {end}) does not start and end on "
                               "timestamps of the data file")
            rows.append((int(lo[0]), int(hi[0])))
        files.append(DataFile(key, ts, values, rows))
    return Corpus(root, files, profiles)
