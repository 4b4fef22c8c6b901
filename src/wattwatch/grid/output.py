"""What a grid run writes into its output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from wattwatch.errors import InputError


def _plain(x):
    if isinstance(x, pd.Timestamp):
        return x.isoformat().replace("+00:00", "Z")
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def write(out: str | Path, *, samples: pd.DataFrame, intervals: pd.DataFrame, pairs: pd.DataFrame, alerts: list,
          cfg, meta: dict, title: str, plot: bool = True) -> dict:
    """``samples.parquet`` (power per prosumer and sample), ``intervals.parquet`` (mismatch, F,
    penalty, decisions per prosumer and interval), ``pairs.parquet`` (each neighbour's own d, F,
    P), ``alerts.jsonl`` + ``alerts.log``, ``run.json`` and ``grid.png``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (--out takes a folder)")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"samples": out / "samples.parquet", "intervals": out / "intervals.parquet", "pairs": out / "pairs.parquet",
             "alerts": out / "alerts.jsonl", "log": out / "alerts.log", "run": out / "run.json"}
    samples.to_parquet(paths["samples"], index=False)
    intervals.to_parquet(paths["intervals"], index=False)
    pairs.to_parquet(paths["pairs"], index=False)
    paths["alerts"].write_text("".join(a.to_json() + "\n" for a in alerts), encoding="utf-8")
    paths["log"].write_text("".join(a.log_line() + "\n" for a in alerts), encoding="utf-8")
    paths["run"].write_text(json.dumps(meta, default=_plain, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    if plot:
        from wattwatch.grid.plots import plot_run

        paths["plot"] = plot_run(samples, intervals, cfg, out / "grid.png", title=title)
    return {k: str(v) for k, v in paths.items()}
