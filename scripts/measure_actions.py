"""Measure actions on 127.0.0.1: the engine thread's cost of handing an alert to an action (it returns
at once; a worker acts) and each kind's latency (modbus write + read-back against a pymodbus server,
signed webhook POST to http.server, command /bin/cat). Run from the repo root:

    PYTHONPATH=src python scripts/measure_actions.py        # N=50 alerts per kind (env N)
"""
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support, tests.live
from tests.live.test_actions import Hook, _alert
from tests.support.services import free_port, wait_port
from wattwatch import api
from wattwatch.runners.stream import StepReport
from wattwatch.store import Store

tmp = Path(tempfile.mkdtemp())
src = tmp / "t.csv"; src.write_text("meter_id,ts,v_l1_v\nm,2026-01-01T00:00:00Z,230\n")

def site(spec):
    return api.load_site({"sources": [{"type": "replay", "path": str(src)}], "actions": [spec]}).outputs[0]

# pymodbus server
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer
port = free_port()
ctx = ModbusServerContext(devices={1: ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [True]*16), hr=ModbusSequentialDataBlock(1, [0]*16))}, single=False)
loop = asyncio.new_event_loop()
async def serve():
    await ModbusTcpServer(ctx, address=("127.0.0.1", port)).serve_forever()
threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True).start()
wait_port(port)
hook = Hook()
specs = {
  "modbus_write": {"type": "modbus_write", "host": "127.0.0.1", "port": port, "target": "coil", "address": 3, "device_id": 1,
                   "value": False, "allow": [{"device_id": 1, "target": "coil", "address": 3, "values": [False]}], "dry_run": False},
  "webhook": {"type": "webhook", "url": hook.url, "dry_run": False},
  "command": {"type": "command", "argv": ["/bin/cat"], "dry_run": False},
}
N = int(os.environ.get("N", 50))
for kind, spec in specs.items():
    store = Store(tmp / f"{kind}.duckdb"); eng = SimpleNamespace(store=store, alerts={})
    o = site(spec)
    al = [_alert(start=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z") for i in range(N)]
    t0 = time.perf_counter()
    for a in al:
        o.alerts(StepReport(alerts=[a], new=[a.id]), eng)
    hand = (time.perf_counter() - t0) / N * 1e3
    o.flush(120)
    ms = store.con.execute("SELECT ms FROM actions_log WHERE outcome='ok'").df()["ms"]
    print(f"{kind:13s} n={len(ms)} hand-over {hand:.3f} ms/alert (engine thread); action p50 {ms.median():.1f} ms, p99 {ms.quantile(.99):.1f} ms")
    o.close(); store.close()
hook.stop()
