"""The fast tier's profiling fleet, shared by the fast-step scripts (profile_fast_step.py,
profile_fast_detectors.py, replay_fast_feeds.py): 200 meters at 1 min, seed 7, a profiling day then
3 h live (the fleet and engine of scripts/profile_stream_groups.py), the engine fitted and fed all
but the last ``timed`` steps' readings (one reading per meter a step)."""
import tempfile
from pathlib import Path

M, H, SEED = 200, 3.0, 7


def warm_engine(timed: int, prefix: str = "ww-fast-"):
    """(engine, live readings sorted by time and meter, row where the timed steps start)."""
    from wattwatch.app.benchstream import profiled_engine, simulated_stream
    from wattwatch.runners.stream import StreamConfig
    prof, live = simulated_stream(M, 1 + H / 24, 1, 60.0, SEED)
    db = Path(tempfile.mkdtemp(prefix=prefix)) / "s.duckdb"
    _, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1,
                                StreamConfig(checkpoint_s=1e9, slow_thread=False))
    eng.step()
    live = live.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
    cut = len(live) - timed * M
    for i in range(0, cut, 5000):
        eng.add(live.iloc[i:min(i + 5000, cut)])
        eng.step()
    return eng, live, cut
