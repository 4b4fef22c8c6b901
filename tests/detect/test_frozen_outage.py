"""Issue 14 (fz2): a logger frozen on a supply outage's last reading is no outage.

Fleet 1319 at 15 min, M-00112: an outage of 1.5 h, then the logger kept sending the outage's last
reading bit for bit for 45 h (V = I = P = 0, the register, and a temperature that had moved at every
reading until then) while the load ran on. It was read as one supply outage of 2,820 min and no rule
reported the freeze (``frozen_readings`` leaves all-zero readings to the outage rule). On a meter whose
temperature moved between nearly all consecutive profiled readings (``temp_moves``, learned) at 5 min
or coarser, zeros repeating *with the temperature* are the frozen logger's: ``supply_outage`` does not
judge a repeated reading (the outage ends at its last reading with news) and ``frozen_readings``
reports the run from its ``STALE_RUN_N``-th repeat. A real outage (the temperature moving, now and then
one repeat), a coarse temperature (whole degrees), none, and a 1-s meter whose 0.01-degree temperature
repeats through a real outage stay as before. Batch and a stream in pieces alike; a lone NaN in one
channel does not split a frozen run; a state stored before ``temp_moves`` is profiled again."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.detect.test_stitch_calm import _compare
from wattwatch.detect import core, registry
from wattwatch.detect.base import Detector
from wattwatch.detect import state as state_mod
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare

T0 = pd.Timestamp("2025-01-06", tz="UTC")
CAD = 900.0
DAYS = 4
OUT_H = 60.0        # the outage starts at hour 60 of the frame
OUT_N = 6           # readings of the real outage (1.5 h)
FROZEN_N = 48       # readings the logger repeats the outage's last one (12 h)
I0 = int(OUT_H * 3600 / CAD)   # the outage's first reading
STALE_RUN_N = 6     # _common.STALE_RUN_N (not imported: the file runs on code before it too)


def _meter(name: str, seed: int, frozen: bool, temp: str = "fine", real_n: int = OUT_N,
           repeat_at: tuple[int, ...] = (), cad: float = CAD, days: float = DAYS,
           out_h: float = OUT_H) -> pd.DataFrame:
    """A single-phase meter every ``cad`` s (stamps jittered by 2 s, 0.2 s at 1 s): 230 V, ~1.2 kW, the
    register and a temperature (``"fine"``: 0.01 degree C steps with the sensor's noise, moving every
    reading; ``"coarse"``: whole degrees; ``"smooth"``: 0.01 degree C steps without noise during the
    outage; ``"none"``), ``real_n`` readings of supply lost from ``out_h`` (the temperature cooling),
    then, if ``frozen``, the last of them repeated bit for bit ``FROZEN_N`` times while the load ran on.
    ``repeat_at``: readings of the outage whose temperature repeats the one before (a fine sensor's
    occasional repeat)."""
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / cad)
    k = np.arange(n)
    jit = min(2.0, cad / 5)
    ts = T0 + pd.to_timedelta(k * cad + rng.uniform(-jit, jit, n), unit="s")
    day = 86400 / cad
    p = 1.2 + 0.4 * np.sin(2 * np.pi * k / day) + rng.normal(0, 0.05, n)
    v = np.round(230 + rng.normal(0, 1, n), 1)
    t = 25 + 2 * np.sin(2 * np.pi * k / day) + rng.normal(0, 0.2, n)
    i0 = int(out_h * 3600 / cad)
    off = np.zeros(n, bool)
    off[i0:i0 + real_n] = True
    cool = t[i0 - 1] - np.linspace(0.5, 3.0, real_n)
    t[i0:i0 + real_n] = cool + (0 if temp == "smooth" else rng.normal(0, 0.1, real_n))
    for j in repeat_at:
        t[i0 + j] = t[i0 + j - 1]
    p = np.where(off, 0.0, p)
    e = 1000 + np.cumsum(p * cad / 3600)
    f = pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": np.where(off, 0.0, v),
                      "i_l1_a": np.where(off, 0.0, np.round(p * 1000 / 230, 3)), "p_kw": np.round(p, 4),
                      "pf": np.where(off, np.nan, 0.95), "e_kwh": np.round(e, 3)})
    if temp != "none":
        f["temp_c"] = np.round(t) if temp == "coarse" else np.round(t, 2)
    if frozen:
        last = i0 + real_n - 1
        cols = [c for c in f.columns if c not in ("meter_id", "ts")]
        f.loc[last + 1:last + FROZEN_N, cols] = f.loc[last, cols].to_numpy()
    return f


def _gaps(cad: float = CAD, days: float = DAYS) -> list[pd.DataFrame]:
    """sw (fleet 1663 at 5 min, M-00118): a freeze whose 20th repeat never came (FRZGAP: the reading after
    that silence repeats the one before it, no news), and a real 56-reading outage whose 21st reading
    never came and whose 22nd has no temperature (OUTGAP: its zeros repeat, but nothing says stale)."""
    i0 = int(OUT_H * 3600 / cad)
    gap = _meter("FRZGAP", 8, True, cad=cad, days=days).drop(index=i0 + OUT_N + 19)
    out = _meter("OUTGAP", 9, False, real_n=56, cad=cad, days=days)
    out.loc[i0 + 21, "temp_c"] = np.nan
    return [gap, out.drop(index=i0 + 20)]


def _frame() -> pd.DataFrame:
    nan = _meter("FRZNAN", 6, True)   # the freeze with the temperature missing at its 20th repeat
    nan.loc[I0 + OUT_N + 19, "temp_c"] = np.nan
    return pd.concat([_meter("FRZ", 1, True), nan, _meter("OUT", 7, False, real_n=56, repeat_at=(10, 30)),
                      _meter("COARSE", 3, True, temp="coarse"), _meter("NOTEMP", 4, True, temp="none"), *_gaps()],
                     ignore_index=True)


def _dets(frame, profile_days=2.0):
    dets = registry.build_all(["supply_outage", "frozen_readings"])
    profile(prepare(frame), dets, EngineConfig(profile_days=profile_days, workers=1))
    return dets


@pytest.fixture(scope="module")
def fleet():
    frame = _frame()
    dets = _dets(frame)
    return frame, dets, core.run(frame, dets).alerts


def _got(alerts, meter, cad=CAD):
    """(detector, first reading, last reading) of the meter's alerts, readings counted from T0."""
    at = lambda x: int(round((pd.Timestamp(x) - T0) / pd.Timedelta(seconds=cad)))  # noqa: E731
    return sorted((a.detector, at(a.start), at(a.end)) for a in alerts if a.meter_id == meter)


def test_a_logger_frozen_on_an_outages_reading_is_frozen_readings_and_the_outage_ends(fleet):
    frame, dets, alerts = fleet
    first = I0 + OUT_N                     # the first repeat of the outage's last reading
    # The outage: its own 6 readings. Frozen readings: known from the STALE_RUN_N-th repeat, reported from
    # the first repeat to the last (ot: the first five are no longer in neither alert). A NaN temperature
    # in the freeze neither splits it nor brings the outage back; nor does a lost reading (FRZGAP: the
    # reading after the silence repeats the one before it; it was a one-reading outage, sw).
    for m in ("FRZ", "FRZNAN", "FRZGAP"):
        assert _got(alerts, m) == [("frozen_readings", first, first + FROZEN_N - 1),
                                   ("supply_outage", I0, first - 1)], (m, _got(alerts, m))
        a = next(a for a in alerts if a.meter_id == m and a.detector == "frozen_readings")
        assert _got([replace(a, start=a.evidence["anomalous_from"])], m) == \
            [("frozen_readings", first + STALE_RUN_N - 1, first + FROZEN_N - 1)], a.evidence
        assert a.evidence["hours"] == round((FROZEN_N - 1) * CAD / 3600, 2), a.evidence
    a = next(a for a in alerts if a.meter_id == "FRZ" and a.detector == "frozen_readings")
    assert a.code == "WARN_CONSUMPTION_ANOMALY" and a.evidence["kind"] == "frozen_readings" and a.evidence["p_kw"] == 0
    frz = next(d for d in dets if d.name == "frozen_readings")
    assert frz.state_["FRZ"]["temp_moves"] > 0.95 and frz.state_["COARSE"]["temp_moves"] < 0.5


class _NoCurrent(Detector):
    """Judges the current (as loose_ct and the sensor rules do): every reading without any is anomalous."""

    name = "no_current"
    code = "WARN_GIVEN"
    judges = ("current",)

    def _fit(self, df):
        return {}

    def _score(self, df):
        return (df["i_l1_a"].to_numpy(float) == 0).astype(float)


def test_the_repeated_readings_are_explained_as_the_outages_were(fleet):
    """The freeze's repeats (those before frozen_readings takes them too) and a real outage's lone
    repeats are not the outage's evidence any more, but no current-based rule judges them either: the
    outage explains each one (``Explains(span="reading", extra="repeated")``), as it did when they
    were its readings."""
    frame, _, _ = fleet
    dets = registry.build_all(["supply_outage", "frozen_readings"]) + [_NoCurrent()]
    profile(prepare(frame), dets, EngineConfig(profile_days=2.0, workers=1))
    assert not [a for a in core.run(frame, dets).alerts if a.detector == "no_current"]


def test_a_real_outage_a_coarse_temperature_and_no_temperature_stay_outages(fleet):
    _, _, alerts = fleet
    # 14 h of outage, the temperature moving (twice one repeat, each not judged and bridged): one outage,
    # nothing frozen. (Two repeats in a row would split it at 15 min: docs/quality-log.md fz2.)
    assert _got(alerts, "OUT") == [("supply_outage", I0, I0 + 55)], _got(alerts, "OUT")
    # ... and its evidence counts all 56 readings with the supply lost, the two repeats too (rfz2)
    assert next(a for a in alerts if a.meter_id == "OUT").evidence["readings"] == 56
    # A real outage's reading after a silence, its zeros repeating but its temperature missing, stays the
    # outage's (sw's repeat across a silence asks for the temperature on both sides): one outage.
    assert _got(alerts, "OUTGAP") == [("supply_outage", I0, I0 + 55)], _got(alerts, "OUTGAP")
    # Whole degrees (repeats while profiled) and no temperature: the frozen zeros stay the outage's.
    for m in ("COARSE", "NOTEMP"):
        assert _got(alerts, m) == [("supply_outage", I0, I0 + OUT_N + FROZEN_N - 1)], (m, _got(alerts, m))


def test_a_one_second_meter_whose_temperature_repeats_through_a_real_outage_stays_an_outage():
    """A 1-s meter, its 0.01-degree temperature moving between nearly every profiled reading (the
    sensor's noise), then a real 40-min outage in which it cools without noise: it repeats for tens
    of readings at a time (the enclosure cools by less than a step a second). No frozen readings,
    the outage one alert over its whole span (at 1 s a repeat tells nothing: not judged there)."""
    cad, n_out, out_h = 1.0, 2400, 5.0
    f = _meter("S1", 7, False, temp="smooth", real_n=n_out, cad=cad, days=0.25, out_h=out_h)
    dets = _dets(f, profile_days=0.15)
    assert next(d for d in dets if d.name == "frozen_readings").state_["S1"]["temp_moves"] > 0.95
    x = f["temp_c"].to_numpy()
    i0 = int(out_h * 3600 / cad)
    assert np.mean(x[i0 + 1:i0 + n_out] == x[i0:i0 + n_out - 1]) > 0.8   # the outage repeats its temperature
    assert _got(core.run(f, dets).alerts, "S1", cad) == [("supply_outage", i0, i0 + n_out - 1)]


def test_a_meter_profiled_at_15_min_and_read_every_minute_later_keeps_its_real_outage():
    """rfz2: the cadence bar is the learned one; a meter profiled at 15 min (its temperature moving at
    every reading) and read every minute afterwards, a real 10-h outage cooling by 0.3 degree in
    0.01-degree steps (the temperature repeats at ~95 % of its 1-min readings): one outage over its
    whole span, nothing frozen (pairs closer than half the learned cadence are no repeats to judge)."""
    a = _meter("MX", 3, False, days=2.5, real_n=0, out_h=50.0)
    b = _meter("MX", 7, False, temp="smooth", real_n=600, cad=60.0, days=0.5, out_h=1.0)
    b.loc[60:659, "temp_c"] = np.round(b.loc[59, "temp_c"] - np.linspace(0.2, 0.5, 600), 2)
    b["ts"] = b["ts"] + pd.Timedelta(days=2.5)
    b["e_kwh"] += a["e_kwh"].iloc[-1] - 1000
    f = pd.concat([a, b], ignore_index=True)
    dets = _dets(f)
    assert next(d for d in dets if d.name == "frozen_readings").state_["MX"]["cadence_s"] > 800
    got = [(a.detector, a.start, a.end) for a in core.run(f, dets).alerts]
    ts = pd.to_datetime(b["ts"], utc=True).dt.round("ms")
    assert [(d, pd.Timestamp(s), pd.Timestamp(e)) for d, s, e in got] == \
        [("supply_outage", ts.iloc[60], ts.iloc[659])], got


def test_a_lone_nan_in_one_channel_does_not_split_a_frozen_run():
    f = _meter("NAN", 5, False)
    i = int(30 * 3600 / CAD)
    cols = [c for c in f.columns if c not in ("meter_id", "ts")]
    f.loc[i + 1:i + 40, cols] = f.loc[i, cols].to_numpy()    # frozen at 1.x kW for 10 h
    f.loc[i + 20, "i_l1_a"] = np.nan
    got = _got([a for a in core.run(f, _dets(f)).alerts if a.detector == "frozen_readings"], "NAN")
    assert got == [("frozen_readings", i + 1, i + 40)], got


def test_pieces_cut_around_the_freeze_give_the_whole_runs_alerts(fleet):
    frame, dets, alerts = fleet
    t = ((pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    t0 = T0.timestamp() + OUT_H * 3600
    # one reading at a time through the outage and the freeze's first repeats, then its edges
    cuts = t0 + CAD * np.concatenate([np.arange(-1, OUT_N + STALE_RUN_N + 3) + 0.5, [20.5, 25.5, 53.5, 54.5, 56.5]])

    def pieces(frame, piece_s, seed):
        edges = [-np.inf, T0.timestamp() + 86400.0, *np.sort(cuts), np.inf]
        return [frame[(t > lo) & (t <= hi)] for lo, hi in zip(edges[:-1], edges[1:])]
    _compare(frame, dets, 0.0, 0, pieces=pieces, want=alerts)


@pytest.mark.parametrize("cad", [300.0, 3600.0])
def test_a_freeze_and_an_outage_with_a_lost_reading_streamed_in_pieces_at_5_and_60_min(cad):
    """rot: FRZGAP and OUTGAP at 5 and 60 min (the freeze reported from its first repeat, the outage one
    alert), streamed in uneven pieces of about three readings, a meter's readings now and then a piece
    late, the stitcher restarted from its checkpoint twice inside the outage and the freeze: every piece
    as the stitcher judging every meter, and in the end the batch's alerts (ids, spans, evidence)."""
    frame = pd.concat(_gaps(cad, days=5.5 if cad > 900 else 2.75), ignore_index=True)   # to past both
    dets = _dets(frame)
    want = core.run(frame, dets).alerts
    i0 = int(OUT_H * 3600 / cad)
    first = i0 + OUT_N
    assert _got(want, "FRZGAP", cad) == [("frozen_readings", first, first + FROZEN_N - 1),
                                         ("supply_outage", i0, first - 1)], _got(want, "FRZGAP", cad)
    assert _got(want, "OUTGAP", cad) == [("supply_outage", i0, i0 + 55)], _got(want, "OUTGAP", cad)
    t = ((pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    t_out = T0.timestamp() + OUT_H * 3600

    def pieces(frame, piece_s, seed):
        rng = np.random.default_rng(seed)
        edges = [-np.inf, t_out - 6 * cad]   # (the calm days before as one piece)
        while edges[-1] < t.max():
            edges.append(edges[-1] + piece_s * rng.uniform(0.3, 2.0))
        held = np.zeros(len(frame), bool)
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            now = (t > lo) & (t <= hi)
            wait = now & (frame["meter_id"].to_numpy() == ("FRZGAP", "OUTGAP")[k % 2]) & (k % 3 == 0)
            yield frame[(now & ~wait) | held]
            held = wait
    # the restarts: the pieces holding the freeze's 3rd and 20th repeats (about; the pieces are uneven)
    at = {k for k, p in enumerate(pieces(frame, 3 * cad, 1699)) if len(p) and
          any(abs(x - (t_out + cad * (OUT_N + j))) < cad for x in t[p.index] for j in (2, 19))}
    assert at
    _compare(frame, dets, 3 * cad, 1699, pieces=pieces, want=want, restart_at=at)


@pytest.mark.parametrize("name", ["frozen_readings", "supply_outage"])
def test_a_state_stored_before_temp_moves_is_profiled_again(fleet, tmp_path, name):
    import duckdb
    _, dets, _ = fleet
    d = next(d for d in dets if d.name == name)
    assert d.state_version == 2
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    keep = dict(d.state_["FRZ"])
    d.state_["FRZ"] = {**{k: v for k, v in keep.items() if k != "temp_moves"}, "state_version": 1}
    try:
        assert state_mod.save(con, [d]) >= 1
    finally:
        d.state_["FRZ"] = keep
    fresh = registry.build(name)
    notices = state_mod.load(con, [fresh], ["FRZ"])
    assert "FRZ" not in getattr(fresh, "state_", {}) and any("profiled again" in x for x in notices), notices
