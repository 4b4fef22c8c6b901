"""The edge tamper state machine on simulated waveforms: the three tamper kinds found, no trip on
the look-alikes (leakage, motor starts, LED/SMPS harmonics, voltage sags), the same decision as
the batch rule on the same RMS values, and 24 h of leakage on the RMS-per-cycle path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.edge.meter import EdgeMeter
from wattwatch.edge.metrology import Cycles, Metrology
from wattwatch.edge.simulate import Waveform
from wattwatch.edge.tamper import TamperConfig, TamperMachine


def run(scenario, fs=3200.0, seconds=120.0, seed=1, phases=1, **cfg):
    w = Waveform(scenario, seconds=seconds, fs=fs, seed=seed, phases=phases)
    m = EdgeMeter("M-1", w.channels, fs, TamperConfig(**cfg), t0=w.t0)
    for b in w.blocks(0.5):
        m.feed(b)
    return w, m


def tamper_events(m):
    return [e for e in m.events if e["status"] in ("tamper", "cleared")]


@pytest.mark.parametrize("fs", [3200.0, 6400.0])
@pytest.mark.parametrize("scenario,kind", [("bypass", "neutral_bypass"), ("partial_earth_return", "partial_earth_return"),
                                          ("intermittent_bypass", "neutral_bypass")])
def test_tamper_kinds_are_found_after_the_persistence_time(fs, scenario, kind):
    w, m = run(scenario, fs=fs, seconds=200.0)
    ev = tamper_events(m)
    assert [e["status"] for e in ev] == ["tamper", "cleared"], ev
    start, end = w.events[0]["start_s"], w.events[0]["end_s"]
    t_in = (pd.Timestamp(ev[0]["cycle_end"]).timestamp() - w.t0)
    # Entered once ΔI has been over the limit for 30 s (the intermittent one adds up across its
    # 3-s breaks), started where the fault started, cleared 60 s after it ended.
    assert pd.Timestamp(ev[0]["cycle_start"]).timestamp() - w.t0 == pytest.approx(start, abs=0.05)
    on = 30.0 if scenario != "intermittent_bypass" else 30.0 + 2 * 3.0
    assert t_in == pytest.approx(start + on, abs=0.1)
    assert pd.Timestamp(ev[1]["cleared_at"]).timestamp() - w.t0 == pytest.approx(end + 60.0, abs=3.1)
    assert ev[0]["kind"] == kind and ev[1]["kind"] == kind
    assert ev[0]["delta_a"] > (7 if kind == "neutral_bypass" else 2)
    assert ev[0]["evidence"]["thd_i_pct"] is not None and ev[0]["evidence"]["freq_hz"] == pytest.approx(50, abs=0.1)
    if scenario == "intermittent_bypass":
        assert ev[0]["evidence"]["episodes"] >= 3


@pytest.mark.parametrize("scenario", ["normal", "leakage", "motor_starts", "led_smps", "voltage_sags"])
def test_look_alikes_never_trip_even_without_persistence(scenario):
    for seed in (1, 2):
        _, m = run(scenario, seconds=120.0, seed=seed, persistence_s=0.0)
        assert tamper_events(m) == [], (seed, tamper_events(m)[:1])
        assert m.machine.counts["over"] == 0


def test_the_exclusions_are_what_keeps_motor_starts_and_harmonics_from_tripping():
    # Without the inrush exclusion, the neutral CT's saturation during a start is a neutral deficit.
    _, m = run("motor_starts", persistence_s=0.0, inrush_max_s=0.0, step_rel=100.0, inrush_min_a=1000.0)
    assert tamper_events(m)
    # Judged on the RMS ΔI instead of the fundamental, the LED load's harmonics read as a diversion;
    # with the spectrum, it is a noisy signal and no tamper.
    _, m = run("led_smps", persistence_s=0.0, noisy_thd_pct=1000.0)
    assert tamper_events(m)
    _, m = run("led_smps", persistence_s=0.0)
    assert tamper_events(m) == []
    noisy = [e for e in m.events if e["status"] == "signal_noisy"]
    assert len(noisy) == 1 and noisy[0]["evidence"]["h3_pct"] > 60 and noisy[0]["evidence"]["thd_i_pct"] > 80


def test_three_phase_partial_earth_return_and_bypass():
    _, m = run("partial_earth_return", phases=3, fs=6400.0, seconds=100.0)
    ev = tamper_events(m)
    assert [e["status"] for e in ev] == ["tamper"] and ev[0]["kind"] == "partial_earth_return"
    assert ev[0]["evidence"]["phases"] == 3
    # A bypassed neutral carries no phase's return: I_N ≈ 0 while the phases imply one.
    w, m = run("bypass", phases=3, fs=3200.0, seconds=40.0, persistence_s=5.0)
    ev = tamper_events(m)
    assert [e["status"] for e in ev] == ["tamper"] and ev[0]["kind"] == "neutral_bypass"
    assert ev[0]["evidence"]["i_n_a"] < 0.1 and ev[0]["evidence"]["expected_i_n_a"] > 1.0
    # An LED load on three phases: triplen harmonics add up in the neutral; noisy, no tamper and
    # no earth leakage (judged on the fundamental).
    _, m = run("led_smps", phases=3, seconds=15.0, persistence_s=0.0)
    assert tamper_events(m) == [] and m.machine.counts["leakage"] == 0 and m.machine.noisy_state
    _, m = run("normal", phases=3, seconds=60.0, persistence_s=0.0)
    assert tamper_events(m) == []


def test_same_decision_as_the_batch_rule_on_the_same_rms_values():
    """Batch, live and edge agree: per-cycle RMS values judged by the machine and the same values
    as 1-s readings judged by the batch rule give the same scores."""
    from wattwatch.detect.frame import prepare
    from wattwatch.detect.rules.neutral import NeutralTamper

    rng = np.random.default_rng(3)
    n = 3000
    i_l = np.exp(np.cumsum(rng.normal(0, 0.01, n))) * rng.choice([0.4, 3.0, 12.0])
    i_l = np.concatenate([i_l[:1000] * 0.15, i_l[1000:2000], i_l[2000:] * 4])  # light, mid, heavy load
    share = np.tile(np.repeat([0.0, 0.003, 0.03, 0.1, 0.3, 1.0], 50), 10)       # healthy .. bypass
    i_n = i_l * (1 - share) + rng.normal(0, 0.01, n)
    i_n = np.abs(i_n)
    idx = np.arange(n)
    nan = np.full(n, np.nan)
    cyc = Cycles(index=idx, v=np.full(n, 230.0), i_l=i_l, i_ph=i_l[:, None], i_n=i_n, expected=i_l,
                 delta=np.abs(i_l - i_n), delta_fund=np.abs(i_l - i_n), residual=np.abs(i_l - i_n), thd=np.full(n, 3.0),
                 h3=nan, h5=nan, h7=nan, freq=np.full(n, 50.0))
    edge = TamperMachine(TamperConfig(), 0.02).judge(cyc)
    df = pd.DataFrame({"meter_id": "M", "ts": pd.date_range("2026-01-01", periods=n, freq="1s", tz="UTC"),
                       "i_l1_a": i_l, "i_n_a": i_n, "v_l1_v": 230.0, "thd_i_pct": 3.0})
    det = NeutralTamper()
    det.state_ = {"M": {"phases": 1}}
    batch = det._score(prepare(df)).values
    # The edge leaves out cycles in which the load stepped and the inrush_max_s after a start (here
    # the two load steps, 3 s each); the batch rule's inrush test looks at readings either side.
    judged = ~edge.surge
    assert judged.mean() > 0.88
    assert np.allclose(edge.score[judged], batch[judged], equal_nan=True)
    assert np.isfinite(batch).sum() > 1000 and (batch >= 1).sum() > 300 and (batch < 1).sum() > 300


def test_rms_per_cycle_path_equals_the_waveform_path_and_24h_of_leakage_never_trips():
    w = Waveform("leakage", seconds=86400.0, fs=3200.0, seed=3)
    n = 300 * 50
    wave = Metrology(w.channels, w.fs).feed(w.samples(0, int(300 * w.fs)))
    rms = w.cycles(0, n)
    for f in ("i_l", "i_n", "delta", "delta_fund", "residual"):
        d = np.abs(getattr(wave, f) - getattr(rms, f))
        assert np.percentile(d, 99) < 0.005, f          # within 5 mA but at load steps inside a cycle
    a = TamperMachine(TamperConfig(), 0.02).judge(wave)
    b = TamperMachine(TamperConfig(), 0.02).judge(rms)
    same = (np.isnan(a.score) == np.isnan(b.score)) & ((a.score >= 1) == (b.score >= 1))
    assert same.mean() > 0.99 and not (a.score >= 1).any()
    # 24 h of 25 mA leakage, 4.32 million cycles, persistence 0: no trip.
    m = TamperMachine(TamperConfig(persistence_s=0.0), 0.02, w.t0)
    events = []
    total = int(86400 * 50)
    for c0 in range(0, total, 200_000):
        events += m.step(w.cycles(c0, min(total, c0 + 200_000)))
    assert m.counts["cycles"] == total and events == [] and m.counts["over"] == 0
    assert m.counts["leakage"] == 0   # 25 mA: normal leakage, all day


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"\[tamper\]: unknown key\(s\) \['persistance_s'\]"):
        TamperConfig.from_dict({"persistance_s": 3})
    with pytest.raises(ValueError, match="persistence_s must be a number"):
        TamperConfig.from_dict({"persistence_s": "30"})
    cfg = TamperConfig.from_dict({"persistence_s": 5, "neutral": {"abs_limit_a": 0.7}})
    assert cfg.persistence_s == 5.0 and cfg.neutral.abs_limit_a == 0.7
    # The batch rule's held departure (a meter's learned relation) has no edge counterpart: its
    # keys are refused, not accepted and ignored.
    for key in ("level_bins", "persist_s"):
        with pytest.raises(ValueError, match=rf"\[tamper\]\.neutral: \['{key}'\] tune the batch rule"):
            TamperConfig.from_dict({"neutral": {key: 4}})



def test_the_held_departures_imbalance_widening_keys_are_refused_at_the_edge():
    """``fund_share_q`` and ``fund_share_floor`` tune the batch rule's held departure (how its
    allowance widens where the phases stand further apart than in the profile); the edge judges
    each cycle on its own and has no held departure, so they are refused like ``level_bins`` (main:
    ``fund_share_q`` was accepted and ignored)."""
    for key in ("fund_share_q", "fund_share_floor"):
        with pytest.raises(ValueError, match=rf"\[tamper\]\.neutral: \['{key}'\] tune the batch rule"):
            TamperConfig.from_dict({"neutral": {key: 0.5}})

def test_a_diversion_under_a_non_linear_load_is_still_found():
    """On noisy cycles ΔI is judged on the fundamental: a diversion takes a share of the whole
    current, fundamental included, so it is still a tamper (while the LED load alone is not)."""
    w = Waveform("led_smps", seconds=60.0, fs=3200.0, seed=2)
    x = w.samples()
    x[int(20 * w.fs):, 2] *= 0.7            # 30 % of the return current to earth from 20 s
    m = EdgeMeter("M-1", w.channels, w.fs, TamperConfig(persistence_s=10.0), t0=w.t0)
    m.feed(x)
    ev = tamper_events(m)
    assert [e["status"] for e in ev] == ["tamper"] and ev[0]["kind"] == "partial_earth_return"
    assert ev[0]["evidence"]["noisy"] and ev[0]["cycle_start"].endswith("00:00:20.000Z")


@pytest.mark.parametrize("scenario", ["motor_starts", "voltage_sags"])
def test_a_stretch_of_samples_is_the_same_however_it_is_cut(scenario):
    """The simulator only looks at the motor runs and sags that overlap a stretch (so a day costs
    the same per second as a minute): a start or a sag across a block boundary is in both blocks."""
    w = Waveform(scenario, seconds=60.0, fs=3200.0, seed=4)
    whole = w.samples()
    n = int(0.37 * w.fs)
    cut = np.concatenate([w.samples(a, a + n) for a in range(0, w.n_samples, n)])
    # Sensor noise is seeded per stretch: compare the noise-free model through the voltage and
    # the phase current's envelope instead of sample for sample.
    env = lambda x: np.sqrt(np.convolve(x ** 2, np.ones(64) / 64, "valid"))
    for ch in (0, 1, 2):
        assert np.allclose(env(whole[:, ch]), env(cut[:, ch]), atol=0.05 if ch else 1.0), ch


def test_leakage_under_30_ma_is_normal_above_it_is_counted_and_never_tamper():
    """``leak_normal_a`` decides: 25 mA of leakage reads normal even at 15-18 A, where the two
    sensors' 0.2 % gain mismatch alone leaves ~40 mA of residual; 150 mA reads above normal (and
    counted) at light and heavy load alike; neither trips, even at persistence 0."""
    for leak, expect in ((None, "normal"), (0.15, "above_normal")):
        for seed in (1, 3):            # last load 18.4 A and 1.1 A
            w = Waveform("leakage", seconds=40.0, fs=3200.0, seed=seed)
            if leak is not None:
                w.leak_a = leak
            m = EdgeMeter("M-1", w.channels, w.fs, TamperConfig(persistence_s=0.0), t0=w.t0)
            for b in w.blocks(1.0):
                m.feed(b)
            st = m.status()
            judged = m.machine.counts["cycles"] - m.machine.counts["surge"]
            assert st["earth_leakage"] == expect and m.events == [] and m.machine.counts["over"] == 0, (seed, st)
            assert m.machine.counts["leakage"] == (0 if leak is None else judged), m.machine.counts
    # A stricter limit is config: 25 mA is then above normal at light load.
    w = Waveform("leakage", seconds=20.0, fs=3200.0, seed=3)
    m = EdgeMeter("M-1", w.channels, w.fs, TamperConfig(leak_normal_a=0.015), t0=w.t0)
    m.feed(w.samples())
    assert m.status()["earth_leakage"] == "above_normal" and m.events == []


def test_the_vectorised_harmonics_switches_equal_the_cycle_by_cycle_loop():
    """Blocks with no fault pending follow the noisy/clean runs with numpy; the same cycles stepped
    one by one (``vector_noisy = False``) give the same events and the same state, whatever the
    block sizes, with noisy stretches, outages and a bypass in between."""
    rng = np.random.default_rng(7)
    n = 40_000
    # Stretches of 0.1-20 s: clean, noisy (THD 80 %), unsupplied, or bypassed (ΔI = the load).
    kinds = rng.choice(4, size=400, p=[0.45, 0.4, 0.1, 0.05])
    lens = rng.integers(5, 1000, size=400)
    lab = np.repeat(kinds, lens)[:n]
    i_l = np.full(n, 8.0)
    i_n = np.where(lab == 3, 0.0, i_l - 0.02)
    nan = np.full(n, np.nan)
    cyc = Cycles(index=np.arange(n), v=np.where(lab == 2, 0.0, 230.0), i_l=i_l, i_ph=i_l[:, None], i_n=i_n,
                 expected=i_l, delta=np.abs(i_l - i_n), delta_fund=np.abs(i_l - i_n), residual=np.abs(i_l - i_n),
                 thd=np.where(lab == 1, 80.0, 3.0), h3=nan, h5=nan, h7=nan, freq=np.full(n, 50.0))
    cfg = TamperConfig(persistence_s=2.0, clear_s=3.0, noisy_s=2.0)
    runs = []
    for vector in (True, False):
        m = TamperMachine(cfg, 0.02, 0.0)
        m.vector_noisy = vector
        cuts = np.cumsum(np.random.default_rng(1).integers(1, 700, size=n))
        cuts = np.concatenate([[0], cuts[cuts < n], [n]])
        ev = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            part = Cycles(**{f: getattr(cyc, f)[a:b] for f in ("index", "v", "i_l", "i_n", "expected", "delta",
                                                              "delta_fund", "residual", "thd", "h3", "h5", "h7",
                                                              "freq")}, i_ph=cyc.i_ph[a:b])
            ev += m.step(part)
        runs.append(([(e["status"], e["event"], e["cycle_start"], e["cycle_end"]) for e in ev],
                     (m.state, m.noisy_state, round(m.noisy_run_s, 6), round(m.clean_run_s, 6))))
    assert runs[0] == runs[1]
    statuses = [e[0] for e in runs[0][0]]
    assert statuses.count("signal_noisy") > 10 and statuses.count("tamper") > 2, statuses


def test_a_clean_block_between_two_short_noisy_stretches_resets_the_noisy_run():
    """1.5 s noisy, then a whole clean block (the fast path that steps nothing), then 1 s noisy:
    never 2 s in a row, so no signal_noisy (the clean block used to leave the 1.5 s standing)."""
    def block(first, k, thd):
        i = np.full(k, 8.0)
        nan = np.full(k, np.nan)
        return Cycles(index=np.arange(first, first + k), v=np.full(k, 230.0), i_l=i, i_ph=i[:, None], i_n=i - 0.02,
                      expected=i, delta=np.full(k, 0.02), delta_fund=np.full(k, 0.02), residual=np.full(k, 0.02),
                      thd=np.full(k, thd), h3=nan, h5=nan, h7=nan, freq=np.full(k, 50.0))
    m = TamperMachine(TamperConfig(noisy_s=2.0), 0.02, 0.0)
    ev = m.step(block(0, 75, 80.0)) + m.step(block(75, 50, 3.0)) + m.step(block(125, 50, 80.0))
    assert ev == [] and not m.noisy_state and m.noisy_run_s == pytest.approx(1.0)
    ev = m.step(block(175, 50, 80.0))                       # 2 s in a row now
    assert [e["status"] for e in ev] == ["signal_noisy"]
