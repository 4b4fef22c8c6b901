"""(lc) A poller's interval is handed to the store as the cadence of the meters whose readings take
its poll's time: a meter's first live batch with lost polls no longer sets a cadence long enough to
turn its next readings into copies (fl2/rfl2's open item). Real pymodbus gateways on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pandas as pd

PLAIN = [{"channel": "p_kw", "table": "input", "address": 0, "type": "float32"}]
CLOCKED = [{"channel": "ts", "table": "holding", "address": 0, "type": "uint32"},
           {"channel": "p_kw", "table": "input", "address": 2, "type": "float32"}]


def test_a_lossy_first_batch_keeps_the_poll_interval_and_a_meter_slower_than_the_poll_its_own(tmp_path):
    # A: no clock register (its readings take the poll's time), polled every 0.25 s, four polls lost
    # in its first batch (the gateway drops the answers): gaps 0.25 and 1.25 s, a 75th percentile of
    # 1 s whose tolerance (0.25 s) made the 0.25-s reading a copy, and the next batch's one reading
    # too. B: a meter whose whole-second clock (uint32) moves on every other poll -- it reads
    # slower than the poll (m1s: the same clock and values again are re-sends): its cadence stays 1 s.
    from wattwatch import api
    from wattwatch.devices import modbus as dev
    from wattwatch.runners.stream import StreamConfig, StreamEngine
    from wattwatch.sources import modbus as mb
    from wattwatch.store import Store

    ga = dev.start("ga", {"registers": PLAIN, "meters": ["A"], "advance": "fixed"})
    gb = dev.start("gb", {"registers": CLOCKED, "meters": ["B"], "advance": "fixed"})
    models = {"plain": mb.parse_model("plain", {"registers": PLAIN}),
              "clocked": mb.parse_model("clocked", {"registers": CLOCKED})}
    p = mb.ModbusPoller("plant", [{"meter_id": "A", "port": ga.port, "model": "plain"},
                                  {"meter_id": "B", "port": gb.port, "model": "clocked"}],
                        models, interval_s=0.25, timeout_s=0.2, retries=0)
    t0 = pd.Timestamp("2026-12-07T07:00:00Z")
    clock = int(t0.timestamp())

    async def run():
        out = []
        for k in range(12):
            ga.inject("drop", share=1.0) if 2 <= k <= 5 else ga.inject("clear")
            ga.set_values(1, {"p_kw": 10.0 + k})
            gb.set_values(1, {"ts": clock + k // 2, "p_kw": 20.0 + k // 2})
            f = await p.poll()
            # A's time is the poll's: put on the 0.25-s schedule the poller keeps, so that a wake-up
            # late on a loaded machine does not move a gap across the store's tolerance.
            f.loc[f["meter_id"] == "A", "ts"] = t0 + pd.Timedelta(seconds=0.25 * k)
            out.append(f)
        return out

    try:
        frames = asyncio.run(run())
    finally:
        p.close()
        ga.stop()
        gb.stop()
    assert [int((f["meter_id"] == "A").sum()) for f in frames] == [1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert p.poll_paced() == (0.25, frozenset({"A"}))   # B's clock says its own time
    with Store(tmp_path / "s.duckdb") as store:
        eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig())
        try:
            eng.resume_sources([p])
            for lo, hi in ((0, 7), (7, 8), (8, 12)):   # the first batch lossy, then one poll, then four
                eng.add(pd.concat(frames[lo:hi], ignore_index=True), source="plant")
            kept = store.query(["A", "B"])
            cad = dict(store.con.execute("SELECT meter_id, cadence_s FROM meters").fetchall())
        finally:
            eng.close()
    a = kept[kept["meter_id"] == "A"]
    assert list(a["p_kw"]) == [10.0, 11.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0], list(a["p_kw"])
    assert cad["A"] == 0.25, cad
    b = kept[kept["meter_id"] == "B"]
    assert list(b["p_kw"]) == [20.0, 21.0, 22.0, 23.0, 24.0, 25.0] and cad["B"] == 1.0, (list(b["p_kw"]), cad)


def test_a_first_batch_without_a_gap_of_one_poll_keeps_every_poll(tmp_path):
    # (rlc) A 1-s poll-timed meter whose first batch kept only polls 0, 2 and 11 (a 75th percentile
    # of ~9 s, tolerance ~2.2 s): no gap of exactly one poll, and the 2-s gap -- two polls -- was
    # merged as a copy (held-out loss seed 105 of 20, rlc's review). Two polls a poll or more apart
    # are two readings: all stored, the interval the cadence.
    from wattwatch.ingest.pipeline import ingest_live
    from wattwatch.store import Store

    t0 = pd.Timestamp("2026-12-07T07:00:00Z")

    def batch(polls):
        return pd.DataFrame({"meter_id": "A", "ts": [t0 + pd.Timedelta(seconds=k) for k in polls],
                             "p_kw": [10.0 + k for k in polls]})

    with Store(tmp_path / "s.duckdb") as store:
        for polls in ([0, 2, 11], [12], [13, 14, 15]):
            ingest_live(store, batch(polls), source="watch:plant", poll=(1.0, None))
        kept = list(store.query(["A"])["p_kw"])
        cad = store.con.execute("SELECT cadence_s FROM meters WHERE meter_id = 'A'").fetchall()[0][0]
    assert kept == [10.0, 12.0, 21.0, 22.0, 23.0, 24.0, 25.0] and cad == 1.0, (kept, cad)
