"""PNG plots of a grid run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.grid.config import WatchConfig


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, ax, path: str | Path, title: str, **legend) -> Path:
    """Grid and legend on every panel, the title, then the PNG at ``path`` (the figure closed)."""
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=7, **legend)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def focus(intervals: pd.DataFrame, most: int = 3) -> list[str]:
    """The prosumers worth plotting: those with the highest peak penalty (any above 0)."""
    peak = intervals.groupby("prosumer")["penalty"].max().fillna(0.0)
    peak = peak[peak > 0].sort_values(ascending=False)
    return list(peak.index[:most])


def plot_run(samples: pd.DataFrame, intervals: pd.DataFrame, cfg: WatchConfig, path: str | Path,
             prosumers: list[str] | None = None, title: str = "") -> Path:
    """Three panels per run, like the paper's Fig. 4: power (agreed, actual, probed by the
    neighbours), anomaly factor F (mean over neighbours) and penalty price with C_th; an
    isolation is a vertical line."""
    plt = _plt()
    who = prosumers or focus(intervals) or list(intervals["prosumer"].unique()[:1])
    fig, ax = plt.subplots(3, 1, figsize=(9, 7.5), sharex=True)
    for name in who:
        s = samples[samples["prosumer"] == name]
        iv = intervals[intervals["prosumer"] == name]
        line, = ax[0].plot(s["ts"], s["p_ref_mw"], "--", lw=1.2, label=f"{name} agreed")
        ax[0].plot(s["ts"], s["p_actual_mw"], "-", lw=1.0, color=line.get_color(), alpha=0.5, label=f"{name} actual")
        ax[0].plot(s["ts"], s["p_probe_mw"], ".", ms=2.5, color=line.get_color(), label=f"{name} probed")
        ax[1].step(iv["ts"], iv["f"], where="pre", color=line.get_color(), label=name)
        ax[2].step(iv["ts"], iv["penalty"], where="pre", color=line.get_color(), label=name)
        for t in iv.loc[iv["decision"] == "isolate", "ts"]:
            for a in ax:
                a.axvline(t, color=line.get_color(), ls=":", lw=1.5)
            ax[2].annotate(f"{name} isolated", (t, cfg.c_th), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax[2].axhline(cfg.c_th, color="k", ls="--", lw=0.8, label="C_th")
    ax[0].set_ylabel("net power (MW)")
    ax[1].set_ylabel("anomaly factor F")
    ax[2].set_ylabel("penalty price P")
    ax[2].set_xlabel("time (UTC)")
    return _save(plt, fig, ax, path, title or "neighbour watch", loc="best", ncol=3)


def plot_tradeoff(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Missed isolations (persistent deviators not isolated) against false isolations (honest
    prosumers isolated), one curve per noise level over C_th."""
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for noise, g in table.groupby("noise_mw"):
        g = g.sort_values("c_th")
        ax[0].plot(g["false_rate"], g["missed_rate"], "o-", ms=3, label=f"noise σ={noise:g} MW")
        ax[1].plot(g["c_th"], g["missed_rate"], "o-", ms=3, label=f"missed, σ={noise:g}")
        ax[1].plot(g["c_th"], g["false_rate"], "x--", ms=3, color=ax[1].lines[-1].get_color(), label=f"false, σ={noise:g}")
    ax[0].set_xlabel("false isolations (share of honest prosumer-runs)")
    ax[0].set_ylabel("missed isolations (share of deviators)")
    ax[1].set_xlabel("C_th")
    ax[1].set_xscale("log")
    ax[1].set_ylabel("rate")
    return _save(plt, fig, ax, path, title or "isolation trade-off")
