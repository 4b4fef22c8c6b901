"""The paper's scenarios on case5, false data injection, physics and the agents."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wattwatch.grid.config import Deviation, Scenario, WatchConfig, builtin
from wattwatch.grid.simulate import simulate


def _p(run, name):
    return run.intervals[run.intervals["prosumer"] == name].reset_index(drop=True)


def test_accidental_over_generation_is_corrected_without_isolation(accidental_run):
    run = accidental_run
    p3 = _p(run, "P3")
    assert run.isolations == []
    peak = p3["penalty"].idxmax()
    assert p3.loc[peak, "d_mwh"] > 0, "over-generation: the neighbours probe more than agreed"
    assert p3["penalty"].max() > 1.0
    assert p3["penalty"].max() < run.scenario.watch.c_th
    # F and P rise while it lasts, then decay towards 0 once it is corrected.
    after = p3.loc[peak:, "penalty"].to_numpy()
    assert (np.diff(after) <= 1e-12).all()
    assert after[-1] < 0.05 * after[0]
    # Nobody else is penalised: the slack took the balance and the others delivered.
    others = run.intervals[run.intervals["prosumer"] != "P3"]
    assert (others["penalty"].fillna(0) == 0).all()


def test_smaller_persistent_under_generation_ends_in_isolation_and_redispatch_converges(persistent_run):
    run = persistent_run
    (iso,) = run.isolations
    assert iso["prosumer"] == "P3" and iso["signals"] > run.scenario.watch.rho * iso["watchers"]
    assert iso["redispatch_converged"] and iso["redispatch_method"] == "ac-opf"
    p3 = _p(run, "P3")
    before = p3[~p3["isolated"]]
    assert before["d_mwh"].iloc[-1] < 0, "under-generation"
    grow = before.loc[before["penalty"] > 0, "penalty"].to_numpy()
    assert (np.diff(grow) > 0).all(), "the penalty grows monotonically until the isolation"
    # After isolation P3 is neither watched nor watching; its net power is 0 (its units are off).
    assert p3.loc[p3["isolated"], "penalty"].isna().all()
    s = run.samples[(run.samples["prosumer"] == "P3") & (run.samples["ts"] > iso["ts"])]
    assert np.abs(s["p_actual_mw"]).max() < 1e-6
    # The re-dispatch converged to a new operating point in which the others keep running:
    # no other prosumer is penalised at any time.
    assert (run.intervals.loc[run.intervals["prosumer"] != "P3", "penalty"].fillna(0) == 0).all()


def test_paper_scenario_both_incidents(paper_run):
    run = paper_run
    p3 = _p(run, "P3")
    acc = p3[p3["ts"] <= "2024-06-01T00:55Z"]
    assert acc["penalty"].max() > 1 and acc["decision"].eq("").all()
    (iso,) = run.isolations
    assert iso["ts"] > acc["ts"].max()
    # The accidental deviation was larger (|d| per interval) than the persistent one.
    assert acc["d_mwh"].abs().max() > 2 * abs(p3.loc[p3["decision"] == "isolate", "d_mwh"].iloc[0])
    codes = sorted(a for a in ["WARN_PROSUMER_PENALTY"] * 2 + ["ALRM_PROSUMER_ISOLATE"])
    from wattwatch.grid.alerts import alerts_from

    alerts = alerts_from(run.intervals, run.scenario.watch, "case5/", run.isolations)
    assert sorted(a.code for a in alerts) == codes
    assert {a.meter_id for a in alerts} == {"case5/P3"}
    iso_alert = next(a for a in alerts if a.code == "ALRM_PROSUMER_ISOLATE")
    assert iso_alert.severity == "critical" and iso_alert.evidence["redispatch_converged"] is True


def test_no_penalty_in_normal_operation_with_measurement_noise():
    sc = Scenario(case="case5", hours=2.0, line_noise_mw=1.0, probe_noise_mw=1.0, seed=5)
    run = simulate(sc, "batch")
    assert run.isolations == []
    assert (run.pairs["p"] == 0).all()
    # The noise was there: the probe differs from the truth, only the dead zone absorbs it.
    s = run.samples
    assert np.abs(s["p_probe_mw"] - s["p_actual_mw"]).max() > 0.5


def test_probe_is_the_true_injection_without_noise():
    sc = Scenario(case="case5", hours=0.5, line_noise_mw=0.0, deviations=(Deviation("P2", -7.0, 5.0),))
    run = simulate(sc, "batch")
    s = run.samples
    assert np.abs(s["p_probe_mw"] - s["p_actual_mw"]).max() < 1e-4  # the AC power flow's tolerance


def test_false_data_injection_is_caught_from_the_neighbours_meters(fdi_run):
    run = fdi_run
    s = run.samples[run.samples["prosumer"] == "P3"]
    before = s[s["ts"] < run.isolations[0]["ts"]]
    # It reports exactly its agreed value, while it produces 25 MW less.
    assert np.abs(before["p_reported_mw"] - before["p_ref_mw"]).max() == 0
    assert (before["p_actual_mw"] - before["p_ref_mw"]).min() < -24
    # Its own meters add up to the agreed value too: probing P3 from its own line ends sees nothing ...
    m = run.measurements
    own = m[(m["at"] == "P3") & (m["ts"] >= "2024-06-01T00:15Z") & (m["ts"] < run.isolations[0]["ts"])]
    own_sum = own.groupby("ts")["p_mw"].sum()
    ref = before.set_index("ts")["p_ref_mw"].reindex(own_sum.index)
    assert np.abs(own_sum - ref).mean() < 1.0
    # ... but the far ends (its neighbours' meters) give it away: isolated.
    assert [r["prosumer"] for r in run.isolations] == ["P3"]


def test_agents_in_process_decide_as_the_batch_engine(paper_run):
    batch = simulate(builtin("paper"), "batch")
    assert [(r["prosumer"], r["interval"]) for r in batch.isolations] == \
        [(r["prosumer"], r["interval"]) for r in paper_run.isolations]
    a, b = batch.pairs, paper_run.pairs
    assert len(a) == len(b)
    assert np.allclose(a["p"], b["p"], rtol=1e-9, atol=1e-12)


def test_mqtt_agents_decide_as_in_process(mqtt_broker, paper_run):
    run = simulate(builtin("paper"), "mqtt", broker=(mqtt_broker.host, mqtt_broker.port),
                   topic="test/grid/mqtt-same-decisions", timeout_s=20)
    assert run.isolations == paper_run.isolations
    assert (run.intervals["decision"] == paper_run.intervals["decision"]).all()
    assert np.array_equal(run.pairs["p"].to_numpy(), paper_run.pairs["p"].to_numpy())


def test_a_malformed_grid_message_is_dropped_and_the_agent_still_hears(mqtt_broker):
    import json
    import threading

    from wattwatch.grid.agents import _MqttEndpoint

    got, seen = [], threading.Event()

    def on_meas(topic, payload):   # what the agents do with a message: JSON, then fields
        got.append(json.loads(payload)["z"])
        seen.set()

    rx = _MqttEndpoint(mqtt_broker.host, mqtt_broker.port, "t-grid-rx", 10)
    tx = _MqttEndpoint(mqtt_broker.host, mqtt_broker.port, "t-grid-tx", 10)
    try:
        rx.subscribe("test/grid/bad/meas/1", on_meas)
        for bad in (b"\xff\xfe", "[" * 5000 + "]" * 5000, "{}", "not json"):
            tx._c.publish("test/grid/bad/meas/1", bad, qos=1)
        tx.publish("test/grid/bad/meas/1", json.dumps({"z": 7}))
        assert seen.wait(10), "the good message after four bad ones never arrived"
        assert got == [7] and rx.malformed == 4
    finally:
        rx.close()
        tx.close()


def test_probe_noise_per_neighbour_gives_the_same_decisions_in_agents():
    sc = dataclasses.replace(builtin("persistent"), probe_noise_mw=3.0, seed=2)
    a, b = simulate(sc, "batch"), simulate(sc, "inprocess")
    assert a.isolations == b.isolations
    assert np.allclose(a.pairs["d_mwh"], b.pairs["d_mwh"], atol=1e-9)
    # Each neighbour has its own probing error: the two watchers of P3 disagree slightly.
    p3 = a.pairs[a.pairs["prosumer"] == "P3"].groupby("ts")["d_mwh"].agg(["min", "max"])
    assert (p3["max"] - p3["min"]).max() > 0


def test_neighbour_sets_are_updated_after_isolation():
    from wattwatch.grid.network import load_case
    from wattwatch.grid.world import watch_matrix

    g = load_case("case5")
    watched = np.ones(g.n, bool)
    watched[g.slack] = False
    w0 = watch_matrix(g, watched)
    # case5: P3 (bus 2) joins P2 (bus 1) and P4 (bus 3); P2 and P4 are not adjacent.
    assert not w0[1, 3] and w0[1, 2] and w0[3, 2]
    g.isolate(2)
    watched[2] = False
    w1 = watch_matrix(g, watched)
    assert not w1[:, 2].any() and not w1[2].any()
    assert w1[3, 1], "through the isolated bus, P4 now watches P2"


def test_real_profiles_drive_the_references_without_false_isolation():
    sc = Scenario(case="case5", hours=3.0, profile="real", start="2024-06-01T09:00:00Z", seed=4,
                  watch=WatchConfig(interval_min=15, samples=15), dispatch_hours=1.5)
    run = simulate(sc, "batch")
    ref = run.samples.pivot(index="ts", columns="prosumer", values="p_ref_mw")
    assert (ref.nunique() > 1).all(), "references re-agreed every 1.5 h follow the PV and load profiles"
    act = run.samples.pivot(index="ts", columns="prosumer", values="p_actual_mw")
    assert (act - ref).abs().max().max() > 0.5, "intra-hour PV/load variation"
    assert run.isolations == []
    assert all(d["converged"] for d in run.dispatches)


def test_bad_scenarios_are_refused():
    from wattwatch.errors import ConfigError

    with pytest.raises(ConfigError, match="P4.*slack"):
        simulate(Scenario(deviations=(Deviation("P4", 5.0),)), "batch")
    with pytest.raises(ConfigError, match="P99"):
        simulate(Scenario(deviations=(Deviation("P99", 5.0),)), "batch")
    with pytest.raises(ConfigError, match="case"):
        Scenario(case="case9999")


def test_a_redispatch_that_does_not_converge_keeps_the_last_point_and_the_slack_balances(monkeypatch):
    from wattwatch.grid import network

    sc = builtin("persistent")
    real = network.Grid.dispatch
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        d = real(self)
        if self.isolated:   # the re-dispatch after the isolation fails
            return network.Dispatch("ac-opf", False, 0.0, d.injection_mw * np.nan, d.end_flow_mw * np.nan,
                                    d.loss_mw * np.nan, note="forced failure")
        return d

    monkeypatch.setattr(network.Grid, "dispatch", flaky)
    run = simulate(sc, "batch")
    (iso,) = run.isolations
    assert iso["redispatch_method"] == "previous+slack" and iso["redispatch_converged"] is False
    after = run.samples[run.samples["ts"] > iso["ts"]]
    p3 = after[after["prosumer"] == "P3"]
    assert np.abs(p3["p_actual_mw"]).max() == 0
    # What P3 injected before, the slack now injects: the others keep their agreed points.
    others = after[after["prosumer"] != "P3"]
    assert np.allclose(others["p_actual_mw"], others["p_ref_mw"])
    assert (run.intervals.loc[run.intervals["prosumer"] != "P3", "penalty"].fillna(0) == 0).all()
