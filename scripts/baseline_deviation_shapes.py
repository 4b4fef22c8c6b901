"""(q57) Every WARN_BASELINE_DEVIATION of a `bench quality --workdir DIR` fleet, false or true, and what its
hours did: over the alert span (a true one: its overlap with the level shift or theft), per clock hour
the hourly mean against the profiled week's (day type, hour) median; the log change at the profile's six
quietest and six busiest weekday hours, their excess in kW, what an added load of the same mean kW would
give there, and the share of the excess that is the same kW at every hour (Theil-Sen intercept of the
clock hours' excess on their profiled kW, over the mean excess: an added load ~1, a building busier in
proportion to its load ~0). Source dates for BDG2 (from 1 Jan 2016) and the steel plant (1 Jan 2018).

    env PYTHONPATH=src python scripts/baseline_deviation_shapes.py DIR [DIR ...]
"""
import json, sys
import numpy as np, pandas as pd
from wattwatch.evaluate.events import compatible_codes, FAULT_CODES
tol = pd.Timedelta(hours=1)
def utc(x): return pd.Timestamp(x).tz_convert("UTC")
def dtype(ts): return np.where(ts.dayofweek < 5, 0, ts.dayofweek - 4)
for d in sys.argv[1:]:
    ev = json.load(open(f"{d}/fleet/events.json")); al = json.load(open(f"{d}/alerts.json"))
    meters = {m["meter_id"]: m for m in json.load(open(f"{d}/fleet/meters.json"))["meters"]}
    faults = [e for e in ev if e["type"] in FAULT_CODES or e["type"] == "supply_outage"]
    tel = pd.read_parquet(f"{d}/fleet/telemetry.parquet", columns=["meter_id", "ts", "p_kw"])
    rows = []
    for a in al:
        if a["code"] != "WARN_BASELINE_DEVIATION": continue
        s, e = utc(a["start"]), utc(a["end"])
        ok = any(a["code"] in compatible_codes(f["type"]) and s <= utc(f["end"]) + tol and e >= utc(f["start"]) - tol
                 for f in faults if f["meter_id"] == a["meter_id"])
        lab = "TRUE" if ok else "FALSE"
        if ok:
            f = [f for f in faults if f["meter_id"] == a["meter_id"] and f["type"] in ("level_shift","theft_under_registration")]
            if f: s, e = max(s, utc(f[0]["start"])), min(e, utc(f[0]["end"])); lab += ":" + f[0]["type"][:5]
        rows.append((a["meter_id"], lab, s, e, a["evidence"].get("window_h"), a["evidence"].get("basis"), a["evidence"].get("deviation")))
    for mid, lab, s, e, wh, basis, dev in rows:
        m = meters[mid]
        x = tel[tel.meter_id == mid].set_index("ts")["p_kw"].resample("1h").mean()
        t0 = x.index[0]
        prof = x[x.index < t0 + pd.Timedelta(days=7)]
        pk = pd.DataFrame({"v": prof.values, "t": dtype(prof.index), "h": prof.index.hour}).groupby(["t", "h"]).v.median()
        seg = x[(x.index >= s.floor("h")) & (x.index <= e)]
        exp = np.array([pk.get((t, h), pk.get((0, h))) for t, h in zip(dtype(seg.index), seg.index.hour)])
        g24 = pd.DataFrame({"a": seg.values, "x": exp, "h": seg.index.hour}).groupby("h").mean()
        from scipy.stats import theilslopes
        ok24 = g24.dropna()
        ts_ = theilslopes(ok24.a - ok24.x, ok24.x)
        c0 = ts_[1] + ts_[0] * 0.0; mexc = (ok24.a - ok24.x).mean()
        ushare = f"uniform {c0 / mexc:+.2f} (slope {ts_[0]:+.2f}, x {ok24.x.min():.1f}-{ok24.x.max():.1f})"
        hod = pd.DataFrame({"a": seg.values, "x": exp, "h": seg.index.hour}).groupby("h").sum()
        wd = pk.loc[0]; quiet_h = wd.nsmallest(6).index; busy_h = wd.nlargest(6).index
        q, b = hod.loc[hod.index.intersection(quiet_h)].sum(), hod.loc[hod.index.intersection(busy_h)].sum()
        tot = hod.sum()
        nh = len(seg) / 24
        org = {"bdg2": "2016-01-01", "steel": "2018-01-01"}.get(m["shape"]["source"].split(":")[0])
        sd = ""
        if org:
            k0 = (s.floor("D") - t0.floor("D")).days; k1 = (e.floor("D") - t0.floor("D")).days
            o = pd.Timestamp(org) + pd.Timedelta(days=m["shape"]["start_day"])
            sd = f"src {(o + pd.Timedelta(days=k0)).strftime('%a %d %b %Y')}..{(o + pd.Timedelta(days=k1)).strftime('%a %d %b')}"
        # additive fit: c = mean kW excess; predicted log rise at quiet/busy; multiplicative: one log for all
        qx, bx = q.x / (6 * nh), b.x / (6 * nh); c = (tot.a - tot.x) / len(seg)
        pred = f"add-pred q {np.log(max(qx + c, 1e-3) / qx):+.2f} b {np.log(max(bx + c, 1e-3) / bx):+.2f}"
        print(f"{mid} {m['kind'][:4]} {m['shape']['source'][:28]:28s} {lab:12s} {str(s)[5:16]}..{str(e)[5:16]} w={wh} {basis} dev={dev} "
              f"| all {np.log(tot.a/tot.x):+.2f} quiet {np.log(q.a/q.x):+.2f} busy {np.log(b.a/b.x):+.2f} "
              f"| kW exc quiet {(q.a-q.x)/(6*nh):+.1f} busy {(b.a-b.x)/(6*nh):+.1f} mean {x[:168].mean():.1f} q/b prof {qx:.1f}/{bx:.1f} {pred} {ushare} {sd}")
