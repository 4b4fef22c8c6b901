"""The watcher runs its steps with the heap it holds once warm out of the cyclic collector's way
(``gc.freeze`` after its first step: rfc, issue 16). At 200 meters at 1 min the collector's full
passes scanned that heap, ~80-90 ms of CPU each, twice in 40 fast steps: a p99 step of their own.
When the run ends the objects are the collector's again (``gc.unfreeze``): a process that runs a
watcher more than once, or goes on after it, collects their cyclic garbage as before."""

from __future__ import annotations

import asyncio
import gc

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine, run
from wattwatch.store import Store


def test_the_watcher_steps_with_its_warm_heap_frozen_and_hands_it_back_at_the_end(tmp_path):
    store = Store(tmp_path / "w.duckdb")
    eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig(checkpoint_s=1e9))
    frozen: list[int] = []
    gc.unfreeze()   # (whatever an earlier test of this process left)
    try:
        asyncio.run(run(eng, [], asyncio.Event(), tick_s=0.01, on_step=lambda rep, b: frozen.append(gc.get_freeze_count())))
        # Every step the loop ran saw the modules, the engine and its detectors frozen ...
        assert len(frozen) >= 2 and min(frozen) > 1000, frozen
        # ... and none is left frozen once it has ended.
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        eng.close()
        store.close()
