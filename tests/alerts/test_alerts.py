"""Alerts: JSON and log line, idempotent storage, lifecycle with rule resets."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.detect.conftest import healthy, window
from wattwatch.alerts import store as alert_store
from wattwatch.alerts.model import Alert
from wattwatch.detect.engine import EngineConfig, detect
from wattwatch.store import Store


def test_alert_json_matches_the_spec_shape_and_id_is_stable():
    a = Alert("M-17", "2025-03-10T14:05:00Z", "2025-03-10T19:40:00Z", "ERR_IMBAL_LIMIT_EXCEEDED", "critical", 0.93,
              "neutral_tamper", "neutral current missing", {"i_l1_a": 12.4, "i_n_a": 0.01, "kind": "neutral_bypass"})
    d = json.loads(a.to_json())
    assert list(d)[:9] == ["meter_id", "start", "end", "code", "severity", "score", "detector", "message", "evidence"]
    # SPEC's <time> <code> <meter> <message>, then severity, end and id (to ack from the log) and the action.
    assert a.log_line() == ("2025-03-10T14:05:00Z ERR_IMBAL_LIMIT_EXCEEDED M-17 neutral current missing "
                            f"[critical, until 2025-03-10T19:40:00Z, id {a.id}]")
    assert Alert(**{**a.__dict__, "action": "check the neutral"}).log_line().endswith("; action: check the neutral]")
    b = Alert(**{**a.__dict__, "end": "2025-03-11T00:00:00Z", "message": "later"})
    assert a.id == b.id  # the same fault seen longer is the same alert
    assert Alert.from_dict(d).id == a.id


def _bypass(f, w):
    """A neutral bypass under a 12 A load: the phase current and the power the meter computes from
    it agree (a phase current that disagrees with the power is a loose clamp, not theft); the
    neutral reads next to nothing."""
    f.loc[w, "i_l1_a"] = 12.0
    f.loc[w, "p_kw"] = f.loc[w, "v_l1_v"] * 12.0 * f.loc[w, "pf"] / 1000
    f.loc[w, "i_n_a"] = 0.01


def _bypass_frame():
    f = healthy("residential", days=8, seed=6)
    _bypass(f, window(f, "2025-01-10T17:00Z", 3))
    return f


def test_rerun_never_duplicates_and_ack_or_clear_resets_rule_state(tmp_path):
    f = _bypass_frame()
    engine = EngineConfig(profile_days=3)
    with Store(tmp_path / "s.duckdb") as s:
        first = detect(f, config=engine).alerts
        assert [a.code for a in first] == ["ERR_IMBAL_LIMIT_EXCEEDED"]
        assert alert_store.upsert(s.con, first) == {"new": 1, "updated": 0}
        assert alert_store.upsert(s.con, detect(f, config=engine).alerts) == {"new": 0, "updated": 1}
        assert len(alert_store.list_alerts(s.con, "all")) == 1

        res = alert_store.set_status(s.con, first[0].id[:6], "cleared", "electrician replaced the neutral")
        assert res["status"] == "cleared" and res["detector"] == "neutral_tamper"
        resets = alert_store.resets(s.con)
        # just after the end: the alert's own last reading is not judged again (it raised a phantom)
        assert resets[(first[0].meter_id, "neutral_tamper")] == pd.Timestamp(first[0].end) + alert_store.AFTER
        # The detector re-learns the meter from the reset and judges nothing before it.
        again = detect(f, config=engine, resets=resets).alerts
        assert again == []
        listed = alert_store.list_alerts(s.con, "all")
        assert listed.status.tolist() == ["cleared"] and listed.note.tolist() == ["electrician replaced the neutral"]
        assert alert_store.list_alerts(s.con, "open").empty


def test_a_new_fault_after_a_reset_still_alerts(tmp_path):
    f = _bypass_frame()
    _bypass(f, window(f, "2025-01-12T17:00Z", 3))
    engine = EngineConfig(profile_days=3)
    first = [a for a in detect(f, config=engine).alerts if a.start < "2025-01-11"][0]
    resets = {(first.meter_id, "neutral_tamper"): pd.Timestamp(first.end)}
    later = detect(f, config=engine, resets=resets).alerts
    assert [a.start[:10] for a in later if a.code == "ERR_IMBAL_LIMIT_EXCEEDED"] == ["2025-01-12"]


def _gap_store(tmp_path, hours: int = 4, leave_out=None):
    """A home's 8 days in a fresh store with ``hours`` of readings missing from 2025-01-10 17:00
    (and the rows ``leave_out`` marks), judged once for packet loss, which finds the gap:
    (frame, the gap's rows, store path, the gap's alert)."""
    from wattwatch import api

    f = healthy("residential", days=8, seed=6)
    hole = window(f, "2025-01-10T17:00Z", hours)
    db = tmp_path / "s.duckdb"
    keep = ~hole if leave_out is None else ~hole & ~leave_out
    api.ingest(f[keep], db)
    found = api.detect(db, detectors="packet_loss").alerts
    assert [a.code for a in found] == ["ALRM_PKT_LOSS_CRIT"]
    return f, hole, db, found[0]


def test_late_readings_that_fill_a_gap_withdraw_its_packet_loss_alert_from_the_store(tmp_path):
    """A gap alerted as packet loss, then filled by late readings: `detect` on the store no longer
    reports it, and the store (alerts list, report, dashboard) must not keep it open either; a store
    holding the same readings from the start has none."""
    from wattwatch import api

    f, hole, db, gap = _gap_store(tmp_path)
    api.ingest(f[hole], db)
    assert api.detect(db, detectors="packet_loss").alerts == []
    with Store(db) as s:
        assert alert_store.list_alerts(s.con, "open").empty
        # (al) what `alerts show` says of it: withdrawn, when, why (its row is gone)
        from wattwatch.alerts import withdrawn

        rec = withdrawn.show(s.con, gap.id[:6])
        assert rec["id"] == gap.id and rec["status"] == "withdrawn" and rec["withdrawn"]["reason"] == withdrawn.DETECT


def test_a_whole_history_detect_settles_only_what_it_rejudged(tmp_path):
    """What a run over whole histories may change in the store: the open alerts of the (meter,
    detector) pairs it judged. A windowed run (`--start`), a run of other detectors, and an alert
    an operator acknowledged are left as they are; an alert found again shorter (late readings
    filled most of a gap) takes the run's end."""
    from wattwatch import api

    f, hole, db, gap = _gap_store(tmp_path, hours=8)
    # Late readings fill the gap's last 3 hours: the loss left starts where it did and is shorter.
    late = hole & (f["ts"] >= pd.Timestamp("2025-01-10T22:00Z"))
    api.ingest(f[late], db)
    # A windowed run and a run of another detector judge the meter too, but not the gap's pair whole.
    api.detect(db, detectors="packet_loss", start="2025-01-12T00:00Z")
    api.detect(db, detectors="frozen_readings")
    with Store(db) as s:
        kept = alert_store.list_alerts(s.con, "open")
    assert list(kept["id"]) == [gap.id] and str(pd.Timestamp(kept["end"].iloc[0])) == str(pd.Timestamp(gap.end))
    again = api.detect(db, detectors="packet_loss").alerts
    assert len(again) == 1 and again[0].id == gap.id and pd.Timestamp(again[0].end) < pd.Timestamp(gap.end)
    with Store(db) as s:
        stored = alert_store.list_alerts(s.con, "open")
        assert list(stored["id"]) == [gap.id]
        assert pd.Timestamp(stored["end"].iloc[0]) == pd.Timestamp(again[0].end)
        # Acknowledged, then the rest of the gap filled: not found again, but not the run's to withdraw.
        alert_store.set_status(s.con, gap.id, "acknowledged")
    api.ingest(f[hole & ~late], db)
    assert api.detect(db, detectors="packet_loss").alerts == []
    with Store(db) as s:
        assert list(alert_store.list_alerts(s.con, None)["status"]) == ["acknowledged"]


def test_a_whole_history_detect_keeps_open_alerts_of_compacted_hours(tmp_path):
    """Hours compacted out of the raw readings cannot be judged again: an open alert in them is
    not the next run's to withdraw (it begins before the meter's first reading judged)."""
    from wattwatch import api

    _, _, db, gap = _gap_store(tmp_path)
    with Store(db) as s:
        s.compact(older_than_days=1, as_of=pd.Timestamp("2025-01-12T12:00Z"))
        assert s.query().ts.min() > pd.Timestamp(gap.end)
    api.detect(db, detectors="packet_loss")
    with Store(db) as s:
        assert list(alert_store.list_alerts(s.con, "open")["id"]) == [gap.id]


def test_a_whole_history_detect_keeps_the_alerts_of_a_learned_detector_it_could_not_run(tmp_path):
    """A learned detector with no fleet model for a meter's grid step (too small a fleet: a
    notice) scores none of its readings: that run did not judge the pair, so the alerts a run
    with ``--models`` found on it stay open."""
    from wattwatch import api
    from wattwatch.detect.learned.persist import save_models
    from wattwatch.sim import SimConfig, simulate

    sim = simulate(SimConfig(meters=30, days=35, seed=5, fault_share=0.6, outage_share=0.3))
    frame = sim["frame"]
    fitted = api.fit(frame, detectors=["learned_ensemble"], normal_end=str(frame["ts"].min() + pd.Timedelta(days=7)))
    folder = save_models(fitted.detectors, tmp_path / "models")
    sub = frame[frame["meter_id"].isin(sorted(frame["meter_id"].unique())[:5])]
    db = tmp_path / "s.duckdb"
    api.ingest(sub, db)
    found = api.detect(db, detectors=["learned_ensemble"], models=folder).alerts
    assert found
    again = api.detect(db, detectors=["learned_ensemble"])
    assert any("learned_ensemble: not run on 5 meter(s)" in n for n in again.notices)
    assert again.alerts == [] and again.stored["withdrawn"] == 0
    with Store(db) as s:
        assert sorted(alert_store.list_alerts(s.con, "open")["id"]) == sorted({a.id for a in found})


def test_a_late_reading_in_a_compacted_hour_does_not_open_its_hours_to_withdrawal(tmp_path):
    """A reading that arrives late for an hour already compacted stays raw (until the next
    compaction): the meter's first raw reading is then before hours only aggregates hold, which
    no run can judge again; an open alert in them stays."""
    from wattwatch import api

    f = healthy("residential", days=8, seed=6)
    late = (f["ts"] == pd.Timestamp("2025-01-09T12:00Z")).to_numpy()
    f, _, db, gap = _gap_store(tmp_path, leave_out=late)
    with Store(db) as s:
        s.compact(older_than_days=1, as_of=pd.Timestamp("2025-01-12T12:00Z"))
    api.ingest(f[late], db)
    with Store(db) as s:
        assert s.query().ts.min() == pd.Timestamp("2025-01-09T12:00Z")
    res = api.detect(db, detectors="packet_loss")
    assert res.stored["withdrawn"] == 0
    with Store(db) as s:
        assert gap.id in set(alert_store.list_alerts(s.con, "open")["id"])


def test_a_whole_history_detect_keeps_open_alerts_within_reach_of_compacted_hours(tmp_path):
    """After a compaction, the first raw readings are judged without the readings before them a
    detector reaches back to (firmware_drift: two days): an alert that begins within that reach
    of the last compacted hour cannot be judged again as it was found, and stays open."""
    from wattwatch import api
    from wattwatch.sim import SimConfig, simulate

    frame = simulate(SimConfig(meters=10, days=28, seed=7, fault_share=0.8, outage_share=0.4))["frame"]
    db = tmp_path / "s.duckdb"
    api.ingest(frame[frame["meter_id"] == "M-00001"], db)
    drift = api.detect(db, detectors="firmware_drift").alerts
    assert len(drift) == 1
    with Store(db) as s:
        s.compact(older_than_days=0, as_of=(pd.Timestamp(drift[0].start) - pd.Timedelta(hours=6)).floor("h"))
        assert s.query().ts.min() < pd.Timestamp(drift[0].start)
    res = api.detect(db, detectors="firmware_drift")
    assert res.stored["withdrawn"] == 0
    with Store(db) as s:
        assert drift[0].id in set(alert_store.list_alerts(s.con, "open")["id"])


def test_a_late_reading_for_a_compacted_hour_makes_no_packet_loss_across_the_compacted_span(tmp_path):
    """A reading that arrives for an hour already compacted stays raw until the next compaction;
    `detect` judges the raw readings after the compacted hours, not that lone reading before them
    (it read the compacted hours between them as lost: a packet-loss alert of two days, rev26)."""
    from wattwatch import api

    f = healthy("residential", days=8, seed=6)
    late = f["ts"] == f["ts"][f["ts"] >= pd.Timestamp("2025-01-09T12:00Z")].min()
    db = tmp_path / "s.duckdb"
    api.ingest(f[~late], db)
    before = api.detect(db, detectors="packet_loss").alerts
    with Store(db) as s:
        s.compact(older_than_days=1, as_of=pd.Timestamp("2025-01-12T12:00Z"))
    api.ingest(f[late], db)
    with Store(db) as s:
        assert (s.query().ts < pd.Timestamp("2025-01-11T12:00Z")).sum() == 1   # the late one, raw
    after = api.detect(db, detectors="packet_loss").alerts
    assert [a.id for a in after] == [a.id for a in before if pd.Timestamp(a.start) >= pd.Timestamp("2025-01-11T12:00Z")]
