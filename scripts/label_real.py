"""Label the plain faults in the real-data extracts (shared/data/real) — step 1 of 2.

Usage (from the repository root):

    python scripts/label_real.py candidates [--data DIR]     # writes data/real_labels/candidates.json
    python scripts/label_real.py show ID [ID ...]             # a printout of each candidate in context
    python scripts/label_real.py build                       # candidates + review.json -> labels.json
    python scripts/label_real.py candidates-expert            # data/real_labels/candidates_expert.json
    python scripts/label_real.py show-expert ID [ID ...]      # a printout of each expert-kind candidate
    python scripts/label_real.py build-expert                # labels.json + review_expert.json -> labels_expert.json
    python scripts/label_real.py candidates[-expert] --check  # exit 1 unless the committed file is reproduced exactly

A candidate's id follows what it is (dataset, meter, channel, kind, start, end), not its position:
regenerating keeps the committed id of each candidate found again, numbers new ones after the
highest id (they need a decision by hand) and moves the decisions of ones no longer found to the
review file's ``retired``.

Step 1 applies the explicit, conservative criteria below to every dataset (vectorised over each
meter's readings; nothing of wattwatch's detectors is used). Step 2 is by hand: each candidate was
looked at (``show``) and kept or rejected with a written reason in ``data/real_labels/review.json``;
``build`` joins the two into ``labels.json`` (kept ones) and keeps the rejected ones with their
reasons under ``rejected``.

Criteria (cadence c; a "run" is consecutive readings with no time step over 1.5 c, in UTC or on the
meter's wall clock where its rows follow one: a clock change is no missing reading):

- ``zero_run``: >= 3 consecutive readings exactly 0 lasting >= 1 h, on channels where zero is not a
  normal reading (ZERO_ABNORMAL: whole-building/house/plant power and voltage; not an idle branch
  circuit, not PV at night, not grid import of a home whose PV covers its load).
- ``flat_line``: >= 4 consecutive identical non-zero readings lasting >= 3 h (>= 24 h on a coarse
  channel, where >= 5 % of consecutive non-zero readings are equal anyway), on power, current and
  voltage channels (not cumulative registers, which are flat whenever nothing is used).
- ``ceiling``: the channel's maximum reached by >= 3 readings, or a round maximum (a multiple of
  100) over 1.5x the channel's 99.9th percentile.
- ``gap``: no reading for >= max(4 c, 1 h) inside a meter's span (from the last reading before to
  the first after).
- ``register_reset``: a cumulative register (``e_kwh``) that goes down; ``register_jump``: one that
  rises in one step by over 50 x its 99.9th-percentile step.
- ``spike``: one reading over 1.2 x the channel's 99.9th percentile while both neighbours are under
  its 99th percentile; ``drop``: one reading under a fifth of both neighbours, which are both over
  the channel's 5th percentile (itself > 0). On whole-meter power (voltage at 1 min), not on PV.
- ``dead_channel``: a current channel that is exactly 0 for the whole file while power on the same
  meter reaches over 1 kW.
- ``zero_run`` on PV power in daylight (``PV_DAYLIGHT``; added after the first review, its
  candidates appended with ids from ``pvdaq-0364`` so that the reviewed ids stay): >= 3 h of
  readings exactly 0 at times of day when the meter's median over the 15 days around (same clock
  time) is over a tenth of its 99th percentile.

**The expert-kind set** (``*-expert``; issue 14): the kinds the independent evaluation's experts
label on hourly building meters that the plain set lacks (one-hour dips and spikes, day-long
constant fills, unusual days), on whole-building power of the commercial buildings (BDG2 hourly; not
the households, whose load is spiky by nature, nor PV, nor the steel plant, whose production schedule
moves whole days between 0.1 x and 12 x its weekday median). The criteria look at both
sides of a candidate in time (a labeller sees the whole record), never at wattwatch's detectors;
``labels_expert.json`` is the plain labels plus the kept expert-kind ones. Same time rule as above.

- ``drop``: one or two readings in a row, each under 55 % of both readings around the run and
  under 55 % of the same time 7 days before and 7 days after (those present, at least one), the
  readings around the run over the channel's 5th percentile (a zero hour included).
- ``spike``: one or two readings in a row, each over 1.8 x both readings around the run and the
  same time 7 days before and after (those present, at least one), and over the channel's 99th
  percentile.
- ``flat_line`` (fill): >= 12 identical non-zero readings (half a day at hourly cadence) on a coarse
  channel, where the plain set needs a whole day; runs the plain set already has are left out.
- ``drop`` of 3-6 readings (a dropout; added after the first review, ids from ``bdg2-e0180``): not all
  exactly 0, each under a fifth of both readings around the run and of the larger of the same time
  7 days before and after, the readings around over a fifth of the meter's median.
- ``unusual_day``: a calendar day of the site (its wall clock) with >= 20 readings whose mean is
  under 0.6 x or over 1.5 x the median of the same weekday's means in the 4 weeks before and the 4
  weeks after (at least 4 of them present), and under 0.6 x / over 1.5 x the median of the 3 days
  of its day type (weekday or weekend) either side (a school's whole term does not make each of
  its days unusual). Days reading exactly 0 throughout are neither candidates nor references
  (corrected after the third review: the references of an ordinary day before a dead meter's
  zero weeks were half zeros, four such days were kept as unusual).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from wattwatch.evaluate.real_data import DATASETS, find_data, load  # noqa: E402

OUT = ROOT / "data" / "real_labels"
VALUE_CHANNELS = ("p_kw", "q_kvar", "i_l1_a", "v_l1_v")
# (dataset, meter prefix or "*", channel): zero is not a normal reading there.
ZERO_ABNORMAL = [("uci_household", "*", "p_kw"), ("uci_household", "*", "v_l1_v"), ("ampds2", "*", "v_l1_v"),
                 ("steel", "*", "p_kw"), ("bdg2", "*", "p_kw"), ("opsd", "opsd_residential1", "p_kw"),
                 ("opsd", "opsd_residential2", "p_kw"), ("opsd", "opsd_residential5", "p_kw"),
                 ("pvdaq", "pvdaq_serf_west", "v_l1_v")]
#: PV channels judged for zero runs in daylight (``_pv_dark``).
PV_DAYLIGHT = {"pvdaq": "p_kw"}
SPIKE_CHANNELS = {"uci_household": ("v_l1_v",), "ampds2": ("v_l1_v",), "steel": ("p_kw",), "bdg2": ("p_kw",),
                  "opsd": ("p_kw",), "pvdaq": ()}


def _iso(t) -> str:
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _runs(mask: np.ndarray, seg: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True within one segment."""
    m = mask.astype(np.int8)
    brk = np.r_[True, (seg[1:] != seg[:-1])]
    start = m.astype(bool) & (brk | np.r_[True, ~mask[:-1]])
    end = m.astype(bool) & (np.r_[brk[1:], True] | np.r_[~mask[1:], True])
    return list(zip(np.flatnonzero(start), np.flatnonzero(end)))


def _zero_abnormal(ds: str, meter: str, ch: str) -> bool:
    return any(d == ds and (m == "*" or m == meter) and c == ch for d, m, c in ZERO_ABNORMAL)


def _steps(ts: pd.Series, tz: str | None) -> pd.Series:
    """The time step to each reading from the one before (NaT for the first): in UTC, or where the
    meter's wall clock ``tz`` is known, the shorter of the UTC and the wall-clock step. A clock
    change is then no missing reading: BDG2 writes the doubled autumn hour as one row holding both
    hours' energy, 2 h apart in UTC but 1 h on the site's clock (a zero run across it is one run)."""
    step = ts.diff()
    if tz:
        wall = ts.dt.tz_convert(tz).dt.tz_localize(None)
        step = step.where(step <= wall.diff(), wall.diff())
    return step


def candidates_for(ds: str, df: pd.DataFrame, zone: dict[str, str] | None = None) -> list[dict]:
    """The plain-fault candidates of one dataset (criteria in the module docstring); ``zone`` maps a
    meter to its wall clock's IANA zone where the extract's rows follow it (:func:`_steps`)."""
    c = pd.Timedelta(seconds=DATASETS[ds]["cadence_s"])
    zone = zone or {}
    out: list[dict] = []

    def add(meter, ch, kind, s, e, criterion, **stats):
        out.append({"dataset": ds, "meter_id": meter, "channel": ch, "kind": kind, "start": _iso(s), "end": _iso(e),
                    "criterion": criterion, **{k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v)
                                               for k, v in stats.items()}})

    for meter, g in df.groupby("meter_id", sort=True):
        ts = g["ts"].reset_index(drop=True)
        step = ts.diff()
        seg = np.cumsum((_steps(ts, zone.get(meter)) > 1.5 * c).fillna(False).to_numpy())
        # gaps
        long_gap = max(4 * c, pd.Timedelta(hours=1))
        for k in np.flatnonzero((step >= long_gap).to_numpy()):
            add(meter, "*", "gap", ts[k - 1], ts[k], f"no reading for {step[k]} (>= {long_gap})",
                missing_readings=int(step[k] / c) - 1)
        for ch in [x for x in g.columns if x not in ("meter_id", "ts")]:
            x = g[ch].to_numpy(dtype=float)
            if np.isnan(x).all():
                continue
            # dead channel
            if ch == "i_l1_a" and np.nanmax(np.abs(x)) == 0 and np.nanmax(g["p_kw"].to_numpy()) > 1:
                add(meter, ch, "dead_channel", ts.iat[0], ts.iat[-1], "current exactly 0 for the whole file while "
                    f"power reaches {np.nanmax(g['p_kw']):.2f} kW", readings=len(x))
                continue
            if ch == "e_kwh":
                d = np.diff(x)
                for k in np.flatnonzero(d < 0):
                    add(meter, ch, "register_reset", ts[k], ts[k + 1], f"register {x[k]:g} -> {x[k + 1]:g}")
                step_hi = np.nanquantile(d[d > 0], 0.999) if (d > 0).any() else np.inf
                for k in np.flatnonzero(d > 50 * step_hi):
                    add(meter, ch, "register_jump", ts[k], ts[k + 1], f"register {x[k]:g} -> {x[k + 1]:g} in one "
                        f"step (over 50 x its p99.9 step {step_hi:g})")
                continue
            if ch not in VALUE_CHANNELS:
                continue
            # zero runs
            if _zero_abnormal(ds, meter, ch):
                for a, b in _runs(x == 0, seg):
                    n = b - a + 1
                    if n >= 3 and ts[b] - ts[a] >= pd.Timedelta(hours=1):
                        add(meter, ch, "zero_run", ts[a], ts[b], f"{n} readings exactly 0", readings=int(n))
            # flat lines (identical non-zero values); a coarse channel (>= 5 % of its consecutive
            # non-zero readings equal) needs a whole day
            nz = (x[1:] != 0) & ~np.isnan(x[1:])
            repeat = float((x[1:] == x[:-1])[nz].mean()) if nz.any() else 0.0
            min_flat = pd.Timedelta(hours=3) if repeat < 0.05 else pd.Timedelta(hours=24)
            same = np.r_[False, (x[1:] == x[:-1]) & (seg[1:] == seg[:-1])]
            start_of = same.copy()
            start_of[:-1] |= same[1:]  # the first reading of a run of equal values belongs to it
            for a, b in _runs(start_of & (x != 0) & ~np.isnan(x), seg):
                # split where the value changes between two equal-value runs that touch
                idx = np.arange(a, b + 1)
                cut = np.flatnonzero(np.diff(x[idx]) != 0) + 1
                for part in np.split(idx, cut):
                    n = len(part)
                    if n >= 4 and ts[part[-1]] - ts[part[0]] >= min_flat:
                        add(meter, ch, "flat_line", ts[part[0]], ts[part[-1]], f"{n} readings at {x[part[0]]:g}",
                            readings=int(n), value=float(x[part[0]]))
            # ceilings
            mx = np.nanmax(x)
            at_max = x == mx
            q999 = np.nanquantile(x, 0.999)
            if mx > 0 and (at_max.sum() >= 3 or (mx % 100 == 0 and mx > 1.5 * q999)):
                for a, b in _runs(at_max, seg):
                    add(meter, ch, "ceiling", ts[a], ts[b], f"at the channel maximum {mx:g} ({int(at_max.sum())} "
                        f"readings there; p99.9 {q999:g})", readings=int(b - a + 1), value=float(mx))
            # single-reading spikes and drops
            if ch in SPIKE_CHANNELS.get(ds, ()):
                same_seg_prev = np.r_[False, seg[1:] == seg[:-1]]
                same_seg_next = np.r_[seg[1:] == seg[:-1], False]
                prev = np.r_[np.nan, x[:-1]]
                nxt = np.r_[x[1:], np.nan]
                ok = same_seg_prev & same_seg_next & ~np.isnan(prev) & ~np.isnan(nxt)
                q99, q999, q05 = np.nanquantile(x, [0.99, 0.999, 0.05])
                spike = ok & (x > 1.2 * q999) & (np.fmax(prev, nxt) < q99)
                drop = ok & (x < 0.2 * np.fmin(prev, nxt)) & (np.fmin(prev, nxt) > q05) & (q05 > 0)
                for k in np.flatnonzero(spike):
                    add(meter, ch, "spike", ts[k], ts[k], f"{x[k]:g} over 1.2 x p99.9 ({q999:g}); neighbours "
                        f"{prev[k]:g}, {nxt[k]:g} under p99 ({q99:g})", value=float(x[k]))
                for k in np.flatnonzero(drop):
                    add(meter, ch, "drop", ts[k], ts[k], f"{x[k]:g} under a fifth of both neighbours {prev[k]:g}, "
                        f"{nxt[k]:g} (both over p5 {q05:g})", value=float(x[k]))
    # PV in daylight (after every other criterion, so the earlier candidates keep their ids)
    if ds in PV_DAYLIGHT:
        for meter, g in df.groupby("meter_id", sort=True):
            _pv_dark(ds, meter, g.reset_index(drop=True), c, add)
    return out


def _pv_dark(ds: str, meter: str, g: pd.DataFrame, c: pd.Timedelta, add) -> None:
    """``zero_run`` on PV power in daylight: >= 3 h of readings exactly 0 (a run as above) at times of
    day when the same meter's median over the 15 days around (same clock time) is over a tenth of
    its 99th percentile: the inverter or its logger off while the sun was up."""
    x = g[PV_DAYLIGHT[ds]].to_numpy(dtype=float)
    ts = g["ts"]
    if np.isnan(x).all():
        return
    seg = np.cumsum((ts.diff() > 1.5 * c).fillna(False).to_numpy())
    day, tod = ts.dt.floor("D"), ts - ts.dt.floor("D")
    grid = pd.DataFrame({"d": day, "t": tod, "x": x}).pivot_table(index="d", columns="t", values="x", aggfunc="first")
    grid = grid.reindex(pd.date_range(grid.index.min(), grid.index.max(), freq="D"))
    ref_grid = grid.rolling(15, center=True, min_periods=5).median()
    ref = ref_grid.stack(future_stack=True).reindex(pd.MultiIndex.from_arrays([day, tod])).to_numpy()
    q99 = np.nanquantile(x, 0.99)
    sunny = np.nan_to_num(ref) > 0.1 * q99
    for a, b in _runs((x == 0) & sunny, seg):
        if ts[b] - ts[a] >= pd.Timedelta(hours=3):
            add(meter, PV_DAYLIGHT[ds], "zero_run", ts[a], ts[b], f"{b - a + 1} readings exactly 0 in daylight (the "
                f"15 days around: median over {0.1 * q99:.3g}, a tenth of p99)", readings=int(b - a + 1))


def _data_root(data) -> Path:
    """The real-data folder, or exit saying how to give it."""
    root = find_data(data)
    if root is None:
        sys.exit("no real-data folder (give --data DIR or set WATTWATCH_REAL_DIR)")
    return root


KEY = ("dataset", "meter_id", "channel", "kind", "start", "end")


def _key(c: dict) -> tuple:
    """What a candidate is, whatever its id: the review's decisions follow this key."""
    return tuple(c[k] for k in KEY)


def assign_ids(cands: list[dict], old: list[dict], infix: str = "") -> tuple[list[dict], list[str], list[dict]]:
    """Ids for freshly found candidates (in the order found): a candidate the committed file already
    has (same :data:`KEY`) keeps its id, so the hand review stays attached to what it judged; a new
    one is numbered after the highest id so far (``{dataset}-{infix}{n:04d}``). Returns the
    candidates, the new ids and the committed candidates no longer found (their decisions retire)."""
    keys = [_key(c) for c in cands]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"{len(dup)} candidate(s) found twice (one id per key), e.g. {dup[:3]}")
    known = {_key(c): c["id"] for c in old}
    nxt = 1 + max((int(c["id"].rsplit("-", 1)[1].lstrip("e")) for c in old), default=-1)
    new_ids = []
    for c in cands:
        c.pop("id", None)
        i = known.get(_key(c))
        if i is None:
            i, nxt = f"{c['dataset']}-{infix}{nxt:04d}", nxt + 1
            new_ids.append(i)
        c["id"] = i
    found = {_key(c) for c in cands}
    return cands, new_ids, [c for c in old if _key(c) not in found]


def _write_candidates(cands: list[dict], name: str, review: str, infix: str, check: bool) -> None:
    """Write (or with ``check`` compare) ``name`` with ids carried over by key (:func:`assign_ids`);
    the decisions of candidates no longer found move from ``review``'s ``decisions`` to its
    ``retired`` (with the candidate they judged). ``check`` exits 1 when the file would change."""
    path = OUT / name
    old = json.loads(path.read_text()) if path.exists() else []
    cands, new_ids, gone = assign_ids(cands, old, infix)
    text = json.dumps(cands, indent=1) + "\n"
    for c in gone:
        print(f"no longer a candidate: {c['id']} {' '.join(map(str, _key(c)))}")
    if new_ids:
        print(f"new candidates (to review: show{'-expert' if infix else ''} ID): {' '.join(new_ids)}")
    if check:
        same = path.exists() and path.read_text() == text
        print(f"{path.name}: {'reproduced exactly' if same else 'would change'}")
        if not same:
            sys.exit(1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    rpath = OUT / review
    if gone and rpath.exists():
        doc = json.loads(rpath.read_text())
        for c in gone:
            if c["id"] in doc["decisions"]:
                doc.setdefault("retired", {})[c["id"]] = {**doc["decisions"].pop(c["id"]), "candidate": c}
        rpath.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cands)} candidates -> {path}")


def cmd_candidates(data, check: bool = False) -> None:
    root = _data_root(data)
    from wattwatch.evaluate.real_data import zones

    allc = []
    for ds in DATASETS:
        cs = candidates_for(ds, load(ds, root), zones(ds, root))
        allc += cs
        kinds = pd.Series([c["kind"] for c in cs]).value_counts().to_dict() if cs else {}
        print(f"{ds}: {len(cs)} candidates {kinds}")
    _write_candidates(allc, "candidates.json", "review.json", "", check)


def cmd_show(ids, data, context: int = 6, source: str = "candidates.json") -> None:
    root = find_data(data)
    cands = {c["id"]: c for c in json.loads((OUT / source).read_text())}
    cache = {}
    for i in ids:
        cnd = cands[i]
        ds = cnd["dataset"]
        if ds not in cache:
            cache[ds] = load(ds, root)
        g = cache[ds][cache[ds]["meter_id"] == cnd["meter_id"]].set_index("ts")
        ch = cnd["channel"] if cnd["channel"] != "*" else "p_kw"
        s, e = pd.Timestamp(cnd["start"]), pd.Timestamp(cnd["end"])
        pos_s, pos_e = g.index.searchsorted(s), g.index.searchsorted(e, side="right")
        win = g.iloc[max(0, pos_s - context):pos_e + context][ch]
        print(f"== {i} {cnd['kind']} {cnd['meter_id']}.{cnd['channel']} {cnd['start']} .. {cnd['end']}: {cnd['criterion']}")
        if len(win) > 2 * context + 8:
            win = pd.concat([win.iloc[:context + 4], win.iloc[-context - 4:]])
        print("   " + " ".join(f"{t:%m-%d %H:%M}={v:.4g}" for t, v in win.items()))

# BDG2 only: the steel plant's production schedule moves its days between 0.1 x and 12 x its weekday
# median (shutdown weeks, weekend shifts); without the production calendar no day of it can be called
# unusual by eye, and its plain set already labels what is plainly wrong.
EXPERT_DATASETS = ("bdg2",)


def _overlaps(c: dict, plain: list[dict]) -> bool:
    s, e = pd.Timestamp(c["start"]), pd.Timestamp(c["end"])
    return any(p["meter_id"] == c["meter_id"] and pd.Timestamp(p["start"]) <= e and pd.Timestamp(p["end"]) >= s
               for p in plain)


def expert_candidates_for(ds: str, df: pd.DataFrame, zone: dict[str, str]) -> list[dict]:
    """The expert-kind candidates of one dataset (criteria in the module docstring), on the
    whole-building power channel ``p_kw`` reindexed to the regular cadence grid (absent = NaN)."""
    c = pd.Timedelta(seconds=DATASETS[ds]["cadence_s"])
    week = int(pd.Timedelta(days=7) / c)
    out: list[dict] = []

    def add(meter, kind, s, e, criterion, **stats):
        out.append({"dataset": ds, "meter_id": meter, "channel": "p_kw", "kind": kind, "start": _iso(s),
                    "end": _iso(e), "criterion": criterion,
                    **{k: round(float(v), 6) for k, v in stats.items()}})

    for meter, g in df.groupby("meter_id", sort=True):
        s = g.set_index("ts")["p_kw"]
        s = s[~s.index.duplicated()]
        s = s.reindex(pd.date_range(s.index[0], s.index[-1], freq=c))
        x, ts = s.to_numpy(float), s.index
        n = len(x)
        q05, q99 = np.nanquantile(x, [0.05, 0.99])
        wk_b = np.r_[np.full(week, np.nan), x[:-week]] if n > week else np.full(n, np.nan)
        wk_a = np.r_[x[week:], np.full(week, np.nan)] if n > week else np.full(n, np.nan)
        with np.errstate(invalid="ignore"):
            for width in (1, 2):
                if n < width + 2:
                    continue
                idx = np.arange(1, n - width)
                prev, nxt = x[idx - 1], x[idx + width]
                run = np.stack([x[idx + k] for k in range(width)])
                wb = np.stack([wk_b[idx + k] for k in range(width)])
                wa = np.stack([wk_a[idx + k] for k in range(width)])
                ref_week = np.fmin(wb, wa)  # NaN only when both are absent
                has_week = np.isfinite(wb) | np.isfinite(wa)
                around = np.fmin(prev, nxt)
                drop = (np.isfinite(prev) & np.isfinite(nxt) & (around > q05) & np.isfinite(run).all(0)
                        & (run < 0.55 * around).all(0) & has_week.all(0)
                        & (run < 0.55 * np.where(np.isfinite(ref_week), ref_week, np.inf)).all(0)
                        & (run < 0.55 * np.fmax(wb, wa)).all(0))
                hi_week = np.fmax(wb, wa)
                spike = (np.isfinite(prev) & np.isfinite(nxt) & np.isfinite(run).all(0) & has_week.all(0)
                         & (run > 1.8 * np.fmax(prev, nxt)).all(0) & (run > q99).all(0)
                         & (run > 1.8 * hi_week).all(0))
                for kind, hit in (("drop", drop), ("spike", spike)):
                    for k in np.flatnonzero(hit):
                        i = idx[k]
                        # a run of two only when neither reading alone qualifies as a run of one
                        vals = ", ".join(f"{v:g}" for v in x[i:i + width])
                        add(meter, kind, ts[i], ts[i + width - 1],
                            f"{width} reading(s) {vals} vs around {prev[k]:g}, {nxt[k]:g} and the week before/after "
                            + ", ".join(f"{v:g}" for v in np.r_[wb[:, k], wa[:, k]]), value=float(x[i]))
        # half-day fills on a coarse channel
        nzv = (x[1:] != 0) & np.isfinite(x[1:]) & np.isfinite(x[:-1])
        repeat = float((x[1:] == x[:-1])[nzv].mean()) if nzv.any() else 0.0
        if repeat >= 0.05 or c >= pd.Timedelta(hours=1):
            seg = np.zeros(n, np.int64)
            same = np.r_[False, x[1:] == x[:-1]]
            start_of = same.copy()
            start_of[:-1] |= same[1:]
            for a, b in _runs(start_of & (x != 0) & np.isfinite(x), seg):
                idx = np.arange(a, b + 1)
                for part in np.split(idx, np.flatnonzero(np.diff(x[idx]) != 0) + 1):
                    if len(part) >= 12:
                        add(meter, "flat_line", ts[part[0]], ts[part[-1]], f"{len(part)} readings at {x[part[0]]:g} "
                            f"(>= 12 on a coarse channel, {100 * repeat:.1f} % of its readings repeat the one before)",
                            readings=float(len(part)), value=float(x[part[0]]))
        # unusual days (the site's wall-clock days)
        tz = zone.get(meter, "UTC")
        local = (ts.tz_localize("UTC") if ts.tz is None else ts).tz_convert(tz).tz_localize(None)
        day = pd.Series(x, index=local).resample("D")
        mean, cnt, top = day.mean(), day.count(), day.max()
        # a day reading exactly 0 throughout is a zero run (the plain set's), neither unusual here
        # nor a reference: four dead Sundays after a normal one made it "2.2 x its weekday median"
        mean = mean.where((cnt >= 20) & (top != 0))
        dow = mean.index.dayofweek
        same_wd = pd.concat([mean.shift(k) for k in (7, 14, 21, 28, -7, -14, -21, -28)], axis=1)
        wd_ref = same_wd.median(axis=1).where(same_wd.notna().sum(axis=1) >= 4)
        weekend = pd.Series(dow >= 5, index=mean.index)
        near = []
        for cls in (False, True):
            m = mean.where(weekend == cls)
            v = m.dropna()
            prev3 = v.shift(1).rolling(3, min_periods=2).median()
            next3 = v[::-1].shift(1).rolling(3, min_periods=2).median()[::-1]
            near.append(pd.concat([v.shift(1), v.shift(2), v.shift(3), v.shift(-1), v.shift(-2), v.shift(-3)],
                                  axis=1).median(axis=1).where(prev3.notna() & next3.notna()))
        near_ref = pd.concat(near).reindex(mean.index)
        r1, r2 = mean / wd_ref, mean / near_ref
        odd = ((r1 < 0.6) & (r2 < 0.6)) | ((r1 > 1.5) & (r2 > 1.5))
        for d in mean.index[odd.fillna(False).to_numpy()]:
            s0, e0 = (pd.Timestamp(d + k).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
                      for k in (pd.Timedelta(0), pd.Timedelta(days=1)))
            add(meter, "unusual_day", s0, e0 - c,
                f"day mean {mean[d]:.4g} = {r1[d]:.2f} x the same weekday's median over +-4 weeks ({wd_ref[d]:.4g}), "
                f"{r2[d]:.2f} x the 3 days of its type either side ({near_ref[d]:.4g})", ratio=float(r1[d]))
    # dropouts (after every other criterion, so the earlier candidates keep their ids)
    for meter, g in df.groupby("meter_id", sort=True):
        s = g.set_index("ts")["p_kw"]
        s = s[~s.index.duplicated()]
        s = s.reindex(pd.date_range(s.index[0], s.index[-1], freq=c))
        _dropouts(meter, s.to_numpy(float), s.index, week, add)
    # dips whose outage straddles the hours at their edges (after every other criterion, so the
    # earlier candidates keep their order); a span an earlier criterion found is not added again
    # (one candidate, one id: the ids follow the candidate's key)
    seen = {_key(c) for c in out}

    def add_new(meter, kind, s, e, criterion, **stats):
        key = (ds, meter, "p_kw", kind, _iso(s), _iso(e))
        if key not in seen:
            seen.add(key)
            add(meter, kind, s, e, criterion, **stats)

    for meter, g in df.groupby("meter_id", sort=True):
        s = g.set_index("ts")["p_kw"]
        s = s[~s.index.duplicated()]
        s = s.reindex(pd.date_range(s.index[0], s.index[-1], freq=c))
        _straddling_dips(meter, s.to_numpy(float), s.index, week, add_new)
    return out


def _straddling_dips(meter: str, x: np.ndarray, ts: pd.DatetimeIndex, week: int, add) -> None:
    """``drop`` of 2-3 readings whose outage straddles the hours at its edges (added after the
    second review, issue 14: a one-hour drop with partly lost hours either side, which the
    one-reading ``drop`` misses because its neighbours are low too): each reading under 0.8 x both
    readings around the run and the larger of the same time 7 days before and after (at least one
    present), the lowest under 0.3 x both of those, not all exactly 0 (a zero run), the readings
    around over the meter's 5th percentile (the building in use). A run of 3 that holds one of 2
    is the run of 2."""
    n = len(x)
    if n <= week + 5:
        return
    q05 = np.nanquantile(x, 0.05)
    wk_b = np.r_[np.full(week, np.nan), x[:-week]]
    wk_a = np.r_[x[week:], np.full(week, np.nan)]
    found: list[tuple[int, int]] = []
    with np.errstate(invalid="ignore"):
        for width in (2, 3):
            idx = np.arange(1, n - width)
            prev, nxt = x[idx - 1], x[idx + width]
            run = np.stack([x[idx + k] for k in range(width)])
            wk = np.stack([np.fmax(wk_b[idx + k], wk_a[idx + k]) for k in range(width)])
            around = np.fmin(prev, nxt)
            lo = np.argmin(np.where(np.isfinite(run), run, np.inf), axis=0)
            col = np.arange(len(idx))
            hit = (np.isfinite(around) & (around > q05) & np.isfinite(run).all(0) & np.isfinite(wk).all(0)
                   & (run < 0.8 * around).all(0) & (run < 0.8 * wk).all(0)
                   & (run[lo, col] < 0.3 * around) & (run[lo, col] < 0.3 * wk[lo, col]) & ~(run == 0).all(0))
            for k in np.flatnonzero(hit):
                i = idx[k]
                if any(a <= i + width - 1 and i <= b for a, b in found):
                    continue
                found.append((i, i + width - 1))
                add(meter, "drop", ts[i], ts[i + width - 1],
                    f"{width} readings " + ", ".join(f"{v:g}" for v in x[i:i + width])
                    + f" vs around {prev[k]:g}, {nxt[k]:g} and the week before/after (larger) "
                    + ", ".join(f"{v:g}" for v in wk[:, k]) + " (each under 0.8 x, the lowest under 0.3 x)",
                    value=float(np.nanmin(run[:, k])))


def _dropouts(meter: str, x: np.ndarray, ts: pd.DatetimeIndex, week: int, add) -> None:
    """``drop`` of 3-6 readings in a row (a dropout; added after the first review, its candidates
    appended with ids from ``bdg2-e0180``): not all exactly 0 (the plain zero run), each under a fifth of
    both readings around the run and of the larger of the same time 7 days before and after (at least
    one present), the readings around over a fifth of the meter's median (the building in use)."""
    n = len(x)
    if n <= week + 8:
        return
    med = np.nanmedian(x)
    wk_b = np.r_[np.full(week, np.nan), x[:-week]]
    wk_a = np.r_[x[week:], np.full(week, np.nan)]
    with np.errstate(invalid="ignore"):
        for width in range(3, 7):
            idx = np.arange(1, n - width)
            prev, nxt = x[idx - 1], x[idx + width]
            run = np.stack([x[idx + k] for k in range(width)])
            wb = np.stack([wk_b[idx + k] for k in range(width)])
            wa = np.stack([wk_a[idx + k] for k in range(width)])
            around = np.fmin(prev, nxt)
            hit = (np.isfinite(around) & (around > 0.2 * med) & np.isfinite(run).all(0)
                   & (np.isfinite(wb) | np.isfinite(wa)).all(0) & (run < 0.2 * around).all(0)
                   & (run < 0.2 * np.fmax(wb, wa)).all(0) & ~(run == 0).all(0))
            for k in np.flatnonzero(hit):
                i = idx[k]
                add(meter, "drop", ts[i], ts[i + width - 1],
                    f"{width} readings " + ", ".join(f"{v:g}" for v in x[i:i + width])
                    + f" vs around {prev[k]:g}, {nxt[k]:g} (under a fifth of both and of the week before/after)",
                    value=float(np.nanmax(run[:, k])))


def cmd_candidates_expert(data, check: bool = False) -> None:
    from wattwatch.evaluate.real_data import zones

    root = _data_root(data)
    plain = json.loads((OUT / "candidates.json").read_text())
    kept = json.loads((OUT / "labels.json").read_text())["labels"]
    allc = []
    for ds in EXPERT_DATASETS:
        df = load(ds, root)
        raw = {m: z for m, z in zones(ds, root).items()}
        # one already a plain candidate of its kind, or inside a kept plain label (a zero day inside
        # a labelled zero run), is not a new event
        cs = [c for c in expert_candidates_for(ds, df, raw)
              if not _overlaps(c, [p for p in plain if p["dataset"] == ds and p["kind"] == c["kind"]])
              and not _overlaps(c, [p for p in kept if p["dataset"] == ds])]
        # a drop or spike of two readings that contains one of one is the same candidate
        ones = [c for c in cs if c["kind"] in ("drop", "spike") and c["start"] == c["end"]]
        cs = [c for c in cs if c["start"] == c["end"] or c["kind"] not in ("drop", "spike")
              or not _overlaps(c, [o for o in ones if o["kind"] == c["kind"]])]
        allc += cs
        print(f"{ds}: {len(cs)} expert-kind candidates {pd.Series([c['kind'] for c in cs]).value_counts().to_dict()}")
    _write_candidates(allc, "candidates_expert.json", "review_expert.json", "e", check)


def cmd_build_expert() -> None:
    cands = {c["id"]: c for c in json.loads((OUT / "candidates_expert.json").read_text())}
    review = json.loads((OUT / "review_expert.json").read_text())
    missing = sorted(set(cands) - set(review["decisions"]))
    if missing:
        sys.exit(f"review_expert.json has no decision for {len(missing)} candidates, e.g. {missing[:5]}")
    plain = json.loads((OUT / "labels.json").read_text())
    keep, rejected = list(plain["labels"]), []
    for i, c in cands.items():
        d = review["decisions"][i]
        row = {k: c[k] for k in ("id", "dataset", "meter_id", "channel", "kind", "start", "end", "criterion")}
        row["reason"] = d["reason"]
        (keep if d["keep"] else rejected).append(row)
    doc = {"schema": 1, "about": review["about"], "datasets": plain["datasets"], "labels": keep,
           "rejected": rejected}
    (OUT / "labels_expert.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(keep)} labels ({len(keep) - len(plain['labels'])} expert-kind kept, {len(rejected)} rejected) "
          f"-> {OUT / 'labels_expert.json'}")


def cmd_build() -> None:
    cands = {c["id"]: c for c in json.loads((OUT / "candidates.json").read_text())}
    review = json.loads((OUT / "review.json").read_text())
    missing = sorted(set(cands) - set(review["decisions"]))
    if missing:
        sys.exit(f"review.json has no decision for {len(missing)} candidates, e.g. {missing[:5]}")
    keep, rejected = [], []
    for i, c in cands.items():
        d = review["decisions"][i]
        row = {k: c[k] for k in ("id", "dataset", "meter_id", "channel", "kind", "start", "end", "criterion")}
        row["reason"] = d["reason"]
        (keep if d["keep"] else rejected).append(row)
    doc = {"schema": 1, "about": review["about"], "datasets": {k: {"folder": v["folder"], "licence": v["licence"],
                                                                  "cadence_s": v["cadence_s"]}
                                                              for k, v in DATASETS.items()},
           "labels": keep, "rejected": rejected}
    (OUT / "labels.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(keep)} labels kept, {len(rejected)} rejected -> {OUT / 'labels.json'}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["candidates", "show", "build", "candidates-expert", "show-expert", "build-expert"])
    ap.add_argument("ids", nargs="*")
    ap.add_argument("--data", default=None)
    ap.add_argument("--check", action="store_true",
                    help="candidates*: regenerate in memory and exit 1 unless the committed file is reproduced exactly")
    a = ap.parse_args(argv)
    if a.what == "candidates":
        cmd_candidates(a.data, a.check)
    elif a.what == "show":
        cmd_show(a.ids, a.data)
    elif a.what == "candidates-expert":
        cmd_candidates_expert(a.data, a.check)
    elif a.what == "show-expert":
        cmd_show(a.ids, a.data, source="candidates_expert.json")
    elif a.what == "build-expert":
        cmd_build_expert()
    else:
        cmd_build()


if __name__ == "__main__":
    main()
