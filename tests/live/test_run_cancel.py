"""A watcher cancelled while a step runs in its thread (Ctrl-C, a task cancelled): the closing
checkpoint waits for that step, never runs beside it on the same DuckDB connection and engine
(with ``asyncio.to_thread`` the cancelled await returned at once and the checkpoint overlapped)."""

from __future__ import annotations

import asyncio
import threading
import time

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine, run
from wattwatch.store import Store


def test_a_cancelled_run_checkpoints_after_the_running_step_not_beside_it(tmp_path):
    store = Store(tmp_path / "w.duckdb")
    eng = StreamEngine(store, api.build_detectors(["supply_outage"]), None, StreamConfig(checkpoint_s=1e9))
    events: list[tuple[str, float]] = []
    busy = threading.Event()
    step, checkpoint = eng.step, eng.checkpoint
    calls = [0]

    def slow_step(*a, **k):
        calls[0] += 1
        if calls[0] < 2:
            return step(*a, **k)
        busy.set()
        events.append(("step-start", time.monotonic()))
        time.sleep(1.0)
        out = step(*a, **k)
        events.append(("step-end", time.monotonic()))
        return out

    def recorded_checkpoint(*a, **k):
        events.append(("checkpoint", time.monotonic()))
        return checkpoint(*a, **k)

    eng.step, eng.checkpoint = slow_step, recorded_checkpoint

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(run(eng, [], stop, tick_s=0.01))
        while not busy.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    order = [e for e, _ in events]
    assert order[:3] == ["step-start", "step-end", "checkpoint"], order
    assert store.con.execute("SELECT count(*) FROM stream_checkpoint").fetchone()[0] == 1
    eng.close()
    store.close()
