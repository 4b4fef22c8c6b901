"""Per-POD-per-period features: physics on hand-made PODs, the complete-POD filter, peers, and
pandas == Spark on a messy mixed-cadence fleet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.fleet.fleetdata import messy_fleet
from wattwatch.fleet.features import FEATURES, pod_periods
from wattwatch.fleet.readers import conform

T0 = pd.Timestamp("2025-03-03", tz="UTC")  # a Monday


def pod(meter: str, days: float, step_s: int, p, **cols) -> pd.DataFrame:
    ts = pd.date_range(T0, T0 + pd.Timedelta(days=days) - pd.Timedelta(seconds=1), freq=f"{step_s}s")
    pv = p(ts) if callable(p) else np.full(len(ts), float(p))
    return pd.DataFrame({"meter_id": meter, "ts": ts, "p_kw": pv, **cols})


def lighting(ts):
    h = ts.hour.to_numpy()
    return np.where((h >= 22) | (h < 6), 3.0, 0.0)


def test_constant_load_energy_mean_max_and_load_factor():
    ff = pod_periods(pod("A", 7, 900, 2.0), "week")
    row = ff.features.iloc[0]
    assert row["e_kwh_sum"] == pytest.approx(2.0 * 24 * 7)
    assert row["p_mean_kw"] == pytest.approx(2.0)
    assert row["p_max_kw"] == pytest.approx(2.0)
    assert row["load_factor"] == pytest.approx(1.0)
    assert row["coverage"] == pytest.approx(1.0)
    # the hourly table holds the same energy (spreading over hours conserves it)
    assert ff.hourly["e_kwh"].sum() == pytest.approx(row["e_kwh_sum"])


def test_cadence_does_not_change_the_features():
    """The same hour-constant load read every minute, every hour and as 3-hour interval records."""
    a = pod("A", 7, 60, lighting)
    b = pod("B", 7, 3600, lighting)
    c = pod("C", 7, 3 * 3600, lambda ts: np.full(len(ts), 1.0))
    c["e_int_kwh"] = 3.0 * 1.0 * np.where(c["ts"].dt.hour.isin([0, 3, 21]), 1, 0)  # lighting in 3-h blocks
    c["ts_end"] = c["ts"] + pd.Timedelta(hours=3)
    ff = pod_periods(pd.concat([a, b]), "week").features.set_index("pod_id")
    for col in ("e_kwh_sum", "p_mean_kw", "p_max_kw", "load_factor", "night_share", "weekend_share"):
        assert ff.loc["A", col] == pytest.approx(ff.loc["B", col], rel=1e-9), col
    assert ff.loc["A", "night_share"] == pytest.approx(1.0)
    assert ff.loc["A", "e_kwh_sum"] == pytest.approx(3.0 * 8 * 7)
    fc = pod_periods(c, "week").features.iloc[0]
    # interval energy wins over p_kw x duration; each 3-h record is spread over its three hours
    assert fc["e_kwh_sum"] == pytest.approx(3.0 * 3 * 7)


def test_daily_interval_records_spread_over_their_hours():
    d = pod("D", 7, 86400, 1.0)
    d["e_int_kwh"] = 48.0
    d["ts_end"] = d["ts"] + pd.Timedelta(days=1)
    ff = pod_periods(d, "week")
    np.testing.assert_allclose(ff.hourly["e_kwh"], 2.0)
    assert len(ff.hourly) == 7 * 24
    assert ff.features.iloc[0]["p_mean_kw"] == pytest.approx(2.0)


def test_register_steps_used_when_consistent_and_a_reset_is_not_consumption():
    r = pod("R", 7, 900, 4.0)
    e = np.arange(len(r)) * 1.0 + 500.0  # 1 kWh per 15 min = 4 kW: consistent
    e[300:] -= 700.0  # a reset (the register restarts): a negative step
    r["e_kwh"] = e
    r["p_kw"] = np.nan  # no power: the register alone
    ff = pod_periods(r, "week")
    # every step but the reset is 1 kWh; the reset's reading has no energy (coverage drops by 15 min)
    assert ff.features.iloc[0]["e_kwh_sum"] == pytest.approx(len(r) - 2)
    r2 = r.assign(p_kw=4.0, e_kwh=np.floor(np.arange(len(r)) / 4.0) + 10.0)  # 1-kWh digits: inconsistent per step
    ff2 = pod_periods(r2, "week")
    assert ff2.features.iloc[0]["e_kwh_sum"] == pytest.approx(4.0 * 24 * 7, rel=0.02)


def test_phase_shares_reactive_ratio_and_pf_quantiles():
    a = pod("A", 7, 3600, 3.0)
    a["p_l1_kw"], a["p_l2_kw"], a["p_l3_kw"] = 1.5, 1.0, 0.5
    a["q_kvar"] = 0.9
    a["pf"] = np.linspace(0.8, 1.0, len(a))
    row = pod_periods(a, "week").features.iloc[0]
    assert (row["phase_l1_share"], row["phase_l2_share"], row["phase_l3_share"]) == pytest.approx((0.5, 1 / 3, 1 / 6))
    assert row["phase_share_max"] == pytest.approx(0.5)
    assert row["reactive_ratio"] == pytest.approx(0.3)
    assert row["pf_q10"] == pytest.approx(np.quantile(a["pf"], 0.1))
    assert row["pf_q50"] == pytest.approx(np.quantile(a["pf"], 0.5))


def test_incomplete_pods_and_panel_meters_are_listed_with_the_reason():
    ok = [pod(f"P{i}", 14, 3600, 1.0 + i, panel_id="QE1") for i in range(5)]
    gap = pod("GAP", 14, 3600, 1.0, panel_id="QE1")
    gap = gap[(gap["ts"] < T0 + pd.Timedelta(days=2)) | (gap["ts"] >= T0 + pd.Timedelta(days=4))]
    panel = pod("QE1", 14, 3600, 20.0, panel_id="QE1")
    ff = pod_periods(pd.concat(ok + [gap, panel]), "week", min_coverage=0.8)
    ex = ff.excluded.set_index("pod_id")["reason"]
    assert set(ex.index) == {"GAP", "QE1"}
    assert "2025-03-03: coverage 0.71" in ex["GAP"] and "1 of 2 periods" in ex["GAP"]
    assert ex["QE1"].startswith("panel meter of QE1")
    assert set(ff.features["pod_id"]) == {f"P{i}" for i in range(5)}
    assert ff.panels.to_dict("records") == [{"panel_id": "QE1", "meter_id": "QE1"}]
    assert ff.hourly.loc[ff.hourly["pod_id"] == "QE1", "is_panel"].all()
    # the same POD passes with a lower threshold: the filter is the threshold, nothing else
    assert "GAP" in set(pod_periods(pd.concat(ok + [gap]), "week", min_coverage=0.7).features["pod_id"])


def test_peer_group_change_and_trend():
    pods = [pod(f"P{i}", 14, 3600, 1.0, panel_id="QE1", town="T") for i in range(5)]
    pods += [pod(f"S{i}", 14, 3600, 2.0, panel_id="QE2", town="T") for i in range(2)]
    drop = pods[0]
    drop.loc[drop["ts"] >= T0 + pd.Timedelta(days=7), "p_kw"] = 0.5  # a theft-like drop in week 2
    ff = pod_periods(pd.concat(pods), "week", min_peers=5)
    f = ff.features.set_index(["pod_id", "period"])
    assert f.loc[("P0", "2025-03-03"), "peer_group"] == "panel:QE1"
    assert f.loc[("S0", "2025-03-03"), "peer_group"] == "town:T"  # QE2 has 2 PODs < 5
    assert f.loc[("P0", "2025-03-10"), "change_prev"] == pytest.approx(-0.5)
    assert f.loc[("P0", "2025-03-10"), "peer_change"] == pytest.approx(-0.5)
    assert f.loc[("P0", "2025-03-10"), "peer_level"] == pytest.approx(0.5)
    assert f.loc[("P1", "2025-03-10"), "peer_change"] == pytest.approx(0.0)
    ramp = pod("RAMP", 7, 3600, lambda ts: 1.0 + (ts - T0).total_seconds().to_numpy() / 86400 * 0.1)
    t = pod_periods(ramp, "week").features.iloc[0]
    assert t["trend_rel_per_day"] == pytest.approx(0.1 / t["p_mean_kw"], rel=0.02)


def test_periods_follow_the_time_zone():
    # 23:30 UTC on Sunday is Monday 00:30 in Rome: a different day, week and night/day hour
    a = pod("A", 14, 3600, lighting)
    utc = pod_periods(a, "day").features
    rome = pod_periods(a, "day", tz="Europe/Rome").features
    assert utc["period"].iloc[0] == "2025-03-03" and rome["period"].iloc[0] == "2025-03-03"
    assert rome["period_start"].iloc[0] == pd.Timestamp("2025-03-02 23:00", tz="UTC")
    assert utc["night_share"].iloc[1] == pytest.approx(1.0)
    assert rome["night_share"].iloc[1] < 1.0  # lighting 22-06 UTC is 23-07 Rome: one hour lit by day


def test_a_day_starting_at_an_ambiguous_local_midnight():
    """adv45: the Azores fall back from 01:00 to 00:00 (last Sunday of October, 2025-10-26; Havana
    does the same in November): the local midnight that starts that day happens twice, and
    ``--period day`` crashed converting the period's length to hours (IntCastingNaNError). The day
    starts at the first of the two and has 25 hours."""
    t0 = pd.Timestamp("2025-10-20", tz="UTC")
    ts = pd.date_range(t0, t0 + pd.Timedelta(days=14) - pd.Timedelta(hours=1), freq="h")
    frame = pd.DataFrame({"meter_id": np.repeat(["A", "B"], len(ts)), "ts": np.tile(ts, 2), "p_kw": 1.0})
    f = pod_periods(conform(frame), "day", tz="Atlantic/Azores", min_peers=1).features
    row = f[(f["pod_id"] == "A") & (f["period"] == "2025-10-26")].iloc[0]
    assert row["period_start"] == pd.Timestamp("2025-10-26T00:00:00Z")  # the first midnight (UTC+0)
    assert row["e_kwh_sum"] == pytest.approx(25.0) and row["coverage"] == pytest.approx(1.0)
    assert set(f.loc[f["pod_id"] == "A", "coverage"]) == {1.0}


def test_features_have_a_documented_meaning():
    ff = pod_periods(pod("A", 7, 3600, 1.0), "week")
    assert list(ff.features.columns[-len(FEATURES):]) == list(FEATURES)
    assert all(len(v) == 2 and v[0] for v in FEATURES.values())


def test_pandas_and_spark_give_the_same_features(spark):
    from wattwatch.fleet.spark import pod_periods_spark

    f = conform(messy_fleet(seed=1, days=9, n=8))
    a = pod_periods(f, "week", tz="Europe/Rome", min_peers=3)
    b = pod_periods_spark(spark.createDataFrame(f), "week", tz="Europe/Rome", min_peers=3, hourly="all")
    pd.testing.assert_frame_equal(a.excluded, b.excluded)
    pd.testing.assert_frame_equal(a.panels, b.panels)
    fa, fb = a.features, b.features
    assert len(fa) > 0
    pd.testing.assert_frame_equal(fa[[c for c in fa.columns if c not in FEATURES]],
                                  fb[[c for c in fb.columns if c not in FEATURES]], check_dtype=False)
    for c in FEATURES:
        np.testing.assert_allclose(fa[c].to_numpy(float), fb[c].to_numpy(float), rtol=1e-6, atol=1e-9, err_msg=c)
    pd.testing.assert_frame_equal(a.hourly[["pod_id", "hour", "is_panel"]], b.hourly[["pod_id", "hour", "is_panel"]],
                                  check_dtype=False)
    np.testing.assert_allclose(a.hourly["e_kwh"], b.hourly["e_kwh"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.hourly["coverage"], b.hourly["coverage"], rtol=1e-9, atol=1e-12)


def _edge_fleet() -> pd.DataFrame:
    """Eight hourly PODs and a panel meter on QE1, two weeks; POD ONE has a single reading, POD NAN
    only readings whose every channel is NaN."""
    ok = [pod(f"P{i}", 14, 3600, lambda ts, i=i: 1.0 + i + 0.1 * np.sin(np.arange(len(ts))), panel_id="QE1",
              pf=0.9, q_kvar=0.3) for i in range(8)]
    one = pod("ONE", 14, 3600, 1.0, panel_id="QE1", pf=0.9, q_kvar=0.3).iloc[:1]
    nan = pod("NAN", 14, 3600, np.nan, panel_id="QE1", pf=np.nan, q_kvar=np.nan)
    panel = pod("QE1", 14, 3600, 40.0, panel_id="QE1")
    return pd.concat(ok + [one, nan, panel], ignore_index=True)


@pytest.mark.parametrize("min_coverage", [0.8, 0.0])
def test_a_single_reading_pod_and_an_all_nan_pod_are_excluded_with_the_reason(min_coverage):
    ff = pod_periods(_edge_fleet(), "week", min_coverage=min_coverage)
    ex = ff.excluded.set_index("pod_id")["reason"]
    # whatever the threshold (0 included): no time covered means nothing to compare, never a
    # row of missing features that the models would impute to the fleet's median
    assert set(ex.index) == {"ONE", "NAN", "QE1"}
    assert "2025-03-03: no time covered by readings with a value" in ex["NAN"] and "2 of 2 periods" in ex["NAN"]
    assert "2025-03-10: no data" in ex["ONE"]
    assert set(ff.features["pod_id"]) == {f"P{i}" for i in range(8)}
    assert np.isfinite(ff.features["e_kwh_sum"]).all()


def test_single_reading_and_all_nan_pods_end_to_end_and_on_spark(tmp_path, spark):
    from wattwatch import api
    from wattwatch.fleet.spark import pod_periods_spark

    f = _edge_fleet()
    a = pod_periods(f, "week", min_coverage=0.0)
    b = pod_periods_spark(spark.createDataFrame(conform(f)), "week", min_coverage=0.0, hourly="all")
    pd.testing.assert_frame_equal(a.excluded, b.excluded)
    pd.testing.assert_frame_equal(a.features[["pod_id", "period"]], b.features[["pod_id", "period"]])
    path = tmp_path / "edge.parquet"
    f.to_parquet(path, index=False)
    r = api.fleet([path], period="week", min_coverage=0.0, min_peers=2, out=tmp_path / "fleet.parquet")
    table = pd.read_parquet(tmp_path / "fleet.parquet")
    assert set(table["pod_id"]) == {f"P{i}" for i in range(8)} and np.isfinite(table["consensus_score"]).all()
    assert {"ONE", "NAN"} <= set(pd.read_csv(tmp_path / "fleet.excluded.csv")["pod_id"])
    assert r.balance is not None  # the panel is balanced with its two PODs without data among its PODs


def _meter_in_two_panels():
    a = pod("A", 3, 3600, 1.0, panel_id="QE0", town="T")
    a.loc[a["ts"] >= T0 + pd.Timedelta(days=1), "panel_id"] = "QE1"   # the export moved it
    return conform(pd.concat([a, pod("B", 3, 3600, 1.0, panel_id="QE0", town="T"),
                              pod("C", 3, 3600, 1.0, panel_id="QE1", town="T")], ignore_index=True))


def test_a_meter_named_under_two_panels_is_said():
    """adv45: a POD whose readings name two panels (an export that moved it, or two PODs under one id)
    was put under the largest id without a word: its peer group and its panel's energy balance changed."""
    f = pod_periods(_meter_in_two_panels(), "day", min_peers=1)
    said = [n for n in f.notes if "more than one panel" in n]
    assert said and "A (QE0 .. QE1)" in said[0] and "B" not in said[0], f.notes
    assert f.features.loc[f.features["pod_id"] == "A", "panel_id"].unique().tolist() == ["QE1"]


def test_spark_says_the_same_of_a_meter_under_two_panels(spark):
    from wattwatch.fleet.features import pod_periods_spark

    frame = _meter_in_two_panels()
    a = pod_periods(frame, "day", min_peers=1)
    b = pod_periods_spark(spark.createDataFrame(frame), "day", min_peers=1)
    assert [n for n in b.notes if "more than one panel" in n] == [n for n in a.notes if "more than one panel" in n] != []


def test_a_span_shorter_than_half_its_only_period_is_not_called_missing_values():
    """rev45: adv45 listed every POD as excluded with "every value channel missing" whenever no period
    was left to judge; that also happens to a fleet with good readings whose data span covers less
    than half of its only period (10 days with ``--period month``), whose reason is the period."""
    ts = pd.date_range("2025-03-10", "2025-03-20", freq="h", tz="UTC")
    frame = pd.DataFrame({"meter_id": np.repeat(["A", "B", "C"], len(ts)), "ts": np.tile(ts, 3), "p_kw": 1.0})
    ff = pod_periods(conform(frame), "month", min_peers=1)
    assert ff.features.empty and sorted(ff.excluded["pod_id"]) == ["A", "B", "C"]
    for why in ff.excluded["reason"]:
        assert "missing" not in why and "2025-03" in why and "241 of its 744 hours" in why, why
    nan = conform(frame.assign(p_kw=np.nan))  # the other way to have no period: no reading with a value
    assert set(pod_periods(nan, "month", min_peers=1).excluded["reason"]) == {
        "no time covered by readings with a value (every value channel missing)"}


@pytest.mark.parametrize("tz, start", [("Atlantic/Azores", "2025-10-20"), ("America/Havana", "2025-10-28")])
def test_spark_gives_a_day_starting_at_an_ambiguous_midnight_as_pandas_does(spark, tz, start):
    """rev45: adv45 tested the 25-hour day on pandas only; Spark labels hours with its own
    ``from_utc_timestamp``. Both engines: the same days, starts, coverage and energy, and each day's
    energy the sum of its hours (the repeated hour counted once per occurrence)."""
    from wattwatch.fleet.features import pod_periods_spark

    t0 = pd.Timestamp(start, tz="UTC")
    ts = pd.date_range(t0, t0 + pd.Timedelta(days=14) - pd.Timedelta(minutes=15), freq="15min")
    rng = np.random.default_rng(0)
    frame = conform(pd.DataFrame({"meter_id": np.repeat(["A", "B"], len(ts)), "ts": np.tile(ts, 2),
                                  "p_kw": rng.uniform(0.5, 2.0, 2 * len(ts))}))
    a = pod_periods(frame, "day", tz=tz, min_peers=1, hourly="all")
    b = pod_periods_spark(spark.createDataFrame(frame), "day", tz=tz, min_peers=1, hourly="all")
    cols = ["pod_id", "period", "period_start", "coverage", "n_readings", "e_kwh_sum"]
    fa = a.features[cols].sort_values(["pod_id", "period"]).reset_index(drop=True)
    fb = b.features[cols].sort_values(["pod_id", "period"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(fa, fb, check_dtype=False, rtol=1e-9)
    long = fa[fa["n_readings"] == 100]  # the 25-hour day of each POD
    assert len(long) == 2 and (long["coverage"] == 1.0).all()
    hours = b.hourly.assign(day=pd.to_datetime(b.hourly["hour"], utc=True).dt.tz_convert(tz).dt.strftime("%Y-%m-%d"))
    per_day = hours.groupby(["pod_id", "day"])["e_kwh"].sum()
    assert np.allclose(fb.set_index(["pod_id", "period"])["e_kwh_sum"].to_numpy(),
                       per_day.reindex(pd.MultiIndex.from_frame(fb[["pod_id", "period"]])).to_numpy(), rtol=1e-12)


def test_spark_says_the_same_of_a_span_shorter_than_half_its_period(spark):
    from wattwatch.fleet.features import pod_periods_spark

    ts = pd.date_range("2025-03-10", "2025-03-20", freq="h", tz="UTC")
    frame = conform(pd.DataFrame({"meter_id": np.repeat(["A", "B", "C"], len(ts)), "ts": np.tile(ts, 3), "p_kw": 1.0}))
    a = pod_periods(frame, "month", min_peers=1)
    b = pod_periods_spark(spark.createDataFrame(frame), "month", min_peers=1)
    pd.testing.assert_frame_equal(a.excluded.sort_values("pod_id").reset_index(drop=True),
                                  b.excluded.sort_values("pod_id").reset_index(drop=True), check_dtype=False)
