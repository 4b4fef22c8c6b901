"""neutral_tamper's one-reading alerts (q63) at their edges (review rev63): next to weaker runs,
with NaN neutral readings, in a run mixing hourly and 5-minute meters, streamed in pieces cut at
and around the single reading (alert ids stable as a later reading joins it), the cadence bound
(2,699 / 2,700 s, unknown), the phase count, and the setting carried through a config table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.test_neutral_single_reading import T0, _meter
from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.rules.neutral import NeutralTamperConfig
from wattwatch.detect.stitch import Stitcher, latest, read_channels

H = 3600.0
# Day 5.5 is 12:00: the neutral gone for one hourly reading (score ~13) there, and around it:
CASES = {
    "alone": [(5.5, 1, 1.0)],
    # a strong reading then, two hours later (within the hourly merge gap, 2.5 h), a weaker run
    "then_run": [(5.5, 1, 1.0), (5.5 + 2 / 24, 2, 0.12)],
    # a weaker blip (1.2 x) an hour before the strong one: one run of two
    "blip_then": [(5.5 - 1 / 24, 1, 0.09), (5.5, 1, 1.0)],
    # a weaker blip two hours after: a blip, not joined (blips never merge)
    "then_blip": [(5.5, 1, 1.0), (5.5 + 2 / 24, 1, 0.09)],
    # two strong readings 2 h apart: one alert (merged), not two
    "two_apart": [(5.5, 1, 1.0), (5.5 + 2 / 24, 1, 1.0)],
}


def _nan_around(f: pd.DataFrame, day: float, n: int) -> pd.DataFrame:
    """``f`` with the neutral NaN on ``n`` readings either side of the one nearest ``day``."""
    k = int(round(day * 24))
    f = f.copy()
    f.loc[list(range(k - n, k)) + list(range(k + 1, k + 1 + n)), "i_n_a"] = np.nan
    return f


def _fleet(mixed: bool = True) -> pd.DataFrame:
    parts = [_meter(m, "60min", f, seed=10 + k) for k, (m, f) in enumerate(CASES.items())]
    parts.append(_nan_around(_meter("nan_near", "60min", [(5.5, 1, 1.0)], seed=30), 5.5, 2))
    jit = _meter("jitter", "60min", [(5.5, 1, 1.0)], seed=33)  # stamps up to 10 min off the hour
    jit["ts"] += pd.to_timedelta(np.random.default_rng(33).uniform(-600, 600, len(jit)), unit="s")
    parts.append(jit)
    if mixed:  # 5-min meters in the same run: one reading of a bypass there stays a blip
        parts.append(_meter("fine_one", "5min", [(5.5, 1, 1.0)], seed=31))
        parts.append(_meter("fine_two", "5min", [(5.5, 2, 1.0)], seed=32))
    return pd.concat(parts, ignore_index=True)


def _fit(frame: pd.DataFrame, names=("neutral_tamper",), config=None):
    dets = registry.build_all(list(names), config) if config else registry.build_all(list(names))
    profile(prepare(frame), dets, EngineConfig(profile_days=3.0, workers=1))
    return dets


@pytest.fixture(scope="module")
def fitted():
    frame = _fleet()
    dets = _fit(frame)
    return frame, dets, core.run(frame, dets).alerts


def _at(day: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(hours=round(day * 24))


def test_single_readings_next_to_weaker_ones_merge_as_runs_do(fitted):
    frame, dets, alerts = fitted
    by: dict[str, list] = {}
    for a in alerts:
        by.setdefault(a.meter_id, []).append(a)
    assert set(by) == {"alone", "then_run", "blip_then", "then_blip", "two_apart", "nan_near", "jitter", "fine_two"}, \
        [(a.meter_id, a.start, a.end) for a in alerts]
    assert all(len(v) == 1 for v in by.values()), {m: len(v) for m, v in by.items()}
    s = _at(5.5)

    def span(m):
        a = by[m][0]
        return pd.Timestamp(a.start).round("h"), pd.Timestamp(a.end).round("h")

    assert span("alone") == (s, s) and span("then_blip") == (s, s) and span("nan_near") == (s, s)
    assert span("jitter") == (s, s)
    assert span("then_run") == (s, s + pd.Timedelta(hours=3))
    assert span("blip_then") == (s - pd.Timedelta(hours=1), s)
    assert span("two_apart") == (s, s + pd.Timedelta(hours=2))


def _cut_pieces(frame: pd.DataFrame, cuts_s: list[float]):
    """``frame`` in pieces ending at each of ``cuts_s`` (epoch s), then the rest."""
    t = ((pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    edges = [-np.inf, *sorted(cuts_s), np.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        p = frame[(t > lo) & (t <= hi)]
        if len(p):
            yield p


def _stream(frame, dets, cuts_s):
    cols = read_channels(dets)
    calm = Stitcher(dets, keep_scores=False, columns=cols)
    every = Stitcher(dets, keep_scores=False, columns=cols, calm=False)
    versions = []
    for p in _cut_pieces(frame, cuts_s):
        a, b = calm.feed(p), every.feed(p)
        assert sorted(x.id for x in a.alerts) == sorted(x.id for x in b.alerts)
        versions += a.alerts
    versions += calm.flush().alerts
    return versions


@pytest.mark.parametrize("around", [-1800.0, -2.5, 0.0, 2.5, 1800.0, 3 * H + 2.5])
def test_streamed_with_cuts_at_and_around_the_single_reading_gives_the_whole_historys_alerts(fitted, around):
    """Batch == stitched == calm stream, pieces cut an hour apart from two days before the single
    readings to a day after, shifted by ``around`` (at a reading, just before or after its jittered
    stamp, between readings): every alert version's id is one of the whole history's (an alert
    first seen as one reading keeps its id as later readings join it), the latest versions equal it."""
    frame, dets, want = fitted
    s = (_at(5.5) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    cuts = [s - 48 * H, *(s + k * H + around for k in range(-6, 8)), s + 24 * H]
    versions = _stream(frame, dets, cuts)
    ids = {a.id for a in want}
    assert {a.id for a in versions} <= ids
    # Seen first as the one reading (a piece ends just after it), then joined by the later run:
    # one id throughout.
    run = [a for a in versions if a.meter_id == "then_run"]
    if around >= 0:
        assert run[0].start == run[0].end and run[-1].end > run[-1].start
    assert len({a.id for a in run}) == 1
    view = lambda a: (a.meter_id, a.start, a.end, a.score, a.message, sorted(a.evidence.items()))  # noqa: E731
    assert {i: view(a) for i, a in latest(versions).items()} == {a.id: view(a) for a in want}


@pytest.mark.parametrize("cad,single", [(2699.0, False), (2700.0, True), (3599.7, True), (1800.0, False),
                                        (np.nan, False), (0.0, False)])
def test_the_cadence_bound_and_an_unknown_cadence(cad, single):
    post = NeutralTamperConfig().post
    assert bool(post.at(np.array([cad]))["single"][0]) is single


def test_only_a_learned_single_phase_meter_may_alert_on_one_reading():
    """Narrowed by the learned phase count: 3 and 2 phases, and a state without it, never."""
    d = registry.build_all(["neutral_tamper"])[0]
    d.state_ = {"one": {"phases": 1}, "three": {"phases": 3}, "two": {"phases": 2}, "old": {}}
    e = d.post_settings(["one", "three", "two", "old", "none"], np.full(5, 3600.0))
    assert e["single"].tolist() == [True, False, False, False, False]


def test_the_setting_comes_through_a_config_table_and_off_turns_it_off():
    frame = _fleet(mixed=False)
    off = _fit(frame, config={"neutral_tamper": {"post": {"single_s": 0.0}}})
    assert off[0].config.post.single_s == 0.0 and off[0].config.post.strong is None
    got = core.run(frame, off).alerts
    # Only runs of two and more readings, as before q63 (two lone readings 2 h apart are two blips).
    assert sorted(a.meter_id for a in got) == ["blip_then", "then_run"]
    hi = _fit(frame, config={"neutral_tamper": {"post": {"single_score": 100.0}}})
    assert hi[0].config.post.single_s == 2700.0  # the rest of the post-rule stays the detector's
    assert sorted(a.meter_id for a in core.run(frame, hi).alerts) == ["blip_then", "then_run"]


def test_a_stored_state_keeps_its_settings_key_and_its_phase_count(tmp_path):
    """The post-rules are no part of the settings a state is learned with: a state stored before
    q63 (or with the setting off) is used as it is, no "other settings" notice, no refit; and the
    learned phase count comes back from the store as the narrowing reads it."""
    import duckdb

    from wattwatch.detect import state

    frame = _fleet(mixed=False)
    dets = _fit(frame)
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state.save(con, dets) > 0
    for cfg in (None, {"neutral_tamper": {"post": {"single_s": 0.0}}}):
        fresh = registry.build_all(["neutral_tamper"], cfg) if cfg else registry.build_all(["neutral_tamper"])
        assert state.settings_key(fresh[0]) == state.settings_key(dets[0])
        names = sorted(frame["meter_id"].unique())
        assert state.load(con, fresh, names) == []
        e = fresh[0].post_settings(names, np.full(len(names), 3600.0))
        assert e["single"].all() == (cfg is None) and e["single"].any() == (cfg is None)
        assert [a.id for a in core.run(frame, fresh).alerts] == \
            [a.id for a in core.run(frame, dets if cfg is None else fresh).alerts]


def test_a_meter_learned_hourly_now_read_every_5_min_does_not_alert_on_one_5_min_reading():
    """One reading alone is evidence where it stands for an hour. A meter profiled hourly and then
    read every 5 minutes (reconfigured; ``detect`` says so and advises a refit) still has a
    learned cadence of an hour; one 5-min reading with the neutral gone is a 5-min glitch, which
    at 5 min always needed two readings (b8ad8ba: no alert). The gate reads the cadence of the
    reading's stretch (q67; an xfail left by rev63: q63 alerted)."""
    hourly = _meter("m", "60min", [], seed=1)
    fine = _meter("m", "5min", [(6.5, 1, 1.0)], seed=2)
    cut = T0 + pd.Timedelta(days=5)
    frame = pd.concat([hourly[hourly.ts < cut], fine[fine.ts >= cut]], ignore_index=True)
    dets = _fit(frame)
    assert dets[0].state_["m"]["cadence_s"] > 3500
    assert core.run(frame, dets).alerts == []


def _reconfigured(name: str, first: str, then: str, at_day: float, faults_first, faults_then, seed: int):
    """A meter read every ``first`` up to day ``at_day`` (a minute after: the reading at that
    instant is the last of the first cadence) and every ``then`` since, with ``faults`` of each
    part as :func:`_meter` takes them (days and readings at that part's own cadence)."""
    a = _meter(name, first, faults_first, seed=seed)
    b = _meter(name, then, faults_then, seed=seed + 100)
    cut = T0 + pd.Timedelta(days=at_day, minutes=1)
    return pd.concat([a[a.ts < cut], b[b.ts >= cut]], ignore_index=True)


# One reading alone alerts where its stretch runs at 45 min or more, whatever the meter learned
# (profiled on its first 3 days), and needs a second where its stretch is finer (q67, rev63's item).
RECONF = {
    # hourly, then 5 min from day 5: a lone hourly reading before (alerts), the last hourly reading
    # (00:00, the light-load score ~2; its gap before an hour: alerts), a lone 5-min reading (none),
    # two 5-min readings (an alert, as at any cadence)
    "h2f": ("60min", "5min", 5.0, [(4.5, 1, 1.0), (5.0, 1, 1.0)], [(6.5, 1, 1.0), (7.5, 2, 1.0)]),
    # 5 min, then hourly from day 5: a lone hourly reading (alerts), a weak one (1.2 x: a blip)
    "f2h": ("5min", "60min", 5.0, [], [(6.5, 1, 1.0), (7.25, 1, 0.09)]),
    # 15 min, then hourly from day 4.5
    "q2h": ("15min", "60min", 4.5, [], [(8.5, 1, 1.0)]),
}


def _reconf_fleet() -> pd.DataFrame:
    parts = [_reconfigured(m, *v, seed=40 + k) for k, (m, v) in enumerate(RECONF.items())]
    parts.append(_meter("steady", "60min", [(5.5, 1, 1.0)], seed=45))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def reconf():
    frame = _reconf_fleet()
    dets = _fit(frame, ("neutral_tamper", "firmware_drift"))
    return frame, dets, core.run(frame, dets).alerts


def test_one_reading_alone_follows_the_cadence_of_its_stretch_not_the_learned_one(reconf):
    """rev63's left item both ways: the learned cadence (hourly, 5 and 15 min) no longer decides;
    the cadence of the stretch the reading is in does. Fails before q67 (h2f's lone 5-min reading
    alerted; f2h's and q2h's lone hourly readings did not)."""
    frame, dets, alerts = reconf
    nt = dets[0]
    assert nt.state_["h2f"]["cadence_s"] > 3500 and nt.state_["f2h"]["cadence_s"] < 400
    assert 800 < nt.state_["q2h"]["cadence_s"] < 1000
    got = sorted((a.meter_id, pd.Timestamp(a.start).round("5min"), pd.Timestamp(a.end).round("5min"))
                 for a in alerts if a.detector == "neutral_tamper")
    at = lambda d, m=0: T0 + pd.Timedelta(days=d, minutes=m)  # noqa: E731
    assert got == [("f2h", at(6.5), at(6.5)),
                   ("h2f", at(4.5), at(4.5)), ("h2f", at(5.0), at(5.0)), ("h2f", at(7.5), at(7.5, 5)),
                   ("q2h", at(8.5), at(8.5)),
                   ("steady", at(5.5), at(5.5))], got


def _reading_cuts(frame: pd.DataFrame, meter: str, days: list[float], half_h: float) -> list[float]:
    """Epoch seconds of every reading of ``meter`` within ``half_h`` hours of each of ``days``."""
    f = frame[frame.meter_id == meter]
    t = ((pd.to_datetime(f["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()
    out = []
    for d in days:
        c = (T0 + pd.Timedelta(days=d) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        out += t[np.abs(t - c) <= half_h * H].tolist()
    return sorted(set(out))


@pytest.mark.parametrize("meter,days,half_h", [("h2f", [5.0, 6.5], 1.0), ("f2h", [5.0, 6.5], 7.0)])
def test_streamed_cut_at_every_reading_around_the_change_and_the_lone_readings(reconf, meter, days, half_h):
    """Batch == stitched == calm stream with pieces ending at every reading of the meter near its
    reconfiguration and its lone readings (the stretch's cadence at a reading depends on 6 gaps
    either side, which neutral_tamper's reach declares: a piece ending just after the reading
    judges it at the cadence the readings so far say, and its score and class are final only once
    they are in), with firmware_drift, whose consumption neutral_tamper blanks around its alerts
    (its scores held as their class in the tail): every alert version's id is one of the whole
    history's, and the latest versions equal it."""
    frame, dets, want = reconf
    versions = _stream(frame, dets, _reading_cuts(frame, meter, days, half_h))
    assert {a.id for a in versions} <= {a.id for a in want}
    view = lambda a: (a.meter_id, a.detector, a.start, a.end, a.score, a.message, sorted(a.evidence.items()))  # noqa: E731
    assert {i: view(a) for i, a in latest(versions).items()} == {a.id: view(a) for a in want}


def test_without_the_stretchs_reach_the_learned_cadence_decides(reconf, monkeypatch):
    """``single_s`` configured on a detector whose reach does not hold the gaps that say a
    reading's stretch cadence: a stream could not judge it as the whole history does, so the
    learned cadence decides there (q63's gate): h2f's lone 5-min reading alerts again."""
    from wattwatch.detect.base import Reach

    frame, dets, _ = reconf
    nt = dets[0]
    zero = lambda self, meters: Reach(np.zeros(len(meters)), np.zeros(len(meters), np.int64),  # noqa: E731
                                      np.zeros(len(meters)), np.zeros(len(meters), np.int64))
    monkeypatch.setattr(type(nt), "reach", zero)
    got = {(a.meter_id, pd.Timestamp(a.start).round("5min")) for a in core.run(frame, [nt]).alerts}
    assert ("h2f", T0 + pd.Timedelta(days=6.5)) in got
    assert ("f2h", T0 + pd.Timedelta(days=6.5)) not in got   # learned at 5 min: two readings
