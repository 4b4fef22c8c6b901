"""(fs) profile_fast_step.py's fleet and warm-up, then TIMED steps inside ``timed_steps`` (for a sampling
profiler: /work/.../py-spy record -r 500 -f raw -o OUT --nonblocking -- python scripts/fast_step_timed.py 40;
then scripts/fast_step_shares.py OUT)."""
import sys, tempfile, time
from pathlib import Path
import numpy as np
from wattwatch.app.benchstream import profiled_engine, simulated_stream
from wattwatch.runners.stream import StreamConfig
M, H, TIMED, SEED = 200, 3.0, int(sys.argv[1]) if len(sys.argv) > 1 else 30, 7
prof, live = simulated_stream(M, 1 + H / 24, 1, 60.0, SEED)
db = Path(tempfile.mkdtemp(prefix="ww-fs-")) / "s.duckdb"
_, _, eng = profiled_engine(db, prof, {"engine": {"profile_days": 1}}, 1, StreamConfig(checkpoint_s=1e9, slow_thread=False))
eng.step()
live = live.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
n = len(live); per = M
cut = n - TIMED * per
for i in range(0, cut, 5000):
    eng.add(live.iloc[i:min(i + 5000, cut)]); eng.step()
def timed_steps():
    cpu = []
    for k in range(TIMED):
        b = live.iloc[cut + k * per: cut + (k + 1) * per]
        c0 = time.thread_time()
        eng.add(b); eng.step()
        cpu.append(1e3 * (time.thread_time() - c0))
    return cpu
cpu = timed_steps()
print("steps", len(cpu), "p50 %.1f mean %.1f" % (np.median(cpu), np.mean(cpu)))
