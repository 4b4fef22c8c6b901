"""The simulator: deterministic, physically consistent, every fault and normal event present."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from wattwatch.sim import FAULT_CODES, SimConfig, simulate


def _events(result, kind=None, meter=None):
    return [e for e in result["events"] if (kind is None or e["type"] == kind) and (meter is None or e["meter_id"] == meter)]


def _faulty_spans(result, meter):
    return [(pd.Timestamp(e["start"]), pd.Timestamp(e["end"])) for e in _events(result, meter=meter)
            if e["type"] not in ("motor_start",)]


def test_same_seed_same_fleet_other_seed_other_fleet():
    cfg = SimConfig(meters=6, days=2, seed=9, profile_days=0.5)
    a, b = simulate(cfg), simulate(cfg)
    pd.testing.assert_frame_equal(a["frame"], b["frame"])
    assert a["events"] == b["events"]
    c = simulate(SimConfig(meters=6, days=2, seed=10, profile_days=0.5))
    assert not a["frame"]["p_kw"].equals(c["frame"]["p_kw"])


def test_every_fault_type_and_normal_event_is_present(clean_fleet):
    kinds = {e["type"] for e in clean_fleet["events"]}
    assert set(FAULT_CODES) <= kinds
    assert {"supply_outage", "register_reset", "motor_start"} <= kinds
    for e in clean_fleet["events"]:
        assert pd.Timestamp(e["start"]) <= pd.Timestamp(e["end"])
        assert e["expect_alert"] == (e["type"] in FAULT_CODES)
        assert e["code"] == FAULT_CODES.get(e["type"], e["code"])
    intermittent = [e for e in _events(clean_fleet, "neutral_bypass") if e["detail"].get("intermittent")]
    meters_3ph = {m["meter_id"] for m in clean_fleet["meters"] if m["phases"] == 3}
    assert all(e["meter_id"] in meters_3ph for e in _events(clean_fleet, "phase_imbalance"))
    assert all(e["meter_id"] not in meters_3ph for e in _events(clean_fleet, "neutral_bypass"))
    assert intermittent or _events(clean_fleet, "neutral_bypass")


def test_power_is_voltage_times_current_times_power_factor(clean_fleet):
    f = clean_fleet["frame"]
    # A loose CT clamp is on the reported current only (the power metrology is not on it).
    f = f[~f.meter_id.isin([m["meter_id"] for m in clean_fleet["meters"] if "loose_ct" in m["faults"]])]
    v = f[["v_l1_v", "v_l2_v", "v_l3_v"]].fillna(0).to_numpy()
    i = f[["i_l1_a", "i_l2_a", "i_l3_a"]].fillna(0).to_numpy()
    s_kva = (v * i).sum(axis=1) / 1000
    on = f.s_kva > 0.05
    # Reported values are rounded (0.1 V, 1 mA, 0.1 W): compare within that resolution.
    np.testing.assert_allclose(f.s_kva[on], s_kva[on], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(f.p_kw[on], (f.s_kva * f.pf)[on], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(f.q_kvar[on] ** 2, (f.s_kva ** 2 - f.p_kw ** 2)[on], rtol=1e-2, atol=5e-3)
    one = f.v_l2_v.isna() & on
    np.testing.assert_allclose(f.p_kw[one], (f.v_l1_v * f.i_l1_a * f.pf / 1000)[one], rtol=2e-3, atol=2e-3)
    assert ((f.pf.dropna() >= 0) & (f.pf.dropna() <= 1)).all()


def test_energy_register_integrates_power_on_healthy_meters(clean_fleet):
    f, step_h = clean_fleet["frame"], clean_fleet["config"].step_s / 3600
    healthy = [m["meter_id"] for m in clean_fleet["meters"] if not m["faults"]]
    reset_meters = {e["meter_id"] for e in _events(clean_fleet, "register_reset")}
    checked = 0
    for m in healthy:
        if m in reset_meters:
            continue
        g = f[f.meter_id == m].sort_values("ts")
        gain = next(x["cal_gain"] for x in clean_fleet["meters"] if x["meter_id"] == m)
        de = g.e_kwh.diff().iloc[1:].to_numpy()
        integ = (g.p_kw.iloc[1:] * step_h * gain).to_numpy()
        # A reading that caught a motor's starting current: the inrush lasted seconds, the register
        # counted the running motor's power for the interval, less than the snapshot says.
        starts = {pd.Timestamp(e["start"]) for e in _events(clean_fleet, "motor_start", m)}
        inrush = g.ts.iloc[1:].isin(starts).to_numpy()
        assert (de[inrush] < integ[inrush]).all()
        de, integ = de[~inrush], integ[~inrush]
        # Increments follow p*dt within register resolution (1 Wh) and reported-power rounding.
        np.testing.assert_allclose(de.sum(), integ.sum(), rtol=2e-3)
        assert np.abs(de - integ).max() < 2e-3 + 1e-3 * integ.max()
        checked += 1
    assert checked >= 3


def test_faults_change_what_the_meter_reports(clean_fleet):
    f = clean_fleet["frame"].set_index("ts")
    by_meter = {m: g for m, g in f.groupby("meter_id")}
    for e in clean_fleet["events"]:
        g = by_meter[e["meter_id"]]
        span = g.loc[e["start"]:e["end"]]
        before = g.loc[: pd.Timestamp(e["start"]) - pd.Timedelta("1min")]
        t = e["type"]
        if t == "neutral_bypass":
            loaded = span[span.i_l1_a > 1]
            assert (loaded.i_n_a < 0.1).all()
        elif t == "open_ct":
            assert (span[e["detail"]["channel"]] < 0.05).all()
            assert (span.v_l1_v > 100).all()
        elif t == "phase_imbalance":
            i = span[["i_l1_a", "i_l2_a", "i_l3_a"]]
            imb = (i.sub(i.mean(axis=1), axis=0).abs().max(axis=1) / i.mean(axis=1))[i.mean(axis=1) > 1]
            assert imb.median() > 0.15
        elif t == "supply_outage":
            assert (span.v_l1_v == 0).all() and (span.i_l1_a == 0).all() and (span.p_kw == 0).all()
            assert span.e_kwh.nunique() == 1
        elif t == "firmware_drift":
            ratio = span.e_kwh.diff().sum() / (span.p_kw.iloc[1:].sum() * 5 / 60)
            assert ratio < 0.93
        elif t == "frozen_register":
            assert span.drop(columns="meter_id").nunique().max() == 1
        elif t == "thermal_drift":
            assert span.temp_c.max() - before.temp_c.max() > 0 or span.temp_c.mean() > before.temp_c.mean() + 4
        elif t == "harmonic_noise":
            assert span.thd_i_pct.median() > 30
        elif t == "register_reset":
            at = g.index.get_indexer([pd.Timestamp(e["start"])])[0]
            assert g.e_kwh.iloc[at] < g.e_kwh.iloc[at - 1]
        elif t == "packet_loss":
            expected = (pd.Timestamp(e["end"]) - pd.Timestamp(e["start"])) / pd.Timedelta("5min") + 1
            assert len(span) / expected < 0.9


def test_leakage_stays_under_30_milliamps_on_healthy_single_phase_meters(clean_fleet):
    f = clean_fleet["frame"]
    healthy_1ph = [m["meter_id"] for m in clean_fleet["meters"] if m["phases"] == 1 and not m["faults"]]
    g = f[f.meter_id.isin(healthy_1ph) & (f.i_l1_a > 0) & (f.i_l1_a < 3)]
    # |I_L - I_N| = leakage plus CT error (0.2 % per channel): small currents show the leakage.
    assert (g.i_l1_a - g.i_n_a).abs().quantile(0.99) < 0.03 + 0.01


def test_messy_output_has_jitter_duplicates_holes_and_disorder(small_fleet):
    f = pd.read_parquet(small_fleet["files"]["parquet"])
    assert (f.ts.dt.second != 0).mean() > 0.5  # jitter
    assert f.duplicated(["meter_id", "p_kw", "e_kwh"]).sum() > 0  # duplicated readings
    assert f[["v_l1_v", "p_kw", "e_kwh"]].isna().to_numpy().sum() > 0  # NaN holes
    assert not f.groupby("meter_id").ts.apply(lambda s: s.is_monotonic_increasing).all()  # disorder
    events = json.loads(open(small_fleet["files"]["events"]).read())
    assert {"meter_id", "type", "start", "end", "code", "expect_alert"} <= set(events[0])


def test_unknown_fault_type_is_rejected():
    with pytest.raises(ValueError, match="unknown fault"):
        SimConfig(faults=("gremlins",))


# ------------------------------------------------------------------------ cadence: readings are snapshots

CLEAN = dict(jitter_s=0, duplicate_rate=0, nan_rate=0, disorder_rate=0, background_loss=0)


def _fleet(step: str, **kw) -> pd.DataFrame:
    cfg = dict(meters=16, days=4, seed=8, fault_share=0.0, profile_days=1.0, **CLEAN)
    cfg.update(kw)
    return simulate(SimConfig(step=step, **cfg))


def test_consumption_does_not_depend_on_the_cadence():
    # Written in readings, a kettle boiled for 1-6 readings: 5-30 min at 5-minute cadence, 1-6 hours
    # at hourly, and the simulated homes used three times the energy when read hourly.
    mean = {}
    for step in ("5min", "60min"):
        f = _fleet(step)["frame"]
        mean[step] = f[f.v_l2_v.isna()].p_kw.mean()
    assert mean["60min"] == pytest.approx(mean["5min"], rel=0.15)


def test_a_coarse_cadence_reads_the_same_world_every_nth_instant():
    # Every reading of an hourly meter is the 5-minute world at that instant, and its register
    # counted the energy of the whole hour (not one snapshot's power times an hour).
    fine = _fleet("5min", motor_starts_per_day=4.0, fault_share=0.5, outage_share=0.5)
    coarse = _fleet("60min", motor_starts_per_day=4.0, fault_share=0.5, outage_share=0.5)
    a = fine["frame"].set_index(["meter_id", "ts"])
    b = coarse["frame"].set_index(["meter_id", "ts"])
    # (Packet loss and frozen loggers act on the reports, not on the world.)
    touched = {e["meter_id"] for e in coarse["events"] if e["type"] in ("packet_loss", "frozen_register")}
    b = b[~b.index.get_level_values(0).isin(touched)]
    pd.testing.assert_frame_equal(b, a.loc[b.index])
    # A normal event is labelled only where a reading shows it; a motor start is one caught by a reading.
    for e in coarse["events"]:
        if e["type"] in ("motor_start", "supply_outage", "register_reset"):
            assert pd.Timestamp(e["start"]).minute == 0 and pd.Timestamp(e["end"]).minute == 0
    n_fine = sum(e["type"] == "motor_start" for e in fine["events"])
    n_coarse = sum(e["type"] == "motor_start" for e in coarse["events"])
    assert n_coarse < n_fine / 4


def test_hvac_cycles_are_not_a_perfect_clock():
    # A compressor's cycle wanders with load and weather; a fixed period aliased against hourly
    # readings into a bias of the snapshots' energy that lasted weeks. On a Sunday (no occupancy)
    # a big unit's cycles read at 1-minute steps: a fixed period gives two lengths (floor, ceiling).
    from wattwatch.sim.fleet import Meter, _load_kw

    m = Meter("M", "commercial", 3, 230.0, 0.0, 100.0, 10.0, 0.9, 1.0, 0.01, 8.0, 60.0, 15.0, 200.0, 20.0, 0.0)
    ts = pd.date_range("2025-01-12T00:00Z", periods=24 * 60, freq="1min")  # a Sunday
    t_ns = ts.as_unit("ns").asi8
    t_h = t_ns / 3.6e12
    dow = np.full(len(ts), 6)
    load, _ = _load_kw(np.random.default_rng(4).spawn(1)[0], m, t_h, dow, 60.0, t_ns)
    on = load > np.median(load) + 3.0  # the unit draws 6 kW over a base of about 10
    starts = np.flatnonzero(on[1:] & ~on[:-1])
    cycles = np.diff(starts)
    assert len(cycles) > 15
    assert len(set(cycles)) >= 4 and cycles.std() / cycles.mean() > 0.05


def test_the_default_knobs_are_the_simulator_as_it_was_and_a_knob_changes_only_its_part(tmp_path):
    """``SimKnobs()`` is the same world as no knobs (every earlier fleet stays as it was, and its
    ``meters.json`` has no ``knobs`` key); a knob changes what it names: a weaker level shift
    adds less load, and a wider steady imbalance leaves the homes' single phase as it was."""
    from wattwatch.sim.fleet import SimKnobs

    base = dict(meters=12, days=10, seed=3, fault_share=1.0, commercial_share=0.5,
                faults=("level_shift", "phase_imbalance"))
    a = simulate(SimConfig(**base), tmp_path / "a", formats=("parquet",))
    b = simulate(SimConfig(**base, knobs=SimKnobs()), tmp_path / "b", formats=("parquet",))
    fa, fb = pd.read_parquet(a["files"]["parquet"]), pd.read_parquet(b["files"]["parquet"])
    pd.testing.assert_frame_equal(fa, fb)
    assert a["events"] == b["events"]
    assert "knobs" not in json.loads((tmp_path / "a" / "meters.json").read_text())["config"]
    assert json.loads((tmp_path / "b" / "meters.json").read_text())["config"]["knobs"]["theft_keep"] == [0.3, 0.6]
    weak = simulate(SimConfig(**base, knobs=SimKnobs(level_shift_add=(0.1, 0.1))), tmp_path / "c", formats=("parquet",))
    fc = pd.read_parquet(weak["files"]["parquet"])
    shifted = {e["meter_id"] for e in a["events"] if e["type"] == "level_shift"}
    assert shifted
    for m in shifted:
        ev = next(e for e in a["events"] if e["meter_id"] == m and e["type"] == "level_shift")
        inside = lambda f: f[(f.meter_id == m) & (f.ts >= pd.Timestamp(ev["start"])) & (f.ts <= pd.Timestamp(ev["end"]))]
        assert inside(fc)["p_kw"].mean() < inside(fa)["p_kw"].mean()
    wide = simulate(SimConfig(**base, knobs=SimKnobs(normal_imbalance_max=0.3)), tmp_path / "d", formats=("parquet",))
    fd = pd.read_parquet(wide["files"]["parquet"])
    homes = [m["meter_id"] for m in a["meters"] if m["phases"] == 1]
    assert homes
    pd.testing.assert_frame_equal(fa[fa.meter_id.isin(homes)].reset_index(drop=True),
                                  fd[fd.meter_id.isin(homes)].reset_index(drop=True))
    assert not fa[~fa.meter_id.isin(homes)]["i_l1_a"].equals(fd[~fd.meter_id.isin(homes)]["i_l1_a"])


def test_the_thermal_knobs_scale_the_enclosure_and_nothing_else():
    """``tau_scale`` and ``rise_scale`` multiply each meter's thermal time constant and rise; its
    distortion, leakage and rating stay as they were."""
    from wattwatch.sim.fleet import SimKnobs

    cfg = dict(meters=6, days=2, seed=4, fault_share=0.0, commercial_share=0.5)
    a = simulate(SimConfig(**cfg))["meters"]
    b = simulate(SimConfig(**cfg, knobs=SimKnobs(tau_scale=3.0, rise_scale=2.0)))["meters"]
    for x, y in zip(a, b):
        assert y["tau_min"] == pytest.approx(3 * x["tau_min"]) and y["rise_c"] == pytest.approx(2 * x["rise_c"])
        assert (y["thd_pct"], y["leakage_a"], y["rated_a"], y["ambient_c"]) == \
            (x["thd_pct"], x["leakage_a"], x["rated_a"], x["ambient_c"])
