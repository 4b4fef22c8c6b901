"""Partial earth returns of 15-40 % on three-phase meters: which does ``neutral_tamper`` (alone)
find, and how many false alerts does it raise (rev31, docs/quality-log.md)?

    python scripts/earth_return_recall.py gen FLEET.pkl STEP SEED VARIANT   # 1min|5min|15min|60min
    python scripts/earth_return_recall.py judge FLEET.pkl                   # one dict: rows, false, alerts

``gen`` simulates three-phase commercial meters (16; 8 at 1 min), each with one partial earth
return (``SimKnobs.earth_fraction`` 0.15-0.40), no outages. VARIANT is '-'-joined words:
``unbal`` (the default steady imbalance), ``bal`` (none), ``pf3`` (per-phase power factors 0.03
apart reading by reading), ``thdgap`` (10 % of the THD readings NaN), ``nothd`` (no THD channel),
``thddie`` (the THD channel gone from the eighth day on: after the week's profile), ``thdrare``
(THD on 2 % of the readings only, at random).
``judge`` runs the detector with the ``src`` on PYTHONPATH (judge one fleet with two trees to
compare them); rows are (meter, its THD %, earth fraction, hours, found)."""
import sys, pickle, numpy as np, pandas as pd
cmd = sys.argv[1]
if cmd == "gen":
    out, step, seed, variant = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    from wattwatch.sim import SimConfig, simulate
    from wattwatch.sim.fleet import SimKnobs
    kw = dict(earth_fraction=(0.15, 0.40))
    if "bal" in variant.split("-"):
        kw.update(normal_imbalance_max=0.0, low_imbalance_max=0.0)
    if "pf3" in variant.split("-"):
        kw.update(pf_noise=0.03)
    days = {"1min": 10, "5min": 14, "15min": 21, "60min": 28}[step]
    meters = {"1min": 8, "5min": 16, "15min": 16, "60min": 16}[step]
    cfg = SimConfig(meters=meters, days=days, seed=seed, step=step, commercial_share=1.0, fault_share=1.0,
                    faults=("partial_earth_return",), outage_share=0.0, knobs=SimKnobs(**kw))
    sim = simulate(cfg)
    fr = sim["frame"]
    if "nothd" in variant.split("-"):
        fr["thd_i_pct"] = np.nan
    if "thdgap" in variant.split("-"):
        r = np.random.default_rng(seed + 99)
        fr.loc[r.random(len(fr)) < 0.10, "thd_i_pct"] = np.nan
    if "thdrare" in variant.split("-"):
        r = np.random.default_rng(seed + 98)
        fr.loc[r.random(len(fr)) >= 0.02, "thd_i_pct"] = np.nan
    if "thddie" in variant.split("-"):
        t0 = pd.to_datetime(fr["ts"]).groupby(fr["meter_id"]).transform("min")
        fr.loc[pd.to_datetime(fr["ts"]) >= t0 + pd.Timedelta(days=7), "thd_i_pct"] = np.nan
    pickle.dump({"frame": sim["frame"], "events": sim["events"], "meters": sim["meters"]}, open(out, "wb"))
else:
    out = sys.argv[2]
    d = pickle.load(open(out, "rb"))
    from wattwatch.detect.engine import EngineConfig, detect
    from wattwatch.detect.registry import build_all
    res = detect(d["frame"], build_all(["neutral_tamper"]), EngineConfig(profile_days=7.0))
    al = [(a.meter_id, pd.Timestamp(a.start), pd.Timestamp(a.end)) for a in res.alerts]
    rows = []
    s2h = lambda x: x.value / 3.6e12
    thd = {m["meter_id"]: m["thd_pct"] for m in d["meters"]}
    d["events"] = [e for e in d["events"] if e["type"] == "partial_earth_return"]
    for e in d["events"]:
        s, t = pd.Timestamp(e["start"]), pd.Timestamp(e["end"])
        hit = any(m == e["meter_id"] and a <= t and b >= s for m, a, b in al)
        rows.append((e["meter_id"], round(thd[e["meter_id"]], 1), e.get("detail", {}).get("earth_fraction"), (s2h(t) - s2h(s)), hit))
    fa = sum(1 for m, a, b in al if not any(m == e["meter_id"] and a <= pd.Timestamp(e["end"]) and b >= pd.Timestamp(e["start"]) for e in d["events"]))
    print(repr({"rows": rows, "false": fa, "alerts": len(al)}))
    for a in res.alerts:
        if "nan" in a.message: print("NANMSG", a.meter_id, a.start, a.end, a.message, a.evidence)
