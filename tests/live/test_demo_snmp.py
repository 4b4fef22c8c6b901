"""`watch --demo` polls its SNMPv3 PDU and UPS (real pysnmp agents on 127.0.0.1, authPriv SHA + AES):
outlet readings land in the demo's store, and the scheduled UPS fault becomes an alert — after the
watcher has profiled the UPS, even when the watcher comes up late (a loaded machine)."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from wattwatch import api
from wattwatch.devices.demo import SCHEDULE, Demo
from wattwatch.store import Store

pytest.importorskip("pysnmp")


def test_demo_polls_the_pdu_and_ups_over_snmpv3_and_alerts_the_ups_on_battery(tmp_path):
    # speed 8: the PDU's overload comes 11.25 s and the UPS loses its input 11.9 s after the watcher
    # first read them; meters are profiled on their first 8 s.
    speed, profile_s = 8.0, 8.0
    demo = Demo(tmp_path, speed=speed, log=lambda m: None, profile_s=profile_s)
    stop = threading.Event()
    box = {}
    try:
        # A slow start: the watcher comes up later than the UPS outage's lead over its profile when
        # the schedule counted from Demo() (3.9 s here; at load 25 start-up alone took 11-18 s), so
        # such a schedule put the outage inside the UPS's profile. Nothing is injected meanwhile.
        lead = next(at for at, dev, *_ in SCHEDULE if dev == "ups") / speed - profile_s
        time.sleep(lead + 1.0)
        assert not any("injected" in e for e in demo.events), demo.events
        site = demo.site.read_text()
        assert 'type = "snmp"' in site and 'priv_protocol = "aes"' in site and 'auth_protocol = "sha"' in site
        seen, opened = set(), threading.Event()

        def on_step(engine, rep, batches):   # after the step: its readings and alerts are in the store
            demo.on_step(engine, rep, batches)   # as `watch --demo` does: the faults' clock
            if any(a.meter_id == "ups" and a.code == "INFO_SUPPLY_OUTAGE" for a in rep.alerts):
                seen.add("alert")
            for b in batches:
                f = b.frame
                if "ups_battery_pct" in f and (f["meter_id"].astype(str).eq("ups") & (f["ups_battery_pct"] < 100)).any():
                    seen.add("draining")
            if seen == {"alert", "draining"}:
                opened.set()

        th = threading.Thread(target=lambda: box.update(res=api.watch(demo.site, stop=stop, on_step=on_step)))
        th.start()
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline and not any("on_battery" in e for e in demo.events):
            time.sleep(0.5)
        # The outage lasts: stop once its alert is open and the battery has drained a whole percent.
        opened.wait(60)
        stop.set()
        th.join(60)
        assert not th.is_alive()
        # (rs1) Every device's meters are mapped to it and its fault clock started (Modbus gateways,
        # MQTT, SNMP): a device never read would silently never get its faults.
        assert demo.unread() == [], (demo.unread(), demo.events)
        views = {v["name"]: v for v in demo.views()}
        assert "on_battery" in views["ups"]["faults"] and "overload" in views["pdu"]["faults"]
        with Store(tmp_path / "demo.duckdb", read_only=True) as s:
            r = s.query(["pdu/outlet1", "pdu/outlet2", "ups"])
            alerts = s.con.execute("SELECT meter_id, code FROM alerts").df()
    finally:
        stop.set()
        demo.stop()
    ups = r[r["meter_id"] == "ups"]
    assert ups["v_l1_v"].min() == 0 and ups["ups_battery_pct"].min() < 100
    # The outage began after the UPS's profile (its first profile_s of readings, all on mains).
    since = (ups.loc[ups["v_l1_v"] == 0, "ts"].min() - ups["ts"].min()).total_seconds()
    assert since > profile_s, f"the UPS lost its input {since:.1f} s after its first reading"
    res = box["res"]
    snmp_view = {v["name"]: v for v in res.sources}["snmp"]
    assert snmp_view["answered"] >= 20 and snmp_view.get("auth_failures", 0) == 0
    per = r.groupby("meter_id", observed=True)["ts"].count()
    assert per["pdu/outlet1"] >= 10 and per["pdu/outlet2"] >= 10
    o2 = r[r["meter_id"] == "pdu/outlet2"]
    assert o2["i_l1_a"].max() == pytest.approx(16.0)        # the injected overload, as polled
    codes = set(zip(alerts["meter_id"], alerts["code"]))
    assert ("ups", "INFO_SUPPLY_OUTAGE") in codes, codes
    assert not any(m.startswith("pdu") and c == "INFO_SUPPLY_OUTAGE" for m, c in codes)
