"""(lc) An SNMP outlet that is no longer polled or no longer listed: its silence alert kept open for
ever before. A facility engineer expects an outlet the agent stops listing (removed from the PDU's
table, its index changed) to be alerted as a lost outlet saying so, that alert to go on over a
watcher restart and end when the outlet is listed again, and the alert of an outlet the config no
longer polls (its PDU taken out) to end at the restart saying why. Real pysnmp agents (authPriv)."""

from __future__ import annotations

import asyncio

from tests.live.test_silence import _cycles
from wattwatch.runners import silence as sil

KEYS = {"user": "ops", "auth_key": "auth-secret-1", "priv_key": "priv-secret-1"}


def _source(devs):
    from wattwatch.sources import snmp

    return snmp.from_spec("racks", {"interval_s": 0.5, "request_timeout_s": 0.3, **KEYS,
                                    "devices": [{"name": n, "port": p, "model": m} for n, p, m in devs]}, None)


def _watch():
    return sil.SilenceWatch(sil.SilenceConfig.from_dict({"min_s": 1.5, "lost_polls": 3, "update_s": 0.5}))


async def _outlet_taken_out(pdu, devs, srcs, heard: int):
    """Both tests' first run: every meter of ``devs`` heard (``heard`` of them), then pdu1 restarted on
    its port with three outlets (outlet 4 taken out) until its lost-outlet alert is written. Returns
    the source, the watch, the alerts and the restarted agent."""
    from wattwatch.devices import snmp as agent

    src, w, got = _source(devs), _watch(), []
    srcs.append(src)
    w.resume([src], [], known={})
    assert await _cycles(src, w, got, 20, lambda: sum(v[2] is not None for v in src.silence.values()) == heard)
    pdu.stop()
    pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 3, "seed": 3, "port": pdu.port, **KEYS})
    # (a version saying so: the first polls of a new source may find the agent slow at load)
    assert await _cycles(src, w, got, 15, lambda: any(
        x.meter_id == "pdu1/outlet4" and "no longer lists" in x.evidence.get("why", "") for x in got)), \
        "no alert for the outlet the agent no longer lists"
    return src, w, got, pdu


def _run(go, srcs: list, agents) -> None:
    """Run ``go()``; then close its sources and stop the agents ``agents()`` gives (as they are then)."""
    try:
        asyncio.run(go())
    finally:
        for s in srcs:
            s.close()
        for a in agents():
            a.stop()


def test_an_outlet_the_agent_stops_listing_is_alerted_goes_on_over_a_restart_and_ends_when_listed_or_unpolled():
    from wattwatch.devices import snmp as agent

    pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 4, "seed": 3, **KEYS})
    ups = agent.start("ups1", {"model": "ups_mib", "seed": 4, **KEYS})
    port = pdu.port
    devs = [("pdu1", port, "apc_rpdu2"), ("ups1", ups.port, "ups_mib")]
    lost = "pdu1/outlet4"
    srcs = []

    def last(got, m):
        return [a for a in got if a.meter_id == m][-1]

    def unlisted(got):   # (a version saying so: the first polls of a new source may find the agent slow
        return any(x.meter_id == lost and "no longer lists" in x.evidence.get("why", "") for x in got)  # at load)

    async def go():
        nonlocal pdu
        # run 1: every meter heard, then the PDU comes back with three outlets (outlet 4 taken out)
        src, w, got, pdu = await _outlet_taken_out(pdu, devs, srcs, 6)
        await _cycles(src, w, got, 0.6)
        a = last(got, lost)
        # (the other outlets and the UPS never; the PDU's agent may be said unreachable while it restarts)
        assert not {x.meter_id for x in got} - {lost, "agent:pdu1"}, [x.meter_id for x in got]
        src.close()
        # run 2 (restarted; the agent still lists three): the stored alert goes on, same id
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        w.resume([src], [a], known={})   # (the stored alert alone names the outlet: run 2b, the store)
        assert await _cycles(src, w, got, 15, lambda: unlisted(got)), \
            "the resumed alert of the unlisted outlet was never updated (open for ever)"
        b = last(got, lost)
        assert {x.id for x in got if x.meter_id == lost} == {a.id} and not b.evidence["ended"], b.evidence
        src.close()
        # run 2b: restarted without the stored alert (lost while the watcher was down): the store
        # heard the outlet, the agent no longer lists it: a lost outlet, alerted (not forgotten)
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        w.resume([src], [], known={lost: 0})
        assert await _cycles(src, w, got, 15, lambda: unlisted(got)), \
            "an outlet the store knows and the agent no longer lists was forgotten at the restart"
        src.close()
        # run 3: outlet 4 is back in the agent's table: the alert ends
        pdu.stop()
        pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 4, "seed": 3, "port": port, **KEYS})
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        w.resume([src], [b], known={lost: 0})
        assert await _cycles(src, w, got, 15, lambda: any(x.meter_id == lost and x.evidence["ended"] for x in got)), \
            "the alert did not end when the outlet was listed again"
        src.close()
        # run 4: the PDU taken out of the config (the source stays): the outlet's alert ends at once, why said
        src, w, got = _source(devs[1:]), _watch(), []
        srcs.append(src)
        w.resume([src], [b], known={lost: 0})
        got.extend(w.check([src]))
        c = last(got, lost)
        assert c.id == a.id and c.evidence["ended"], c.evidence
        assert c.evidence["ended_because"] == "the meter is no longer polled by this source", c.evidence

    _run(go, srcs, lambda: (pdu, ups))


def test_the_device_a_row_meter_belongs_to_is_found_without_a_regex_per_device():
    """(le; rlc's measure) ``SnmpSource.expect`` over the store's known meters at a restart tried one
    regex per device and table for each meter: 0.44 s CPU at 200 PDUs x 24,800 meters, growing with
    both. One regex per distinct template now (the devices as one alternation, config order): the
    same owners (the first device in the config's order that names the meter). (rle) The cost is
    checked by counting, not timing (a CPU bound fails at load 10-30 and on slow CI): the Python lines
    ``expect`` runs for the same 300 meters must not grow with the number of devices (the old code's
    loop over a regex per device and table: ~10x from 10 to 100 PDUs). No agent is asked (``expect``
    reads the config only)."""
    import sys

    from wattwatch.sources import snmp

    models = {"twin": {"scalars": {"v_l1_v": {"oid": "1.3.6.1.4.1.9.1"}},
                       "tables": {"port": {"meter": "{device}{index}", "columns": {"i_l1_a": {"oid": "1.3.6.1.4.1.9.2"}}},
                                  "pair": {"meter": "{device}:{index}:{device}",
                                           "columns": {"i_l1_a": {"oid": "1.3.6.1.4.1.9.3"}}}}}}
    devs = [{"name": n, "port": 161, "model": m} for n, m in (("p", "twin"), ("p1", "apc_rpdu2"), ("p12", "twin"))]
    src = snmp.from_spec("racks", {"interval_s": 10, **KEYS, "models": models, "devices": devs}, None)
    owner = {m: getattr(src._owner(m), "name", None)
             for m in ("p", "p1", "p12", "p13", "p123", "p1/outlet2", "p12/outlet2", "p:4:p", "p12:4:p12", "p1:4:p",
                       "p1/outlet", "q/outlet1", "p:4:p1")}
    assert owner == {"p": "p", "p1": "p1", "p12": "p12", "p13": "p", "p123": "p", "p1/outlet2": "p1",
                     "p12/outlet2": None, "p:4:p": "p", "p12:4:p12": "p12", "p1:4:p": None, "p1/outlet": None,
                     "q/outlet1": None, "p:4:p1": None}, owner
    src.close()

    def lines_run(pdus: int) -> tuple[int, int]:
        """(meters ``expect`` takes, Python lines it runs) for 100 outlets of pdu0-pdu4 and 200 other
        meters, with ``pdus`` PDUs configured (the matchers built before counting: once per source)."""
        src = snmp.from_spec("racks", {"interval_s": 10, **KEYS, "devices": [
            {"name": f"pdu{i}", "port": 161, "model": "apc_rpdu2"} for i in range(pdus)]}, None)
        known = [f"pdu{i}/outlet{j}" for i in range(5) for j in range(1, 21)] + [f"m{k}" for k in range(200)]
        src.expect("warm-up")
        count = [0]

        def trace(frame, event, arg):
            if event == "line":
                count[0] += 1
            return trace

        before = sys.gettrace()   # (a coverage tracer, if any, is put back)
        sys.settrace(trace)
        try:
            n = sum(src.expect(m) for m in known)
        finally:
            sys.settrace(before)
            src.close()
        return n, count[0]

    (n10, few), (n100, many) = lines_run(10), lines_run(100)
    assert (n10, n100) == (100, 100) and many <= 1.1 * few, (n10, n100, few, many)


def test_a_lost_outlet_cleared_by_an_operator_ends_and_is_not_watched_until_listed_again():
    """(le; rlc's leftover) An outlet unplugged for good stayed alerted until its meter was put in
    ``[silence] ignore`` by hand (for ever: an outlet plugged in there later would never be watched).
    SPEC's lifecycle (open -> acknowledged -> cleared) says it: acknowledged, it stays alerted (someone
    has it in hand; it may come back); **cleared**, its alert ends (``evidence.retired``, why said) and
    the outlet is not watched -- nor after a restart, nor when the alert was cleared while no watcher
    ran -- until its agent lists it again. Real pysnmp agents (authPriv)."""
    from wattwatch.devices import snmp as agent

    pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 4, "seed": 3, **KEYS})
    port, lost, srcs = pdu.port, "pdu1/outlet4", []
    devs = [("pdu1", port, "apc_rpdu2")]

    def mine(got):
        return [x for x in got if x.meter_id == lost]

    async def go():
        nonlocal pdu
        src, w, got, pdu = await _outlet_taken_out(pdu, devs, srcs, 5)
        a = mine(got)[-1]
        assert a.evidence.get("lost_outlet"), a.evidence
        status = {a.id: "acknowledged"}
        w.status_of = status.get
        got.clear()   # acknowledged: goes on (updated, not ended)
        assert await _cycles(src, w, got, 5, lambda: bool(mine(got))) and not mine(got)[-1].evidence["ended"]
        status[a.id] = "cleared"
        got.clear()
        assert await _cycles(src, w, got, 5, lambda: bool(mine(got)))
        b = mine(got)[-1]
        assert (b.id, b.evidence["ended"], b.evidence.get("retired")) == (a.id, True, True), b.evidence
        assert "removed for good" in b.evidence["ended_because"] and "cleared" in b.message
        got.clear()   # not watched: never alerted again, not one of its agent's units
        await _cycles(src, w, got, 1.0)   # (a new alert would come at once: its silence is long)
        units = [m for m, _ in src.silence_links()["pdu1"]["units"]]
        assert not mine(got) and lost not in units and "pdu1/outlet3" in units, (mine(got), units)
        src.close()
        # restarted: the store's retired version names it (the engine hands it over): not watched
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        w.resume([src], [], known={lost: 0, "pdu1/outlet3": 0}, retired=[("racks", lost)])
        await _cycles(src, w, got, 1.0)
        # (rle) not taken among its agent's units nor its poller's silence table (then it is never
        # counted lost): what waiting 2.5 s for no alert showed, without the wait (the watch's own
        # retired check, shown above, alone kept it from an alert: taking this one out passed)
        units = [m for m, _ in src.silence_links()["pdu1"]["units"]]
        assert not mine(got) and lost not in src.silence and lost not in units, (mine(got), src.silence, units)
        src.close()
        # restarted with its alert open in the store, cleared while no watcher ran, its PDU down: (le2)
        # not retired while nothing says the outlet is gone (le retired it at the restart, before any
        # poll); the alert goes on, same id, until the agent answers without it: retired then
        pdu.stop()
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        a.status = "cleared"
        w.resume([src], [a], known={lost: 0})
        assert await _cycles(src, w, got, 10, lambda: len(mine(got)) >= 2), mine(got)
        assert [(x.id, x.evidence["ended"], x.evidence.get("lost_outlet")) for x in mine(got)] == \
            [(a.id, False, None)] * len(mine(got)) and ("racks", lost) not in w.retired, mine(got)
        pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 3, "seed": 3, "port": port, **KEYS})
        assert await _cycles(src, w, got, 15, lambda: any(x.evidence["ended"] for x in mine(got))), mine(got)[-1:]
        assert [(x.id, x.evidence.get("retired")) for x in mine(got) if x.evidence["ended"]] == [(a.id, True)]
        src.close()
        # listed again: watched again (heard after its retirement)
        pdu.stop()
        pdu = agent.start("pdu1", {"model": "apc_rpdu2", "outlets": 4, "seed": 3, "port": port, **KEYS})
        src, w, got = _source(devs), _watch(), []
        srcs.append(src)
        w.resume([src], [], known={lost: 0}, retired=[("racks", lost)])
        assert await _cycles(src, w, got, 15, lambda: ("racks", lost) not in w.retired), "not watched again"
        assert lost in [m for m, _ in src.silence_links()["pdu1"]["units"]]

    _run(go, srcs, lambda: (pdu,))


def test_a_retired_outlet_is_handed_to_the_silence_watch_at_a_restart_until_a_reading_follows(tmp_path):
    """(le) The restart side of the test above: the engine finds the retired versions in the store
    (``_load_health``) and hands the silence watch the outlets not heard since (no reading after the
    version's end); one read after it (listed again meanwhile, its readings stored) is watched. No agent."""
    import pandas as pd

    from wattwatch import api
    from wattwatch.alerts.model import Alert
    from wattwatch.runners.stream import StepReport, StreamConfig, StreamEngine
    from wattwatch.store import Store

    path = tmp_path / "live.duckdb"

    def engine(store):
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig(checkpoint_s=0))
        eng.silence = _watch()
        eng.resume_sources([_source([("pdu1", 1, "apc_rpdu2")])])
        return eng

    ev = {"kind": sil.KIND, "source": "racks", "lost": 9, "lost_outlet": True, "ended": True, "retired": True,
          "ended_because": "cleared"}
    gone = [Alert(meter_id=f"pdu1/outlet{k}", start="2026-01-01T00:00:00.000Z", end="2026-01-01T01:00:00.000Z",
                  code=sil.CODE, severity="warning", score=0.5, detector=sil.DETECTOR, message="m", evidence=ev)
            for k in (3, 4)]
    with Store(path) as store:
        eng = engine(store)
        eng.add(pd.DataFrame({"meter_id": ["pdu1/outlet3", "pdu1/outlet4"], "ts": pd.to_datetime(
            ["2025-12-31T23:00Z", "2026-01-01T02:00Z"], utc=True), "i_l1_a": [1.0, 1.0]}))   # 4: heard after
        eng.step()
        eng.add_health(gone, StepReport())
        eng.checkpoint()
    with Store(path) as store:
        eng = engine(store)
        assert eng.silence.retired == {("racks", "pdu1/outlet3"): float("-inf")}, eng.silence.retired
        # an operator's clear (``alerts clear``: the control channel, the engine's thread) is what the
        # watch asks the engine for (``status_of``): of an alert this run wrote, and of one it has not
        from wattwatch.runners import control

        live = Alert(**{**gone[1].__dict__, "start": "2026-01-02T00:00:00.000Z", "end": "2026-01-02T00:10:00.000Z",
                        "evidence": {**ev, "ended": False, "retired": False}})
        eng.add_health([live], StepReport())
        assert eng.silence.status_of(live.id) == "open"
        control.apply(eng, {"op": "set_status", "id": live.id, "status": "cleared"})
        control.apply(eng, {"op": "set_status", "id": gone[1].id, "status": "acknowledged"})
        assert (eng.silence.status_of(live.id), eng.silence.status_of(gone[1].id)) == ("cleared", "acknowledged")
