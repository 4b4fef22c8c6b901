"""``wattwatch grid monitor``: the neighbour watch on a user's own tie-line measurements and
agreed references.

Topology (TOML)::

    [grid]
    slack = "S1"                 # optional: the balancing node (not watched)
    [[line]]
    id = "L12"
    from = "P1"
    to = "P2"
    loss_mw = 0.0                # optional: the agreed loss of the line at the operating point
    [watch]                      # optional: any WatchConfig field
    interval_min = 15
    samples = 15

Measurements (CSV or Parquet, long): ``ts`` (UTC), ``line`` (an id of the topology), ``at`` (the
node at whose end the meter is), ``p_mw`` (flow out of that node into the line).
References (CSV or Parquet, long): ``ts``, ``prosumer``, ``p_ref_mw`` (agreed net power,
generation − load). A prosumer's probed power is what its neighbours' meters at the far ends of its
lines say (plus the agreed losses); where a far end has no meter at all, its own end is used (and a
notice says so: that prosumer could hide a deviation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.errors import ConfigError, InputError
from wattwatch.grid import watch as W
from wattwatch.grid.config import WatchConfig, load_toml, watch_from_dict
from wattwatch.userfile import open_file


@dataclass
class Topology:
    names: list[str]
    branch_ends: np.ndarray
    branch_names: list[str]
    loss_mw: np.ndarray
    slack: int | None
    watch_cfg: WatchConfig
    isolated: set = field(default_factory=set)

    @property
    def n(self) -> int:
        return len(self.names)

    def incident(self):
        inc = [[] for _ in range(self.n)]
        for k, (a, b) in enumerate(self.branch_ends):
            inc[a].append((k, 0))
            inc[b].append((k, 1))
        return inc


def read_topology(path: str | Path, watch: WatchConfig | None = None) -> Topology:
    doc = load_toml(path)
    unknown = sorted(set(doc) - {"grid", "line", "watch", "prosumer"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {unknown}; expected [grid], [[line]], [watch]")
    lines = doc.get("line")
    if not isinstance(lines, list) or not lines:
        raise ConfigError(f"{path}: no [[line]] entries (each: id, from, to)")
    names: list[str] = []
    ends, ids, loss = [], [], []
    for n, ln in enumerate(lines, 1):
        if not isinstance(ln, dict):
            raise ConfigError(f"{path}: line[{n}] must be a table")
        for k in ("id", "from", "to"):
            if not isinstance(ln.get(k), str) or not ln.get(k):
                raise ConfigError(f"{path}: line[{n}].{k} must be a non-empty string")
        extra = sorted(set(ln) - {"id", "from", "to", "loss_mw"})
        if extra:
            raise ConfigError(f"{path}: line[{n}] ({ln['id']}): unknown field(s) {extra}")
        if ln["from"] == ln["to"]:
            raise ConfigError(f"{path}: line[{n}] ({ln['id']}): from and to are the same node")
        if ln["id"] in ids:
            raise ConfigError(f"{path}: line[{n}]: id {ln['id']!r} given twice")
        lo = ln.get("loss_mw", 0.0)
        if isinstance(lo, bool) or not isinstance(lo, (int, float)) or not np.isfinite(lo):
            raise ConfigError(f"{path}: line[{n}] ({ln['id']}).loss_mw must be a number")
        for k in ("from", "to"):
            if ln[k] not in names:
                names.append(ln[k])
        ends.append((names.index(ln["from"]), names.index(ln["to"])))
        ids.append(ln["id"])
        loss.append(float(lo))
    grid = doc.get("grid", {})
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: [grid] must be a table")
    slack = grid.get("slack")
    if slack is not None and slack not in names:
        raise ConfigError(f"{path}: grid.slack {slack!r} is not a node of any line")
    cfg = watch or watch_from_dict(doc.get("watch"), f"{path}: [watch]")
    return Topology(names, np.asarray(ends, int), ids, np.asarray(loss), None if slack is None else names.index(slack), cfg)


def _read_table(path: Path, what: str, need: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    path = Path(path)
    with open_file(path, f"{what} file", InputError) as fh:
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                df = pd.read_parquet(fh)
                unit = "row"
            else:
                df = pd.read_csv(fh, dtype=str, keep_default_na=False, encoding="utf-8")
                unit = "line"
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; expected {what} as CSV or Parquet") from None
        except (ValueError, OSError, pd.errors.ParserError) as exc:
            raise InputError(f"{path}: cannot read {what} ({str(exc).splitlines()[0][:200]})") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing} (has {list(df.columns)[:12]}); "
                         f"expected {', '.join(need)}")
    return df, unit


def _where(unit: str, i: int) -> str:
    # CSV: the header is line 1, the first record line 2; Parquet: rows from 1.
    return f"line {i + 2}" if unit == "line" else f"row {i + 1}"


def _times(df, path, unit) -> pd.Series:
    raw = df["ts"]
    ts = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601") if raw.dtype == object else \
        pd.to_datetime(raw, utc=True, errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if len(bad):
        raise InputError(f"{path}: {_where(unit, bad[0])}: field ts: {raw.iloc[bad[0]]!r} is not a time")
    return ts


def _numbers(df, col, path, unit) -> np.ndarray:
    x = pd.to_numeric(df[col], errors="coerce")
    bad = np.flatnonzero((x.isna() | ~np.isfinite(x.astype(float))).to_numpy())
    if len(bad):
        raise InputError(f"{path}: {_where(unit, bad[0])}: field {col}: {df[col].iloc[bad[0]]!r} is not a number")
    return x.to_numpy(dtype=float)


@dataclass
class MonitorResult:
    intervals: pd.DataFrame
    pairs: pd.DataFrame
    samples: pd.DataFrame
    isolations: list[dict]
    notices: list[str]
    topology: Topology


def monitor(measurements: str | Path, topology: str | Path | Topology, references: str | Path,
            watch: WatchConfig | None = None) -> MonitorResult:
    topo = topology if isinstance(topology, Topology) else read_topology(topology, watch)
    cfg = topo.watch_cfg
    m, mu = _read_table(Path(measurements), "measurements", ("ts", "line", "at", "p_mw"))
    r, ru = _read_table(Path(references), "references", ("ts", "prosumer", "p_ref_mw"))
    mts, rts = _times(m, measurements, mu), _times(r, references, ru)
    mp, rp = _numbers(m, "p_mw", measurements, mu), _numbers(r, "p_ref_mw", references, ru)
    bpos = {b: k for k, b in enumerate(topo.branch_names)}
    npos = {nm: k for k, nm in enumerate(topo.names)}
    line = m["line"].astype(str).to_numpy()
    at = m["at"].astype(str).to_numpy()
    bidx = np.array([bpos.get(x, -1) for x in line])
    bad = np.flatnonzero(bidx < 0)
    if len(bad):
        raise InputError(f"{measurements}: {_where(mu, bad[0])}: field line: {line[bad[0]]!r} is not a line of the topology")
    node = np.array([npos.get(x, -1) for x in at])
    end = np.where(node == topo.branch_ends[bidx, 0], 0, np.where(node == topo.branch_ends[bidx, 1], 1, -1))
    bad = np.flatnonzero(end < 0)
    if len(bad):
        b = bidx[bad[0]]
        raise InputError(f"{measurements}: {_where(mu, bad[0])}: field at: {at[bad[0]]!r} is not an end of line "
                         f"{line[bad[0]]} ({topo.names[topo.branch_ends[b, 0]]}–{topo.names[topo.branch_ends[b, 1]]})")
    rn = r["prosumer"].astype(str).to_numpy()
    ridx = np.array([npos.get(x, -1) for x in rn])
    bad = np.flatnonzero(ridx < 0)
    if len(bad):
        raise InputError(f"{references}: {_where(ru, bad[0])}: field prosumer: {rn[bad[0]]!r} is not a node of the topology")
    # Samples on the cadence T/K, intervals aligned to T from the first measurement's interval.
    step = pd.Timedelta(minutes=cfg.sample_min)
    t0 = min(mts.min(), rts.min()).floor(pd.Timedelta(minutes=cfg.interval_min))
    t1 = max(mts.max(), rts.max())
    k = cfg.samples
    n_s = int(((t1 - t0) // step) + 1)
    n_s = -(-n_s // k) * k
    nb = len(topo.branch_names)
    if n_s * max(nb, topo.n) > 50_000_000:
        raise InputError(f"{measurements}: the data span {t0} .. {t1} is {n_s:,} samples of {cfg.sample_min:g} min for "
                         f"{nb} lines: too long for one run; split it by time (or check the ts field for a stray date)")
    si = ((mts - t0) // step).to_numpy().astype(int)
    ri = ((rts - t0) // step).to_numpy().astype(int)
    meas = np.full((nb, 2, n_s), np.nan)
    meas[bidx, end, si] = mp          # last value wins for a repeated (line, end, sample)
    ref = np.full((topo.n, n_s), np.nan)
    ref[ridx, ri] = rp
    notices = []
    # p_probe_i from the far ends; a far end without any meter falls back to i's own end.
    probe = np.zeros((topo.n, n_s))
    has = ~np.isnan(meas).all(axis=2)
    for i, inc in enumerate(topo.incident()):
        for b, e in inc:
            if has[b, 1 - e]:
                probe[i] += topo.loss_mw[b] - meas[b, 1 - e]
            elif has[b, e]:
                probe[i] += meas[b, e]
                notices.append(f"{topo.names[i]}: line {topo.branch_names[b]} has no meter at "
                               f"{topo.names[topo.branch_ends[b, 1 - e]]}'s end; its own end is used")
            else:
                probe[i] += np.nan
                notices.append(f"{topo.names[i]}: line {topo.branch_names[b]} has no measurements at either end")
    diff = (probe - ref).reshape(topo.n, n_s // k, k)
    present = (~np.isnan(diff)).sum(axis=2)
    with np.errstate(all="ignore"):
        sums = np.nansum(diff, axis=2)
        d = np.where(present > 0, sums / np.maximum(present, 1) * cfg.interval_min / 60.0, 0.0)
    n_z = d.shape[1]
    if (present == 0).any():
        gaps = int(((present == 0) & ~np.isnan(ref).reshape(topo.n, n_z, k).all(axis=2)).sum())
        if gaps:
            notices.append(f"{gaps} prosumer-interval(s) without a complete probe: no evidence, F decays there")
    watched = np.ones(topo.n, bool)
    watched[np.isnan(ref).all(axis=1)] = False
    for i in np.flatnonzero(~watched):
        notices.append(f"{topo.names[i]}: no agreed reference: not watched")
    if topo.slack is not None:
        watched[topo.slack] = False
    from wattwatch.grid.world import watch_matrix

    wm = watch_matrix(topo, watched)
    n = topo.n
    f = np.zeros((n, n))
    dtp = np.zeros((n, n))
    names = np.array(topo.names)
    rows_i, rows_p, isolations = [], [], []
    ends_ts = t0 + pd.to_timedelta((np.arange(n_z) + 1) * cfg.interval_min, unit="min")
    iso_mask = np.zeros(n, bool)
    for z in range(n_z):
        dpair = np.broadcast_to(d[:, z][None, :], (n, n))
        dt = W.dead_zone(dpair, cfg)
        f = np.where(wm, W.step(f, dtp, dt, cfg), 0.0)
        dtp = np.where(wm, dt, 0.0)
        p = W.penalty(f, cfg)
        mean, signals, isolate = W.vote(p, wm, cfg)
        nw = wm.sum(axis=0)
        with np.errstate(all="ignore"):
            fm = np.where(nw > 0, (f * wm).sum(axis=0) / np.maximum(nw, 1), np.nan)
        rows_i.append((ends_ts[z], np.where(nw > 0, d[:, z], np.nan), fm, np.where(nw > 0, mean, np.nan), signals, nw,
                       isolate.copy(), iso_mask.copy()))
        jj, ii = np.nonzero(wm)
        rows_p.append(pd.DataFrame({"ts": ends_ts[z], "watcher": names[jj], "prosumer": names[ii],
                                    "d_mwh": d[ii, z], "f": f[jj, ii], "p": p[jj, ii]}))
        if isolate.any():
            for i in np.flatnonzero(isolate):
                isolations.append({"prosumer": names[i], "interval": z, "ts": ends_ts[z], "penalty": float(mean[i]),
                                   "signals": int(signals[i]), "watchers": int(nw[i])})
                topo.isolated.add(int(i))
            iso_mask |= isolate
            watched &= ~isolate
            new = watch_matrix(topo, watched)
            f[wm & ~new] = 0.0
            dtp[wm & ~new] = 0.0
            wm = new
    keep = watched | iso_mask
    from wattwatch.grid.simulate import _intervals

    intervals = _intervals(names, rows_i, keep)
    pairs = pd.concat(rows_p, ignore_index=True) if rows_p else pd.DataFrame()
    ts_s = t0 + pd.to_timedelta(np.arange(n_s) * cfg.sample_min, unit="min")
    idx = np.flatnonzero(keep)
    samples = pd.DataFrame({"ts": np.tile(ts_s, len(idx)), "prosumer": np.repeat(names[idx], n_s),
                            "p_ref_mw": ref[idx].ravel(), "p_probe_mw": probe[idx].ravel()})
    samples["p_actual_mw"] = np.nan
    samples["p_reported_mw"] = np.nan
    return MonitorResult(intervals, pairs, samples, isolations, sorted(set(notices)), topo)
