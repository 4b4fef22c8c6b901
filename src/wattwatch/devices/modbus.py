"""Simulated Modbus meters: a pymodbus server (Modbus/TCP or RTU framing over TCP, like a
serial-to-Ethernet gateway) on 127.0.0.1 with one meter per unit id, its registers laid out by a
register map (the same ``[models.NAME]`` tables the poller reads, :mod:`wattwatch.sources.modbus`).

Values come from a telemetry file (a fleet replayed through the devices, ``replay = "FILE"``) or a
seeded generator. A meter serves one *record* at a time; a new record is taken

- ``advance = "read"`` (the default with a ``ts`` register): when the poller reads the meter's
  clock register, like a meter that snapshots its values when the clock is read. Record ``k``
  is the first one not served yet, when its time is before the end of the unit's ``k``-th cycle
  of ``cycle_s`` from the fleet's first reading; when the fleet has no reading of this meter in
  that cycle (a reading the fleet lost) the gateway answers exception 0x0B (target device failed
  to respond) and the poll is lost, as it was in the fleet. So a poll cycle of the watcher serves
  exactly the readings of one cycle of the fleet, with the fleet's own timestamps;
- ``advance = "clock"``: every ``interval_s`` of wall time (the generator's default);
- ``advance = "fixed"``: the registers keep what :meth:`Running.set_values` wrote.

Faults (:meth:`Running.inject`, also ``faults = {...}`` at start): ``drop`` (share of responses
never sent), ``delay`` (``ms``, optional ``jitter_ms``: every answer that much later),
``corrupt`` (share of responses mangled: a wrong MBAP length on Modbus/TCP, a wrong CRC on RTU, or
with ``how = "truncate"`` an RTU frame cut short, a frame slip),
``exception`` (share answered with exception 0x04), ``down`` / ``up`` (the gateway stops
listening and drops its connections / listens again on the same port), ``clear``. ``unit = N``
limits ``delay``, ``drop`` and ``exception`` to one meter. The generator also takes meter faults:
``open_ct`` (``phase`` 1-3: that current reads 0 under load), ``neutral_bypass`` (neutral current 0),
``normal`` (undo).
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.ports import free_port
from wattwatch.sources import modbus as mb

HOSTS = ("127.0.0.1", "localhost")


class Meter:
    """One unit: its registers per table (the model's span) and where its values come from."""

    def __init__(self, unit: int, meter_id: str, model: mb.Model, frame: pd.DataFrame | None, rng: np.random.Generator,
                 t0_us: int, cycle_us: int):
        self.unit, self.meter_id, self.model = unit, meter_id, model
        self.span = mb.span(model)
        self.regs = {t: np.zeros(n, dtype=np.uint16) for t, (lo, n) in self.span.items()}
        self._enc = _encoder(model, self.span)
        self.ts_field = next((f for f in model.fields if f.channel == "ts"), None)
        self.rng = rng
        self.t0_us, self.cycle_us = t0_us, cycle_us
        self.k = 0               # cycles latched
        self.i = 0               # next record
        self.fault: dict = {}
        self.served = 0
        self.energy = 0.0
        self.base_a = rng.uniform(4.0, 20.0, 3)     # per phase: a real site is not balanced
        self.rows = None
        if frame is not None:   # every record encoded once (records x registers per table)
            frame = frame.sort_values("ts", kind="stable")
            self.ts_us = frame["ts"].to_numpy("datetime64[us]").astype(np.int64)
            vals = {c: frame[c].to_numpy(float) if c in frame.columns else np.full(len(frame), np.nan)
                    for c in model.channels if c != "ts"}
            vals["ts"] = self.ts_us / 1e6
            self.rows = {t: np.zeros((len(frame), n), dtype=np.uint16) for t, (lo, n) in self.span.items()}
            for f in model.fields:
                lo = self.span[f.table][0]
                self.rows[f.table][:, f.address - lo:f.address - lo + f.width] = mb.encode(f, vals[f.channel])

    # ------------------------------------------------------------------ records

    def inject(self, fault: str, params: dict) -> None:
        """A generator fault on this meter: ``open_ct`` (``phase``, default 1), ``neutral_bypass``,
        or ``normal`` (none)."""
        if fault == "normal":
            self.fault.clear()
        else:
            self.fault[fault] = params.get("phase", 1) if fault == "open_ct" else True

    def latch(self, now_s: float) -> bool:
        """Take the next record; False when this meter has none for the cycle (a lost reading)."""
        self.k += 1
        if self.rows is not None:
            if self.i >= len(self.ts_us) or self.ts_us[self.i] >= self.t0_us + self.k * self.cycle_us:
                return False
            for t, m in self.rows.items():
                self.regs[t][:] = m[self.i]
            self.i += 1
            self.served += 1
            return True
        self._generate(now_s)
        self.served += 1
        return True

    def seek_cycle(self, k: int, now_s: float) -> bool:
        """Clock mode: latch every cycle up to ``k`` (the newest record of the cycle stands)."""
        ok = None
        while self.k < k:
            ok = self.latch(now_s)
        return bool(ok)

    def _generate(self, now_s: float) -> None:
        """A plausible three-phase meter: 230 V, a daily load shape with noise, pf ~0.95."""
        r = self.rng
        day = 0.5 + 0.5 * np.sin(2 * np.pi * ((now_s / 86400.0) % 1.0))
        v = 230.0 + r.normal(0, 0.8, 3)
        i = np.maximum(self.base_a * (0.6 + 0.4 * day) * (1 + r.normal(0, 0.03, 3)), 0.0)
        pf = float(np.clip(0.95 + r.normal(0, 0.005), 0.5, 1.0))
        p = float((v * i).sum() * pf / 1000.0)
        i_n = float(abs(i[0] + i[1] * np.exp(2j * np.pi / 3) + i[2] * np.exp(-2j * np.pi / 3)))
        if self.fault.get("open_ct"):
            i[int(self.fault["open_ct"]) - 1] = 0.0
        if self.fault.get("neutral_bypass"):
            i_n = 0.0
        self.energy += p * 1.0 / 3600.0
        vals = {"v_l1_v": v[0], "v_l2_v": v[1], "v_l3_v": v[2], "i_l1_a": i[0], "i_l2_a": i[1], "i_l3_a": i[2],
                "i_n_a": i_n, "p_kw": p, "q_kvar": p * np.tan(np.arccos(pf)), "s_kva": p / pf, "pf": pf,
                "e_kwh": self.energy, "temp_c": 30.0 + 5 * day + r.normal(0, 0.1),
                "thd_i_pct": 3.0 + r.normal(0, 0.1), "ts": now_s}
        if self._enc is not None:     # one encode per kind of field, not per field (_encoder)
            for t, f, chans, off, scale, idx in self._enc:
                self.regs[t][idx] = mb.encode(f, (np.array([vals[c] for c in chans], dtype=float) - off) / scale)
            return
        for f in self.model.fields:
            lo = self.span[f.table][0]
            self.regs[f.table][f.address - lo:f.address - lo + f.width] = mb.encode(f, [vals[f.channel]])[0]

    def read(self, table: str, address: int, count: int):
        lo, n = self.span.get(table, (0, 0))
        if address < lo or address + count > lo + n:
            return None
        return self.regs[table][address - lo:address - lo + count]


def _encoder(model: mb.Model, span: dict) -> list | None:
    """The model's fields grouped by what their encoding depends on besides scale and offset
    (table, type, byte and word order, "not implemented"): per group ``(table, a field of that
    kind with scale 1 and offset 0, channels, offsets, scales, register indices (fields x
    width))``, so that a generated record is encoded in one :func:`~wattwatch.sources.modbus.encode`
    a group (values scaled first, as ``encode`` would), not one a field: a simulated gateway's
    meter is encoded on every poll, and per field that was most of its CPU. None when fields
    overlap (the per-field order of writes then matters)."""
    groups: dict[tuple, list] = {}
    for f in model.fields:
        groups.setdefault((f.table, f.type, f.byte_order, f.word_order, f.na), []).append(f)
    out = []
    for (t, typ, bo, wo, na), fs in groups.items():
        lo = span[t][0]
        idx = np.array([[f.address - lo + j for j in range(f.width)] for f in fs], dtype=np.intp)
        out.append((t, mb.Field("", t, 0, typ, bo, wo, 1.0, 0.0, na), [f.channel for f in fs],
                    np.array([f.offset for f in fs], dtype=float), np.array([f.scale for f in fs], dtype=float), idx))
    for t in span:
        used = np.concatenate([g[5].ravel() for g in out if g[0] == t])
        if len(np.unique(used)) != len(used):
            return None
    return out


class Host:
    """One event loop on one thread that serves many simulated gateways (``start(..., host=h)``).

    Each gateway started without one runs its own thread and event loop; a process serving
    hundreds of gateways (``bench poll``'s device workers) would then run hundreds of threads
    taking turns at its interpreter lock, each switch a cost. On one loop the gateways' requests
    are handled one after another by the one thread. :meth:`stop` stops the loop (stop the
    gateways first)."""

    def __init__(self, name: str = "devices"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"devices:{name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


class Running:
    """A running simulated gateway (see the module)."""

    def __init__(self, name: str, spec: dict, root: Path | None, host: Host | None = None):
        from wattwatch.sources import only, resolve

        only(spec, {"host", "port", "framing", "models", "model", "registers", "meters", "units", "replay",
                    "cycle_s", "interval_s", "advance", "seed", "faults", "max_gap", "mapping"})
        self.name = name
        self.host = spec.get("host", "127.0.0.1")
        if self.host not in HOSTS:
            raise ValueError(f"host: simulated devices listen on 127.0.0.1 only, got {self.host!r}")
        self.framing = spec.get("framing", "tcp")
        if self.framing not in ("tcp", "rtu"):
            raise ValueError(f"framing: tcp or rtu, got {self.framing!r}")
        port = int(spec.get("port", 0) or 0)
        self.port = port or free_port()
        if "registers" in spec:
            self.model = mb.parse_model("inline", {"registers": spec["registers"]}, name)
        else:
            models = mb.load_models(spec.get("models"), root, int(spec.get("max_gap", 0)))
            mname = spec.get("model") or (next(iter(models)) if len(models) == 1 else None)
            if mname not in models:
                raise ValueError(f"model: name one of {', '.join(models)}")
            self.model = models[mname]
        self.seed = int(spec.get("seed", 0))
        self.rng = random.Random(self.seed)
        frame = None
        if spec.get("replay") is not None:
            replay = spec["replay"]
            if isinstance(replay, pd.DataFrame):
                frame = replay
            else:
                from wattwatch import api

                p = resolve(str(replay), root)
                if not p.exists():
                    raise ValueError(f"replay: {p}: no such file")
                frame = api.read_frame(p, mapping=spec.get("mapping"))
            frame = frame.copy()
            frame["meter_id"] = frame["meter_id"].astype(str)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        units = spec.get("units")
        meters = spec.get("meters")
        if units is None:
            if meters is None:
                meters = sorted(frame["meter_id"].unique()) if frame is not None else ["meter-1"]
            if isinstance(meters, int):
                meters = [f"{name}-{k + 1}" for k in range(meters)]
            units = [{"unit": k + 1, "meter_id": str(m)} for k, m in enumerate(meters)]
        if not units or len(units) > 247:
            raise ValueError("units: 1 to 247 meters per gateway")
        has_ts = any(f.channel == "ts" for f in self.model.fields)
        self.advance = spec.get("advance", "read" if frame is not None and has_ts else "clock")
        if self.advance not in ("read", "clock", "fixed"):
            raise ValueError(f"advance: read, clock or fixed, got {self.advance!r}")
        if self.advance == "read" and not has_ts:
            raise ValueError("advance = \"read\" needs a ts register in the model (the clock the poller reads)")
        if frame is not None and len(frame):
            t = frame["ts"].to_numpy("datetime64[us]").astype(np.int64)
            t0 = int(t.min())
            cycle_s = spec.get("cycle_s")
            if cycle_s is None:
                gaps = frame.groupby("meter_id")["ts"].diff().dt.total_seconds()
                cycle_s = float(np.nanmedian(gaps)) if gaps.notna().any() else 60.0
        else:
            t0, cycle_s = 0, float(spec.get("cycle_s", 1.0))
        self.cycle_s = float(cycle_s)
        self.interval_s = float(spec.get("interval_s", self.cycle_s if frame is None else 1.0))
        self.meters: dict[int, Meter] = {}
        for k, u in enumerate(units):
            uid, mid = int(u["unit"]), str(u["meter_id"])
            if not 1 <= uid <= 247 or uid in self.meters:
                raise ValueError(f"units[{k}].unit: 1..247 and unique, got {uid}")
            sub = frame[frame["meter_id"] == mid] if frame is not None else None
            if sub is not None and not len(sub):
                raise ValueError(f"units[{k}]: meter {mid!r} has no readings in the replayed file")
            self.meters[uid] = Meter(uid, mid, self.model, sub, np.random.default_rng([self.seed, uid]), t0,
                                     int(round(self.cycle_s * 1e6)))
        self.faults: dict = {}
        self.counters: Counter = Counter()
        self.started = time.monotonic()
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._host = host
        if host is not None:     # a loop shared with other gateways (Host)
            self._loop, self._thread = host.loop, None
            try:
                self._call(self._listen())
            except BaseException as exc:  # noqa: BLE001 - said below
                self._error = exc
            self._ready.set()
        else:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run, name=f"device:{name}", daemon=True)
            self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            self.stop()
            raise RuntimeError(f"device {name}: could not listen on {self.host}:{self.port}: {self._error}")
        for fault, params in (spec.get("faults") or {}).items():
            self.inject(fault, **(params if isinstance(params, dict) else {"share": params}))

    # ------------------------------------------------------------------ server

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:  # noqa: BLE001 - said to the caller of start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        from pymodbus.framer import FramerType

        self._server = _server_class()(
            _Context(self), framer=FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET,
            address=(self.host, self.port), trace_packet=self._trace, ignore_missing_devices=False)
        await self._server.serve_forever(background=True)

    async def _down(self) -> None:
        if self._server is not None:
            srv, self._server = self._server, None
            await srv.shutdown()
            for c in list(getattr(srv, "active_connections", {}).values()):
                c.close()

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ------------------------------------------------------------------ requests (the server's loop)

    async def get(self, unit: int, fc: int, address: int, count: int):
        from pymodbus.constants import ExcCodes
        from pymodbus.exceptions import NoSuchIdException

        self.counters["requests"] += 1
        m = self.meters.get(unit)
        if m is None:
            raise NoSuchIdException(f"unit {unit}")
        f = self.faults
        d = f.get("delay")
        if d and d.get("unit") in (None, unit):
            await asyncio.sleep((d.get("ms", 0) + self.rng.uniform(0, d.get("jitter_ms", 0))) / 1000.0)
        e = f.get("exception")
        if e and e.get("unit") in (None, unit) and self.rng.random() < e.get("share", 1.0):
            self.counters["exceptions"] += 1
            return ExcCodes.DEVICE_FAILURE
        table = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}.get(fc)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = time.time()
        ts = m.ts_field
        if self.advance == "read":
            if ts is not None and ts.table == table and address <= ts.address < address + count:
                if not m.latch(now):
                    self.counters["no_record"] += 1
                    return ExcCodes.GATEWAY_NO_RESPONSE
        elif self.advance == "clock":
            m.seek_cycle(int((time.monotonic() - self.started) / self.interval_s) + 1, now)
        vals = m.read(table, address, count)
        if vals is None:
            return ExcCodes.ILLEGAL_ADDRESS
        dr = f.get("drop")
        if dr and dr.get("unit") in (None, unit) and self.rng.random() < dr.get("share", 1.0):
            self._drop_next = True
        self.counters["answered"] += 1
        return [bool(v) for v in vals] if table in mb.BIT_TABLES else [int(v) for v in vals]

    async def set(self, unit, fc, address, values):
        from pymodbus.constants import ExcCodes

        return ExcCodes.ILLEGAL_FUNCTION   # read-only meters

    _drop_next = False

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        if self._drop_next:
            self._drop_next = False
            self.counters["dropped"] += 1
            return b""
        c = self.faults.get("corrupt")
        if c and self.rng.random() < c.get("share", 1.0) and len(data) > 4:
            self.counters["corrupted"] += 1
            if self.framing == "rtu" and c.get("how") != "truncate":
                return data[:-1] + bytes([data[-1] ^ 0x5A])     # CRC wrong
            return data[:-3] if self.framing == "rtu" else data[:-1]   # shorter than it says
        return data

    def set_values(self, unit: int, values: dict) -> None:
        """Write channel values into a meter's registers (``advance = "fixed"`` keeps them)."""
        m = self.meters[unit]
        for f in self.model.fields:
            if f.channel in values:
                lo = m.span[f.table][0]
                m.regs[f.table][f.address - lo:f.address - lo + f.width] = mb.encode(f, [values[f.channel]])[0]

    # ------------------------------------------------------------------ Running interface

    @property
    def endpoint(self) -> dict:
        return {"host": self.host, "port": self.port, "framing": self.framing,
                "units": {u: m.meter_id for u, m in self.meters.items()}}

    def inject(self, fault: str, **params) -> None:
        """Change faults at run time (see the module)."""
        if fault == "clear":
            self.faults.clear()
            for m in self.meters.values():
                m.fault.clear()
        elif fault in ("drop", "corrupt", "exception"):
            self.faults[fault] = {"share": float(params.get("share", 1.0)), "unit": params.get("unit"),
                                  "how": params.get("how")}
        elif fault == "delay":
            self.faults["delay"] = {"ms": float(params.get("ms", 100.0)), "jitter_ms": float(params.get("jitter_ms", 0)),
                                    "unit": params.get("unit")}
        elif fault == "down":
            self._call(self._down())
            self.counters["downs"] += 1
        elif fault == "up":
            if self._server is None:
                self._call(self._listen())
                self.counters["ups"] += 1
        elif fault in ("open_ct", "neutral_bypass", "normal"):
            targets = [self.meters[params["unit"]]] if "unit" in params else list(self.meters.values())
            for m in targets:
                m.inject(fault, params)
        else:
            raise ValueError(f"device {self.name}: unknown fault {fault!r} (drop, delay, corrupt, exception, down, up, "
                             "open_ct, neutral_bypass, normal, clear)")
        if fault in ("drop", "delay", "corrupt", "exception"):
            self.counters[f"inject_{fault}"] += 1

    def view(self) -> dict:
        served = sum(m.served for m in self.meters.values())
        left = sum(len(m.ts_us) - m.i for m in self.meters.values() if m.rows is not None)
        return {"name": self.name, "kind": "modbus", "framing": self.framing, "port": self.port,
                "status": "down" if self._server is None else "listening", "units": len(self.meters),
                "served": served, "left": left, "faults": ",".join(sorted(self.faults)) or "-", **self.counters}

    def stop(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._down(), 5)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            if self._host is not None:    # the loop is the host's (Host.stop)
                return
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is None:
            return
        self._thread.join(5)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()


@functools.lru_cache(maxsize=1)
def _server_class():
    """pymodbus' TCP server, each request handled by a task on the server's loop.

    pymodbus hands every request to its loop through ``run_coroutine_threadsafe`` from that same
    loop (a thread-safe future, and a wake-up of the loop through its self-pipe): half of a
    simulated gateway's CPU per request (0.23 -> 0.12 ms, 25 gateways on one loop). A task made on
    the loop runs the same coroutine (``handle_request``) in the same order."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.server.requesthandler import ServerRequestHandler

    class _Handler(ServerRequestHandler):
        def handle_later(self):
            t = self.loop.create_task(self.handle_request())
            self.server.tasks.add(t)              # (the loop holds its tasks weakly)
            t.add_done_callback(self.server.tasks.discard)

    class _Server(ModbusTcpServer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.tasks: set = set()

        def callback_new_connection(self):
            return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)

    return _Server


@functools.lru_cache(maxsize=1)
def _context_class():
    """A pymodbus server context that hands every request to the simulated gateway (built on first
    use: pymodbus is imported only by what needs it)."""
    from pymodbus.datastore import ModbusServerContext

    class _Ctx(ModbusServerContext):
        def __init__(self, dev: Running):  # no super().__init__: it would build a pymodbus datastore
            self.dev = dev
            self.simdevices = []
            self.old_simulator = True
            self._devices = {}

        async def async_getValues(self, device_id, func_code, address, count=1):
            return await self.dev.get(device_id, func_code, address, count)

        async def async_setValues(self, device_id, func_code, address, values):
            return await self.dev.set(device_id, func_code, address, values)

        def device_ids(self):
            return list(self.dev.meters)

    return _Ctx


def _Context(dev: Running):
    return _context_class()(dev)


def start(name: str, spec: dict, root: Path | None = None, host: Host | None = None) -> Running:
    """Start a simulated Modbus gateway (see the module); ``spec`` as in a ``[[devices]]`` table;
    on ``host``'s event loop when given (:class:`Host`), else on a thread and loop of its own."""
    return Running(name, dict(spec), root, host)
