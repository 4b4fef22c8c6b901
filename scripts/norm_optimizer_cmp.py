# (rfk) review check: python scripts/norm_optimizer_cmp.py ROWS SEED [SEED ...]
"""rfk: the live normalising statement on fk's optimizer-off cursor vs the connection (optimised):
the same rows (sorted by _line: neither plan keeps an order; NaN and -0.0 compared) for six source
layouts (UTC, Paris wall clock over the DST end, a zone, text stamps, epoch integers, a ts_format), and
each plan's CPU (best of 3).
"""
import sys, time
import numpy as np, pandas as pd, pyarrow as pa
from wattwatch.store.duck import Store
from wattwatch.ingest.readers import read_frame
from wattwatch.ingest.pipeline import _prepared
from wattwatch.ingest.mapping import Mapping

def frames(n, seed):
    r = np.random.default_rng(seed)
    m = r.choice([f"m{i}" for i in range(200)] + [" ", "", None], n, p=None)
    ts = pd.Timestamp("2026-10-25 00:00", tz="UTC") + pd.to_timedelta(np.sort(r.integers(0, 4 * 3600, n)), "s")
    p = r.normal(5, 3, n); p[r.random(n) < .05] = np.nan; p[r.random(n) < .02] = -0.0; p[r.random(n) < .01] = 1e12
    v = r.normal(230, 5, n); v[r.random(n) < .05] = np.nan
    base = pd.DataFrame({"meter_id": m, "ts": ts, "p_kw": p, "v_l1_v": v, "ups_battery_pct": r.uniform(-10, 110, n),
                         "snmp_temp_c": r.normal(30, 4, n)})
    base.loc[base.index[: n // 3], "ts"] = base["ts"].iloc[n // 3]   # duplicates within the piece
    yield "utc", base, Mapping(extra={"ups_battery_pct": "ups_battery_pct", "snmp_temp_c": "snmp_temp_c"})
    loc = base.copy(); loc["ts"] = loc["ts"].dt.tz_convert(None) + pd.Timedelta("1h")   # wall clock across Paris DST end
    yield "paris-naive", loc, Mapping(timezone="Europe/Paris")
    z = base.copy(); z["ts"] = z["ts"].dt.tz_convert("America/New_York")
    yield "zoned", z, Mapping()
    s = base.copy(); s["ts"] = s["ts"].astype(str); s.loc[s.index[::7], "ts"] = "garbage"
    yield "text-ts", s, Mapping()
    e = base.copy(); e["ts"] = (e["ts"].astype("int64") // 10**6); e["p_kw"] = (e["p_kw"].fillna(0) * 1000).astype("int64")
    yield "epoch-int", e, Mapping(scale={"p_kw": 0.001})
    t2 = loc.copy(); t2["ts"] = t2["ts"].dt.strftime("%d/%m/%Y %H:%M:%S")
    yield "fmt-paris", t2, Mapping(timezone="Europe/Paris", ts_format="%d/%m/%Y %H:%M:%S")

def main(n=2000, seeds=(9001, 9002)):
    s = Store(":memory:")
    bad = 0
    for seed in seeds:
        for name, f, mp in frames(n, seed):
            for norm, raw, *_ in _prepared(read_frame(f), "frame", mp, []):
                sql = norm.fast("_t")
                stmt = s.con.extract_statements(sql)[0]
                _t = raw
                cur = s._norm_cursor()
                a = s.con.execute(stmt).to_arrow_table()
                b = cur.execute(stmt).to_arrow_table()
                same_order = a.equals(b)
                ok = a.schema.equals(b.schema, check_metadata=True) and a.sort_by("_line").equals(b.sort_by("_line"))
                sa, sb = a.sort_by("_line"), b.sort_by("_line")
                for c, f_ in zip(sa.column_names, sa.schema):
                    if pa.types.is_floating(f_.type):
                        x = sa[c].to_numpy(zero_copy_only=False); y = sb[c].to_numpy(zero_copy_only=False)
                        ok = ok and np.array_equal(np.signbit(x), np.signbit(y)) and np.array_equal(np.isnan(x), np.isnan(y))
                bad += not ok
                ta = []; tb = []
                for _ in range(3):
                    t0 = time.process_time(); s.con.execute(stmt).to_arrow_table(); ta.append(time.process_time() - t0)
                    t0 = time.process_time(); cur.execute(stmt).to_arrow_table(); tb.append(time.process_time() - t0)
                print(f"{seed} {name:12s} rows {raw.num_rows:7d} equal {ok} (same order {same_order})  opt {min(ta)*1e3:8.1f} ms cpu  noopt {min(tb)*1e3:8.1f}", flush=True)
    s.close()
    print("BAD", bad)

if __name__ == "__main__":
    main(int(sys.argv[1]), tuple(int(x) for x in sys.argv[2:]) or (9001, 9002))
