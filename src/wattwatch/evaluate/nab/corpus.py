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
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate.nab.scorer import STANDARD_PROFILES, CostProfile, FileLayout, layout


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
        return json.loads(p.read_text()) if p.exists() else {}


def load_corpus(root: Path, windows_file: str = "labels/combined_windows.json") -> Corpus:
    root = Path(root)
    wpath = root / windows_file
    if not wpath.exists():
        raise NabError(f"{wpath}: no NAB label file (expected the NAB repository layout under {root})")
    windows = json.loads(wpath.read_text())
    ppath = root / "config" / "profiles.json"
    profiles = tuple(CostProfile.from_nab(k, v) for k, v in json.loads(ppath.read_text()).items()) \
        if ppath.exists() else STANDARD_PROFILES
    files = []
    for key in sorted(windows):
        path = root / "data" / key
        if not path.exists():
            raise NabError(f"{path}: listed in {wpath} but missing")
        df = pd.read_csv(path)
        if list(df.columns[:2]) != ["timestamp", "value"]:
            raise NabError(f"{path}: expected columns timestamp,value, found {list(df.columns)}")
        ts = pd.to_datetime(df["timestamp"])
        rows = []
        for k, (start, end) in enumerate(windows[key]):
            lo = np.flatnonzero(ts.to_numpy() == np.datetime64(pd.Timestamp(start)))
            hi = np.flatnonzero(ts.to_numpy() == np.datetime64(pd.Timestamp(end)))
            if not len(lo) or not len(hi):
                raise NabError(f"{wpath}: window {k} of {key} ({start} .. {end}) does not start and end on "
                               "timestamps of the data file")
            rows.append((int(lo[0]), int(hi[0])))
        files.append(DataFile(key, ts, df["value"].to_numpy(float), rows))
    return Corpus(root, files, profiles)
