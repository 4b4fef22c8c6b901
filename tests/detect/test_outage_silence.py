"""q64: a meter that loses its supply and then falls silent (a mains-powered meter cannot report
without supply: "last gasp", then nothing until the supply is back) is one event, the outage: its
span and evidence cover the silence and packet_loss counts nothing lost in it. A meter that
reports the voltage back and then falls silent lost packets. Batch, stitched pieces cut at and
around the silence's edges, and a stitcher restarted at each cut, alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.test_packets_gap_cuts import _cut as _pieces, _restarted_at_each_cut_gives
from tests.detect.test_stitch_calm import _compare
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare

T0 = pd.Timestamp("2025-01-06", tz="UTC")


def _meter(name: str, cad_s: float, dead_h: list[float], lost_h: list[tuple[float, float]], seed: int,
           days: int = 6) -> pd.DataFrame:
    """A meter every ``cad_s`` seconds (stamps jittered by 2 s), voltage, current and power 0 at the
    readings of the hours ``dead_h`` (each one reading), without the readings from hour a to b
    (``lost_h``, b excluded)."""
    n = int(days * 86400 / cad_s)
    k = np.arange(n)
    ts = T0 + pd.to_timedelta(k * cad_s + np.random.default_rng(seed).uniform(-2, 2, n), unit="s")
    f = pd.DataFrame({"meter_id": name, "ts": ts, "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    h = k * cad_s / 3600
    f.loc[np.isin(np.round(h, 6), np.round(dead_h, 6)), ["v_l1_v", "i_l1_a", "p_kw"]] = 0.0
    keep = np.ones(n, bool)
    for a, b in lost_h:
        keep &= ~((h >= a - 1e-9) & (h < b - 1e-9))
    return f[keep]


METERS = {   # name: (cadence, dead hours, silent hours, outcome)
    "OUT": (3600.0, [50, 51], [(52, 55)], "one outage, silent 4 h, back"),
    "OUT0": (3600.0, [50, 51, 55], [(52, 55)], "one outage, silent 4 h, still lost"),
    "LONG": (3600.0, [80], [(81, 100)], "one outage, silent 20 h"),
    "TWO": (3600.0, [40, 100], [(41, 44), (101, 110)], "two outages, each with its silence"),
    "BACK": (3600.0, [50, 51], [(53, 56)], "outage, then packet loss after the voltage came back"),
    "Q15": (900.0, [60.0, 60.25], [(60.5, 62.5)], "one outage, silent 2.25 h at 15 min"),
    "B15": (900.0, [60.0, 60.25], [(60.75, 62.75)], "outage, then packet loss at 15 min"),
    "Q": (3600.0, [], [], "nothing"),
}


def _frame(supply_lost_fraction: float = 0.1):
    frame = pd.concat([_meter(m, c, d, s, i) for i, (m, (c, d, s, _)) in enumerate(METERS.items())],
                      ignore_index=True)
    dets = registry.build_all(["supply_outage", "packet_loss"],
                              {"packet_loss": {"supply_lost_fraction": supply_lost_fraction}})
    profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
    return frame, dets


@pytest.fixture(scope="module")
def fleet():
    frame, dets = _frame()
    return frame, dets, core.run(frame, dets).alerts


def _hours(a, key):
    return round((pd.Timestamp(getattr(a, key)) - T0) / pd.Timedelta(hours=1), 2)


def test_a_silence_after_a_supply_loss_is_the_outage_not_packet_loss(fleet):
    frame, dets, whole = fleet
    got = sorted((a.meter_id, a.detector, _hours(a, "start"), _hours(a, "end"),
                  a.evidence.get("silent_after_supply_loss_h"), a.evidence.get("supply_back")) for a in whole)
    assert got == sorted([
        ("OUT", "supply_outage", 50, 55, 4.0, True), ("OUT0", "supply_outage", 50, 55, 4.0, False),
        ("LONG", "supply_outage", 80, 100, 20.0, True),
        ("TWO", "supply_outage", 40, 44, 4.0, True), ("TWO", "supply_outage", 100, 110, 10.0, True),
        ("BACK", "supply_outage", 50, 51, None, None), ("BACK", "packet_loss", 52, 56, None, None),
        ("Q15", "supply_outage", 60, 62.5, 2.25, True),
        ("B15", "supply_outage", 60, 60.25, None, None), ("B15", "packet_loss", 60.5, 62.75, None, None)])
    out = next(a for a in whole if a.meter_id == "OUT")
    assert "no readings for 4.0 h" in out.message and "supply back" in out.message
    out0 = next(a for a in whole if a.meter_id == "OUT0")
    assert out0.message.startswith("supply lost on all phases for 300 min, the meter silent for 4.0 h")
    assert out.severity == "info" and out.evidence["v_l1_v_max"] == 0.0


def test_without_the_supply_test_packet_loss_reports_the_silence_as_before():
    """``supply_lost_fraction = 0``: packet_loss reports every silence (q56's alerts); the outage's
    span still covers it (its own finding)."""
    frame, dets = _frame(0.0)
    pk = sorted(a.meter_id for a in core.run(frame, dets).alerts if a.detector == "packet_loss")
    assert pk == ["B15", "BACK", "LONG", "OUT", "OUT0", "Q15", "TWO", "TWO"]


def _cuts(frame) -> list[float]:
    out = []
    for _, g in frame.groupby(frame["meter_id"].astype(str)):
        t = np.sort(((pd.to_datetime(g["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy())
        d = np.diff(t)
        for i in np.flatnonzero(d > 1.6 * np.median(d)):
            a, b = t[i], t[i + 1]
            out += [a - 1, a, a + 1, (a + b) / 2, b - 1, b, b + 1]
    return sorted(out)


def test_pieces_cut_at_and_around_the_silence_give_the_whole_historys_alerts(fleet):
    frame, dets, whole = fleet
    _compare(frame, dets, 0.0, 0, pieces=_pieces(_cuts(frame)), want=whole)


def test_a_stitcher_restarted_at_each_cut_gives_the_whole_historys_alerts(fleet):
    frame, dets, whole = fleet
    _restarted_at_each_cut_gives(frame, dets, _cuts(frame), whole)


def _odd(name: str, v: float, seed: int) -> pd.DataFrame:
    """An hourly meter with a load (4.5 A, 1 kW) whose voltage channel reads ``v`` throughout
    (0: a field the export fills with 0; 20: a scale the nominal voltage cannot be learned from, no
    reading above 50 V) and nothing from hour 52 to 56."""
    f = _meter(name, 3600.0, [], [(52, 56)], seed)
    return f.assign(v_l1_v=v)


def test_a_silence_is_packet_loss_where_the_nominal_voltage_is_unknown():
    """rev64: the silence is the outage's only where the meter's nominal voltage is known (learned
    from readings above 50 V). A meter with a load whose voltage channel reads 0 V (or 20 V) all
    along has none: every reading is under 10 % of the 230-V fallback, and before rev64 each of its
    silences was taken for the outage's and no packet loss was ever reported (main reported it).
    A 120-V and a 400-V meter: their normal readings are not a supply loss, with or without the
    nominal in packet_loss's state. A packet_loss state stored before q64 has no nominal: the
    silence after a supply loss is packet loss there as before q64 (and the outage's span covers
    it: two alerts) until the meter is fitted again."""
    # Checked alike (sound before rev64): a meter without voltage (NaN), a three-phase meter that
    # loses one phase before its silence (packet loss), and one that reports l2 and l3 as NaN and
    # loses its supply before its silence (the outage's).
    part = _meter("PART", 3600.0, [], [(51, 56)], 6).assign(v_l2_v=230.0, v_l3_v=230.0)
    part.loc[(part["ts"] - T0).dt.total_seconds().round(-2) == 50 * 3600, "v_l2_v"] = 0.0
    frame = pd.concat([_odd("Z0", 0.0, 1), _odd("Z20", 20.0, 2),
                       _meter("V120", 3600.0, [], [(52, 56)], 3).assign(v_l1_v=120.0),
                       _meter("V400", 3600.0, [], [(52, 56)], 4).assign(v_l1_v=400.0),
                       _meter("NOV", 3600.0, [], [(52, 56)], 5).assign(v_l1_v=np.nan), part,
                       _meter("SP", 3600.0, [50], [(51, 56)], 7).assign(v_l2_v=np.nan, v_l3_v=np.nan)],
                      ignore_index=True)
    for old_state in (False, True):
        dets = registry.build_all(["supply_outage", "packet_loss"])
        profile(prepare(frame), dets, EngineConfig(profile_days=1.0, workers=1))
        if old_state:
            for s in dets[1].state_.values():
                s.pop("nominal_v", None)
        alerts = core.run(frame, dets).alerts
        pk = sorted((a.meter_id, _hours(a, "start"), _hours(a, "end")) for a in alerts if a.detector == "packet_loss")
        assert pk == sorted([("NOV", 51, 56), ("PART", 50, 56), ("V120", 51, 56), ("V400", 51, 56), ("Z0", 51, 56),
                             ("Z20", 51, 56)] + ([("SP", 50, 56)] if old_state else [])), old_state
        silent = [(a.meter_id, _hours(a, "start"), _hours(a, "end")) for a in alerts
                  if "silent_after_supply_loss_h" in a.evidence]
        assert silent == [("SP", 50, 56)], old_state


def test_a_silence_the_outage_does_not_span_is_packet_loss_on_a_reconfigured_meter():
    """The two rules take a silence after a supply loss by one test (``_common.after_supply_loss``):
    on a meter learned hourly and now read every 5 minutes, a 45-minute silence after a dead reading
    is shorter than 1.5 learned cadences, so the outage does not span it, and packet_loss reports it
    (before, packet_loss dropped every gap after a dead reading and no alert covered this one)."""
    h = np.r_[np.arange(0, 48, 1.0), np.arange(48, 96, 5 / 60)]
    f = pd.DataFrame({"meter_id": "R", "ts": T0 + pd.to_timedelta(np.round(h * 3600), unit="s"),
                      "v_l1_v": 230.0, "i_l1_a": 4.5, "p_kw": 1.0})
    f.loc[np.isclose(h, 72.0), ["v_l1_v", "i_l1_a", "p_kw"]] = 0.0
    f = f[~((h > 72.0 + 1e-6) & (h < 72.75 - 1e-6))]
    dets = registry.build_all(["supply_outage", "packet_loss"])
    profile(prepare(f), dets, EngineConfig(profile_days=1.0, workers=1))
    got = sorted((a.detector, _hours(a, "start"), _hours(a, "end")) for a in core.run(f, dets).alerts)
    assert got == [("packet_loss", 72.0, 72.75), ("supply_outage", 72.0, 72.0)]
