"""(q7) Every missed fault and every false alert of a `bench quality --workdir DIR` fleet, with the
meter's kind, load-shape source and the source's own date for the alert's first day, so each can be
read against the real load it came from; and, for one meter, its hourly readings beside the source's.

    PYTHONPATH=src python scripts/fleet_audit.py DIR                      # the list
    PYTHONPATH=src python scripts/fleet_audit.py DIR --meter M-00082 [--days 2025-01-13 2025-02-02]

Matching is the evaluator's (`wattwatch.evaluate.events.evaluate`: an alert of a compatible code on
the meter within +-1 h of the event). A meter's fleet day k replays its source's day ``start_day`` + k
(``wattwatch.sim.shapes``; a source shorter than the run wraps around: the UCI household's days
repeat). The hourly table gives the fleet's mean power per local hour (the meter's ``utc_offset_h``)
and the source's own kW at the same local hours (not scaled; homes also carry an AMPds2 circuit the
source column leaves out); the source's date column says which real day each row replays.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.evaluate.events import FAULT_CODES, Visibility, _invisible, compatible_codes
from wattwatch.sim.shapes import DAY, GRID_S, _wall, library

TOL = pd.Timedelta(hours=1)


def _utc(x) -> pd.Timestamp:
    t = pd.Timestamp(x)
    return t.tz_convert("UTC") if t.tzinfo else t.tz_localize("UTC")


def _day0(source: str, root: str) -> pd.Timestamp:
    """The local date of a source's day 0, as :func:`wattwatch.sim.shapes._grid` puts it."""
    from wattwatch.evaluate.real_data import load, zones

    if source == "uci_household":
        df = load("uci_household", Path(root))
        return _wall(df["ts"], 1.0).min().floor(f"{int(GRID_S)}s").ceil("D")  # 1-minute data in 5-minute means
    name, mid = source.split(":", 1)
    df = load(name, Path(root))
    g = df[df["meter_id"] == mid]
    cadence = {"steel": 900.0, "bdg2": 3600.0}[name]
    local = _wall(g["ts"], zones(name, Path(root)).get(mid, "UTC")) - pd.Timedelta(seconds=cadence / 2)
    return local.min().ceil("D")


def _source_len_days(source: str, lib) -> int:
    return len(next(s for s in lib if s.name == source).values) // DAY


def _source_date(meter: dict, when: pd.Timestamp, start: pd.Timestamp, root: str, lib, cache: dict) -> str:
    src = meter["shape"]["source"]
    if src not in cache:
        cache[src] = (_day0(src, root), _source_len_days(src, lib))
    day0, n = cache[src]
    local = when.tz_convert(None) + pd.Timedelta(hours=meter["utc_offset_h"])
    first = start.tz_convert(None) + pd.Timedelta(hours=meter["utc_offset_h"])
    k = (local.normalize() - first.normalize()).days
    d = day0 + pd.Timedelta(days=(meter["shape"]["start_day"] + k) % n)
    return d.strftime("%a %d %b %Y")


def listing(wd: Path) -> None:
    meta = json.loads((wd / "fleet" / "meters.json").read_text())
    cfg = meta["config"]
    meters = {m["meter_id"]: m for m in meta["meters"]}
    events = json.loads((wd / "fleet" / "events.json").read_text())
    alerts = json.loads((wd / "alerts.json").read_text())
    step_s = pd.Timedelta(cfg["step"]).total_seconds()
    start = _utc(cfg["start"])
    lib = library(cfg["real_dir"], int(np.ceil(cfg["days"])) + 2)
    cache: dict = {}
    ok = np.zeros(len(alerts), bool)

    def who(mid: str) -> str:
        m = meters[mid]
        return f"{mid} {m['kind'][:3]} {m['shape']['source']} sd{m['shape']['start_day']}"

    print("== missed faults")
    for e in events:
        if not (e["type"] in FAULT_CODES or e["type"] == "supply_outage"):
            continue
        es, ee = _utc(e["start"]), _utc(e["end"])
        codes = compatible_codes(e["type"])
        hit = False
        for k, a in enumerate(alerts):
            if (a["meter_id"] == e["meter_id"] and a["code"] in codes and _utc(a["start"]) <= ee + TOL
                    and _utc(a["end"]) >= es - TOL):
                ok[k] = hit = True
        if hit or e["type"] not in FAULT_CODES:
            continue
        inv = _invisible(e, step_s, Visibility())
        src = _source_date(meters[e["meter_id"]], es, start, cfg["real_dir"], lib, cache)
        print(f"{who(e['meter_id'])} | {e['type']} {e['start']} - {e['end']} {e.get('detail') or ''} "
              f"| source {src}{' | not visible: ' + inv[1] if inv else ''}")
        for a in alerts:
            if a["meter_id"] == e["meter_id"]:
                print(f"    alert on the meter: {a['code']} {a['start']} - {a['end']}: {a.get('message', '')[:160]}")
    print("== false alerts")
    for k, a in enumerate(alerts):
        if ok[k]:
            continue
        mid = a["meter_id"]
        src = _source_date(meters[mid], _utc(a["start"]), start, cfg["real_dir"], lib, cache)
        print(f"{who(mid)} | {a['code']} {a['start']} - {a['end']} ({a.get('detector')}) | source {src}")
        print(f"    {a.get('message', '')[:240]}")
        near = [e for e in events if e["meter_id"] == mid and e["type"] != "motor_start"
                and _utc(e["start"]) <= _utc(a["end"]) + pd.Timedelta(hours=6)
                and _utc(e["end"]) >= _utc(a["start"]) - pd.Timedelta(hours=6)]
        for e in near:
            print(f"    event within 6 h: {e['type']} {e['start']} - {e['end']} {e.get('detail') or ''}")


def hourly(wd: Path, mid: str, d0: str | None, d1: str | None) -> None:
    meta = json.loads((wd / "fleet" / "meters.json").read_text())
    cfg = meta["config"]
    m = next(x for x in meta["meters"] if x["meter_id"] == mid)
    off = pd.Timedelta(hours=m["utc_offset_h"])
    t = pd.read_parquet(wd / "fleet" / "telemetry.parquet", columns=["meter_id", "ts", "p_kw"],
                        filters=[("meter_id", "==", mid)])
    t["ts"] = pd.to_datetime(t["ts"], utc=True)
    t = t.sort_values("ts").drop_duplicates("ts")
    p = pd.Series(t["p_kw"].to_numpy(float), index=t["ts"].dt.tz_convert(None) + off).resample("1h").mean()
    fleet = p.groupby([p.index.normalize(), p.index.hour]).mean().unstack()
    fleet.index.name, fleet.columns.name = "local day", None
    lib = library(cfg["real_dir"], int(np.ceil(cfg["days"])) + 2)
    src = next(s for s in lib if s.name == m["shape"]["source"])
    first = (_utc(cfg["start"]).tz_convert(None) + off).normalize()
    n_days = len(fleet)
    sd = m["shape"]["start_day"]
    # the source's 5-minute grid read at the fleet's local times (shift_min as the simulator adds it)
    pos = np.arange(n_days * 24 * 12) + sd * DAY + m["shape"]["shift_min"] * 60 / GRID_S
    i0 = np.floor(pos).astype(np.int64)
    f = pos - i0
    n = len(src.values)
    v = src.values[i0 % n] + (src.values[(i0 + 1) % n] - src.values[i0 % n]) * f
    srcd = pd.DataFrame(v.reshape(n_days, 24, 12).mean(axis=2), index=pd.date_range(first, periods=n_days, freq="D"))
    day0 = _day0(m["shape"]["source"], cfg["real_dir"])
    srcd.insert(0, "source_day", [(day0 + pd.Timedelta(days=(sd + k) % (n // DAY))).strftime("%a %d %b %Y")
                                  for k in range(n_days)])
    lo = pd.Timestamp(d0) if d0 else fleet.index[0]
    hi = pd.Timestamp(d1) if d1 else fleet.index[-1]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    print(mid, m["kind"], m["shape"], "utc_offset_h", m["utc_offset_h"], "faults", m["faults"])
    print("fleet: mean kW per local hour")
    print(fleet.loc[lo:hi].round(1).to_string())
    print("source: its own kW at the same local hours (the real day each row replays)")
    print(srcd.loc[lo:hi].round(1).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path)
    ap.add_argument("--meter", default=None)
    ap.add_argument("--days", nargs=2, default=(None, None), metavar=("FROM", "TO"))
    a = ap.parse_args()
    cfg = json.loads((a.workdir / "fleet" / "meters.json").read_text())["config"]
    if cfg.get("shapes") != "real":
        raise SystemExit(f"{a.workdir}: a fleet with shapes={cfg.get('shapes')!r}; this reads real-shape fleets "
                         "(`bench quality --shapes real --workdir DIR`)")
    if a.meter:
        hourly(a.workdir, a.meter, *a.days)
    else:
        listing(a.workdir)


if __name__ == "__main__":
    main()
