"""One lasting change, one alert (issue 14, xd; SPEC §3): the cross-detector continuation step
(:mod:`wattwatch.detect.continuation`). Each rule on alerts as the two detectors write them
(evidence fields and codes as ``seasonal_profile`` and ``baseline_macd`` give them); the batch
(``continued``) and a stream fed the same versions step by step (``Continuations``) agree; and
``seasonal_profile``'s 24-h message on a profile near zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.alerts.model import Alert
from wattwatch.detect.continuation import Continuations, ContinuationConfig, change, continued
from wattwatch.detect.engine import EngineConfig, continuation_of
from wattwatch.detect.stitch import latest


def _seasonal(start: str, end: str, kind: str = "unusual_day", value: float = 10.0, expected: float = 20.0,
              meter: str = "M-1") -> Alert:
    return Alert(meter, start, end, "WARN_CONSUMPTION_ANOMALY", "warning", 0.8, "seasonal_profile",
                 f"p_kw: {kind}", {"kind": kind, "value": value, "expected": expected})


def _macd(start: str, end: str, deviation: float = -0.5, meter: str = "M-1") -> Alert:
    return Alert(meter, start, end, "WARN_BASELINE_DEVIATION", "info", 0.7, "baseline_macd",
                 f"consumption {abs(deviation):.0%} {'below' if deviation < 0 else 'above'} its baseline",
                 {"deviation": deviation, "macd": -2.0 if deviation < 0 else 2.0})


H0, H1 = "2024-01-25T21:00:00.000Z", "2024-01-26T02:00:00.000Z"
F0, F1 = "2024-01-26T09:00:00.000Z", "2024-01-30T23:00:00.000Z"


def test_a_later_same_way_baseline_alert_continues_the_consumption_alert():
    head, follower = _seasonal(H0, H1), _macd(F0, F1)
    out, open_ids = continued([follower, head], open_ids={follower.id})
    assert len(out) == 1
    (a,) = out
    assert a.id == head.id and a.start == H0 and a.end == F1 and a.detector == "seasonal_profile"
    c = a.evidence["continued"]
    assert c["detectors"] == ["seasonal_profile", "baseline_macd"] and c["change"] == "down"
    assert [m["id"] for m in c["alerts"]] == [head.id, follower.id]
    assert a.score == 0.8 and a.severity == "warning"
    assert "continued by baseline_macd from " + F0 in a.message
    assert open_ids == {head.id}   # the follower open keeps its head open


@pytest.mark.parametrize("case", ["opposite", "dead_vs_partial", "far", "frozen", "point", "other_code",
                                  "before_head"])
def test_what_does_not_merge(case):
    head, follower = _seasonal(H0, H1), _macd(F0, F1)
    if case == "opposite":             # a drop, then a rise: two changes
        follower = _macd(F0, F1, deviation=+0.6)
    elif case == "dead_vs_partial":    # the meter read zero, then runs at half: a dead channel is not a theft
        head = _seasonal(H0, H1, kind="zero_run", value=0.0)
    elif case == "far":                # more than a day after the head's end
        follower = _macd("2024-01-27T02:00:01.000Z", F1)
    elif case == "frozen":             # a frozen register: stale data, not a change of consumption
        head = _seasonal(H0, H1, kind="flat_line")
    elif case == "point":              # a few readings dropping: a glitch, not a lasting change
        head = _seasonal(H0, H1, kind="drop")
    elif case == "other_code":         # a sensor fault has its own action
        follower = Alert("M-1", F0, F1, "SENSOR_FAULT", "warning", 0.8, "sensor_fault", "open CT",
                         {"deviation": -0.5})
    elif case == "before_head":        # begins before the head: the head cannot be what it continues
        follower = _macd("2024-01-25T20:00:00.000Z", F1)
    out, _ = continued([head, follower])
    assert sorted(a.id for a in out) == sorted({head.id, follower.id})
    assert not any("continued" in a.evidence for a in out)


def test_dead_with_dead_merges_and_a_second_follower_of_one_detector_stands_alone():
    head = _seasonal(H0, H1, kind="zero_run", value=0.0)
    first = _macd(F0, "2024-01-27T00:00:00.000Z", deviation=-1.0)
    second = _macd("2024-01-27T10:00:00.000Z", F1, deviation=-1.0)
    out, _ = continued([head, first, second])
    assert [a.id for a in out] == [head.id, second.id]
    assert out[0].evidence["continued"]["change"] == "dead" and out[0].end == "2024-01-27T00:00:00.000Z"


def test_change_reads_each_detectors_evidence():
    assert change(_seasonal(H0, H1, kind="unusual_day", value=30.0, expected=20.0)) == "up"
    assert change(_seasonal(H0, H1, kind="zero_reading", value=0.0)) == "dead"
    assert change(_macd(F0, F1, deviation=-0.95)) == "dead"
    assert change(_macd(F0, F1, deviation=-0.5)) == "down"
    assert change(_seasonal(H0, H1, kind="spike")) is None
    assert change(Alert("M-1", H0, H1, "WARN_CONSUMPTION_ANOMALY", "info", 0.6, "learned_ensemble", "x", {})) is None


def test_a_stream_of_versions_gives_what_the_batch_gives_under_stable_ids():
    """The head written in one step and growing, the follower opening two steps later and growing,
    another meter's alerts between: the last version of every id given equals the batch's, and no
    follower id is ever given."""
    h1, h2 = _seasonal(H0, "2024-01-25T23:00:00.000Z"), _seasonal(H0, H1)
    f1, f2 = _macd(F0, "2024-01-27T00:00:00.000Z"), _macd(F0, F1)
    other = _macd(F0, F1, meter="M-2")
    steps = [[h1], [h2, other], [f1], [f2]]
    c = Continuations()
    given = [a for s in steps for a in c.take(s)]
    assert f1.id not in {a.id for a in given}
    batch, _ = continued([h2, f2, other])
    assert {i: a.to_dict() for i, a in latest(given).items()} == {a.id: a.to_dict() for a in batch}
    # The head's versions: alone, then grown, then continued (end the follower's, as it grows).
    ends = [a.end for a in given if a.id == h1.id]
    assert ends == [h1.end, H1, "2024-01-27T00:00:00.000Z", F1]
    # A head that grows after its follower: the merged version keeps the follower's end.
    again = c.take([_seasonal(H0, "2024-01-26T03:00:00.000Z")])
    assert again[0].end == F1 and again[0].evidence["continued"]["alerts"][0]["end"] == "2024-01-26T03:00:00.000Z"


def test_a_follower_given_alone_is_never_taken_into_a_head_that_comes_later():
    """A stream that gave a follower alone (no head known yet) keeps giving it under its own id
    when a head that began before it arrives later: an id once written is not re-keyed (the one
    order in which a stream and a batch differ; seasonal_profile's evidence, final within a few
    readings, comes before baseline_macd's, which waits for its hour and its averages)."""
    head, f1, f2 = _seasonal(H0, H1), _macd(F0, "2024-01-27T00:00:00.000Z"), _macd(F0, F1)
    c = Continuations()
    given = [a for s in ([f1], [head], [f2]) for a in c.take(s)]
    last = latest(given)
    assert set(last) == {head.id, f1.id} and last[f1.id].end == F1
    assert not any("continued" in a.evidence for a in given)


def test_the_engine_setting_turns_it_off():
    assert continuation_of(EngineConfig()) == ContinuationConfig(within_s=86400.0)
    assert continuation_of(EngineConfig(continue_within_h=0)) is None
    with pytest.raises(ValueError):
        EngineConfig(continue_within_h=-1)


def test_a_day_off_a_profile_near_zero_is_said_in_kw():
    """A net meter whose import and export cancel over the day (profile ~0 kW) runs +0.5 kW for a
    day: the 24-h alert says both means in kW, not "+4474 % off profile" (rf8 saw +42,499,999,900 %)."""
    rng = np.random.default_rng(5)
    ts = pd.date_range("2024-01-01", periods=24 * 30, freq="60min", tz="UTC")
    p = 0.15 * rng.standard_normal(len(ts))
    p = np.where((ts >= ts[0] + pd.Timedelta(days=24)) & (ts < ts[0] + pd.Timedelta(days=25)), p + 0.5, p)
    res = api.detect(pd.DataFrame({"meter_id": "N-1", "ts": ts, "p_kw": p}),
                     config={"engine": {"profile_days": 14.0}}, detectors=["seasonal_profile"])
    (a,) = [a for a in res.alerts if a.evidence.get("kind") == "unusual_day"]
    assert "%" not in a.message, a.message
    assert "ran at 0.5" in a.message and "kW on average where its profile expects 0.0" in a.message


def test_clearing_a_continued_alert_resets_every_detector_it_holds(tmp_path):
    """(rxd) Cleared, a continued alert resets its follower's detector too: reset alone (the head's),
    ``baseline_macd`` went on carrying the follower's readings and the next ``detect`` on the store
    raised the follower again as an alert of its own, one the operator never saw. A name in the
    evidence that is no registered detector (a source's text, "*": every detector) resets nothing."""
    from wattwatch.alerts import store as alert_store
    from wattwatch.store import Store

    (a,) = continued([_seasonal(H0, H1), _macd(F0, F1)])[0]
    odd = _seasonal(H0, H1, meter="M-2")
    odd.evidence["continued"] = {"detectors": ["seasonal_profile", "*", "no_such_detector", 5]}
    with Store(tmp_path / "s.duckdb") as s:
        alert_store.upsert(s.con, [a, odd])
        res = alert_store.set_status(s.con, a.id, "cleared")
        assert res["detectors"] == ["seasonal_profile", "baseline_macd"]
        alert_store.set_status(s.con, odd.id, "acknowledged")
        assert alert_store.resets(s.con) == {(m, d): pd.Timestamp(F1 if m == "M-1" else H1) + alert_store.AFTER
                                             for m, d in [("M-1", "seasonal_profile"), ("M-1", "baseline_macd"),
                                                          ("M-2", "seasonal_profile")]}


# (xd2) A re-judging (late readings, a reset) finds again every alert of a detector from where its
# post-rules restarted: the carry forgets what it took of those and takes the re-judged alerts as
# the batch takes the meter's final alerts (``Continuations.rewind``, called by ``rejudge.run``).
LATE = "2024-01-25T20:00:00.000Z"   # where the re-judging restarts (both detectors)


def _stream_then_rewind(first: list[Alert], rejudged: list[Alert]) -> tuple[dict[str, Alert], set[str]]:
    """A carry fed ``first`` (one step), rewound at LATE, fed the re-judged alerts plus what the
    rewind gives back: the versions given (latest per id), and the ids the second step gave."""
    c = Continuations()
    given = {a.id: a for a in c.take(first)}
    t = pd.Timestamp(LATE).timestamp()
    again = c.rewind({"M-1": {"seasonal_profile": t, "baseline_macd": t}})
    second = c.take([*rejudged, *again])
    given.update({a.id: a for a in second})
    return given, {a.id for a in second}


@pytest.mark.parametrize("case", ["head_withdrawn", "head_turned", "follower_gone", "head_found_later"])
def test_a_rewound_meter_takes_its_rejudged_alerts_as_the_batch_does(case):
    head, follower = _seasonal(H0, H1), _macd(F0, F1)
    early = _seasonal("2024-01-24T20:00:00.000Z", "2024-01-24T22:00:00.000Z")   # kept; too far for `follower`
    first = [early, head, follower]
    if case == "head_withdrawn":      # a late reading merged the head into a spike that begins earlier
        rejudged = [_seasonal(LATE, H1, kind="spike", value=35.0), follower]
    elif case == "head_turned":       # the same id, its worst reading now a spike: no longer a drop
        rejudged = [_seasonal(H0, H1, kind="reading_run", value=35.0), follower]
    elif case == "follower_gone":     # a kept head's follower, un-made by the late reading
        first, rejudged = [early, _macd("2024-01-25T21:00:00.000Z", "2024-01-26T08:00:00.000Z")], []
    else:                             # the head was not there at first: the follower was given alone
        first, rejudged = [early, follower], [head, follower]
    final = {a.id: a for a in [*[a for a in first if a.start < LATE], *rejudged]}
    want, _ = continued(list(final.values()))
    got, second = _stream_then_rewind(first, rejudged)
    # every alert the batch gives is given as the batch gives it, and the re-judging gives no other
    # (an id given before and not now, a withdrawn head's, has its row deleted by the re-judging)
    for a in want:
        assert (got[a.id].end, got[a.id].evidence) == (a.end, a.evidence), (case, a.id)
    assert second <= {a.id for a in want}, case


def _drop_building() -> pd.DataFrame:
    """tests/live/test_stream_continuation.py's building (readings at 55 % from day 100.5 on), long
    enough that a window near its end does not load its whole history."""
    from tests.live.test_stream_continuation import _building

    return _building(days=110, drop_day=100.5, share=0.55)


def test_a_window_starting_between_head_and_follower_gives_the_whole_runs_alert(tmp_path):
    """(xd2) README: a window (``detect --start``) gives the alerts a run over the whole history
    gives. The building's drop is alerted by seasonal_profile from 08:00 to 14:00 and continued by
    baseline_macd from 10:00 the next day (20 h on). A window starting at 20:00, after the head's
    end, loads the reach of the detectors' scores, and its post-rules restart there: it found the
    follower alone (another id, another start). It now reads back while a follower begins within
    ``continue_within_h`` of where they restarted. baseline_macd's ``hold`` is 0 here: with the
    default 0.25 its follower's readings never come back to normal between the two, and the trace
    of an alert running at the window's start reached the head anyway (15 head-follower pairs of
    this building swept at every 2 h between: no difference); with no hold, or where its scores
    fall back under a quarter of the threshold between them, the window did not."""
    config = {"engine": {"profile_days": 14.0, "workers": 1}, "baseline_macd": {"post": {"hold": 0.0}}}
    dets = ["seasonal_profile", "baseline_macd"]
    db = tmp_path / "b.duckdb"
    whole = api.detect(_drop_building(), db=db, config=config, detectors=dets)
    (a,) = [a for a in whole.alerts if "continued" in a.evidence]
    head, follower = a.evidence["continued"]["alerts"]
    start = pd.Timestamp("2024-04-11T20:00", tz="UTC")
    assert pd.Timestamp(head["end"]) < start < pd.Timestamp(follower["start"]) - pd.Timedelta(hours=12)

    def view(x):
        return (x.id, x.start, x.end, x.code, x.detector, x.score, x.message)

    # (rxd2) ... and one starting at the end of the building's first alert (one reading, 04-10 21:00): a
    # window kept it out (its end "…21:00:00.000Z" was compared as text with "…21:00:00Z")
    first = min(whole.alerts, key=lambda x: x.start)
    assert first.id != a.id
    for s in (start, pd.Timestamp(follower["start"]) + pd.Timedelta(hours=6), pd.Timestamp(first.end)):
        w = api.detect(db, config=config, detectors=dets, start=s, keep=False)
        assert sorted(map(view, w.alerts)) == sorted(view(x) for x in whole.alerts if pd.Timestamp(x.end) >= s), s
        assert a.id in w.open_ids
    # (rxd2) the notice that max_trace_days stopped the read-back is given when it did: not when the
    # last pass allowed (2 days back) found the whole run's alert (it was said before that pass, of
    # an alert "that began more than 2 days before" here 12 h before), and when the cap (0: no
    # read-back) leaves the follower alone
    def capped(days, s):
        return api.detect(db, config={**config, "engine": {**config["engine"], "max_trace_days": days}},
                          detectors=dets, start=s, keep=False)

    w = capped(2.0, start)
    assert sorted(map(view, w.alerts)) == sorted(view(x) for x in whole.alerts if pd.Timestamp(x.end) >= start)
    assert not [n for n in w.notices if "days before" in n], w.notices
    w = capped(0.0, start)
    assert [x for x in w.alerts if x.detector == "baseline_macd"] and a.id not in {x.id for x in w.alerts}
    assert [n for n in w.notices if "continuing one another" in n and "B-1" in n], w.notices
