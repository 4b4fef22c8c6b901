"""CPU of ``SilenceWatch.check`` a step (issue 16, runners/silence.py): one real ``ModbusPoller`` (no
network: its cycles' outcomes noted as ``Poller.run`` notes them) with 1,000 meters on 50 gateways, a
clock the script moves a second a check, half the meters silent behind live gateways (``live``: their
alerts opened and updated; since rgw those 25 gateways none of whose units answers are one alert
each), every other meter silent (``spread``: 500 meter alerts, each gateway half answering), or the
gateways of 400 of them down (``down``: held, one alert a gateway).
Prints the mean CPU of the last 50 of 200 checks. Compare two trees alternated in one sitting:

    for i in 1 2 3; do for s in /work/main/src src; do PYTHONPATH=$s python scripts/silence_check_cost.py live; done; done
"""

from __future__ import annotations

import logging
import sys
import time

import pandas as pd

from wattwatch.runners import silence as sil
from wattwatch.sources import modbus as mb

REGS = [{"channel": "p_kw", "table": "input", "address": 0, "type": "float32"}]


def main(mode: str) -> None:
    logging.disable(logging.WARNING)
    devs = [{"meter_id": f"M{i}", "port": 10000 + i // 20, "unit": 1 + i % 20, "model": "m"} for i in range(1000)]
    p = mb.ModbusPoller("plant", devs, {"m": mb.parse_model("m", {"registers": REGS})}, interval_s=1.0)
    now = [1.8e9]
    w = sil.SilenceWatch(clock=lambda: now[0])
    w.resume([p], [])
    ids = [d["meter_id"] for d in devs]
    p._answered(pd.DataFrame({"meter_id": ids}), now[0])
    for g in p.gateways.values():
        g.counters["connects"] = 1
    if mode == "down" and hasattr(p, "silence_links"):
        for _, g in list(p.gateways.items())[25:45]:     # the gateways of M500-M899
            g.down_since, g.down_wall, g.down_why = 1.0, now[0], "connection refused or unreachable"
    half = pd.DataFrame({"meter_id": ids[0::2] if mode == "spread" else ids[:500]})
    tot, n = 0.0, 0
    for k in range(200):
        now[0] += 1.0
        p._answered(half, now[0])
        t0 = time.process_time()
        w.check([p])
        if k >= 150:
            tot += time.process_time() - t0
            n += 1
    print(f"{mode}: check {1000 * tot / n:.2f} ms CPU a step, meters alerted {len(w.open)}, "
          f"gateways down {len(getattr(w, 'links', ()))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "live")
