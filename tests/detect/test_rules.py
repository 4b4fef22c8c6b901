"""Each rule on a fault built by hand: the right code, a span that covers the fault, the evidence.

Healthy meters come from the simulator with every fault and normal event switched off; the
engine profiles the first 3 days, faults are added on day 4 onwards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import healthy, run, window

T = "2025-01-09T17:00:00Z"


def only(alerts, code):
    return [a for a in alerts if a.code == code]


def covers(alert, frame, mask, slack_min=30):
    ts = frame.ts[mask]
    return (pd.Timestamp(alert.start) <= ts.min() + pd.Timedelta(minutes=slack_min)
            and pd.Timestamp(alert.end) >= ts.max() - pd.Timedelta(minutes=slack_min))


def test_healthy_meters_raise_nothing(residential, commercial):
    assert run(residential) == []
    assert run(commercial) == []


def test_neutral_bypass_single_phase(residential):
    f = residential.copy()
    w = window(f, T, 3)
    # The load draws 12 A (power follows its current, as on a real meter: a current that jumps
    # while power stays is a loose CT, which keeps the neutral rule out), returned through earth.
    k = 12.0 / f.loc[w, "i_l1_a"]
    for c in ("p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] *= k
    f.loc[w, "i_l1_a"] = 12.0
    f.loc[w, "i_n_a"] = 0.01
    alerts = only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert len(alerts) == 1 and covers(alerts[0], f, w, 10)
    ev = alerts[0].evidence
    assert ev["kind"] == "neutral_bypass" and ev["i_n_a"] < 0.1 and ev["delta_a"] > 11
    assert alerts[0].severity == "critical"


def test_partial_earth_return_single_phase(residential):
    f = residential.copy()
    w = window(f, T, 3)
    f.loc[w, "i_l1_a"] = np.maximum(f.loc[w, "i_l1_a"], 4.0)
    f.loc[w, "i_n_a"] = 0.6 * f.loc[w, "i_l1_a"]
    alerts = only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert len(alerts) == 1 and alerts[0].evidence["kind"] == "partial_earth_return"


def test_leakage_under_30ma_and_one_reading_blips_do_not_alert(residential):
    f = residential.copy()
    f["i_n_a"] = f["i_l1_a"] - 0.025  # steady earth leakage
    blips = np.flatnonzero(window(f, T, 24))[::12]  # one reading an hour with the neutral gone
    f.loc[blips, "i_n_a"] = 0.0
    f.loc[blips, "i_l1_a"] = 15.0
    assert only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED") == []


def test_partial_earth_return_three_phase(commercial):
    f = commercial.copy()
    w = window(f, T, 4)
    i = f.loc[w, ["i_l1_a", "i_l2_a", "i_l3_a"]].to_numpy()
    # Half of L1's return current goes to earth: the measured neutral is the phasor sum with
    # L1 halved, while the phase currents still imply the full sum.
    a = np.exp(1j * np.deg2rad([0, -120, 120]))
    f.loc[w, "i_n_a"] = np.abs((i * [0.5, 1, 1] * a).sum(axis=1))
    alerts = only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert len(alerts) == 1 and alerts[0].evidence["phases"] == 3 and covers(alerts[0], f, w)


def test_phase_imbalance(commercial):
    f = commercial.copy()
    w = window(f, T, 3)
    f.loc[w, "i_l1_a"] *= 1.6
    alerts = run(f)
    imb = only(alerts, "ERR_PHASE_IMBALANCE_01")
    assert len(imb) == 1 and imb[0].evidence["phase"] == "L1" and imb[0].evidence["imbalance"] > 0.25
    assert covers(imb[0], f, w)


def _lopsided(commercial):
    """A healthy commercial meter whose normal is imbalanced: L1 carries a steady extra load, L2
    a little less (imbalance ~9 %, 99th percentile over 10 %, above the SPEC's fixed limit)."""
    f = commercial.copy()
    f["i_l1_a"] *= 1.12
    f["i_l2_a"] *= 0.98
    i = f[["i_l1_a", "i_l2_a", "i_l3_a"]].to_numpy()
    imb = np.abs(i - i.mean(axis=1, keepdims=True)).max(axis=1) / i.mean(axis=1)
    assert np.quantile(imb, 0.99) > 0.10
    return f


def test_healthy_meter_with_a_high_normal_imbalance_is_not_flagged(commercial):
    assert only(run(_lopsided(commercial)), "ERR_PHASE_IMBALANCE_01") == []


def test_a_phase_step_on_a_meter_with_a_high_normal_imbalance_is_found(commercial):
    # L2's current rises by 25 % for 6 hours: on this meter the imbalance even falls (L2 was the
    # light phase), so no limit on the imbalance itself can see it; L2's share of the current
    # stepping away from its own normal share does.
    f = _lopsided(commercial)
    w = window(f, T, 6)
    f.loc[w, "i_l2_a"] *= 1.25
    imb = only(run(f), "ERR_PHASE_IMBALANCE_01")
    assert len(imb) == 1 and covers(imb[0], f, w), [(a.start, a.end) for a in imb]
    ev = imb[0].evidence
    assert ev["phase"] == "L2" and ev["imbalance"] < ev["limit"]  # the level alone stays under its limit
    assert abs(ev["normal_share"] - 0.98 / 3.1) < 0.01 and ev["share"] > ev["normal_share"] + 0.035
    assert ev["step"] == pytest.approx(ev["share"] - ev["normal_share"], abs=2e-3)
    assert "L2 carries" in imb[0].message


def test_a_meter_without_learned_shares_is_judged_on_the_fixed_limit(commercial):
    from wattwatch.detect.registry import build
    from wattwatch.detect.rules.imbalance import PhaseImbalance

    f = _lopsided(commercial)
    det = build("phase_imbalance")
    det.set_state({m: {"cadence_s": 300.0} for m in f.meter_id.unique()})
    s = det.score(f)
    i = f[["i_l1_a", "i_l2_a", "i_l3_a"]].to_numpy()
    imb = np.abs(i - i.mean(axis=1, keepdims=True)).max(axis=1) / i.mean(axis=1)
    ok = np.isfinite(s.to_numpy())
    assert isinstance(det, PhaseImbalance) and ok.mean() > 0.9
    np.testing.assert_allclose(s.to_numpy()[ok], imb[ok] / 0.10, rtol=1e-9)


def test_open_ct_is_a_sensor_fault_not_theft(residential, commercial):
    f = residential.copy()
    w = window(f, T, 3)
    f.loc[w, "i_l1_a"] = np.maximum(f.loc[w, "i_n_a"], 3.0) * 0 + 0.002
    f.loc[w, "i_n_a"] = np.maximum(f.loc[w, "i_n_a"], 3.0)
    alerts = run(f)
    sf = only(alerts, "SENSOR_FAULT")
    assert len(sf) == 1 and sf[0].evidence["channel"] == "i_l1_a"
    assert only(alerts, "ERR_IMBAL_LIMIT_EXCEEDED") == []
    g = commercial.copy()
    w = window(g, T, 3)
    g.loc[w, "i_l2_a"] = 0.003
    alerts = run(g)
    assert [a.evidence["channel"] for a in only(alerts, "SENSOR_FAULT")] == ["i_l2_a"]
    assert only(alerts, "ERR_PHASE_IMBALANCE_01") == [] and only(alerts, "ERR_IMBAL_LIMIT_EXCEEDED") == []


def test_supply_outage_is_information_and_pauses_current_rules(commercial):
    f = commercial.copy()
    w = window(f, T, 2)
    f.loc[w, ["v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "i_n_a", "p_kw", "q_kvar", "s_kva"]] = 0.0
    alerts = run(f)
    assert [a.code for a in alerts] == ["INFO_SUPPLY_OUTAGE"] and alerts[0].severity == "info"
    assert covers(alerts[0], f, w, 5)


def test_firmware_drift_and_register_reset(residential):
    f = residential.copy()
    de = f.e_kwh.diff().fillna(0).to_numpy()
    w = (f.ts >= "2025-01-10T00:00Z").to_numpy()
    de[w] *= 0.8  # the register under-registers by 20 % from day 5
    f["e_kwh"] = f.e_kwh.iloc[0] + np.cumsum(de)
    alerts = only(run(f), "WARN_FIRMWARE_DRIFT")
    assert len(alerts) == 1 and alerts[0].evidence["deviation"] < -0.15
    g = residential.copy()
    at = (g.ts >= "2025-01-10T06:00Z").to_numpy()
    g.loc[at, "e_kwh"] -= g.loc[at, "e_kwh"].iloc[0] - 0.01  # reset to ~0 after a firmware update
    assert only(run(g), "WARN_FIRMWARE_DRIFT") == []


def test_lost_readings_in_bursts_are_not_firmware_drift():
    # A home's bursts (kettle, oven) with the reading at each of the day's five biggest peaks
    # lost: the register counted that energy, the power readings around the gap did not see it.
    from tests.detect.conftest import healthy

    f = healthy("residential", days=10, seed=3)
    later = f[f.ts >= "2025-01-10"]
    peaks = later.groupby(later.ts.dt.floor("D")).p_kw.nlargest(5).index.get_level_values(1)
    assert only(run(f.drop(index=peaks)), "WARN_FIRMWARE_DRIFT") == []


def test_packet_loss_versus_jitter_and_duplicates(residential):
    f = residential.copy()
    rng = np.random.default_rng(1)
    w = window(f, T, 12)
    drop = w & (rng.random(len(f)) < 0.3)
    alerts = only(run(f[~drop]), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1 and alerts[0].evidence["missing_share"] > 0.15
    g = residential.copy()
    g["ts"] = g.ts + pd.to_timedelta(rng.uniform(-3, 3, len(g)), unit="s")
    assert only(run(g), "ALRM_PKT_LOSS_CRIT") == []


def test_packet_loss_from_the_first_reading_is_described(residential):
    # Loss in the meter's first hours: the alert starts at its first reading, which has no gap
    # before it (describe once crashed on that NaN).
    # (The readings of its first 2.5 h after the first are lost: a data gap, which its first
    # reading borders; pkt: a share's window ends at its reading, so a scattered loss is evidence
    # only once min_expected readings are behind it, never at the first reading.)
    f = residential.copy()
    t0 = f.ts.min()
    early = ((f.ts > t0) & (f.ts < t0 + pd.Timedelta(hours=4))).to_numpy()
    drop = early & (np.random.default_rng(1).random(len(f)) < 0.4)
    drop[1:31] = True
    alerts = only(run(f[~drop]), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1 and pd.Timestamp(alerts[0].start) == t0
    assert alerts[0].evidence["missing_readings"] == int(drop.sum())


def test_packet_loss_at_exactly_the_limit_is_not_more_than_it(residential):
    # SPEC: more than 5 % of the expected readings. Four lost an hour apart are 4 of the 80 a
    # window expects at 5 minutes (5 % exactly, whatever the jitter): not a failing link. A fifth
    # in the same hours is 6 %: it is.
    f = residential.copy()
    f["ts"] = f.ts + pd.to_timedelta(np.random.default_rng(4).uniform(-3, 3, len(f)), unit="s")
    k = int(np.flatnonzero(window(f, T, 1))[0])
    four = [k, k + 12, k + 24, k + 36]
    assert only(run(f.drop(index=four)), "ALRM_PKT_LOSS_CRIT") == []
    alerts = only(run(f.drop(index=four + [k + 48])), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1 and alerts[0].evidence["worst_window_share"] > 0.05


def test_thermal_drift(commercial):
    f = commercial.copy()
    w = window(f, T, 6)
    f.loc[w, "temp_c"] += np.linspace(0, 15, w.sum())
    alerts = only(run(f), "WARN_THERM_DRIFT")
    assert len(alerts) == 1 and alerts[0].evidence["excess_c"] > 8


def test_a_device_cooling_inside_an_outage_is_not_thermal_drift_while_a_real_drift_is(commercial):
    # A 3-hour feeder outage at full load: the load vanishes and the enclosure cools with a lag
    # (3 h) longer than the thermal model's; the model's prediction falls faster than the device
    # cools, and the old rule read the difference as heat its load did not explain (15 °C). With
    # no supply there is no heat source: the outage explains the temperature for its span and the
    # cooling lag after it. A real drift the next day is still found.
    f = commercial.copy()
    w = window(f, "2025-01-09T12:00Z", 3)
    rows = np.flatnonzero(w)
    for c in ("v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "i_n_a", "p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] = 0.0
    t0 = f.temp_c[rows[0] - 1]
    f.loc[w, "temp_c"] = 20.0 + (t0 - 20.0) * np.exp(-5.0 * np.arange(1, len(rows) + 1) / 180.0)
    drift = window(f, "2025-01-10T09:00Z", 6)
    f.loc[drift, "temp_c"] += np.linspace(0, 15, drift.sum())
    alerts = run(f)
    assert len(only(alerts, "INFO_SUPPLY_OUTAGE")) == 1
    therm = only(alerts, "WARN_THERM_DRIFT")
    assert len(therm) == 1, [(a.start, a.end) for a in therm]
    ts = f.ts[drift]
    assert ts.min() <= pd.Timestamp(therm[0].start) and pd.Timestamp(therm[0].end) <= ts.max() + pd.Timedelta(hours=1)
    assert therm[0].evidence["excess_c"] > 8


def test_a_load_that_falls_away_cools_with_the_device_lag_not_a_coarse_one():
    # A shop (enclosure time constant 80 min) whose load ran 80 % higher for two days: every
    # evening the load falls away at closing and the device cools with its own lag. With time
    # constants 15, 45 and 120 min to choose from the model took 45 min, cooled faster than the
    # device and read the difference as heat its load did not explain (7 °C for an hour).
    from scipy.signal import lfilter

    from tests.detect.conftest import HEALTHY
    from wattwatch.detect.registry import build
    from wattwatch.sim import SimConfig, simulate

    sim = simulate(SimConfig(meters=1, days=6, seed=7, commercial_share=1.0, **HEALTHY))
    f, m = sim["frame"].reset_index(drop=True), sim["meters"][0]
    assert 75 < m["tau_min"] < 85
    cols = ["i_l1_a", "i_l2_a", "i_l3_a"]
    w = window(f, "2025-01-10T00:00Z", 48)
    heat = m["rise_c"] * (f[cols].max(axis=1).to_numpy() / m["rated_a"]) ** 2  # the simulator's physics
    a = np.exp(-5 / m["tau_min"])
    f["temp_c"] += lfilter([1 - a], [1, -a], np.where(w, heat * (1.8 ** 2 - 1), 0.0))
    f.loc[w, cols] *= 1.8
    assert only(run(f, ["thermal_drift"]), "WARN_THERM_DRIFT") == []
    det = build("thermal_drift").fit(f[f.ts < f.ts.min() + pd.Timedelta(days=3)])
    assert 60 <= det.state_[m["meter_id"]]["tau_min"] <= 90


def test_harmonic_noise_alerts_and_silences_current_rules(commercial):
    f = commercial.copy()
    w = window(f, T, 4)
    f.loc[w, "thd_i_pct"] = 55.0
    rng = np.random.default_rng(2)
    for c in ("i_l1_a", "i_l2_a", "i_l3_a"):  # distorted RMS readings scatter
        f.loc[w, c] *= 1 + rng.normal(0, 0.15, w.sum())
    alerts = run(f)
    assert [a.code for a in alerts] == ["STATUS_SIGNAL_NOISY"]


def test_frozen_readings(residential):
    f = residential.copy()
    w = window(f, T, 4)
    first = np.flatnonzero(w)[0]
    cols = [c for c in f.columns if c not in ("meter_id", "ts")]
    f.loc[w, cols] = f.loc[first - 1, cols].to_numpy()
    alerts = only(run(f), "WARN_CONSUMPTION_ANOMALY")
    assert len(alerts) == 1 and alerts[0].evidence["kind"] == "frozen_readings"


def test_baseline_deviation_on_a_lasting_drop():
    from tests.detect.conftest import healthy

    f = healthy("residential", days=12, seed=9)
    w = (f.ts >= "2025-01-13T00:00Z").to_numpy()
    for c in ("i_l1_a", "i_n_a", "p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] *= 0.4  # a tap before the meter takes 60 % of the load
    # ... and the meter's register counts 40 % of it from then on too.
    de = f.e_kwh.diff().fillna(0).to_numpy()
    f["e_kwh"] = f.e_kwh.iloc[0] + np.cumsum(np.where(w, 0.4 * de, de))
    alerts = only(run(f), "WARN_BASELINE_DEVIATION")
    assert alerts and "below" in alerts[0].message
    # Found within three days. Since baseline_macd judges a day against the day-to-day spread
    # measured out of sample (a real home's days differ by a third; 85 of 98 false alerts on the
    # real-load-shape fleet were ordinary busy or quiet days), one day at -60 % on a home is no
    # longer enough on its own: the sustained and week windows find it (before: within 36 h).
    assert pd.Timestamp(alerts[0].start) < pd.Timestamp("2025-01-16T00:00Z")


def test_baseline_deviation_does_not_echo_an_open_ct():
    # Three days of a dead CT after a busy hour: the engine blanks what the sensor rule explains,
    # and the return to normal afterwards is not a deviation (the blanked hours once carried the
    # last judged hour's deviation into both averages for three days).
    from tests.detect.conftest import healthy

    f = healthy("residential", days=14, seed=9)
    busy = ((f.ts >= "2025-01-13T08:00Z") & (f.ts < "2025-01-13T09:00Z")).to_numpy()
    for c in ("i_l1_a", "i_n_a", "p_kw", "q_kvar", "s_kva"):
        f.loc[busy, c] *= 4  # oven and kettle in the hour before the CT fails
    w = ((f.ts >= "2025-01-13T09:00Z") & (f.ts < "2025-01-16T11:05Z")).to_numpy()
    for c in ("i_l1_a", "p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] = 0.0
    alerts = run(f)
    assert only(alerts, "SENSOR_FAULT")
    assert only(alerts, "WARN_BASELINE_DEVIATION") == []


def _motor_start(f: pd.DataFrame, rows: np.ndarray, factor: float = 3.0, pf_motor: float = 0.35) -> None:
    """Phase L1 of a three-phase meter catches a motor's inrush in ``rows``: current x factor at a
    low power factor, and the neutral the three phasors then really carry."""
    i = f.loc[rows, ["i_l1_a", "i_l2_a", "i_l3_a"]].to_numpy(float)
    v = f.loc[rows, ["v_l1_v", "v_l2_v", "v_l3_v"]].to_numpy(float)
    pf = np.repeat(f.loc[rows, "pf"].to_numpy(float)[:, None], 3, axis=1)
    i[:, 0] *= factor
    pf[:, 0] = pf_motor
    angle = np.deg2rad(np.array([0.0, -120.0, 120.0]))[None, :] - np.arccos(pf)
    f.loc[rows, ["i_l1_a", "i_l2_a", "i_l3_a"]] = i
    f.loc[rows, "i_n_a"] = np.abs((i * np.exp(1j * angle)).sum(axis=1))
    f.loc[rows, "pf"] = (v * i * pf).sum(axis=1) / (v * i).sum(axis=1)


def test_motor_starts_in_consecutive_readings_are_not_a_neutral_fault(commercial, monkeypatch):
    f = commercial.copy().reset_index(drop=True)
    at = np.flatnonzero(window(f, T, 1))
    starts = np.concatenate([at[:2], at[6:8]])  # twice two starts in a row: runs the post-rule keeps
    # A starting motor's power factor is 0.2-0.4; at 0.35 the angle shift on this meter (its
    # normal split over the phases is not even, so its learned neutral spread is wider) stays in
    # the rule's ambiguous band even unfiltered, and the counterfactual below proved nothing.
    _motor_start(f, starts, pf_motor=0.25)
    assert only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED") == []
    # Judged as ordinary readings, the inrush's angle shift reads as a neutral deficit.
    import wattwatch.detect.rules.neutral as neutral

    monkeypatch.setattr(neutral, "inrush", lambda df: np.zeros(len(df), bool))
    assert len(only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED")) >= 1


def test_inrush_marks_motor_starts_not_bursts_or_steps(commercial, residential):
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.rules._common import inrush

    f = commercial.copy().reset_index(drop=True)
    at = np.flatnonzero(window(f, T, 1))
    _motor_start(f, at[[0, 1, 6]])
    step = np.flatnonzero(window(f, "2025-01-10T03:00:00Z", 3))
    f.loc[step, ["i_l1_a", "i_l2_a", "i_l3_a"]] *= 4  # a load that switches on and stays on
    got = np.flatnonzero(inrush(prepare(f)))
    assert set(got) == {at[0], at[1], at[6]}
    r = residential.copy().reset_index(drop=True)
    k = int(np.flatnonzero(window(r, T, 1))[3])
    r.loc[k, "i_l1_a"] *= 6  # a kettle caught in one reading: resistive, the power factor rises
    r.loc[k, "pf"] = 0.99
    assert not inrush(prepare(r)).any()
    r.loc[k, "pf"] = 0.4  # the same spike, inductive: a starting motor
    assert np.flatnonzero(inrush(prepare(r))).tolist() == [k]



def test_the_middle_of_three_motor_starts_in_a_row_is_a_start(commercial):
    """Three starts caught in consecutive readings (a motor that needs three tries; seen on a
    simulated steel plant at rest: L3 at 4-5x for 15 minutes, power factor 0.40, 0.56, 0.58 against
    0.93 either side, and the neutral rule alerted on the last two as a partial earth return). The
    middle one's nearest neighbours are both starts, so its power factor does not drop below
    theirs; per side the higher of the two nearest does, and the middle start is marked (main: not).
    The first and the last are not: each has two starts on one side, as far as the test looks."""
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.rules._common import inrush

    f = commercial.copy().reset_index(drop=True)
    at = np.flatnonzero(window(f, T, 1))
    three = at[[3, 4, 5]]
    _motor_start(f, three, factor=4.5, pf_motor=0.25)
    got = set(np.flatnonzero(inrush(prepare(f))))
    assert three[1] in got
    alerts = only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert alerts == [], [(a.start, a.end, a.evidence) for a in alerts]

# ------------------------------------------------------------------ coarse cadence: readings are snapshots

HOURLY_DAYS = 16


def run_week(frame, names=None):
    """Detect with each meter profiled on its first week (a week of hourly readings holds every
    day of the week; three days would leave the weekend unprofiled)."""
    from wattwatch.detect.engine import EngineConfig, detect
    from wattwatch.detect.registry import build_all

    return detect(frame, build_all(names) if names else None, EngineConfig(profile_days=7.0)).alerts


def hourly(kind: str, meters: int = 1, seed: int = 5, **kw) -> pd.DataFrame:
    """Healthy meters read every hour (the simulator's 5-minute world, one snapshot an hour)."""
    from tests.detect.conftest import HEALTHY
    from wattwatch.sim import SimConfig, simulate

    cfg = {**HEALTHY, **kw}
    return simulate(SimConfig(meters=meters, days=HOURLY_DAYS, seed=seed, step="60min",
                              commercial_share=1.0 if kind == "commercial" else 0.0, **cfg))["frame"]


def test_random_single_losses_at_hourly_cadence_are_not_packet_loss():
    # 5 % of a few hours of hourly readings is one reading: a meter that loses one every day or two
    # is not failing (with 2 of 24 readings lost, the old 20-hour window alerted).
    f = hourly("residential", seed=3)
    lone = np.arange(80, len(f) - 10, 17)  # one reading lost every 17 hours
    assert only(run_week(f.drop(index=lone)), "ALRM_PKT_LOSS_CRIT") == []
    # A link failing for a day (40 % lost) is, and the alert spans the loss, not 40 hours around it.
    g = f.copy()
    day = window(g, "2025-01-15T00:00Z", 24)
    drop = day & (np.random.default_rng(2).random(len(g)) < 0.4)
    alerts = only(run_week(g[~drop]), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1
    lost = g.ts[drop]
    assert pd.Timestamp(alerts[0].start) >= lost.min() - pd.Timedelta(hours=4)
    assert pd.Timestamp(alerts[0].end) <= lost.max() + pd.Timedelta(hours=4)


def test_an_hourly_meter_silent_for_four_hours_is_a_data_gap_but_two_lost_hours_are_not():
    # Three hourly readings lost in a row (no reading for 4 h) on an otherwise regular meter: a
    # link down, not random single losses, though 3 of the 80-h window's readings is under
    # min_lost (q56; the plain labels' gap: no reading for max(4 cadences, 1 h)). Two in a row
    # (3 h) are what a healthy real hourly meter shows now and then: not an alert.
    f = hourly("residential", seed=3)
    k = int(np.flatnonzero(window(f, "2025-01-12T10:00Z", 1))[0])
    two = only(run_week(f.drop(index=[k, k + 1])), "ALRM_PKT_LOSS_CRIT")
    assert two == []
    alerts = only(run_week(f.drop(index=[k, k + 1, k + 2])), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1
    a = alerts[0]
    assert a.evidence["kind"] == "data_gap" and a.evidence["gap_readings"] == 3
    assert pd.Timestamp(a.start) == f.ts[k - 1] and pd.Timestamp(a.end) >= f.ts[k + 3] - pd.Timedelta(seconds=1)
    # The same three lost at a stamp jitter of seconds, and two such gaps a day apart: each alone.
    g = f.copy()
    g["ts"] = g.ts + pd.to_timedelta(np.random.default_rng(4).uniform(-2, 2, len(g)), unit="s")
    alerts = only(run_week(g.drop(index=[k, k + 1, k + 2, k + 30, k + 31, k + 32])), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 2 and all(x.evidence["kind"] == "data_gap" for x in alerts)


def test_a_half_hourly_meter_silent_for_two_hours_is_a_data_gap_whatever_its_learned_cadences_seconds():
    # rev56: at 30 minutes, three lost in a row are four cadences, 2 h: exactly gap_s. The learned
    # cadence is the median of jittered gaps, a hair either side of 1,800 s; at 1,799.98 s the
    # four cadences were 0.1 s short of 2 h and the gap went unreported on one meter of two.
    from wattwatch.detect.engine import EngineConfig, profile
    from wattwatch.detect.frame import prepare
    from wattwatch.detect import core, registry

    parts = []
    for m, seed in (("A", 0), ("B", 2), ("C", 4), ("D", 3)):
        n = 6 * 48
        ts = pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(
            np.arange(n) * 1800.0 + np.random.default_rng(seed).uniform(-2, 2, n), unit="s")
        f = pd.DataFrame({"meter_id": m, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
        parts.append(f.drop(index=[150, 151, 152]))
    frame = pd.concat(parts, ignore_index=True)
    dets = registry.build_all(["packet_loss"])
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    cads = {m: dets[0].state_[m]["cadence_s"] for m in "ABCD"}
    assert min(cads.values()) < 1800.0 < max(cads.values()), cads   # both sides are exercised
    alerts = core.run(frame, dets).alerts
    assert sorted((a.meter_id, a.evidence["kind"], a.evidence["gap_readings"]) for a in alerts) == \
        [(m, "data_gap", 3) for m in "ABCD"], cads


def test_a_packet_loss_state_stored_before_gap_lost_asks_for_no_refit(tmp_path, residential):
    import json

    import duckdb

    from wattwatch.detect import registry
    from wattwatch.detect import state as state_mod
    from wattwatch.detect.frame import prepare

    det = registry.build("packet_loss").fit(prepare(residential))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [det]) == 1
    old = json.loads(con.execute("SELECT settings FROM meter_state").fetchone()[0])
    old.pop("gap_lost"), old.pop("gap_s")
    con.execute("UPDATE meter_state SET settings = ?", [json.dumps(old, sort_keys=True)])
    for params, refit in (({}, False), ({"gap_lost": 0}, False), ({"cadence_share": 0.7}, True)):
        notices = state_mod.load(con, [registry.build("packet_loss", params)], list(det.state_))
        assert any("other settings" in n for n in notices) == refit, (params, notices)


def test_a_clock_change_sized_gap_at_15_minutes_is_not_a_data_gap(residential):
    # A logger clock jumping to daylight time skips an hour: at 15 minutes 08:45 -> 10:00, four
    # "lost" readings where nothing is lost (PVDAQ system 50 each March). The gap rule asks for 2 h
    # (q56), which the window's share finds at 15 minutes anyway; at 5 minutes three lost in a row
    # are 20 minutes.
    from tests.detect.conftest import HEALTHY
    from wattwatch.sim import SimConfig, simulate

    f = simulate(SimConfig(meters=1, days=HOURLY_DAYS, seed=3, step="15min", commercial_share=0.0,
                           **HEALTHY))["frame"]
    k = int(np.flatnonzero(window(f, "2025-01-12T10:00Z", 1))[0])
    assert only(run_week(f.drop(index=[k, k + 1, k + 2, k + 3])), "ALRM_PKT_LOSS_CRIT") == []
    alerts = only(run_week(f.drop(index=list(range(k, k + 7)))), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1 and alerts[0].evidence["kind"] == "data_gap"
    r = residential.copy()
    j = int(np.flatnonzero(window(r, T, 1))[0])
    assert only(run(r.drop(index=[j, j + 1, j + 2])), "ALRM_PKT_LOSS_CRIT") == []


def test_motor_starts_in_consecutive_hourly_readings_are_not_a_phase_imbalance():
    # Two motor starts caught on L1 in consecutive hourly snapshots read as a 100 % imbalance for
    # an hour (the 3-reading persistence that kept them out at 5 minutes asks for 2 at hourly).
    f = hourly("commercial", seed=4)
    for k in np.flatnonzero(window(f, "2025-01-15T10:00Z", 2)):
        f.loc[k, "i_l1_a"] *= 4.0
        f.loc[k, "pf"] = 0.4
    assert only(run_week(f), "ERR_PHASE_IMBALANCE_01") == []


def test_firmware_drift_at_hourly_cadence():
    # A home's bursty load read hourly: a snapshot that caught a kettle stands for an hour of boiling
    # while the register counted a few minutes of it. Healthy registers must not alarm ...
    f = hourly("residential", meters=6, seed=7, motor_starts_per_day=24.0)
    assert only(run_week(f), "WARN_FIRMWARE_DRIFT") == []
    # ... and a register under-registering by 25 % for three days is found, where it is.
    m = f.meter_id.iloc[0]
    g = f[f.meter_id == m].sort_values("ts").reset_index(drop=True)
    de = g.e_kwh.diff().fillna(0).to_numpy()
    w = window(g, "2025-01-15T00:00Z", 72)
    g["e_kwh"] = g.e_kwh.iloc[0] + np.cumsum(np.where(w, 0.75 * de, de))
    alerts = only(run_week(g), "WARN_FIRMWARE_DRIFT")
    assert len(alerts) == 1 and alerts[0].evidence["deviation"] < -0.15
    assert pd.Timestamp(alerts[0].end) <= pd.Timestamp("2025-01-18T12:00Z")


def test_baseline_deviation_at_hourly_cadence_reads_the_register():
    # Motor starts and kettles caught by hourly snapshots are not a consumption anomaly ...
    f = hourly("residential", meters=4, seed=6, motor_starts_per_day=24.0)
    assert only(run_week(f), "WARN_BASELINE_DEVIATION") == []
    # ... while a tap taking 60 % of the load for four days is (power and register alike).
    g = f[f.meter_id == f.meter_id.iloc[0]].sort_values("ts").reset_index(drop=True)
    w = window(g, "2025-01-15T00:00Z", 96)
    for c in ("i_l1_a", "i_n_a", "p_kw", "q_kvar", "s_kva"):
        g.loc[w, c] *= 0.4
    de = g.e_kwh.diff().fillna(0).to_numpy()
    g["e_kwh"] = g.e_kwh.iloc[0] + np.cumsum(np.where(w, 0.4 * de, de))
    alerts = only(run_week(g), "WARN_BASELINE_DEVIATION")
    assert alerts and "below" in alerts[0].message


def _power_only(step: str, days: float, seed: int = 0) -> pd.DataFrame:
    """A logger that reports power alone at ``step`` (a building's or a PV system's export)."""
    ts = pd.date_range("2025-01-06", periods=int(days * 86400 / pd.Timedelta(step).total_seconds()), freq=step,
                       tz="UTC")
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"meter_id": "logger", "ts": ts, "p_kw": 50 + 5 * rng.standard_normal(len(ts))})


@pytest.mark.parametrize("step,start,hours", [("60min", "2025-01-20T04:00Z", 25),     # both edges 25 h apart
                                              ("60min", "2025-01-20T04:00Z", 24 * 60),  # two months
                                              ("15min", "2025-01-20T14:00Z", 12.25),   # beyond half the window
                                              ("5min", "2025-01-20T14:00Z", 30)])
def test_a_long_data_gap_is_reported_as_such_at_any_cadence(step, start, hours):
    """A logger that stops for 12 h, a day or months: one ALRM_PKT_LOSS_CRIT spanning the gap, from
    the last reading before it to the first after, evidence kind data_gap (before: nothing; the
    reading before a gap longer than half the window saw no loss, and edges more than a day apart
    were split by the bridge into two one-reading blips)."""
    f = _power_only(step, days=14 + hours / 24 + 7)
    gap = window(f, start, hours)
    f = f[~gap].reset_index(drop=True)
    before = f.ts[f.ts < pd.Timestamp(start)].max()
    after = f.ts[f.ts > pd.Timestamp(start)].min()
    got = run(f, ["packet_loss"])
    assert len(got) == 1, [(a.start, a.end, a.message) for a in got]
    a = got[0]
    assert a.code == "ALRM_PKT_LOSS_CRIT" and a.evidence["kind"] == "data_gap"
    assert pd.Timestamp(a.start) == before and pd.Timestamp(a.end) == after
    assert pd.Timestamp(a.evidence["gap_start"]) == before and pd.Timestamp(a.evidence["gap_end"]) == after
    assert abs(a.evidence["gap_hours"] - (after - before).total_seconds() / 3600) < 0.01


def _one_second_meter(jitter_s: float, hours: float = 8.0, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    ts = pd.Timestamp("2025-01-06T00:00Z") + pd.to_timedelta(np.arange(n) + rng.uniform(-jitter_s, jitter_s, n), unit="s")
    f = pd.DataFrame({"meter_id": "S-1", "ts": ts, "p_kw": 1.0 + 0.1 * rng.random(n), "v_l1_v": 230.0,
                      "i_l1_a": 4.5})
    return f.sort_values("ts", kind="stable").reset_index(drop=True)


def test_stamps_jittering_by_much_of_the_cadence_are_not_packet_loss():
    # A 1-s logger whose stamps jitter by +-0.45 s: gaps of up to 1.9 s, each once read as a lost
    # reading (27 % "missing" on a simulated 1-s fleet with every reading there). A gap is a loss
    # beyond what the meter's shortest gap says its jitter allows, and a window never loses more
    # than it expects beyond what it holds; a real 30-minute outage is still 8 % of 6 h.
    f = _one_second_meter(0.45)
    assert only(run(f, ["packet_loss"]), "ALRM_PKT_LOSS_CRIT") == []
    cut = window(f, "2025-01-06T03:00Z", 0.5)
    alerts = only(run(f[~cut], ["packet_loss"]), "ALRM_PKT_LOSS_CRIT")
    assert len(alerts) == 1 and 1750 <= alerts[0].evidence["missing_readings"] <= 1810
    # ... and it spans the outage, not the hours of jittered gaps around it.
    assert alerts[0].start >= "2025-01-06T02:59" and alerts[0].end <= "2025-01-06T03:31"


def _school(days: int = 10, seed: int = 3, load_from: str = "2025-01-13", factor: float = 2.0) -> pd.DataFrame:
    """A three-phase building whose profiled week drew 32-40 A following the time of day (the
    ambient's daily cycle too), and ``factor`` times that from ``load_from`` (a term starting); its
    enclosure (time constant 75 min, 13 °C rise at 100 A) follows the simulator's physics, in an
    ambient with a daily cycle and a slow drift."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-06", periods=days * 288, freq="5min", tz="UTC")
    h = (ts.hour + ts.minute / 60).to_numpy()
    i = 36 + 4 * np.sin(2 * np.pi * (h - 9) / 24) + rng.normal(0, 1.0, len(ts))
    i = np.where(ts >= pd.Timestamp(load_from, tz="UTC"), factor * i, i)
    drift = lfilter([1 - np.exp(-5 / 240)], [1, -np.exp(-5 / 240)], rng.normal(0, 5.0, len(ts)))
    amb = 21 + 3 * np.sin(2 * np.pi * (h - 9) / 24) + drift
    a = np.exp(-5 / 75)
    drive = amb + 13 * (i / 100) ** 2
    temp = lfilter([1 - a], [1, -a], drive, zi=[a * drive[0]])[0] + rng.normal(0, 0.15, len(ts))
    return pd.DataFrame({"meter_id": "school", "ts": ts, "v_l1_v": 230.0, "v_l2_v": 230.0, "v_l3_v": 230.0,
                         "i_l1_a": i, "i_l2_a": i, "i_l3_a": i, "p_kw": 3 * 0.23 * i * 0.95, "pf": 0.95,
                         "temp_c": temp})


def _worst(det, f: pd.DataFrame) -> float:
    from wattwatch.detect.frame import prepare

    excess, _, limit = det._excess(prepare(f[f.ts >= "2025-01-13"]))
    return float(np.nanmax(excess / limit))


def test_a_load_far_beyond_a_narrow_profiled_range_is_judged_with_its_heating_uncertain():
    """A week whose load hardly varied, and varied with the time of day (which the ambient's daily
    cycle also explains), leaves the heating coefficient undetermined (fitted -4 to +10 for a true
    2.1 on these eight buildings); a load twice as high then extrapolates that error fourfold (I^2),
    and the old limit read 16-19 °C as heat the load did not explain on two of them (on the
    real-shape fleet, seed 43: a school whose load doubled, 3 alerts). The limit now counts the
    coefficient's standard error (widened for the residuals' autocorrelation) times how far the
    heating is from the profiled one: none. At the load it was profiled on, a 12 °C drift is found
    as before on every building."""
    from wattwatch.detect.registry import build

    for seed in range(8):
        f = _school(seed=seed)
        det = build("thermal_drift").fit(f[f.ts < "2025-01-13"])
        assert det.state_["school"]["heat_se"] > 1.0
        assert _worst(det, f) < 1.0, seed
        g = _school(seed=seed, factor=1.0)
        det = build("thermal_drift").fit(g[g.ts < "2025-01-13"])
        assert _worst(det, g) < 0.5, seed
        w = window(g, "2025-01-14T08:00Z", 8)
        g.loc[w, "temp_c"] += np.linspace(0, 12, w.sum())
        assert _worst(det, g) > 2.0, seed


def test_a_partial_earth_return_under_a_harmonic_neutral_is_found_by_its_held_departure(commercial):
    """An office whose neutral is mostly triplen harmonics (THD 16-20 %): a quarter of its busiest
    phase's return current goes to earth for two days. Inside a neutral the harmonics dominate, the
    measured neutral moves by 3-9 % of the phase current, well under the 15 % that a few degrees of
    unknown angle between phases allow, so a reading judged alone is not over the limit. Held for
    an hour it is far outside the meter's own neutral-vs-phase relation (its learned spread per
    load level is ~1 %): one alert over the two days; the same meter healthy raises none."""
    f = healthy("commercial", days=8)
    i = f[["i_l1_a", "i_l2_a", "i_l3_a"]].to_numpy()
    pf = f["pf"].to_numpy()
    thd = 16 + 4 * (1 - i.mean(axis=1) / i.mean(axis=1).max())

    def neutral(rows, scale=(1.0, 1.0, 1.0)):
        ang = np.deg2rad([0.0, -120.0, 120.0])[None, :] - np.arccos(pf[rows])[:, None]
        fundamental = np.abs((i[rows] * np.asarray(scale) * np.exp(1j * ang)).sum(axis=1))
        triplen = 3 * thd[rows] / 100 * 0.6 * i[rows].mean(axis=1)  # the third harmonic adds in the neutral
        return np.sqrt(fundamental ** 2 + triplen ** 2)

    f["thd_i_pct"] = thd
    f["i_n_a"] = neutral(np.ones(len(f), bool))
    assert only(run(f), "ERR_IMBAL_LIMIT_EXCEEDED") == []
    w = window(f, "2025-01-10T00:00:00Z", 48)
    scale = np.ones(3)
    scale[np.argmax(i.mean(axis=0))] = 0.75
    g = f.copy()
    g.loc[w, "i_n_a"] = neutral(w, scale)
    moved = (g["i_n_a"] - f["i_n_a"])[w] / i[w].mean(axis=1)
    assert 0.02 < np.median(moved) < 0.08 and np.quantile(moved, 0.95) < 0.15
    alerts = only(run(g), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert len(alerts) == 1 and covers(alerts[0], g, w, slack_min=12 * 60)
    ev = alerts[0].evidence
    assert ev["kind"] == "partial_earth_return" and ev["phases"] == 3 and ev["held_departure_share"] > 0.5


def test_neutral_level_settings_from_a_config_file_are_checked_and_whole(commercial):
    """``level_bins`` as a config file may give it: 4.0 is 4 levels (it failed in np.bincount),
    0 is refused naming the key (it failed in the fit with an IndexError)."""
    from wattwatch.detect.registry import build
    from wattwatch.errors import ConfigError

    with pytest.raises(ConfigError, match="level_bins"):
        build("neutral_tamper", {"level_bins": 0})
    d = build("neutral_tamper", {"level_bins": 4.0, "persist_min_n": 12.0})
    assert d.config.level_bins == 4 and isinstance(d.config.level_bins, int)
    assert isinstance(d.config.persist_min_n, int)
    d.fit(commercial)
    assert len(next(iter(d.state_.values()))["level_bias"]) == 4


def test_a_single_phase_bypass_over_two_hourly_readings_counts_the_one_that_caught_a_motor_start():
    """At hourly cadence a two-hour neutral bypass is two readings; a motor start caught in one of
    them (seed 7's 60-minute fleet, M-00022) must not leave it out. On a single-phase meter the
    neutral carries the phase's own current, inrush or not (the angle shift that makes a
    three-phase start read as a neutral deficit has no other phase to shift against), and a CT
    saturating on the start reads a partial deficit, not none: I_N at 0.01 A under an 18 A start
    is a bypass, while a start whose neutral reads 60 % of the phase stays unjudged."""
    f = hourly("residential", seed=3).reset_index(drop=True)
    w = np.flatnonzero(window(f, "2025-01-15T09:00Z", 2))
    assert len(w) == 2
    k = 8.0 / f.loc[w, "i_l1_a"]
    for c in ("p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] *= k
    f.loc[w, "i_l1_a"] = 8.0
    f.loc[w[0], "i_l1_a"] = 18.0  # the motor's start, inductive
    f.loc[w[0], "pf"] = 0.4
    f.loc[w, "i_n_a"] = 0.01
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.rules._common import inrush

    assert inrush(prepare(f))[w[0]]  # the snapshot is recognised as a start
    alerts = only(run_week(f), "ERR_IMBAL_LIMIT_EXCEEDED")
    assert len(alerts) == 1 and alerts[0].evidence["kind"] == "neutral_bypass"
    from wattwatch.detect.registry import build

    g = hourly("residential", seed=3).reset_index(drop=True)
    k = int(np.flatnonzero(window(g, "2025-01-15T09:00Z", 1))[0])
    g.loc[k, "i_l1_a"], g.loc[k, "pf"] = 18.0, 0.4
    g.loc[k, "i_n_a"] = 0.6 * 18.0  # a saturating CT's partial deficit
    d = build("neutral_tamper").fit(g[g.ts < pd.Timestamp("2025-01-13", tz="UTC")])
    assert np.isnan(d.score(g).loc[k])


def test_held_departures_of_meters_at_different_cadences_are_judged_in_one_pass(commercial, monkeypatch):
    """Each meter's held departure is the trailing median over its own window (an hour, or 12 of
    its readings where they take longer): three office meters read every 5, 10 and 15 minutes
    (windows of 1, 2 and 3 hours), one with a partial earth return, are judged in one rolling pass
    over the fleet (not one per distinct window), each meter's held departure what it is judged
    alone."""
    import wattwatch.detect.rules.neutral as neutral
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.registry import build

    meters = []
    for k, every in enumerate((1, 2, 3)):
        m = commercial.iloc[::every].copy()
        m["meter_id"] = f"M-{k}"
        if k == 1:  # a fifth of L1's return current to earth for a day
            w = window(m, "2025-01-10T00:00:00Z", 24)
            m.loc[w, "i_n_a"] = m.loc[w, "i_n_a"] + 0.2 * m.loc[w, "i_l1_a"]
        meters.append(m)
    fleet = prepare(pd.concat(meters, ignore_index=True))
    fit_on = fleet[fleet.ts < pd.Timestamp("2025-01-09", tz="UTC")]
    calls = []
    real = neutral.grouped_rolling
    monkeypatch.setattr(neutral, "grouped_rolling", lambda *a, **k: calls.append(1) or real(*a, **k))
    held = build("neutral_tamper").fit(fit_on).scored(fleet).ctx[-1]
    assert len(calls) == 1
    assert np.isfinite(held).sum() > 0.9 * len(held) and np.nanmax(held) >= 1.0
    seg = fleet["_seg"].to_numpy()
    for k, m in enumerate(meters):
        alone = prepare(m.reset_index(drop=True))
        d = build("neutral_tamper").fit(alone[alone.ts < pd.Timestamp("2025-01-09", tz="UTC")])
        assert np.array_equal(d.scored(alone).ctx[-1], held[seg == k], equal_nan=True)
