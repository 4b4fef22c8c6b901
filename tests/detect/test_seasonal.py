"""seasonal_profile: consumption at 15-minute and hourly cadence against a day-type x time-of-day
profile learned from the whole normal period, at the level the meter has been running at."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import registry
from wattwatch.detect.engine import EngineConfig, detect


def building(weeks: int = 20, step: str = "1h", seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """An office: 100 kW on weekday working hours, 30 kW otherwise, 15 kW at weekends; noise 3 %;
    ``drift``: the level grows by this share over the whole span (a season)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=int(weeks * 7 * 86400 / pd.Timedelta(step).total_seconds()), freq=step)
    h, dow = ts.hour.to_numpy(), ts.dayofweek.to_numpy()
    base = np.where(dow >= 5, 15.0, np.where((h >= 8) & (h < 18), 100.0, 30.0))
    level = 1 + drift * np.linspace(0, 1, len(ts))
    p = base * level * (1 + 0.03 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "office", "ts": ts, "p_kw": p})


def run(df, normal_end="2024-02-26", detectors=("seasonal_profile",)):
    fitted = api.fit(df, detectors=list(detectors), normal_end=normal_end)
    return fitted, api.detect(df, state=fitted)


def test_profile_learns_weekend_structure_from_eight_weeks_and_says_so():
    fitted, res = run(building())
    st = fitted.detectors[0].get_state()["office"]
    assert st["history_days"] == 56 and st["days_by_type"] == [40, 8, 8]
    prof = np.exp(np.asarray(st["profile"])) - st["eps"]  # kept on a log scale
    assert abs(prof[0, 10] - 100) < 5 and abs(prof[1, 10] - 15) < 2  # weekday vs Saturday, 10:00
    assert res.alerts == [], [a.message for a in res.alerts]


def test_a_one_hour_drop_to_zero_is_a_single_reading_alert():
    df = building()
    hit = df.index[df.ts == pd.Timestamp("2024-03-13 11:00")][0]
    df.loc[hit, "p_kw"] = 0.0
    _, res = run(df)
    assert len(res.alerts) == 1, [a.message for a in res.alerts]
    a = res.alerts[0]
    assert a.start == a.end == "2024-03-13T11:00:00.000Z"
    assert a.evidence["single_reading"] is True and a.evidence["kind"] == "zero_reading"
    assert a.evidence["history_days"] == 56 and 0.5 < a.score <= 1


def test_a_spike_beyond_the_busiest_hours_is_found_and_so_is_a_steady_offices_lone_night_hour_at_daytime_load():
    """The office's hours never stand off each other by half in its normal weeks (a building's load:
    many devices together), so one night hour at three times its night load, back to it the next
    hour, is a spike although it stays under the busiest daytime hour (before: not judged as a
    point under the busiest hours, the gate that keeps a home's appliance hours quiet, which still
    holds for homes: ``test_a_homes_isolated_hours_are_its_routine_not_point_anomalies``)."""
    df = building()
    df.loc[df.ts == pd.Timestamp("2024-04-06 03:00"), "p_kw"] = 250.0  # a Saturday night, 2.5x the busiest hour
    df.loc[df.ts == pd.Timestamp("2024-04-10 02:00"), "p_kw"] = 90.0   # a weekday night at daytime load
    fitted, res = run(df)
    assert [(a.start, a.evidence["kind"]) for a in res.alerts] == [("2024-04-06T03:00:00.000Z", "spike"),
                                                                  ("2024-04-10T02:00:00.000Z", "spike")]
    assert all(a.evidence["single_reading"] for a in res.alerts)
    assert fitted.detectors[0].get_state()["office"]["limit_iso"] == pytest.approx(0.405)


def test_point_anomalies_are_reported_as_drops_and_spikes():
    """A one-hour dip to a quarter of the working-hours load, a two-hour dip, and a spike at three
    times the busiest hour: each one alert whose evidence says what it is (before: all three
    "single_reading" / "reading_run", which says how many readings, not what happened)."""
    df = building(seed=3)
    df.loc[df.ts == pd.Timestamp("2024-03-13 11:00"), "p_kw"] = 25.0
    df.loc[(df.ts >= pd.Timestamp("2024-03-20 10:00")) & (df.ts <= pd.Timestamp("2024-03-20 11:00")), "p_kw"] = 20.0
    df.loc[df.ts == pd.Timestamp("2024-03-27 15:00"), "p_kw"] = 300.0
    _, res = run(df)
    got = [(a.start[:13], a.evidence["kind"], a.evidence["single_reading"]) for a in res.alerts]
    assert got == [("2024-03-13T11", "drop", True), ("2024-03-20T10", "drop", False), ("2024-03-27T15", "spike", True)], got
    assert "dropping to 25" in res.alerts[0].message and "spiking to 300" in res.alerts[2].message


def test_seasonal_drift_is_followed_without_an_alert_storm():
    # +60 % over 20 weeks: a profile frozen at its first 8 weeks would flag every working hour
    # of the last weeks.
    _, res = run(building(drift=0.6))
    assert len(res.alerts) == 0, [a.message for a in res.alerts[:5]]


def test_a_frozen_meter_at_hourly_cadence_is_found():
    df = building()
    run_ = (df.ts >= "2024-03-20 09:00") & (df.ts < "2024-03-20 21:00")
    df.loc[run_, "p_kw"] = 97.3
    _, res = run(df)
    kinds = {a.evidence["kind"] for a in res.alerts}
    assert "flat_line" in kinds, [a.message for a in res.alerts]
    assert all(a.start >= "2024-03-20T09" and a.end <= "2024-03-21T03" for a in res.alerts)


def test_a_frozen_run_is_reported_from_where_the_value_froze():
    """A run just long enough to be a frozen meter was one alert on its last reading (the one that
    made it long enough; a BDG2 office's four equal hours gave a one-reading 'frozen meter'). The
    alert now spans the whole run, from its first reading, as does a longer one."""
    df = building()
    for a, b, v in (("2024-03-20 09:00", "2024-03-20 21:00", 97.3), ("2024-04-10 10:00", "2024-04-10 14:00", 96.1)):
        df.loc[(df.ts >= a) & (df.ts < b), "p_kw"] = v
    fitted, res = run(df)
    need = fitted.detectors[0].get_state()["office"]["flat_need"]
    assert need <= 4  # the second run is long enough
    got = [(a.start[:13], a.end[:13]) for a in res.alerts if a.evidence["kind"] == "flat_line"]
    assert got == [("2024-03-20T09", "2024-03-20T20"), ("2024-04-10T10", "2024-04-10T13")], got


def test_fifteen_minute_default_run_judges_consumption_and_does_not_crash():
    df = building(weeks=10, step="15min")
    hit = (df.ts >= "2024-03-06 10:00") & (df.ts < "2024-03-06 10:30")
    df.loc[hit, "p_kw"] = 0.0
    res = api.detect(df)  # default detectors, profiled on the meter's own first days
    assert any(a.detector == "seasonal_profile" and a.start <= "2024-03-06T10:15" <= a.end for a in res.alerts)
    assert any("learned_ensemble: not judged at 900 s" in n for n in res.notices)
    assert "seasonal_profile" in registry.DEFAULT_DETECTORS


@pytest.mark.parametrize("normal_end", ["2024-02-26", "2024-01-08"])  # 8 weeks; one week (short history)
def test_whole_equals_pieces_at_hourly_cadence(normal_end):
    """Scoring a piece that holds the detector's reach gives each reading the whole series' score."""
    df = pd.concat([building(weeks=16), building(weeks=16, seed=1).assign(meter_id="shop")], ignore_index=True)
    df.loc[df.ts == pd.Timestamp("2024-03-13 11:00"), "p_kw"] = 0.0
    d = registry.build("seasonal_profile").fit(df[df.ts < normal_end])
    whole = pd.Series(d.score(df).to_numpy(), index=pd.MultiIndex.from_frame(df[["meter_id", "ts"]]))
    back = d.reach(["office"]).back_s[0]
    start = pd.Timestamp("2024-04-01")
    piece = df[df.ts >= start - pd.Timedelta(seconds=back)]
    part = pd.Series(d.score(piece).to_numpy(), index=pd.MultiIndex.from_frame(piece[["meter_id", "ts"]]))
    judged = part[piece.ts.to_numpy() >= np.datetime64(start)]
    assert np.isfinite(judged).all()
    np.testing.assert_allclose(judged.to_numpy(), whole.loc[judged.index].to_numpy(), rtol=1e-9, atol=1e-12)


def test_a_one_hour_drop_on_a_meter_that_sometimes_reads_zero_is_judged_against_its_profile():
    df = building()
    df.loc[(df.ts.dt.dayofweek == 6) & (df.ts.dt.hour < 6), "p_kw"] = 0.0  # Sunday nights switched off
    df.loc[df.ts == pd.Timestamp("2024-03-13 11:00"), "p_kw"] = 2.0
    _, res = run(df)
    assert [(a.start, a.evidence["kind"]) for a in res.alerts] == [("2024-03-13T11:00:00.000Z", "drop")]


def test_a_jittery_fifteen_minute_clock_reads_each_slot_alike_and_raises_no_alarm():
    """A 15-minute meter whose clock stamps a second or two either side of the quarter hour
    (13:14:59 one day, 13:15:01 the next). Slots by the floor of the time put a Saturday's and a
    Sunday's readings in neighbouring slots; a weekend slot that saw none while learned borrowed the
    weekday's profile, and a quiet Sunday hour read as a drop to a third (the 15-min fleet's ten
    false consumption alerts). Slots by nominal time: none, and the meter's phase is in the state.
    Its measured cadence (900.07 s) makes quarter-hour slots, not 95 slots of 909 s."""
    df = building(weeks=5, step="15min", seed=3)
    rng = np.random.default_rng(4)
    df["ts"] = df["ts"] + pd.to_timedelta(rng.uniform(-2.0, 2.0, len(df)), unit="s")
    fitted, res = run(df, normal_end="2024-01-08")
    st = fitted.detectors[0].get_state()["office"]
    assert st["cadence_s"] > 900 and st["slot_s"] == 900.0  # quarter hours, though the clock measures 900.07 s
    assert abs(st["slot_phase_s"]) < 1.0
    assert res.alerts == [], [(a.start, a.message) for a in res.alerts]
    # A meter stamping mid-slot (hh:07:30 ± 2 s) learns that phase.
    df2 = df.assign(ts=df["ts"] + pd.Timedelta(seconds=450))
    fitted2, res2 = run(df2, normal_end="2024-01-08")
    ph = fitted2.detectors[0].get_state()["office"]["slot_phase_s"]
    assert abs(abs(ph) - 450) < 1.0  # half a slot: +450 and -450 are the same phase
    assert res2.alerts == [], [(a.start, a.message) for a in res2.alerts]


def test_a_weekday_run_like_the_meters_own_sunday_is_a_holiday_not_an_anomaly():
    """Easter Monday: the office runs all day as on its Sundays (15 kW). No alert (before: a run of
    readings 'off profile' from midnight, the weekday's night and working hours). A working day's
    one-hour drop to weekend load after a normal morning is still a single-reading alert, and a
    weekday at zero is not a holiday."""
    df = building(seed=5)
    rng = np.random.default_rng(1)
    hol = df.ts.dt.date == pd.Timestamp("2024-04-01").date()  # a Monday in the judged period
    df.loc[hol, "p_kw"] = 15.0 * (1 + 0.03 * rng.standard_normal(int(hol.sum())))
    drop = df.ts == pd.Timestamp("2024-04-10 11:00")  # a Wednesday, after a normal morning
    df.loc[drop, "p_kw"] = 15.0
    dead = (df.ts >= pd.Timestamp("2024-04-17 00:00")) & (df.ts < pd.Timestamp("2024-04-17 06:00"))
    df.loc[dead, "p_kw"] = 0.0
    _, res = run(df)
    got = [(a.start[:13], a.evidence["kind"]) for a in res.alerts]
    assert not [g for g in got if g[0].startswith("2024-04-01")], got
    assert ("2024-04-10T11", "drop") in got
    assert any(g[0].startswith("2024-04-17") for g in got), got


def test_repeats_a_coarse_meter_makes_by_chance_are_no_frozen_meter_but_a_frozen_day_is():
    """A household's hourly energy to 10 Wh: its night base load repeats the previous hour now and
    then (5 % of all its hours). Eight normal weeks showed runs of at most 3; later runs of 4 are chance (about
    0.8 % of readings), not a frozen meter (before: flat_line alerts, the need being the longest
    normal run + 1). A day frozen at one value still is."""
    rng = np.random.default_rng(7)
    ts = pd.date_range("2024-01-01", periods=20 * 7 * 24, freq="1h")
    h = ts.hour.to_numpy()
    night = (h < 6)
    p = np.where(night, np.round(0.15 + 0.01 * rng.integers(-2, 3, len(ts)) * (rng.random(len(ts)) < 0.8), 2),
                 np.round(0.4 + 0.3 * rng.random(len(ts)), 3))
    # Runs of at most 3 in the normal period: break longer ones.
    x = p.copy()
    for i in range(3, len(x)):
        if ts[i] < pd.Timestamp("2024-02-26") and x[i] == x[i - 1] == x[i - 2] == x[i - 3]:
            x[i] += 0.01
    df = pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": x})
    for day in ("2024-03-05", "2024-03-19", "2024-04-02"):
        run4 = (df.ts >= pd.Timestamp(f"{day} 01:00")) & (df.ts < pd.Timestamp(f"{day} 05:00"))
        df.loc[run4, "p_kw"] = 0.15
        df.loc[df.ts == pd.Timestamp(f"{day} 00:00"), "p_kw"] = 0.17  # the run is four readings long
        df.loc[df.ts == pd.Timestamp(f"{day} 05:00"), "p_kw"] = 0.13
    frozen = (df.ts >= pd.Timestamp("2024-04-20 00:00")) & (df.ts < pd.Timestamp("2024-04-21 00:00"))
    df.loc[frozen, "p_kw"] = 0.52
    fitted, res = run(df)
    flats = [a.start[:10] for a in res.alerts if a.evidence["kind"] == "flat_line"]
    assert flats == ["2024-04-20"], flats
    st = fitted.detectors[0].get_state()["home"]
    assert 0.02 < st["repeat_share"] < 0.2 and st["flat_need"] > 4


def test_an_outage_left_in_the_normal_period_does_not_make_zeros_normal():
    """Three days at zero inside the eight normal weeks (an outage nobody cut out) are one run, not
    a routine: a later dead day is one zero_run alert from its first hour to its last, and a second
    dead day three days after the meter came back is a new one (before: zeros counted as this
    meter's normal, the dead days were judged against the profile in pieces, and the second was
    'recent')."""
    df = building(seed=7)
    df.loc[(df.ts >= "2024-01-17") & (df.ts < "2024-01-20"), "p_kw"] = 0.0  # in the normal period
    df.loc[(df.ts >= "2024-03-13") & (df.ts < "2024-03-14"), "p_kw"] = 0.0  # a dead Wednesday
    df.loc[(df.ts >= "2024-03-18") & (df.ts < "2024-03-19"), "p_kw"] = 0.0  # and the next Monday
    fitted, res = run(df)
    st = fitted.detectors[0].get_state()["office"]
    assert st["zero_runs"] == 1 and st["zero_share"] > 0.002
    got = [(a.start[:13], a.end[:13], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-13T00", "2024-03-13T23", "zero_run"), ("2024-03-18T00", "2024-03-18T23", "zero_run")], got


def test_a_meter_that_rests_at_zero_every_night_is_not_alerted_for_it():
    df = building(seed=8)
    df.loc[(df.ts.dt.hour < 5), "p_kw"] = 0.0  # switched off every night, 00:00-05:00
    fitted, res = run(df)
    assert fitted.detectors[0].get_state()["office"]["zero_runs"] >= 50
    assert res.alerts == [], [(a.start, a.message) for a in res.alerts]


def london_office(weeks: int = 20, seed: int = 0) -> pd.DataFrame:
    """``building`` on a London wall clock (08:00-18:00 local all year), stamped in UTC: from the
    last Sunday of March every working hour is an hour earlier in UTC."""
    rng = np.random.default_rng(seed)
    local = pd.date_range("2024-01-01", periods=weeks * 7 * 24, freq="1h", tz="Europe/London")
    h, dow = local.hour.to_numpy(), local.dayofweek.to_numpy()
    base = np.where(dow >= 5, 15.0, np.where((h >= 8) & (h < 18), 100.0, 30.0))
    p = base * (1 + 0.03 * rng.standard_normal(len(local)))
    return pd.DataFrame({"meter_id": "office", "ts": local.tz_convert("UTC"), "p_kw": p})


def test_slots_on_the_meters_wall_clock_when_its_time_zone_is_given():
    """Without a zone (UTC slots, nothing inferred) the office's 17:00 local closing reads as a drop
    on the first working days of summer time; with ``timezone = "Europe/London"`` the profile is
    kept in local time and summer is like winter. The zone is kept in the state and the evidence."""
    df = london_office()
    plain, res = run(df)
    assert [a.evidence["kind"] for a in res.alerts if a.start >= "2024-03-31"], "UTC slots should misread DST"
    assert res.alerts[0].evidence["timezone"] == "UTC (none given)"
    zoned = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26",
                    config={"seasonal_profile": {"timezone": "Europe/London"}})
    assert zoned.detectors[0].get_state()["office"]["timezone"] == "Europe/London"
    assert api.detect(df, state=zoned).alerts == []
    df.loc[df.ts == pd.Timestamp("2024-04-10 10:00", tz="UTC"), "p_kw"] = 0.0  # 11:00 local
    got = [(a.start, a.evidence["kind"], a.evidence["timezone"]) for a in api.detect(df, state=zoned).alerts]
    assert got == [("2024-04-10T10:00:00.000Z", "zero_reading", "Europe/London")], got


def test_an_unknown_time_zone_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="timezone: unknown time zone 'Mars/Olympus'"):
        registry.build("seasonal_profile", {"timezone": "Mars/Olympus"})



def test_a_frozen_fill_left_in_the_normal_period_does_not_teach_that_frozen_days_are_normal():
    """One day of the normal period is a constant fill (the logger repeated one value for 23 h, as
    on the BDG2 Mouse site); later a 12-hour frozen run. Before: the fill set the need to the
    longest normal run + 1 (a day) and the frozen run passed. The second-longest normal run
    counts: a run seen once may be the fault itself."""
    df = building(seed=9)
    df.loc[(df.ts >= "2024-01-24 01:00") & (df.ts <= "2024-01-24 23:00"), "p_kw"] = 61.7
    df.loc[(df.ts >= "2024-03-20 09:00") & (df.ts < "2024-03-20 21:00"), "p_kw"] = 97.3
    fitted, res = run(df)
    assert fitted.detectors[0].get_state()["office"]["flat_need"] < 12
    got = [(a.start[:10], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-20", "flat_line")], got


def test_a_meter_learned_on_a_frozen_logger_still_finds_half_day_frozen_runs():
    """The whole normal period is one repeated value (a logger frozen while the meter was learned,
    as a BDG2 meter's spring); later real readings with a 14-hour frozen run. Before: the frozen
    period's repeat share (1) set the need to a whole day and the run passed. Its normal period
    says nothing about how long the meter's own readings repeat: the least need counts."""
    df = building(seed=4)
    df.loc[df.ts < "2024-02-26", "p_kw"] = 42.0
    df.loc[(df.ts >= "2024-03-20 06:00") & (df.ts < "2024-03-20 20:00"), "p_kw"] = 88.8
    fitted, res = run(df)
    st = fitted.detectors[0].get_state()["office"]
    assert st["frozen_share"] > 0.5 and st["flat_need"] == 3
    got = [(a.start[:10], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-20", "flat_line")], got


def test_a_ramp_down_two_hours_early_is_no_drop_but_a_dip_still_is():
    """One weekday the office winds down from 15:00 instead of 18:00, a smooth ramp (as a BDG2
    health building's evening did): each reading lies between its neighbours, a shift of the
    ramp in time, not a one-hour drop (before: drop alerts). A dip the same afternoon of another
    day (one reading at 40 %, its neighbours on profile) is still a drop, as is a two-hour dip."""
    df = building(seed=6)
    day = lambda d, h: (df.ts == pd.Timestamp(f"2024-{d} {h:02d}:00")).to_numpy()  # noqa: E731
    for h, v in zip(range(15, 18), (85.0, 65.0, 45.0)):
        df.loc[day("03-20", h), "p_kw"] = v
    df.loc[day("03-27", 16), "p_kw"] = 40.0
    df.loc[day("04-03", 14), "p_kw"] = 45.0
    df.loc[day("04-03", 15), "p_kw"] = 38.0
    fitted, res = run(df)
    got = [(a.start[:13], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-27T16", "drop"), ("2024-04-03T15", "drop")], got
    # The reading after it decides: the detector declares one reading of lookahead.
    det = fitted.detectors[0]
    assert det.reach(["office"]).ahead_n[0] >= 1


def test_a_stretch_run_lower_together_is_no_single_reading_drop_but_a_short_dip_still_is():
    """One weekday the office eases down to 60 % through the middle of the day and back (as a BDG2
    office on a bank holiday, a hospital's quiet Sunday): each low reading sits with neighbours
    as low as itself, a stretch off the profile, not a point (before: 'readings in a row
    dropping' alerts). Three readings at 30 % between readings on profile are still a drop."""
    df = building(seed=6)
    day = lambda d, h: (df.ts == pd.Timestamp(f"2024-{d} {h:02d}:00")).to_numpy()  # noqa: E731
    for h, f in zip(range(9, 17), (0.85, 0.7, 0.6, 0.6, 0.6, 0.6, 0.7, 0.85)):
        df.loc[day("03-14", h), "p_kw"] *= f
    for h, v in zip((10, 11, 12), (30.0, 31.0, 29.5)):  # (not one repeated value: that is a frozen run)
        df.loc[day("04-09", h), "p_kw"] = v
    _, res = run(df)
    got = [(a.start[:13], a.end[:13], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-04-09T10", "2024-04-09T12", "drop")], got


def test_hours_near_zero_are_a_drop_however_alike_they_are():
    """Near zero the log scale flattens: five night hours at 3 % of the load are each "near" their
    neighbours, and were left to the day evidence as a stretch (BDG2 school: four hours at 10.8 kWh
    where 430 were expected, reported on their last hour only). Each is judged as a reading."""
    df = building(seed=6)
    night = (df.ts >= "2024-04-16 01:00") & (df.ts < "2024-04-16 06:00")
    df.loc[night, "p_kw"] = [1.0, 1.1, 0.9, 1.05, 0.95]
    d = registry.build("seasonal_profile").fit(df[df.ts < "2024-02-26"])
    score = d.score(df).to_numpy()
    assert (score[night.to_numpy()] >= 1).all(), score[night.to_numpy()]


def swinging(weeks: int = 20, seed: int = 3) -> pd.DataFrame:
    """The office, steady while learned (to 2024-02-26), then a season in which whole days move with
    the weather: each day from 2024-03-04 on is scaled by its own factor (log-normal, 15 %)."""
    df = building(weeks=weeks, seed=seed)
    rng = np.random.default_rng(seed + 100)
    day = (df.ts - pd.Timestamp("2024-01-01")).dt.days.to_numpy()
    f = np.exp(0.15 * rng.standard_normal(day.max() + 1))
    df["p_kw"] *= np.where(df.ts >= "2024-03-04", f[day], 1.0)
    return df


def test_a_whole_day_is_unusual_against_how_the_meters_days_have_moved_lately():
    # Weeks of days swinging 15 % with the weather: a day 40 % up is one of them, not an unusual
    # day; on the steady office the same day is one (no reading alone is extreme).
    hot = (pd.Timestamp("2024-04-17"), pd.Timestamp("2024-04-18"))  # a Wednesday
    for df, expect in ((swinging(), False), (building(seed=3), True)):
        d = (df.ts >= hot[0]) & (df.ts < hot[1])
        base = df.loc[(df.ts >= hot[0] - pd.Timedelta(days=7)) & (df.ts < hot[1] - pd.Timedelta(days=7)), "p_kw"]
        df.loc[d, "p_kw"] = 1.4 * base.to_numpy() * 1.0
        _, res = run(df)
        days = [a for a in res.alerts if a.evidence["kind"] == "unusual_day"]
        on_it = [a for a in res.alerts if a.start < "2024-04-18T06" and a.end >= "2024-04-17"]
        assert bool(on_it) is expect, [(a.start, a.evidence["kind"], a.message) for a in res.alerts]
        if expect:
            assert [a.evidence["kind"] for a in on_it] == ["unusual_day"], [a.message for a in on_it]
        else:
            # none on the swings either, after the season's first day (news after steady weeks)
            assert all(a.start < "2024-03-05" for a in days), [(a.start, a.message) for a in days]


def test_zeros_that_were_a_routine_for_months_are_not_news_after_a_quiet_fortnight():
    # Midday zeros every day for eight weeks after the normal period (solar panels covering the
    # load), then two weeks without, then one zero noon: a routine, not a fault. A building that
    # never read zero still gets its one zero hour reported (the one-hour drop test above).
    df = building(weeks=22, seed=4)
    h, ts = df.ts.dt.hour, df.ts
    df.loc[(ts >= "2024-02-26") & (ts < "2024-04-22") & (h == 12), "p_kw"] = 0.0
    df.loc[ts == pd.Timestamp("2024-05-08 12:00"), "p_kw"] = 0.0
    _, res = run(df)
    late = [a for a in res.alerts if a.start >= "2024-05-01"]
    assert late == [], [(a.start, a.message) for a in late]
    first = [a for a in res.alerts if a.evidence["kind"].startswith("zero")]
    assert first and first[0].start.startswith("2024-02-26T12"), [(a.start, a.message) for a in res.alerts]


def test_the_hour_the_clock_skips_is_no_drop_when_the_zone_is_given_or_a_clock_change_sunday_is_guessed():
    # A logger on London time logs a short hour where the clocks go forward (01:00 UTC on
    # 2024-03-31); with the zone given that reading is not judged alone, the same short hour a
    # week later is a drop. Without a zone, the hours 01:00-04:00 of the Sundays the common
    # daylight-saving rules change the clocks (here Europe's last Sunday of March) are not judged
    # alone either (``dst_guess``: a local-time export's short or doubled hour); with the guess
    # off, nothing is inferred and the short hour is a drop.
    df = london_office(seed=5)
    for t in ("2024-03-31 01:00", "2024-04-07 01:00"):
        df.loc[df.ts == pd.Timestamp(t, tz="UTC"), "p_kw"] *= 0.5
    zoned = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26",
                    config={"seasonal_profile": {"timezone": "Europe/London"}})
    got = [(a.start, a.evidence["kind"]) for a in api.detect(df, state=zoned).alerts]
    assert got == [("2024-04-07T01:00:00.000Z", "drop")], got
    _, res = run(df)
    assert "2024-03-31T01:00:00.000Z" not in [a.start for a in res.alerts], [(a.start, a.message) for a in res.alerts]
    off = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26",
                  config={"seasonal_profile": {"dst_guess": False}})
    assert "2024-03-31T01:00:00.000Z" in [a.start for a in api.detect(df, state=off).alerts]


def test_the_clock_change_sundays_of_the_common_rules():
    from wattwatch.detect.baseline.seasonal import _dst_sundays

    def at(s):
        return pd.Timestamp(s, tz="UTC").value / 1e9

    hit = ["2024-03-31 01:00", "2024-10-27 02:30", "2024-03-10 02:00", "2024-11-03 01:00", "2024-04-07 03:00",
           "2024-10-06 02:00", "2024-09-29 02:00", "2016-03-27 01:00", "2016-11-06 01:59"]
    miss = ["2024-03-31 05:00", "2024-03-24 01:00", "2024-03-30 01:00", "2024-03-17 02:00", "2024-11-10 01:00",
            "2024-04-14 02:00", "2024-06-02 02:00", "2024-10-20 02:00"]
    got = _dst_sundays(np.array([at(s) for s in hit + miss]), 3600.0, 4 * 3600.0)
    assert got.tolist() == [True] * len(hit) + [False] * len(miss)


def test_a_meter_with_only_an_energy_register_is_judged_on_its_hourly_energy():
    # An hourly AMI export with the register alone: judged on the register's steps (mean kW), so a
    # dead hour (the register standing still) is found; a register reset is no consumption.
    df = building(seed=6)
    e = np.cumsum(df["p_kw"].to_numpy())  # kWh at each hour's end
    t0 = int(np.flatnonzero(df.ts == pd.Timestamp("2024-03-13 11:00"))[0])
    e[t0:] -= df["p_kw"].to_numpy()[t0]  # the 11:00 hour counted nothing
    reg = pd.DataFrame({"meter_id": "office", "ts": df.ts, "e_kwh": e})
    fitted, res = run(reg)
    st = fitted.detectors[0].get_state()["office"]
    assert st["from_register"] is True and st["lacks"] == [] and st["history_days"] == 56
    got = [(a.start, a.evidence["kind"], a.evidence["source"]) for a in res.alerts]
    assert got == [("2024-03-13T11:00:00.000Z", "zero_reading", "e_kwh register (mean kW per interval)")], got
    assert res.alerts[0].message.startswith("p_kw from e_kwh:")
    # with power present the register is not used
    fitted, _ = run(df.assign(e_kwh=e))
    assert fitted.detectors[0].get_state()["office"]["from_register"] is False


def test_whole_equals_pieces_on_a_register_only_meter():
    df = building(weeks=16)
    df = pd.DataFrame({"meter_id": "office", "ts": df.ts, "e_kwh": np.cumsum(df["p_kw"].to_numpy())})
    d = registry.build("seasonal_profile").fit(df[df.ts < "2024-02-26"])
    assert d.get_state()["office"]["from_register"] is True
    whole = pd.Series(d.score(df).to_numpy(), index=df.ts)
    back = d.reach(["office"]).back_s[0]
    start = pd.Timestamp("2024-04-01")
    piece = df[df.ts >= start - pd.Timedelta(seconds=back)]
    part = pd.Series(d.score(piece).to_numpy(), index=piece.ts)
    judged = part[part.index >= start]
    assert np.isfinite(judged).all()
    np.testing.assert_allclose(judged.to_numpy(), whole.loc[judged.index].to_numpy(), rtol=1e-9, atol=1e-12)


def test_a_steady_load_the_register_counted_is_no_frozen_meter_but_a_frozen_power_reading_is():
    """A home's hourly energy as its 1-Wh register's step (OPSD: power = the register's hourly
    difference, float noise included): five night hours at the same 0.375 kWh, each counted by the
    register, are a steady load (before: a "frozen meter" alert); the same power held while the
    register goes on counting what was used is a frozen reading."""
    rng = np.random.default_rng(5)
    ts = pd.date_range("2024-01-01", periods=20 * 7 * 24, freq="1h")
    h = ts.hour.to_numpy()
    p = np.round(np.where((h >= 1) & (h < 6), 0.38, 0.9) + 0.2 * rng.random(len(ts)), 3)
    held = (ts >= pd.Timestamp("2024-04-03 01:00")) & (ts < pd.Timestamp("2024-04-03 06:00"))
    used = p.copy()
    p[held] = 0.375
    reg = 25_000 + np.cumsum(p)  # a large register: its differences carry float noise
    counted = pd.DataFrame({"meter_id": "home", "ts": ts, "e_kwh": reg, "p_kw": np.r_[np.nan, np.diff(reg)]})
    _, res = run(counted)
    assert [a.start for a in res.alerts if a.evidence["kind"] == "flat_line"] == [], [a.message for a in res.alerts]
    frozen = counted.assign(e_kwh=25_000 + np.cumsum(used), p_kw=np.where(held, 0.375, counted.p_kw))
    _, res = run(frozen)
    assert [a.start[:13] for a in res.alerts if a.evidence["kind"] == "flat_line"] == ["2024-04-03T01"], \
        [a.message for a in res.alerts]


def test_equal_hours_a_steady_weekend_makes_by_chance_are_no_frozen_meter_but_a_frozen_weekday_is():
    """An office read to 0.5 kWh whose weekend load sits steady (one hour in twelve repeats the hour
    before) while its working week never repeats: five equal Sunday hours at its base load are as
    likely as the weekend's repeats make them (BDG2 Shrew_office_Sherill: a "frozen meter" at 213.5
    on a Sunday, before: the need came from the repeat share of all days); twelve equal weekday hours
    are still a frozen meter."""
    rng = np.random.default_rng(11)
    df = building(seed=11)
    we = df.ts.dt.dayofweek.to_numpy() >= 5
    df["p_kw"] = np.where(we, 13.0 + 0.5 * rng.integers(0, 12, len(df)), np.round(df["p_kw"].to_numpy(), 2))
    sunday = (df.ts >= "2024-03-24 02:00") & (df.ts < "2024-03-24 07:00")
    df.loc[sunday, "p_kw"] = 15.5
    df.loc[df.ts.isin([pd.Timestamp("2024-03-24 01:00"), pd.Timestamp("2024-03-24 07:00")]), "p_kw"] = 14.0  # five long
    frozen = (df.ts >= "2024-04-10 09:00") & (df.ts < "2024-04-10 21:00")
    df.loc[frozen, "p_kw"] = 97.3
    fitted, res = run(df)
    got = [a.start[:13] for a in res.alerts if a.evidence["kind"] == "flat_line"]
    assert got == ["2024-04-10T09"], [a.message for a in res.alerts]
    st = fitted.detectors[0].get_state()["office"]
    assert st["flat_need_days"][1] > 5 >= st["flat_need_days"][0], st["flat_need_days"]


def test_a_frozen_run_across_the_weekend_edge_is_reported_whole_or_not_at_all():
    """Review: with a need per kind of day a run is still one run. The office of the test above
    (weekday need 4, weekend 6) frozen from Sunday 22:00: five hours (two on Sunday) alerted from
    Monday 00:00 only, cut from the Sunday hours that froze first; reported whole (from Sunday
    22:00) once long enough for both kinds of day."""
    rng = np.random.default_rng(11)
    df = building(seed=11)
    we = df.ts.dt.dayofweek.to_numpy() >= 5
    df["p_kw"] = np.where(we, 13.0 + 0.5 * rng.integers(0, 12, len(df)), np.round(df["p_kw"].to_numpy(), 2))
    for hours in (5, 7):
        d = df.copy()
        start = pd.Timestamp("2024-04-14 22:00")
        d.loc[(d.ts >= start) & (d.ts < start + pd.Timedelta(hours=hours)), "p_kw"] = 31.3
        fitted, res = run(d)
        assert fitted.detectors[0].get_state()["office"]["flat_need_days"] == [4, 6]
        got = [a.start[:13] for a in res.alerts if a.evidence["kind"] == "flat_line"]
        assert got in ([], ["2024-04-14T22"]), (hours, got)
        if hours == 7:
            assert got == ["2024-04-14T22"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_across_the_weekend_edge_stream_as_the_whole_history(seed):
    """The per-run need of the test above, in pieces cut around the runs: the whole history's
    scores and alerts."""
    from tests.detect.test_core import _assert_whole_equals_stitched

    rng = np.random.default_rng(11)
    df = building(seed=11)
    we = df.ts.dt.dayofweek.to_numpy() >= 5
    df["p_kw"] = np.where(we, 13.0 + 0.5 * rng.integers(0, 12, len(df)), np.round(df["p_kw"].to_numpy(), 2))
    for start, hours in (("2024-04-14 22:00", 5), ("2024-04-21 21:00", 7), ("2024-04-26 21:00", 5)):
        s = pd.Timestamp(start)
        df.loc[(df.ts >= s) & (df.ts < s + pd.Timedelta(hours=hours)), "p_kw"] = 31.3
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26")
    frame = df[df.ts >= "2024-04-10"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
    _assert_whole_equals_stitched(frame, fitted.detectors, seed, 12)


def test_a_point_is_judged_against_how_far_the_meters_hours_stand_off_each_other():
    """A one-hour dip to half and a spike at 2.5x on an office whose normal weeks held scattered
    6-hour events at half and 1.6x load (a school's term start, a closure): those raise the
    profile's limit to 18 spreads, where the dip (about 12) and the spike hid (before: no alert). The office's
    hours follow each other within a few per cent, so a reading standing off both neighbours by
    half is a point anomaly; each is found and reported as what it is."""
    df = building(seed=5)
    rng = np.random.default_rng(1)
    for k in rng.choice(df.index[df.ts < pd.Timestamp("2024-02-26")], 40, replace=False):
        df.loc[k:k + 5, "p_kw"] *= rng.choice([0.5, 1.6])
    df.loc[df.ts == pd.Timestamp("2024-03-13 11:00"), "p_kw"] *= 0.5
    df.loc[df.ts == pd.Timestamp("2024-03-20 14:00"), "p_kw"] *= 2.5
    fitted, res = run(df)
    got = [(a.start[:13], a.evidence["kind"], a.evidence["single_reading"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-13T11", "drop", True), ("2024-03-20T14", "spike", True)], got
    st = fitted.detectors[0].get_state()["office"]
    assert st["limit_z"] > 15 and st["limit_iso"] < 0.5


def test_a_homes_isolated_hours_are_its_routine_not_point_anomalies():
    """A home: 0.3 kW standby, an appliance hour of 1.5-3 kW in one hour of eight, alone. Its
    hours stand off each other by a factor of five to ten in its normal weeks, so the same after
    them is no spike or drop, nor is a lone hour under its busiest (a new appliance); one beyond
    its busiest still is."""
    rng = np.random.default_rng(2)
    ts = pd.date_range("2024-01-01", periods=16 * 7 * 24, freq="1h")
    p = 0.3 * (1 + 0.05 * rng.standard_normal(len(ts)))
    on = rng.random(len(ts)) < 0.125
    p = np.where(on, rng.uniform(1.5, 3.0, len(ts)), p)
    df = pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": p})
    fitted, res = run(df)
    assert [a.start for a in res.alerts if a.start >= "2024-02-26"] == []
    assert fitted.detectors[0].get_state()["home"]["limit_iso"] > 1.0
    df.loc[df.ts == pd.Timestamp("2024-03-13 03:00"), "p_kw"] = 2.9       # a night hour under its busiest
    df.loc[df.ts == pd.Timestamp("2024-03-13 04:00"), "p_kw"] = 0.3
    df.loc[df.ts == pd.Timestamp("2024-03-13 02:00"), "p_kw"] = 0.3
    df.loc[df.ts == pd.Timestamp("2024-03-20 14:00"), "p_kw"] = 9.0       # three times its busiest hour
    _, res = run(df)
    got = [(a.start[:13], a.evidence["kind"]) for a in res.alerts if a.start >= "2024-02-26"]
    assert got == [("2024-03-20T14", "spike")], got
