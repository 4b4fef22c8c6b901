"""detect --engine spark: the detection core in applyInPandas over meter groups gives the local
engine's alerts and notices (ids, spans, scores, messages), on a small simulated fleet with faults,
with the learned stage trained on the driver and broadcast, with a store and `fit` state, and when
the core fails on one meter (retried alone, then judged by the fallback set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import registry
from wattwatch.detect.engine import DetectionResult, EngineConfig, detect, judge, profile
from wattwatch.detect.frame import prepare
from wattwatch.runners import spark as sparkrun
from wattwatch.runners.group import judge_group
from wattwatch.sim import SimConfig, simulate

BAD = "M-00003"


@pytest.fixture(scope="module")
def fleet():
    """10 meters x 6 days at 5 min with faults, times to the nanosecond; the default set fitted, the
    learned ensemble's fleet model trained explicitly on the profiles (as `wattwatch fit` does)."""
    sim = simulate(SimConfig(meters=10, days=6, seed=5, fault_share=0.6, profile_days=2.0, outage_share=0.3))
    frame = sim["frame"].copy()
    frame["ts"] = frame["ts"].dt.as_unit("ns") + pd.Timedelta(123, "ns")  # finer than Spark's timestamps hold
    full = prepare(frame)
    dets = registry.build_all()
    profile(full, dets, EngineConfig(profile_days=2.0), refit=True)
    assert any(d.name == "learned_ensemble" and d.fleets_ for d in dets), "the learned stage must take part"
    return sim, full, dets


def _both(full, dets, **kw):
    local, spark = DetectionResult(), DetectionResult()
    judge(full, dets, EngineConfig(workers=1), local, keep_scores=True, **kw)
    sparkrun.judge(full, dets, EngineConfig(), spark, keep_scores=True, **kw)
    return local, spark


def _same(local, spark):
    assert [a.to_json() for a in local.alerts] == [a.to_json() for a in spark.alerts]
    assert local.notices == spark.notices
    assert local.open_ids == spark.open_ids and local.unclean == spark.unclean
    assert (local.readings, local.meters) == (spark.readings, spark.meters)
    pd.testing.assert_frame_equal(local.scores, spark.scores, check_dtype=False, rtol=0, atol=1e-12)


def test_spark_gives_the_local_alerts_notices_and_scores(spark, fleet):
    sim, full, dets = fleet
    local, on_spark = _both(full, dets)
    _same(local, on_spark)
    # A fleet with faults, judged: alerts from the rules and from the broadcast learned stage.
    assert len(local.alerts) >= 5
    faulty = {e["meter_id"] for e in sim["events"]}
    assert {a.meter_id for a in on_spark.alerts} & faulty


def test_meters_are_dealt_into_balanced_groups():
    sizes = np.array([100, 90, 80, 70, 60, 50, 40, 30, 5])
    g = sparkrun.meter_groups(sizes, 3)
    assert sorted(set(g)) == [0, 1, 2]
    load = np.bincount(g, weights=sizes)
    assert load.max() - load.min() <= 0.2 * load.mean()
    assert sparkrun.meter_groups(sizes, 50).max() == len(sizes) - 1  # never more groups than meters


class _Brittle(registry.detector_class("baseline_macd")):
    """baseline_macd that breaks the core on one meter (its state note raises: outside the
    scoring the core isolates itself), a stand-in for a detector bug."""

    name = "brittle_macd"

    def state_note(self, meter, st):
        if meter == BAD:
            raise RuntimeError("simulated bug")
        return super().state_note(meter, st)


def test_a_meter_the_core_fails_on_gets_the_fallback_set_on_both_engines(spark, fleet):
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    _, full, dets = fleet
    brittle = _Brittle({})
    macd = next(d for d in dets if d.name == "baseline_macd")
    brittle.state_ = macd.state_
    run = [brittle if d.name == "baseline_macd" else d for d in dets]
    local, on_spark = _both(full, run)
    _same(local, on_spark)
    note = [n for n in local.notices if n.startswith(f"meter {BAD}: the detection core failed")]
    assert note and "simulated bug" in note[0] and "fallback set" in note[0]
    bad = {a.detector for a in local.alerts if a.meter_id == BAD}
    assert bad and bad <= set(registry.FALLBACK_DETECTORS)
    # The other meters are judged by the whole set, as without the bug.
    whole = DetectionResult()
    judge(full, dets, EngineConfig(workers=1), whole)
    others = [a.to_json() for a in whole.alerts if a.meter_id != BAD]
    assert [a.to_json().replace("brittle_macd", "baseline_macd") for a in local.alerts if a.meter_id != BAD] == others
    # A meter on which the fallback set fails too is named, not judged, and the job goes on.
    out = judge_group(full, run, fallback=("brittle_macd",))
    assert "nothing (the fallback set failed too" in out.fallback[BAD][1]
    assert BAD not in {a.meter_id for a in out.alerts} and len({a.meter_id for a in out.alerts}) > 1


def test_detect_on_a_store_with_fit_state_is_the_same_on_spark(spark, fleet, tmp_path):
    sim, _, _ = fleet
    db = tmp_path / "s.duckdb"
    api.ingest(sim["frame"], db)
    api.fit(db, days=2.0)
    local = api.detect(db, keep=False)
    on_spark = api.detect(db, keep=False, engine="spark")
    assert [a.to_json() for a in local.alerts] == [a.to_json() for a in on_spark.alerts]
    assert local.notices == on_spark.notices and local.alerts
    # A window of the store, as `detect --start` runs it: the same again.
    mid = pd.Timestamp(sim["frame"]["ts"].min()) + pd.Timedelta(days=3)
    w_local = api.detect(db, keep=False, start=mid)
    w_spark = api.detect(db, keep=False, start=mid, engine="spark")
    assert [a.to_json() for a in w_local.alerts] == [a.to_json() for a in w_spark.alerts]
    with pytest.raises(api.ConfigError, match="engine"):
        api.detect(db, keep=False, engine="dask")


def test_without_java_the_cli_says_what_to_install(tmp_path):
    f = tmp_path / "t.csv"
    pd.DataFrame({"meter_id": ["a"], "ts": ["2025-01-01T00:00:00Z"], "v_l1_v": [230.0]}).to_csv(f, index=False)
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "PYTHONPATH": str(Path(api.__file__).parents[1])}
    proc = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "detect", str(f), "--engine", "spark",
                           "--out", str(tmp_path / "a.jsonl")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "Java 17" in proc.stderr and "make setup" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.parametrize("args, words", [
    (["--meters", "1"], ["--meters"]),
    (["--masters", " , "], ["--masters"]),
    (["--pods", "0"], ["--pods"]),
    (["--repeats", "0"], ["--repeats"]),
])
def test_bench_fleet_arguments_are_checked_before_any_work(tmp_path, args, words):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    res = CliRunner().invoke(app, ["bench", "fleet", *args, "--workdir", str(tmp_path / "b")])
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.stderr.replace("\n", "")
    assert not (tmp_path / "b").exists()


def test_marginal_cost_is_per_meter_between_two_fleet_sizes():
    from wattwatch.app.bench import marginal

    # 2 s fixed + 0.1 s per meter: the totals' ratio hides the per-meter cost, the marginal does not
    assert marginal(60, 2 + 6.0, 120, 2 + 12.0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="more meters"):
        marginal(120, 1.0, 120, 2.0)


def test_marginal_summary_is_a_slope_through_three_sizes_per_round_and_pooled():
    from wattwatch.app.bench import marginal_summary, slope

    sizes = [30, 60, 120]
    assert slope([60, 120], [8.0, 14.0]) == pytest.approx(0.1)  # two sizes: the difference quotient
    # ours 2 s + 0.02 s/meter, naive 1 s + 0.1 s/meter; round 2's half-fleet runs hit by a load spike
    ours = [[2.6, 3.2, 4.4], [2.6, 9.2, 4.4], [2.6, 3.2, 4.4]]
    naive = [[4.0, 7.0, 13.0], [4.0, 12.0, 13.0], [4.0, 7.0, 13.0]]
    m = marginal_summary(sizes, ours, naive)
    assert m["ours_marginal_ms_per_meter"] == pytest.approx(20.0) and m["naive_marginal_ms_per_meter"] == pytest.approx(100.0)
    assert m["marginal_ratio"] == pytest.approx(0.2)
    lo, hi = m["marginal_ratio_range"]
    assert lo < 0.1 and hi == pytest.approx(0.2)  # the spiked round is in the spread, not in the median
    assert 0 < m["marginal_ratio_pooled"] < 1
    # A round whose naive slope is not positive resolves no per-meter cost: no ratio for it.
    m = marginal_summary(sizes, [[3.0, 3.0, 3.0]], [[9.0, 8.0, 7.0]])
    assert m["marginal_ratios"] == [None] and m["marginal_ratio"] is None and m["marginal_ratio_pooled"] is None
    with pytest.raises(ValueError, match="two or more fleet sizes"):
        slope([60, 60], [1.0, 2.0])


def test_the_naive_baseline_fits_and_judges_one_meter_inside_its_udf(fleet):
    from wattwatch.app.bench import FLEET_BENCH_DETECTORS, _naive_rows

    sim, _, _ = fleet
    one = sim["frame"][sim["frame"]["meter_id"] == BAD]
    sent = pd.DataFrame({"meter_id": one["meter_id"].astype(str), "ts": one["ts"].array.asi8,
                         **{c: one[c] for c in one.columns if c not in ("meter_id", "ts")}})
    rows = _naive_rows(sent, one["ts"].dtype.unit)
    alerts = rows[rows["kind"] == "alert"]
    assert set(alerts["meter"]) <= {BAD} and int(rows.loc[rows["kind"] == "readings", "n"].sum()) == len(one)
    want = detect(one, registry.build_all(list(FLEET_BENCH_DETECTORS)), EngineConfig(workers=1))
    assert want.alerts and sorted(json.loads(t)["id"] for t in alerts["text"]) == sorted(a.id for a in want.alerts)


def test_groups_travel_as_arrow_messages_with_times_to_the_nanosecond(fleet):
    """Each group is one Arrow IPC message (no Spark DataFrame of readings, no shuffle): every meter
    in exactly one message, its rows in order, times to the nanosecond, channels as they were."""
    from wattwatch.detect.frame import meter_names, seg_bounds

    _, full, _ = fleet
    starts, ends = seg_bounds(full["_seg"].to_numpy())
    names = [str(m) for m in meter_names(full)]
    group = sparkrun.meter_groups(ends - starts, 3)
    msgs = sparkrun.group_messages(full, group)
    assert [k for k, _ in msgs] == [0, 1, 2]
    back = pd.concat([sparkrun.read_message(m) for _, m in msgs], ignore_index=True)
    back = back.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)
    assert len(back) == len(full) and back["ts"].dtype == full["ts"].dtype
    assert (back["ts"].array.asi8 % 1000 == 123).all()  # the fixture's 123 ns survive
    want = full.assign(meter_id=full["meter_id"].astype(str))[list(back.columns)]
    pd.testing.assert_frame_equal(back, want.reset_index(drop=True), check_dtype=False)
    for k, m in msgs:  # one group's meters only, each meter's rows in time order
        part = sparkrun.read_message(m)
        assert all(group[names.index(n)] == k for n in part["meter_id"].unique())
        assert part.groupby("meter_id", observed=True)["ts"].apply(lambda t: t.is_monotonic_increasing).all()
        assert list(part["meter_id"].cat.categories) == sorted(part["meter_id"].unique())  # its own meters only


def test_group_count_per_core_and_capped_in_readings():
    sizes = np.full(40, 100_000)  # 4 M readings
    assert sparkrun.group_count(sizes, cores=2) == max(2 * sparkrun.GROUPS_PER_CORE, 8)
    assert sparkrun.group_count(np.full(400, 100_000), cores=2) == 80  # 40 M / 500 k
    assert sparkrun.group_count(np.full(3, 10), cores=8) == 3  # never more groups than meters
    assert sparkrun.group_count(sizes, cores=2, groups=5) == 5


def test_fitting_on_spark_learns_the_local_state(spark, fleet):
    """The per-meter fit in meter groups on Spark learns what the local engine learns, an operator
    reset included; a second call finds nothing to fit; the alerts judged with it are the same."""
    from wattwatch.app.bench import FLEET_BENCH_DETECTORS

    _, full, _ = fleet
    cfg = EngineConfig(profile_days=2.0)
    meter = str(full["meter_id"].iat[0])
    resets = {(meter, "*"): pd.Timestamp(full["ts"].min()) + pd.Timedelta(hours=12)}
    local, on_spark = registry.build_all(list(FLEET_BENCH_DETECTORS)), registry.build_all(list(FLEET_BENCH_DETECTORS))
    notes_local = profile(full, local, cfg, resets)
    notes_spark = sparkrun.profile(full, on_spark, cfg, resets, groups=3, where="spark")
    assert notes_local == notes_spark
    for a, b in zip(local, on_spark):
        assert set(a.state_) == set(b.state_) == {str(m) for m in full["meter_id"].unique()}, a.name
        assert json.dumps(a.get_state(), sort_keys=True) == json.dumps(b.get_state(), sort_keys=True), a.name
    assert on_spark[0].state_[meter]["judge_from"] == resets[(meter, "*")].timestamp()
    before = {d.name: dict(d.state_) for d in on_spark}
    assert sparkrun.profile(full, on_spark, cfg, resets, where="spark") == []  # nothing left to fit: no job
    assert all(d.state_[m] is before[d.name][m] for d in on_spark for m in before[d.name])
    r_local, r_spark = DetectionResult(), DetectionResult()
    judge(full, local, EngineConfig(workers=1), r_local)
    sparkrun.judge(full, on_spark, cfg, r_spark)
    assert [a.to_json() for a in r_local.alerts] == [a.to_json() for a in r_spark.alerts] and r_local.alerts


def test_fit_fused_into_the_judging_tasks_gives_the_local_state_and_alerts(spark, fleet):
    """`fit=`: each meter without state is fitted in the task that judges it, on its profiling rows
    (one job): the same state as the local engine's fit on the driver, the same alerts, notices and
    scores; meters that have state keep it (not fitted again)."""
    from wattwatch.app.bench import FLEET_BENCH_DETECTORS
    from wattwatch.detect.frame import profile_mask

    _, full, _ = fleet
    cfg = EngineConfig(profile_days=2.0)
    local, fused = registry.build_all(list(FLEET_BENCH_DETECTORS)), registry.build_all(list(FLEET_BENCH_DETECTORS))
    kept = str(full["meter_id"].iat[0])
    first = prepare(full[full["meter_id"].astype(str) == kept])
    for a, b in zip(local, fused):  # one meter already has state (fitted as a store would give it)
        a.fit(first[profile_mask(first, 1.0)])
        b.set_state(a.get_state())
    kept_state = {d.name: d.state_[kept] for d in fused}
    profile(full, local, cfg)
    r_local, r_fused = DetectionResult(), DetectionResult()
    judge(full, local, EngineConfig(workers=1), r_local, keep_scores=True)
    sparkrun.judge(full, fused, cfg, r_fused, keep_scores=True, groups=3,
                   fit=profile_mask(full, cfg.profile_days, cfg.profile_max_share))
    _same(r_local, r_fused)
    assert r_local.alerts
    for a, b in zip(local, fused):
        assert list(a.state_) == list(b.state_), a.name  # every meter, in the frame's order
        assert json.dumps(a.get_state(), sort_keys=True) == json.dumps(b.get_state(), sort_keys=True), a.name
        assert b.state_[kept] is kept_state[b.name]  # not fitted again


def test_detect_on_spark_fits_in_the_judging_tasks_and_keeps_the_state(spark, fleet, tmp_path):
    """A store without state: `detect --engine spark` fits each meter in its judging task (the
    learned ensemble's fleet model on the driver), gives the local engine's alerts and notices,
    and keeps the same state in the store."""
    from wattwatch.detect import state
    from wattwatch.store import Store

    sim, _, _ = fleet
    out = {}
    for engine in ("local", "spark"):
        db = tmp_path / f"{engine}.duckdb"
        api.ingest(sim["frame"], db)
        stages = []
        res = api.detect(db, engine=engine, config={"engine": {"profile_days": 2.0}}, scores=True,
                         on_stage=lambda what, total: stages.append(what))
        learning = {w.split()[1] for w in stages if w.startswith("learning ")}  # fitted on the driver
        assert learning == ({"learned_ensemble"} if engine == "spark" else {d.name for d in registry.build_all()})
        with Store(db) as store:
            dets = registry.build_all()
            state.load(store.con, dets, [str(m) for m in sim["frame"]["meter_id"].unique()])
        out[engine] = res, {d.name: json.dumps(d.get_state(), sort_keys=True) for d in dets}
    (local, st_local), (on_spark, st_spark) = out["local"], out["spark"]
    assert [a.to_json() for a in local.alerts] == [a.to_json() for a in on_spark.alerts] and local.alerts
    assert local.notices == on_spark.notices
    pd.testing.assert_frame_equal(local.scores, on_spark.scores, check_dtype=False, rtol=0, atol=0)
    assert st_local == st_spark and all(json.loads(v) for v in st_local.values())
    # A frame, no store to keep state in, no fleet model: nothing fitted on the driver at all.
    rules = ",".join(registry.FALLBACK_DETECTORS)
    f_local = api.detect(sim["frame"], detectors=rules)
    f_spark = api.detect(sim["frame"], detectors=rules, engine="spark")
    assert [a.to_json() for a in f_local.alerts] == [a.to_json() for a in f_spark.alerts] and f_local.alerts


def test_a_python_worker_freezes_its_imported_heap_once(monkeypatch):
    """A Spark Python worker moves what it holds after its first job's payload (the imported modules)
    out of the cyclic collector's way once (``gc.freeze``), so that the full collections pyspark's
    reused worker runs after every task do not scan them again; a later job's payload is unpickled
    as before and freezes nothing more."""
    import gc
    import types

    from pyspark import cloudpickle

    monkeypatch.setattr(sparkrun, "_FROZEN", [False])
    monkeypatch.setattr(sparkrun, "_PAYLOADS", {})
    freezes = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (freezes.append(1), real_freeze())[1])
    gc.unfreeze()
    try:
        first = sparkrun._payload(types.SimpleNamespace(value=cloudpickle.dumps({"detectors": ["a"]})), "job-1")
        assert first == {"detectors": ["a"]} and sparkrun._FROZEN == [True] and len(freezes) == 1
        assert gc.get_freeze_count() > 1000  # the modules this process imported
        second = sparkrun._payload(types.SimpleNamespace(value=cloudpickle.dumps({"detectors": ["b"]})), "job-2")
        assert second == {"detectors": ["b"]} and list(sparkrun._PAYLOADS) == ["job-2"]
        # Once per worker. (Not the frozen count: reference counting still frees frozen objects, so
        # it can fall between the two calls; the first version compared it and failed on a clean clone.)
        assert len(freezes) == 1
    finally:
        gc.unfreeze()  # this test process keeps collecting as before


_SIGCHLD_IGNORING_PARENT = """
import os, signal, sys, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # as PySpark's daemon does: its workers are reaped by the kernel
pid = os.fork()
if pid == 0:
    t = time.process_time()
    while time.process_time() - t < 0.6:
        pass
    print("burnt", flush=True)
    sys.stdin.readline()
    os._exit(0)
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(0.01)
print("gone", flush=True)
sys.stdin.readline()
"""


def test_tree_cpu_keeps_the_time_of_a_worker_reaped_by_the_kernel():
    """A PySpark worker's parent (the daemon) ignores SIGCHLD: when the worker exits, its CPU time
    is added to no process's children times. The tree's CPU must not fall when it goes (a bench
    round read -2.59 s when the JVM retired workers between two readings)."""
    from wattwatch.app.bench import tree_cpu

    p = subprocess.Popen([sys.executable, "-c", _SIGCHLD_IGNORING_PARENT], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "burnt"
        before = tree_cpu()
        p.stdin.write("exit\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "gone"
        after = tree_cpu()
        p.stdin.write("exit\n")
        p.stdin.flush()
        p.wait(timeout=30)
        assert after >= before - 0.05, (before, after)
        assert tree_cpu() >= after - 0.05  # and once the parent is gone (reaped by this process)
    finally:
        p.kill()


def test_the_session_records_no_python_call_site_per_dataframe_call(spark):
    """`session()` turns pyspark 4's DataFrame call-site capture off: with it every pyspark.sql function
    and Column call walks the Python stack and makes ~10 Py4J round trips (a Spark read's driver CPU
    x1.6-2.5, tt12), to put our own source line into Spark's error context."""
    from pyspark.errors.utils import is_debugging_enabled

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert not is_debugging_enabled()
