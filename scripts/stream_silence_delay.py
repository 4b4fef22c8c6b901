"""How soon ``watch`` says a silent gateway or meter (issue 16, runners/silence.py), at the site
defaults (``[silence]``: 3 lost polls and 120 s; 3 cadences and 120 s for a push meter) unless
``--min-s`` is given. A real pymodbus gateway with two meters polled every ``--interval`` s is
stopped after ``--warm`` s and started again ``--down`` s later; prints when the silence alert was
first written (seconds after the stop), its severity then and at its last open version, and when it
was ended (seconds after the gateway came back). The stream's own packet-loss alert of the gap (the
core, after the meter is heard again) is listed beside it with the step it was first written in.

    PYTHONPATH=src python scripts/stream_silence_delay.py --interval 1 --down 200
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from wattwatch import api
from wattwatch.devices import modbus as dev

REGS = [{"channel": "v_l1_v", "table": "input", "address": 0, "type": "float32"},
        {"channel": "i_l1_a", "table": "input", "address": 2, "type": "float32"},
        {"channel": "p_kw", "table": "input", "address": 4, "type": "float32"}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--warm", type=float, default=20.0)
    ap.add_argument("--down", type=float, default=200.0)
    ap.add_argument("--min-s", type=float, default=None)
    args = ap.parse_args()
    d = dev.start("gw", {"registers": REGS, "meters": ["A", "B"], "interval_s": args.interval, "seed": 1})
    tmp = Path(tempfile.mkdtemp())
    silence = {} if args.min_s is None else {"min_s": args.min_s}
    site = {"sources": [{"type": "modbus", "name": "plant", "interval_s": args.interval, "timeout_s": 0.5,
                         "models": {"m": {"registers": REGS}},
                         "devices": [{"meter_id": m, "port": d.port, "unit": u, "model": "m"}
                                     for u, m in ((1, "A"), (2, "B"))]}],
            "store": {"path": str(tmp / "s.duckdb")}, "detectors": ["packet_loss"], "silence": silence,
            "engine": {"profile_days": 10.0 * args.interval / 86400}}
    seen: dict[str, tuple] = {}
    stop = threading.Event()
    marks: dict[str, float] = {}

    def on_step(e, rep, b):
        now = time.time()
        for a in rep.alerts:
            first = seen.get(a.id, (now, a.severity))
            seen[a.id] = (first[0], first[1], now, a.severity, a.detector, a.meter_id, bool(a.evidence.get("ended")))

    t = threading.Thread(target=lambda: api.watch(site, stop=stop, on_step=on_step), daemon=True)
    t.start()
    time.sleep(args.warm)
    marks["down"] = time.time()
    d.inject("down")
    time.sleep(args.down)
    marks["up"] = time.time()
    d.inject("up")
    time.sleep(max(30.0, 5 * args.interval))
    stop.set()
    t.join(60)
    d.stop()
    print(f"interval {args.interval} s, gateway down {args.down:.0f} s, [silence] {silence or 'defaults'}")
    for aid, (t0, sev0, t1, sev1, det, m, ended) in sorted(seen.items(), key=lambda x: x[1][0]):
        print(f"{det:8s} {m} {aid}: first written {t0 - marks['down']:7.1f} s after the stop ({sev0}), "
              f"last version {sev1}, " + (f"ended {t1 - marks['up']:5.1f} s after the gateway came back" if ended
                                         else f"last written {t1 - marks['up']:6.1f} s after it came back"))


if __name__ == "__main__":
    main()
