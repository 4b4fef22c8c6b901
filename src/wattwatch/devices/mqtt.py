"""Simulated MQTT meters: each publishes one JSON reading (canonical field names, ``meter_id``,
``ts`` ISO-8601) every ``interval_s`` to ``topic`` (``{meter_id}`` is replaced), QoS 1, on a
broker at ``host``:``port`` (127.0.0.1).

Values come from a telemetry file (``replay = "FILE"``: the fleet's readings in time order, one
cycle of the file per interval, with the fleet's timestamps) or the same seeded generator as the
Modbus meters (with the time of publishing). Faults: ``drop`` (share of readings not published),
``malformed`` (share published as broken JSON), ``silent`` / ``clear`` (stop / resume publishing),
and the generator's ``open_ct`` (``phase``), ``neutral_bypass``, ``normal``.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.devices.modbus import HOSTS, Meter
from wattwatch.schema import CHANNEL_NAMES
from wattwatch.sources import modbus as mb

# A generator meter encodes into registers; here every channel is read back as float64.
_ALL = mb.parse_model("all", {"registers": [{"channel": c, "table": "holding", "address": 4 * k, "type": "float64"}
                                            for k, c in enumerate(CHANNEL_NAMES)]})


class Running:
    def __init__(self, name: str, spec: dict, root: Path | None):
        import paho.mqtt.client as mqtt

        from wattwatch.sources import only, resolve

        only(spec, {"host", "port", "topic", "meters", "interval_s", "replay", "seed", "faults", "qos", "mapping"})
        self.name = name
        self.host = spec.get("host", "127.0.0.1")
        if self.host not in HOSTS:
            raise ValueError(f"host: simulated devices talk to a broker on 127.0.0.1 only, got {self.host!r}")
        if "port" not in spec:
            raise ValueError("port: the broker's port is required")
        self.port = int(spec["port"])
        self.topic = str(spec.get("topic", "meters/{meter_id}"))
        self.qos = int(spec.get("qos", 1))
        self.interval_s = float(spec.get("interval_s", 1.0))
        if not self.interval_s > 0:
            raise ValueError(f"interval_s: must be > 0, got {self.interval_s}")
        self.seed = int(spec.get("seed", 0))
        self.rng = random.Random(self.seed)
        self.frame = None
        if spec.get("replay") is not None:
            from wattwatch import api

            r = spec["replay"]
            if isinstance(r, pd.DataFrame):
                f = r.copy()
            else:
                p = resolve(str(r), root)
                if not p.exists():
                    raise ValueError(f"replay: {p}: no such file")
                f = api.read_frame(p, mapping=spec.get("mapping"))
            f["meter_id"] = f["meter_id"].astype(str)
            f["ts"] = pd.to_datetime(f["ts"], utc=True)
            self.frame = f.sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
            gaps = self.frame.groupby("meter_id")["ts"].diff().dt.total_seconds()
            self.cycle_us = int(round((float(np.nanmedian(gaps)) if gaps.notna().any() else 60.0) * 1e6))
            self._t = self.frame["ts"].to_numpy("datetime64[us]").astype(np.int64)
            self._next = 0
        meters = spec.get("meters")
        if meters is None:
            meters = sorted(self.frame["meter_id"].unique()) if self.frame is not None else [f"{name}-1"]
        if isinstance(meters, int):
            meters = [f"{name}-{k + 1}" for k in range(meters)]
        self.meters = {str(m): Meter(k + 1, str(m), _ALL, None, np.random.default_rng([self.seed, k + 1]), 0, 1)
                       for k, m in enumerate(meters)}
        self.faults: dict = {}
        self.counters: Counter = Counter()
        self._stop = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{name}-{uuid.uuid4().hex[:6]}")
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"device:{name}", daemon=True)
        self._thread.start()
        for fault, params in (spec.get("faults") or {}).items():
            self.inject(fault, **(params if isinstance(params, dict) else {"share": params}))

    def _rows(self) -> list[dict]:
        if self.frame is not None:
            i = self._next
            if i >= len(self._t):
                return []
            lo = self._t[i] - (self._t[i] - self._t[0]) % self.cycle_us
            j = int(np.searchsorted(self._t, lo + self.cycle_us, side="left"))
            self._next = j
            part = self.frame.iloc[i:j]
            rows = []
            for rec in part.to_dict("records"):
                row = {"meter_id": rec["meter_id"], "ts": rec["ts"].isoformat()}
                row.update({c: float(rec[c]) for c in CHANNEL_NAMES if c in rec and pd.notna(rec[c])})
                rows.append(row)
            return rows
        now = time.time()
        rows = []
        for mid, m in self.meters.items():
            m._generate(now)
            vals = {f.channel: float(mb.decode(f, m.regs["holding"][f.address:f.address + 4][None, :])[0])
                    for f in _ALL.fields}
            rows.append({"meter_id": mid, "ts": pd.Timestamp(now, unit="s", tz="UTC").isoformat(), **vals})
        return rows

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            if "silent" not in self.faults and self.client.is_connected():
                for row in self._rows():
                    d = self.faults.get("drop")
                    if d and self.rng.random() < d["share"]:
                        self.counters["dropped"] += 1
                        continue
                    body = json.dumps(row)
                    m = self.faults.get("malformed")
                    if m and self.rng.random() < m["share"]:
                        body = body[: len(body) // 2]
                        self.counters["malformed"] += 1
                    self.client.publish(self.topic.format(meter_id=row["meter_id"]), body, qos=self.qos)
                    self.counters["published"] += 1
            nxt += self.interval_s
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    @property
    def endpoint(self) -> dict:
        return {"host": self.host, "port": self.port, "topic": self.topic, "meters": list(self.meters)}

    def inject(self, fault: str, **params) -> None:
        if fault == "clear":
            self.faults.clear()
            for m in self.meters.values():
                m.fault.clear()
        elif fault in ("drop", "malformed"):
            self.faults[fault] = {"share": float(params.get("share", 1.0))}
        elif fault == "silent":
            self.faults["silent"] = {}
        elif fault in ("open_ct", "neutral_bypass", "normal"):
            targets = [self.meters[params["meter_id"]]] if "meter_id" in params else list(self.meters.values())
            for m in targets:
                m.inject(fault, params)
        else:
            raise ValueError(f"device {self.name}: unknown fault {fault!r} (drop, malformed, silent, open_ct, "
                             "neutral_bypass, normal, clear)")
        self.counters[f"inject_{fault}"] += 1

    def view(self) -> dict:
        return {"name": self.name, "kind": "mqtt", "port": self.port,
                "status": "connected" if self.client.is_connected() else "connecting", "meters": len(self.meters),
                "faults": ",".join(sorted(self.faults)) or "-", **self.counters}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def start(name: str, spec: dict, root: Path | None = None) -> Running:
    """Start simulated MQTT meters (see the module); ``spec`` as in a ``[[devices]]`` table."""
    return Running(name, dict(spec), root)
