"""(reg48) A channel the meter reports that goes invalid for hours is a SENSOR_FAULT of that channel.

Since fld46 ingest stores an implausible value (an energy register at -5 kWh, a value out of the
channel's range) as missing and keeps the reading: before this rule nothing said it (a 3-channel
meter has too few channels for ``frozen_readings``, no packet is lost). ``channel_invalid`` names
the channel and how long; a channel the meter never reports, one it reports only now and then,
the simulator's single NaN values and a power factor left blank without load say nothing; batch,
stitched pieces and the stream's known-score path agree at 1, 5, 15 and 60 minutes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, detect, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.stitch import Stitcher
from wattwatch.ingest.pipeline import ingest_frame
from wattwatch.store import Store

from tests.detect.test_core import ENGINE, PROFILE_DAYS, _alert_mismatches, _assert_whole_equals_stitched, \
    _epoch, _score_mismatches, _sim

STEPS = {"1min": 60, "5min": 300, "15min": 900, "60min": 3600}


def _three_channel_meter(step: str, days: float = 7.0, meter: str = "P7") -> pd.DataFrame:
    """A meter reporting power, one voltage and its energy register (rev46's example)."""
    t = pd.date_range("2026-10-01", periods=int(days * 86400 / STEPS[step]), freq=step, tz="UTC")
    k = np.arange(len(t), dtype=float)
    h = STEPS[step] / 3600
    p = 2 + np.sin(2 * np.pi * k * h / 24) + 0.1 * np.cos(k / 3.0)
    return pd.DataFrame({"meter_id": meter, "ts": t, "p_kw": p, "v_l1_v": 230 + np.cos(k / 5.0),
                         "e_kwh": 1000 + np.cumsum(p * h)})


def _run(frame: pd.DataFrame, names=("supply_outage", "channel_invalid")):
    return detect(frame, registry.build_all(list(names)), EngineConfig(profile_days=3.0, workers=1)).alerts


@pytest.mark.parametrize("step", list(STEPS))
def test_a_register_stuck_implausible_is_a_sensor_fault_naming_the_channel(step):
    f = _three_channel_meter(step)
    t = f["ts"]
    bad = (t >= "2026-10-05T06:00Z") & (t < "2026-10-05T18:00Z")
    f.loc[bad, "e_kwh"] = np.nan     # what ingest stores for -5 kWh
    alerts = [a for a in _run(f) if a.detector == "channel_invalid"]
    assert len(alerts) == 1, [a.message for a in alerts]
    a = alerts[0]
    assert a.code == "SENSOR_FAULT" and a.meter_id == "P7"
    assert a.evidence["kind"] == "channel_invalid" and a.evidence["channel"] == "e_kwh"
    assert a.evidence["channels"] == ["e_kwh"] and a.evidence["reporting"] == ["p_kw", "v_l1_v"]
    assert a.evidence["readings_missing"] == {"e_kwh": int(bad.sum())}
    assert 12 - 1.0 - 1e-9 <= a.evidence["hours"] <= 12
    assert pd.Timestamp(a.start) == t[bad].iloc[0] and pd.Timestamp(a.end) == t[bad].iloc[-1]
    assert "e_kwh" in a.message


def test_end_to_end_a_negative_register_ingested_alerts_sensor_fault(tmp_path: Path):
    # rev46's "noticed, left": the -5 kWh values are dropped at ingest; detect now says it.
    f = _three_channel_meter("15min", days=10)
    f.loc[600:647, "e_kwh"] = -5.0      # 12 h of an impossible register
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_frame(s, f)
        assert c.values_dropped == {"e_kwh": 48} and c.rejected == 0
    found = api.detect(str(tmp_path / "s.duckdb"), detectors=["packet_loss", "frozen_readings", "channel_invalid"])
    assert [(a.code, a.evidence.get("kind"), a.evidence.get("channel")) for a in found.alerts] == \
        [("SENSOR_FAULT", "channel_invalid", "e_kwh")]
    a = found.alerts[0]
    assert pd.Timestamp(a.start) == f["ts"].iloc[600] and pd.Timestamp(a.end) == f["ts"].iloc[647]


@pytest.mark.parametrize("step", list(STEPS))
def test_a_channel_never_reported_or_reported_now_and_then_says_nothing(step):
    never = _three_channel_meter(step, meter="no_e").drop(columns="e_kwh")
    sparse = _three_channel_meter(step, meter="hourly_e")
    every = max(1, 3 * 3600 // STEPS[step])          # the register read every 3 h
    sparse.loc[np.arange(len(sparse)) % every != 0, "e_kwh"] = np.nan
    if every == 1:                                   # at 60 min: given on one reading of three
        sparse.loc[np.arange(len(sparse)) % 3 != 0, "e_kwh"] = np.nan
    alerts = _run(pd.concat([never, sparse], ignore_index=True))
    assert [a for a in alerts if a.detector == "channel_invalid"] == []


@pytest.mark.parametrize("step", list(STEPS))
def test_single_nan_values_do_not_alert(step):
    # The simulator's messy NaN channels, at ten times its default rate, on a fleet with faults.
    days = 10.0 if step != "60min" else 28.0
    frame = _sim(meters=12, days=days, step=step, seed=4848, fault_share=0.9, outage_share=0.5, nan_rate=0.005)
    alerts = detect(frame, registry.build_all(["supply_outage", "channel_invalid"]), ENGINE).alerts
    assert [a.message for a in alerts if a.detector == "channel_invalid"] == []


def test_a_power_factor_left_blank_without_load_says_nothing_but_with_load_does():
    f = _three_channel_meter("5min")
    f["pf"] = 0.95
    t = f["ts"]
    night = (t >= "2026-10-04T00:00Z") & (t < "2026-10-04T06:00Z")
    f.loc[night, ["p_kw", "pf"]] = [0.0, np.nan]     # no load: no power factor to give
    assert [a for a in _run(f) if a.detector == "channel_invalid"] == []
    day = (t >= "2026-10-05T08:00Z") & (t < "2026-10-05T12:00Z")
    f.loc[day, "pf"] = np.nan                        # under load: the channel is missing
    alerts = [a for a in _run(f) if a.detector == "channel_invalid"]
    assert [(a.evidence["channel"], pd.Timestamp(a.start), pd.Timestamp(a.end)) for a in alerts] == \
        [("pf", t[day].iloc[0], t[day].iloc[-1])]


@pytest.mark.parametrize("step,piece_h", [("1min", 1.0), ("5min", 2.0), ("15min", 6.0), ("60min", 12.0)])
def test_stitched_and_streamed_pieces_equal_the_whole_history(step, piece_h):
    days = PROFILE_DAYS + (2.0 if step in ("1min", "5min") else 4.0)
    frame = _sim(meters=4, days=days, step=step, seed=4849, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    m = sorted(frame["meter_id"].unique())
    t = frame["ts"]
    t0 = t.min()
    for meter, ch, a, b in ((m[0], "e_kwh", 3.5, 4.5), (m[1], "v_l1_v", 4.0, 4.6), (m[2], "temp_c", 4.2, days)):
        sel = (frame["meter_id"] == meter) & (t >= t0 + pd.Timedelta(days=a)) & (t < t0 + pd.Timedelta(days=b))
        frame.loc[sel, ch] = np.nan
    dets = registry.build_all(["supply_outage", "channel_invalid"])
    profile(prepare(frame), dets, ENGINE)
    whole = _assert_whole_equals_stitched(frame, dets, seed=48)
    got = sorted((a.meter_id, a.evidence["channel"]) for a in whole.alerts if a.detector == "channel_invalid")
    assert got == sorted([(m[0], "e_kwh"), (m[1], "v_l1_v"), (m[2], "temp_c")])
    # The stream's path: many small pieces, each detector scoring only what it must.
    st = Stitcher(dets)
    ts = _epoch(frame["ts"])
    edges = np.arange(ts.min() + PROFILE_DAYS * 86400, ts.max() + piece_h * 3600, piece_h * 3600)
    edges = [-np.inf, *edges, np.inf]
    steps = [st.feed(frame[(ts > lo) & (ts <= hi)]) for lo, hi in zip(edges[:-1], edges[1:])]
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])


# (rev48) Channels that legitimately go quiet, and holes that only chain by the merge gap.

def _meter(step_s: int, days: float, name: str) -> pd.DataFrame:
    n = int(days * 86400 / step_s)
    t = pd.date_range("2026-10-01", periods=n, freq=f"{step_s}s", tz="UTC")
    k = np.arange(n, dtype=float)
    h = step_s / 3600
    p = 2 + np.sin(2 * np.pi * k * h / 24) + 0.1 * np.cos(k / 3.0)
    return pd.DataFrame({"meter_id": name, "ts": t, "p_kw": p, "v_l1_v": 230 + np.cos(k / 5.0), "i_l1_a": p * 4.3,
                         "e_kwh": 1000 + np.cumsum(p * h), "temp_c": 30 + np.cos(k / 7)})


@pytest.mark.parametrize("miss", [0.1, 0.3])
def test_a_flaky_channel_missing_at_random_does_not_alert(miss):
    # A logger whose temperature poll times out now and then (10 %, 30 % of readings, at random):
    # holes of one or a few readings, never hours of the channel gone.
    f = _meter(300, 10, "flaky")
    f.loc[np.random.default_rng(5).random(len(f)) < miss, "temp_c"] = np.nan
    assert [a.message for a in _run(f)] == []


def test_a_register_given_every_other_reading_with_lost_packets_does_not_alert():
    # The energy register on every second reading (exactly half: the meter's channel), 2 % of the
    # packets lost: a lost register reading leaves two readings in a row without it, never hours.
    f = _meter(60, 7, "alt")
    f.loc[np.arange(len(f)) % 2 == 1, "e_kwh"] = np.nan
    f = f[np.random.default_rng(5).random(len(f)) >= 0.02]
    assert [a.message for a in _run(f)] == []


def test_single_nan_values_on_a_one_second_meter_do_not_chain():
    # At 1 s a 1 h merge gap spans 3,600 readings: pairs of lost fields must not chain into hours.
    n = 86400
    t = pd.date_range("2026-10-01", periods=n, freq="1s", tz="UTC")
    k = np.arange(n, dtype=float)
    p = 2 + np.sin(2 * np.pi * k / 86400) + 0.1 * np.cos(k / 30)
    cols = {"p_kw": p, "q_kvar": 0.3 * p, "s_kva": 1.05 * p, "pf": 0.95 + 0 * p, "v_l1_v": 230 + np.cos(k / 50),
            "v_l2_v": 231 + np.cos(k / 50), "v_l3_v": 229 + np.cos(k / 50), "i_l1_a": p, "i_l2_a": p, "i_l3_a": p,
            "i_n_a": 0.1 + 0 * p, "e_kwh": 1000 + np.cumsum(p / 3600), "temp_c": 30 + 0 * p, "thd_i_pct": 3 + 0 * p}
    f = pd.DataFrame({"meter_id": "S1", "ts": t, **cols})
    rng = np.random.default_rng(1)
    for c in cols:
        f.loc[rng.random(n) < 0.005, c] = np.nan
    alerts = detect(f, registry.build_all(["supply_outage", "channel_invalid"]),
                    EngineConfig(profile_days=0.25, workers=1)).alerts
    assert [a.message for a in alerts if a.detector == "channel_invalid"] == []


def test_reactive_and_apparent_power_blank_without_load_say_nothing():
    # A meter that leaves q, s and pf blank when nothing flows (nights at zero load).
    f = _meter(300, 10, "zero")
    f["q_kvar"], f["s_kva"], f["pf"] = 0.3 * f["p_kw"], 1.04 * f["p_kw"], 0.96
    night = f["ts"].dt.hour < 6
    f.loc[night, ["p_kw", "i_l1_a"]] = 0.0
    f.loc[night, ["q_kvar", "s_kva", "pf"]] = np.nan
    assert [a.message for a in _run(f)] == []


def test_channels_blank_in_a_supply_outage_are_not_a_sensor_fault():
    # V and I at 0 (SPEC's outage): a meter on its reserve leaves temperature and THD blank.
    f = _meter(300, 10, "out")
    f["pf"], f["thd_i_pct"] = 0.96, 4.0
    out = (f["ts"] >= "2026-10-06T02:00Z") & (f["ts"] < "2026-10-06T09:00Z")
    f.loc[out, ["v_l1_v", "i_l1_a", "p_kw"]] = 0.0
    f.loc[out, ["pf", "thd_i_pct", "temp_c"]] = np.nan
    assert [a.detector for a in _run(f)] == ["supply_outage"]


def test_the_message_counts_the_readings_of_the_span():
    # A register stuck for 12 h while 1 reading in 10 in the middle still comes through.
    f = _meter(300, 7, "cnt")
    bad = (f["ts"] >= "2026-10-05T06:00Z") & (f["ts"] < "2026-10-05T18:00Z")
    f.loc[bad, "e_kwh"] = np.nan
    f.loc[bad & (np.arange(len(f)) % 10 == 0), "e_kwh"] = 1.0
    alerts = [a for a in _run(f) if a.detector == "channel_invalid"]
    assert len(alerts) == 1
    a = alerts[0]
    span = int(((f["ts"] >= pd.Timestamp(a.start)) & (f["ts"] <= pd.Timestamp(a.end))).sum())
    missing = int(f.loc[(f["ts"] >= pd.Timestamp(a.start)) & (f["ts"] <= pd.Timestamp(a.end)), "e_kwh"].isna().sum())
    assert a.evidence["readings"] == span and a.evidence["readings_missing"] == {"e_kwh": missing}
    assert f"{missing} of {span} readings" in a.message
