"""Modbus/TCP and Modbus RTU over TCP poller (pymodbus asyncio client).

A site polls *devices* (a meter behind a unit id) on *gateways* (host, port, framing). Each device
follows a *model*: a register map kept once per device model in TOML::

    [models.em24]                      # in the site config, or in a file: models = "models.toml"
    registers = [
      { channel = "v_l1_v", table = "input", address = 0, type = "int32", word_order = "little", scale = 0.1 },
      { channel = "p_kw",   table = "input", address = 40, type = "float32" },
      { channel = "e_kwh",  table = "holding", address = 100, type = "uint32", scale = 0.01 },
      { channel = "ts",     table = "holding", address = 200, type = "float64" },   # the meter's clock
    ]

``table`` is ``holding``, ``input``, ``coil`` or ``discrete``; ``type`` is ``int16``, ``uint16``,
``int32``, ``uint32``, ``float32``, ``float64`` (``bool`` for coils); ``byte_order`` (within a
register) and ``word_order`` (between registers) are ``big`` or ``little`` (``ABCD`` is big/big,
``CDAB`` big bytes/little words, ``BADC`` little/big, ``DCBA`` little/little); the value is
``raw * scale + offset`` into the canonical ``channel`` (SPEC §1). Integer registers holding the
SunSpec "not implemented" value (0x8000, 0xFFFF, 0x80000000, 0xFFFFFFFF) and NaN floats are a
missing value, not a number (``na = false`` turns that off for a register). A ``ts`` register is
the meter's own clock in epoch seconds (scale it for milliseconds): with it the reading carries the
meter's time; without it the time of the poll cycle. Two polls in one tick of a coarse clock (whole
seconds polled every second) with other values are two readings, not a conflict: the second is
placed inside the tick by the poll time between them (:meth:`ModbusPoller._stamp`).

The reads are planned once per model: registers of one table that are contiguous (or no more than
``max_gap`` registers apart) are read in one request, up to 125 registers (2000 bits) a request.

Every ``interval_s`` all devices are polled concurrently, at most ``concurrency`` at a time
(one request at a time per gateway: serial gateways answer one unit at a time). A request that
times out or finds the connection gone is retried (``retries``, exponential backoff from
``backoff_s``, never past the cycle's deadline) after a reconnect; a gateway that refuses connections
is tried again after an exponential backoff (from ``backoff_s``, at most four intervals), its
devices' polls lost at once meanwhile (so a dead gateway does not eat the cycle of the others). A device that has not answered
every read by the deadline has *lost* its poll: no reading is made up; the detection core's
packet-loss rule sees the gap (``ALRM_PKT_LOSS_CRIT``).

Counters per device and in total: ``polls``, ``lost``, ``timeouts``, ``exceptions`` (Modbus
exception responses), ``malformed`` (exception responses, wrong lengths, bad CRC, frames that do
not parse), ``crc_errors`` and ``frame_slips`` (RTU framing: a frame whose CRC is wrong, bytes that
never formed a frame), ``wrong_unit`` (an answer stamped with another unit id than asked: not taken
as the reading, counted in ``errors`` too and logged naming the meter and both units, the first
five then every hundredth), ``reconnects``, and the response time (ms, from the first request of a
poll to its last answer). A device whose response time climbs (each of its last ``slow_recent``
polls above ``slow_factor`` times its own settled median and at least ``slow_min_ms`` above it)
gets a ``WARN_LINK_SLOW`` alert that ends when the median of its last polls is back under that.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import logging
import math
import re
import statistics
import struct
import time
from wattwatch.tomlfile import read_toml
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.schema import CHANNEL_NAMES
from wattwatch.sources import only
from wattwatch.sources.base import Poller

log = logging.getLogger("wattwatch.watch")

# type -> (registers, big-endian numpy dtype, SunSpec "not implemented" raw value)
TYPES: dict[str, tuple[int, str, int | None]] = {
    "int16": (1, ">i2", -0x8000), "uint16": (1, ">u2", 0xFFFF), "int32": (2, ">i4", -0x80000000),
    "uint32": (2, ">u4", 0xFFFFFFFF), "float32": (2, ">f4", None), "float64": (4, ">f8", None),
    "bool": (1, "bool", None),
}
TABLES = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}   # table -> read function code
BIT_TABLES = ("coil", "discrete")
MAX_REGS, MAX_BITS = 125, 2000
ORDERS = ("big", "little")
SLOW_CODE = "WARN_LINK_SLOW"
# The largest clock register (seconds either side of 1970) a reading's time can hold: a pandas
# datetime64[ns] (+-292 years, 1677..2262).
_CLOCK_MAX_S = 9.2e9


# ------------------------------------------------------------------------------------ register maps


@dataclass(frozen=True)
class Field:
    """One value of a register map."""

    channel: str
    table: str
    address: int
    type: str = "uint16"
    byte_order: str = "big"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    na: bool = True

    @property
    def width(self) -> int:
        return TYPES[self.type][0]


@dataclass(frozen=True)
class Read:
    """One request: ``count`` registers (bits) of ``table`` from ``address``."""

    table: str
    address: int
    count: int
    fields: tuple

    def __post_init__(self):
        # A device poll's answers are keyed by their Read: the dataclass's hash would hash every
        # field of the read each time (a tenth of the poller's CPU at 1,000 devices a second).
        object.__setattr__(self, "_hash", hash((self.table, self.address, self.count, self.fields)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        # (unpickled, its hash is computed again: a str's hash differs from one process to the next,
        # and the one pickled with it would make an equal Read of this process a different key)
        return (Read, (self.table, self.address, self.count, self.fields))

    @property
    def function(self) -> int:
        return TABLES[self.table]


@dataclass
class Model:
    name: str
    fields: list
    reads: list = field(default_factory=list)

    @property
    def channels(self) -> list[str]:
        return [f.channel for f in self.fields]


_FIELD_KEYS = {"channel", "table", "address", "type", "byte_order", "word_order", "scale", "offset", "na"}


def parse_model(name: str, doc, where: str = "models", max_gap: int = 0) -> Model:
    """A :class:`Model` from ``[models.NAME]`` (``registers = [...]``); ValueError naming the key."""
    at = f"{where}.{name}"
    if not isinstance(doc, dict):
        raise ValueError(f"{at}: expected a table with registers = [...]")
    only(doc, {"registers"}, at)
    regs = doc.get("registers")
    if not isinstance(regs, list) or not regs:
        raise ValueError(f"{at}.registers: give at least one register table")
    fields, seen = [], {}
    for k, r in enumerate(regs):
        w = f"{at}.registers[{k}]"
        if not isinstance(r, dict):
            raise ValueError(f"{w}: expected a table")
        only(r, _FIELD_KEYS, w)
        ch = r.get("channel")
        if ch != "ts" and ch not in CHANNEL_NAMES:
            raise ValueError(f"{w}.channel: {ch!r} is not a canonical channel (ts or one of "
                             f"{', '.join(CHANNEL_NAMES)})")
        if ch in seen:
            raise ValueError(f"{w}.channel: {ch!r} is mapped twice (also {seen[ch]})")
        seen[ch] = w
        table = r.get("table", "holding")
        if table not in TABLES:
            raise ValueError(f"{w}.table: must be one of {', '.join(TABLES)}, got {table!r}")
        addr = r.get("address")
        if isinstance(addr, bool) or not isinstance(addr, int) or not 0 <= addr <= 0xFFFF:
            raise ValueError(f"{w}.address: must be an integer 0..65535, got {addr!r}")
        typ = r.get("type", "bool" if table in BIT_TABLES else "uint16")
        if typ not in TYPES:
            raise ValueError(f"{w}.type: must be one of {', '.join(TYPES)}, got {typ!r}")
        if (typ == "bool") != (table in BIT_TABLES):
            raise ValueError(f"{w}.type: {table} tables hold {'bool' if table in BIT_TABLES else 'registers'}, "
                             f"got {typ!r}")
        if addr + TYPES[typ][0] - 1 > 0xFFFF:
            raise ValueError(f"{w}.address: {typ} at {addr} runs past register 65535")
        for o in ("byte_order", "word_order"):
            if r.get(o, "big") not in ORDERS:
                raise ValueError(f"{w}.{o}: must be big or little, got {r.get(o)!r}")
        for o in ("scale", "offset"):
            v = r.get(o, 1.0 if o == "scale" else 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{w}.{o}: must be a finite number, got {v!r}")
        if r.get("scale", 1.0) == 0:
            raise ValueError(f"{w}.scale: must not be 0")
        if not isinstance(r.get("na", True), bool):
            raise ValueError(f"{w}.na: must be true or false")
        fields.append(Field(ch, table, addr, typ, r.get("byte_order", "big"), r.get("word_order", "big"),
                            float(r.get("scale", 1.0)), float(r.get("offset", 0.0)), r.get("na", True)))
    # Overlapping registers of one table are a map error (two values cannot share a register).
    for t in TABLES:
        fs = sorted((f for f in fields if f.table == t), key=lambda f: f.address)
        for a, b in zip(fs, fs[1:]):
            if b.address < a.address + a.width:
                raise ValueError(f"{at}: {a.channel} ({a.type} at {t} {a.address}) overlaps {b.channel} "
                                 f"(at {b.address})")
    return Model(name, fields, plan(fields, max_gap))


def plan(fields, max_gap: int = 0) -> list[Read]:
    """Group ``fields`` into requests: per table, in address order, a field joins the current
    request when it starts no more than ``max_gap`` registers after its end and the request stays
    within 125 registers (2000 bits)."""
    out = []
    for t in TABLES:
        fs = sorted((f for f in fields if f.table == t), key=lambda f: f.address)
        limit = MAX_BITS if t in BIT_TABLES else MAX_REGS
        cur: list = []
        for f in fs:
            if cur:
                start, end = cur[0].address, cur[-1].address + cur[-1].width
                if f.address - end <= max_gap and f.address + f.width - start <= limit:
                    cur.append(f)
                    continue
                out.append(Read(t, start, end - start, tuple(cur)))
            cur = [f]
        if cur:
            out.append(Read(t, cur[0].address, cur[-1].address + cur[-1].width - cur[0].address, tuple(cur)))
    # The read holding the meter's clock goes first: a device that latches its record when the
    # clock is read (a snapshot) then serves every other read from the same record.
    out.sort(key=lambda r: not any(f.channel == "ts" for f in r.fields))
    return out


def load_models(spec, root: Path | None, max_gap: int = 0) -> dict[str, Model]:
    """Models from a ``[models]`` table (``NAME = {registers = [...]}``), a TOML file naming them
    (``models = "models.toml"`` holding ``[models.NAME]``), or a table whose values are such files."""
    from wattwatch.sources import resolve

    if isinstance(spec, str):
        p = resolve(spec, root)
        doc = read_toml(p, "models file (Modbus register maps)", ValueError)
        if not isinstance(doc.get("models"), dict):
            raise ValueError(f"models: {p}: expected [models.NAME] tables")
        return {k: parse_model(k, v, f"{p}: models", max_gap) for k, v in doc["models"].items()}
    if not isinstance(spec, dict) or not spec:
        raise ValueError("models: give [models.NAME] tables or a TOML file with them")
    out = {}
    for k, v in spec.items():
        if isinstance(v, str):
            out.update({n: m for n, m in load_models(v, root, max_gap).items() if n == k} or
                       _missing(k, v))
        else:
            out[k] = parse_model(k, v, "models", max_gap)
    return out


def _missing(name, path):
    raise ValueError(f"models.{name}: {path} has no [models.{name}]")


# ------------------------------------------------------------------------------------ encoding


def decode(f: Field, regs: np.ndarray) -> np.ndarray:
    """Values of field ``f`` from its raw registers ``regs`` (devices x width, uint16; bits for
    coils), vectorised over devices: ``raw * scale + offset``, NaN where the register says
    "not implemented"."""
    regs = np.asarray(regs)
    if f.type == "bool":
        raw = regs.reshape(len(regs), -1)[:, 0].astype(float)
        return raw * f.scale + f.offset
    n, w = len(regs), f.width
    r = regs.reshape(n, w).astype(np.uint16)
    if f.word_order == "little":
        r = r[:, ::-1]
    b = np.ascontiguousarray(r.astype(">u2")).view(np.uint8).reshape(n, w, 2)
    if f.byte_order == "little":
        b = b[:, :, ::-1]
    raw = np.ascontiguousarray(b).reshape(n, 2 * w).view(TYPES[f.type][1]).reshape(n)
    val = raw.astype(float)
    na = TYPES[f.type][2]
    if f.na and na is not None:
        val[raw == na] = np.nan
    return val * f.scale + f.offset


def encode(f: Field, values) -> np.ndarray:
    """Raw registers (n x width, uint16) that :func:`decode` reads back as ``values``: the inverse
    (rounded for integers, clipped to the type's range, NaN as "not implemented")."""
    v = (np.asarray(values, dtype=float) - f.offset) / f.scale
    n = len(v)
    if f.type == "bool":
        return (np.nan_to_num(v) != 0).astype(np.uint16).reshape(n, 1)
    w, dt, na = TYPES[f.type]
    if dt[1] == "f":
        raw = v.astype(dt)
    else:
        info = np.iinfo(np.dtype(dt))
        lo = info.min + (1 if na == info.min else 0)
        hi = info.max - (1 if na == info.max else 0)
        raw = np.clip(np.rint(np.nan_to_num(v, nan=0.0)), lo, hi).astype(dt)
        if na is not None:
            raw[np.isnan(v)] = na
    b = np.ascontiguousarray(raw.astype(dt)).view(np.uint8).reshape(n, w, 2)
    if f.byte_order == "little":
        b = b[:, :, ::-1]
    r = np.ascontiguousarray(b).view(">u2").reshape(n, w).astype(np.uint16)
    if f.word_order == "little":
        r = r[:, ::-1]
    return np.ascontiguousarray(r)


def span(model: Model) -> dict[str, tuple[int, int]]:
    """Per table, the first address and the number of registers the model covers."""
    out = {}
    for t in TABLES:
        fs = [f for f in model.fields if f.table == t]
        if fs:
            lo = min(f.address for f in fs)
            out[t] = (lo, max(f.address + f.width for f in fs) - lo)
    return out


# ------------------------------------------------------------------------------------ RTU framing


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (poly 0xA001, init 0xFFFF), as sent: low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and struct.unpack("<H", frame[-2:])[0] == crc16(frame[:-2])


class _Wire:
    """Watches the bytes a gateway sends back (pymodbus ``trace_packet``): an RTU frame whose CRC
    is wrong is a CRC error; a socket frame whose MBAP length disagrees with what came is a wrong
    length. Counted on the gateway and the device whose request is in flight."""

    def __init__(self, gw: "Gateway"):
        self.gw = gw
        self.got = 0
        self.bad = False
        self.asked = self.answered = None    # unit id of the request in flight and of its answer's first whole frame

    def __call__(self, sending: bool, data: bytes) -> bytes:
        at = 0 if self.gw.framing == "rtu" else 6      # the unit id: RTU's first byte, the MBAP's last
        if sending:
            self.got = 0
            self.bad = False
            self.asked = data[at] if len(data) > at else None
            self.answered = None
            return data
        self.got += len(data)
        # ``data`` is what came so far (pymodbus hands over its whole receive buffer). The unit that
        # answered is read only off a whole frame (RTU: its CRC right; TCP: as long as its MBAP says):
        # the first byte of bytes that never form a frame (a frame's tail, line noise) is no unit id.
        if self.gw.framing == "rtu":
            # A read response: unit, function, byte count, data, CRC; an exception: unit, fn|0x80, code, CRC.
            if len(data) >= 5:
                n = 5 if data[1] & 0x80 else 5 + data[2] if data[1] in (1, 2, 3, 4) else 8
                if len(data) >= n and not rtu_frame_ok(data[:n]):
                    self.gw.count("crc_errors")
                    self.gw.count("malformed")
                    self.got = 0
                    self.bad = True
                    return b""    # dropped: the request times out (and is retried)
                if len(data) >= n and self.answered is None:
                    self.answered = data[at]
        elif len(data) >= 7:
            length = struct.unpack(">H", data[4:6])[0]
            if length + 6 != len(data) and len(data) > length + 6:
                self.gw.count("bad_length")
                self.gw.count("malformed")
                return b""
            if length + 6 == len(data) and self.answered is None:
                self.answered = data[at]
        return data


# ------------------------------------------------------------------------------------ devices


# A unit lost and then not asked for more than this many cycles is asked at the front of its
# gateway's turn (one such unit per gateway per this many cycles): see ModbusPoller.poll.
_LOST_PROBE_CYCLES = 10


@dataclass
class Device:
    meter_id: str
    gateway: str
    unit: int
    model: Model
    counters: Counter = field(default_factory=Counter)
    times: deque = field(default_factory=lambda: deque(maxlen=256))
    baseline_ms: float | None = None
    settled: int = 0
    slow: dict | None = None          # the open WARN_LINK_SLOW alert's facts
    why: str = ""                     # why its last poll was lost (the silence watch's evidence)
    missed: bool = False              # its last poll was asked and lost: asked after the others next cycle
    asked: int = -1                   # the cycle its poll was last asked in: of the others, the longest ago goes first
    read_at: float = 0.0              # monotonic time its clock register (its first read) answered, this poll
    # Its last reading with a clock (see ModbusPoller._stamp): the clock register's value (s), the
    # time given to the reading (us), when it was read (monotonic) and its values (model order).
    clk: float = math.nan
    clk_us: int = 0
    clk_at: float = 0.0
    clk_vals: np.ndarray | None = None
    clk_state: tuple | None = None    # (lc) the four above as one value: what the checkpoint reads (another thread)


def _see_connect(client) -> list:
    """Keep the error the client's connect met (pymodbus returns False for a refused connection and
    a connect that timed out alike and says which only in its log): its transport's connection
    factory (``ctx.call_create``, pymodbus 3.x) wrapped to note what it raised. A client without it
    (another pymodbus) notes nothing and the reason falls back to the connect's duration."""
    seen: list = []
    ctx = getattr(client, "ctx", None)
    create = getattr(ctx, "call_create", None)
    if create is None:
        return seen

    async def noting():
        try:
            return await create()
        except asyncio.CancelledError:       # pymodbus's (or our) wait_for ran out: no answer
            seen.append(asyncio.TimeoutError())
            raise
        except (OSError, asyncio.TimeoutError) as exc:
            seen.append(exc)
            raise

    ctx.call_create = noting
    return seen


# errno -> (what the gateway_down alert says, the counter's suffix)
_CONNECT_ERRNO = {errno.ECONNREFUSED: ("connection refused (nothing listens on the port, or a firewall rejects it)",
                                       "refused"),
                  errno.EHOSTUNREACH: ("host unreachable (no route to it)", "unreachable"),
                  errno.ENETUNREACH: ("network unreachable", "unreachable"),
                  errno.ECONNRESET: ("connection reset by the gateway", "reset"),
                  errno.ETIMEDOUT: ("no answer to the connection (timed out)", "timeout")}


def _connect_why(seen: list, timeout_s: float, took: float) -> tuple[str, str]:
    """Why a connect failed, said in the gateway_down alert, and its counter's suffix
    (``connect_refused``, ``connect_timeout``, ``connect_unreachable``, ...), from the error the
    client met (:func:`_see_connect`)."""
    import socket

    for exc in seen:
        if isinstance(exc, socket.gaierror):
            return f"the host name cannot be resolved ({exc.strerror or exc})", "unresolved"
        if isinstance(exc, asyncio.TimeoutError):
            return "no answer to the connection within %.1f s" % timeout_s, "timeout"
        if isinstance(exc, OSError):
            # asyncio's create_connection raises a bare OSError naming each address it tried ("Multiple
            # exceptions: ..."); its errno is that of the only one, else None.
            if exc.errno in _CONNECT_ERRNO:
                return _CONNECT_ERRNO[exc.errno]
            if "Connect call failed" in str(exc) and "refused" in str(exc).lower():
                return _CONNECT_ERRNO[errno.ECONNREFUSED]
            return f"the connection failed ({exc.strerror or exc})", "error"
    # No error seen (a client without the hook): the old guess from the connect's duration.
    if took >= 0.9 * timeout_s:
        return "no answer to the connection within %.1f s" % timeout_s, "timeout"
    return "connection refused or unreachable", "failed"


class Gateway:
    def __init__(self, key: str, host: str, port: int, framing: str, timeout_s: float, owner: "ModbusPoller"):
        self.key, self.host, self.port, self.framing = key, host, int(port), framing
        self.timeout_s = timeout_s
        self.owner = owner
        self.client = None
        self.lock = asyncio.Lock()
        self.counters: Counter = Counter()
        self.current: Device | None = None
        self.down_since: float | None = None
        # The silence watch's view of the link (runners/silence.py): when (wall time) the gateway
        # first failed to connect and why; a gateway never tried says nothing yet.
        self.down_wall: float | None = None
        self.down_why = ""
        self.wire = _Wire(self)
        self.failures = 0
        self.next_try = 0.0

    def count(self, k: str, n: int = 1) -> None:
        self.counters[k] += n
        self.owner.counters[k] += n
        if self.current is not None:
            self.current.counters[k] += n

    async def ensure(self) -> bool:
        from pymodbus.client import AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        if self.client is not None and self.client.connected:
            return True
        if self.client is not None:
            self.client.close()
            self.client = None
        now = time.monotonic()
        if now < self.next_try:    # backing off: the devices behind it are lost at once this time
            self.count("skipped")
            return False
        self.client = AsyncModbusTcpClient(
            self.host, port=self.port, framer=FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET,
            timeout=self.timeout_s, retries=0, reconnect_delay=0, reconnect_delay_max=0,
            trace_packet=self.wire)
        t0 = time.monotonic()
        seen = _see_connect(self.client)
        try:
            ok = await asyncio.wait_for(self.client.connect(), self.timeout_s)
        except (asyncio.TimeoutError, OSError) as exc:
            ok = False
            seen.append(exc)
        if ok:
            if self.counters["connects"]:
                self.count("reconnects")
                log.info("%s: gateway %s reconnected", self.owner.name, self.key)
            self.counters["connects"] += 1
            self.down_since = self.down_wall = None
            self.down_why = ""
            self.failures = 0
            self.next_try = 0.0
            return True
        self.count("connect_failures")
        why, kind = _connect_why(seen, self.timeout_s, time.monotonic() - t0)
        self.count(f"connect_{kind}")
        # Exponential backoff between connection attempts, at most a few poll intervals, so that
        # a gateway that is back is found again within them.
        self.failures += 1
        o = self.owner
        cap = max(4 * o.interval_s, 1.0)
        self.next_try = time.monotonic() + min(o.backoff_s * (2 ** (self.failures - 1)), cap)
        self.down_why = why
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.down_wall = time.time()
            log.warning("%s: gateway %s unreachable (%s)", self.owner.name, self.key, self.down_why)
        self.client.close()
        self.client = None
        return False

    def drop(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except RuntimeError:   # its event loop is gone already
                pass
            self.client = None

    def close(self) -> None:
        self.drop()


def _last(times: deque, n: int) -> list:
    """The last ``n`` of ``times`` (all if fewer), oldest first, without copying the deque."""
    k = len(times)
    return [times[j] for j in range(max(0, k - n), k)]


class _Slots:
    """At most ``n`` device polls in flight (``concurrency``); a freed slot goes to the waiting
    poll whose unit comes first in the cycle's order (lowest ``rank``), not to the one that waited
    longest. With one task per gateway (:meth:`ModbusPoller.poll`) a gateway queues again after
    each of its units: first come first served made the slots go round the gateways, so a lost
    unit at the end of one gateway's turn took a slot while live units of others waited, and with
    fewer slots than gateways some of those went unasked (rpo). In rank order a lost unit is
    asked when no live unit waits, as when every unit of the cycle queued at once."""

    def __init__(self, n: int):
        self.free = n
        self._waiting: list = []     # (rank, seq, future), a heap
        self._seq = 0

    async def acquire(self, rank: int) -> None:
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, self._seq, fut))
        self._seq += 1
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():   # given the slot, then cancelled: pass it on
                self.release()
            raise

    def keep(self, rank: int) -> bool:
        """Whether a poll ending now may keep its slot for its gateway's next unit (``rank``): no
        waiting poll comes before it. (Released first, the slot would go to a waiter before that
        next unit could queue: a lost unit would take it while a live one was on its way.)"""
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)
        return not self._waiting or self._waiting[0][0] > rank

    def release(self) -> None:
        while self._waiting:
            fut = heapq.heappop(self._waiting)[2]
            if not fut.done():           # (a waiter cancelled stays in the heap until here)
                fut.set_result(None)
                return
        self.free += 1


class _Lost(Exception):
    pass


class ModbusPoller(Poller):
    """See the module docstring."""

    kind = "modbus"

    def __init__(self, name: str, devices: list[dict], models: dict[str, Model], *, interval_s: float = 1.0,
                 timeout_s: float = 0.5, retries: int = 2, backoff_s: float = 0.05, concurrency: int = 64,
                 deadline_s: float | None = None, slow_factor: float = 3.0, slow_min_ms: float = 100.0,
                 slow_recent: int = 5, slow_settle: int = 10):
        super().__init__(name, interval_s=interval_s, timeout_s=(deadline_s or interval_s or timeout_s * 4) * 2 + 1)
        if not timeout_s > 0 or retries < 0 or backoff_s < 0 or concurrency < 1:
            raise ValueError("timeout_s must be > 0, retries and backoff_s >= 0, concurrency >= 1")
        self.request_timeout_s = float(timeout_s)
        self.retries, self.backoff_s = int(retries), float(backoff_s)
        self.deadline_s = float(deadline_s) if deadline_s else (self.interval_s or self.request_timeout_s * (retries + 1))
        self.concurrency = int(concurrency)
        self.slow_factor, self.slow_min_ms = float(slow_factor), float(slow_min_ms)
        self.slow_recent, self.slow_settle = int(slow_recent), int(slow_settle)
        self.models = models
        self.gateways: dict[str, Gateway] = {}
        self.devices: list[Device] = []
        seen = set()
        for k, d in enumerate(devices):
            w = f"devices[{k}]"
            if not isinstance(d, dict):
                raise ValueError(f"{w}: expected a table")
            only(d, {"meter_id", "host", "port", "unit", "model", "framing"}, w)
            m = d.get("meter_id")
            if not isinstance(m, (str, int)) or isinstance(m, bool) or str(m) == "":
                raise ValueError(f"{w}.meter_id: required (text)")
            if str(m) in seen:
                raise ValueError(f"{w}.meter_id: {m!r} is polled twice")
            seen.add(str(m))
            if d.get("model") not in models:
                raise ValueError(f"{w}.model: {d.get('model')!r} is not a model (known: {', '.join(models) or 'none'})")
            framing = d.get("framing", "tcp")
            if framing not in ("tcp", "rtu"):
                raise ValueError(f"{w}.framing: tcp (Modbus/TCP) or rtu (RTU over TCP), got {framing!r}")
            port = d.get("port", 2000 if framing == "rtu" else 502)
            unit = d.get("unit", 1)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError(f"{w}.port: must be 1..65535, got {port!r}")
            if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit <= 247:
                raise ValueError(f"{w}.unit: must be 0..247, got {unit!r}")
            host = d.get("host", "127.0.0.1")
            if not isinstance(host, str) or not host:
                raise ValueError(f"{w}.host: must be text")
            key = f"{host}:{port}/{framing}"
            if key not in self.gateways:
                self.gateways[key] = Gateway(key, host, port, framing, self.request_timeout_s, self)
            self.devices.append(Device(str(m), key, unit, models[d["model"]]))
        if not self.devices:
            raise ValueError("devices: give at least one [[sources.devices]] table")
        self._sem: _Slots | None = None
        self._loop = None
        self.device_ms: deque = deque(maxlen=4096)   # response time of the last device polls
        self._health: dict[str, object] = {}   # alert id -> latest version not yet handed over
        self._by_meter = {d.meter_id: d for d in self.devices}
        self.cycles = 0
        self._probed: dict[str, int] = {}   # gateway -> the cycle a long-unasked lost unit was last asked first in
        self._unasked: dict[str, int] = {}     # gateway -> the last cycle a unit of it was left unasked in
        self._lost_asked: dict[str, int] = {}  # gateway -> the last cycle a unit lost before was asked in

    # ------------------------------------------------------------------------------ one request

    async def _request(self, gw: Gateway, dev: Device, r: Read, deadline: float) -> np.ndarray:
        from pymodbus.exceptions import ModbusException

        asked = False
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff_s * (2 ** (attempt - 1))
                if time.monotonic() + pause >= deadline:
                    break
                dev.counters["retries"] += 1
                self.counters["retries"] += 1
                await asyncio.sleep(pause)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not await gw.ensure():
                continue
            call = {1: gw.client.read_coils, 2: gw.client.read_discrete_inputs,
                    3: gw.client.read_holding_registers, 4: gw.client.read_input_registers}[r.function]
            asked = True
            try:
                # (asyncio.timeout, not wait_for: no task of its own for every request)
                async with asyncio.timeout(min(self.request_timeout_s, left) + 0.05):
                    rr = await call(r.address, count=r.count, device_id=dev.unit)
            except asyncio.TimeoutError:
                self._timed_out(gw)
                continue
            except ModbusException as exc:
                text = str(exc).lower()
                m = re.search(r"device id=(\d+) but received (\d+)", text)
                if m:
                    self._wrong_unit(gw, int(m.group(1)), int(m.group(2)))
                    gw.drop()
                elif "no response" in text or "timeout" in text:
                    self._timed_out(gw)
                else:
                    gw.count("errors")
                    gw.drop()
                continue
            except (OSError, ConnectionError):
                gw.count("errors")
                gw.drop()
                continue
            if rr.isError():
                code = getattr(rr, "exception_code", None)
                gw.count("exceptions")
                gw.count("malformed")
                if code in (5, 6):   # acknowledge / busy: ask again
                    continue
                raise _Lost(f"exception response {code}")
            vals = rr.bits if r.table in BIT_TABLES else rr.registers
            if len(vals) < r.count or (r.table not in BIT_TABLES and len(vals) != r.count):
                gw.count("wrong_length")
                gw.count("malformed")
                continue
            return np.asarray(vals[: r.count], dtype=np.uint16)
        raise _Lost("no answer" if asked else "not asked")

    def polled_meters(self) -> list[str]:
        return [d.meter_id for d in self.devices]

    def silence_facts(self, meter: str) -> dict:
        """What the silence watch's alert says of a silent device: its gateway, unit and why its
        last poll was lost."""
        d = self._by_meter.get(meter)
        return {} if d is None else {"gateway": d.gateway, "unit": d.unit, "why": d.why or "no answer"}

    def silence_links(self) -> dict:
        """Per gateway, what the silence watch needs to tell a gateway that is down from the units
        behind it (runners/silence.py): ``up`` -- the connection state: False while the gateway
        fails to connect (refused, unreachable, no answer to the connection: the poller's own
        state, not a guess from its units' silence), True once it connected and has not failed
        since, None before this run first tried it; ``since`` (wall time it first failed),
        ``why`` and its ``units`` (meter, unit id), in configured order."""
        out = {}
        for d in self.devices:
            g = self.gateways[d.gateway]
            e = out.get(g.key)
            if e is None:
                tried = g.counters["connects"] or g.counters["connect_failures"]
                e = out[g.key] = {"up": None if not tried else g.down_since is None, "since": g.down_wall,
                                  "why": g.down_why, "units": []}
            e["units"].append((d.meter_id, d.unit))
        return out

    def _wrong_unit(self, gw: Gateway, asked: int, answered: int) -> None:
        """An answer stamped with another unit id than asked (units swapped on a serial bus, a bridge
        mapping them wrong): not taken for this device's reading. Counted ``wrong_unit`` and
        ``errors``, and said -- the source's first five, then every hundredth."""
        gw.count("wrong_unit")
        gw.count("errors")
        n = self.counters["wrong_unit"]
        if n <= 5 or n % 100 == 0:
            dev = gw.current.meter_id if gw.current is not None else "?"
            log.warning("%s: answer #%d from another unit: meter %r (gateway %s) asked unit %d, answered as unit %d; "
                        "not read as its reading (check the unit ids of the devices behind the gateway)",
                        self.name, n, dev, gw.key, asked, answered)

    def _timed_out(self, gw: Gateway) -> None:
        """No answer in time. Bytes that came but never made a frame are a frame slip (RTU) or a
        frame shorter than its MBAP length says (TCP): malformed. The connection is dropped either
        way, so that a late answer is not taken for the next request's."""
        w = gw.wire
        if w.bad:
            pass        # counted as a CRC error when it came
        elif w.got and w.asked and w.answered is not None and w.answered != w.asked:
            self._wrong_unit(gw, w.asked, w.answered)    # pymodbus skips a frame of another unit: no answer
        elif w.got:
            gw.count("frame_slips" if gw.framing == "rtu" else "bad_length")
            gw.count("malformed")
        else:
            gw.count("timeouts")
        gw.wire.got = 0
        gw.drop()

    async def _poll_device(self, dev: Device, deadline: float) -> dict[Read, np.ndarray] | None:
        """One device's poll; the caller holds a concurrency slot (:meth:`poll`'s walk)."""
        gw = self.gateways[dev.gateway]
        was_lost = dev.missed
        async with gw.lock:
            gw.current = dev
            t0 = time.monotonic()
            try:
                got = {}
                for r in dev.model.reads:
                    got[r] = await self._request(gw, dev, r, deadline)
                    if len(got) == 1:    # the clock's read goes first (plan)
                        dev.read_at = time.monotonic()
            except _Lost as exc:
                got = None
                dev.why = ("gateway unreachable" if gw.down_since is not None else
                           "no answer in time" if str(exc) == "no answer" else
                           "not asked: the cycle's deadline passed before its turn" if str(exc) == "not asked"
                           else str(exc))
                if str(exc) != "not asked":    # (a unit not asked keeps its place and its missed)
                    dev.missed, dev.asked = True, self.cycles
                else:                          # (the gateway's time ran out this cycle: see poll)
                    self._unasked[dev.gateway] = self.cycles
            finally:
                gw.current = None
            took = (time.monotonic() - t0) * 1000.0
        dev.counters["polls"] += 1
        if got is not None:
            dev.missed, dev.asked = False, self.cycles
        if was_lost and dev.asked == self.cycles:     # a lost unit was asked this cycle (see poll)
            self._lost_asked[dev.gateway] = self.cycles
        if got is None:
            dev.counters["lost"] += 1
            self.counters["lost"] += 1
            return None
        dev.times.append(took)
        self.device_ms.append(took)
        if time.monotonic() <= deadline:
            dev.counters["on_time"] += 1
            self.counters["on_time"] += 1
        return got

    # ------------------------------------------------------------------------------ one cycle

    async def poll(self) -> pd.DataFrame:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:   # locks and clients belong to one event loop
            self._loop = loop
            self._sem = _Slots(self.concurrency)
            for g in self.gateways.values():
                g.client = None
                g.lock = asyncio.Lock()
        t0 = time.monotonic()
        when = pd.Timestamp.now(tz="UTC").floor("ms")
        deadline = t0 + self.deadline_s
        # A unit whose last poll was lost is asked after those that answered (one request at a time
        # per gateway): a unit that stopped answering behind a live gateway spends its timeouts and
        # retries at the end of the cycle, not the turn of every unit queued after it (rsilence: one
        # dead unit of eight at the defaults lost the polls of the five after it, each said silent).
        # Of the others, the unit asked longest ago goes first: one the deadline came before (not
        # asked) is asked before those that were; in configured order it stayed behind them and was
        # never asked while its gateway answered fewer units a cycle than it has (bv: 62 of 1,000
        # devices never read in 30 s of bench poll at load 17). A unit that stopped answering stays
        # last, however long ago it was asked.
        # But a unit lost once while its gateway answers fewer units a cycle than it has would then
        # never be asked again (the live units fill every cycle): it would stay silent after it
        # answers again (rbv). So while a gateway is full (last cycle a unit of it was left unasked
        # and no lost unit was asked: its time went to the units that answer), a lost unit not
        # asked for more than _LOST_PROBE_CYCLES cycles is asked in its turn (longest ago first: at
        # the front), at most one such unit per gateway every _LOST_PROBE_CYCLES cycles: a unit
        # still dead costs its gateway at most one cycle in that many. Behind a gateway with room
        # for its live units, lost units stay last (each asked in turn after the live ones).
        probe, best = set(), {}
        for i, d in enumerate(self.devices):
            if d.missed and self.cycles - d.asked > _LOST_PROBE_CYCLES \
                    and self._unasked.get(d.gateway) == self.cycles - 1 != self._lost_asked.get(d.gateway) \
                    and self.cycles - self._probed.get(d.gateway, -_LOST_PROBE_CYCLES - 1) > _LOST_PROBE_CYCLES \
                    and (d.gateway not in best or d.asked < self.devices[best[d.gateway]].asked):
                best[d.gateway] = i
        for key, i in best.items():
            probe.add(i)
            self._probed[key] = self.cycles
        order = sorted(range(len(self.devices)),
                       key=lambda i: (self.devices[i].missed and i not in probe, self.devices[i].asked))
        # One task per gateway asks its units one after another in that order (one request at a
        # time per gateway, as its lock keeps it); a concurrency slot is taken by a gateway's next
        # unit only. (A task per device queued every unit at the semaphore, holding slots while it
        # waited for its gateway's turn, and asyncio's semaphore looks over all its waiters at every
        # release: at 1,000 devices that was a third of the poller's CPU.)
        res: list = [None] * len(self.devices)
        turns: dict[str, list[int]] = {}
        for i in order:
            turns.setdefault(self.devices[i].gateway, []).append(i)

        rank = {i: k for k, i in enumerate(order)}   # (a freed slot goes to the unit first in order: _Slots)

        async def walk(idx: list[int]) -> None:
            held = False
            try:
                for k, i in enumerate(idx):
                    if not held:
                        await self._sem.acquire(rank[i])
                        held = True
                    res[i] = await self._poll_device(self.devices[i], deadline)
                    if k + 1 < len(idx) and self._sem.keep(rank[idx[k + 1]]):
                        continue
                    self._sem.release()
                    held = False
            finally:
                if held:
                    self._sem.release()

        await asyncio.gather(*(walk(idx) for idx in turns.values()))
        self.cycles += 1
        for d, got in zip(self.devices, res):
            self._watch_speed(d, when, got is not None)
        # Decode per model, vectorised over its devices that answered.
        frames = []
        for model in {id(d.model): d.model for d in self.devices}.values():
            idx = [i for i, d in enumerate(self.devices) if d.model is model and res[i] is not None]
            if not idx:
                continue
            cols: dict[str, np.ndarray] = {}
            for r in model.reads:
                block = np.stack([res[i][r] for i in idx])
                for f in r.fields:
                    k = f.address - r.address
                    cols[f.channel] = decode(f, block[:, k:k + f.width])
            ids = [self.devices[i].meter_id for i in idx]
            if "ts" in cols:
                t = cols.pop("ts")
                # A clock that says nothing (NaN) or a time no timestamp of the frame holds (pandas
                # makes it nanoseconds: 1677..2262; rev41: the +-9.2e12 s of int64 microseconds let
                # 1e10 s through to an OutOfBoundsDatetime that lost the whole poll): the reading has no
                # time, it is lost. (A time out of the plausible range is the ingest's to reject,
                # naming the meter.)
                ok = np.isfinite(t) & (np.abs(t) < _CLOCK_MAX_S)
                if not ok.all():
                    bad = np.flatnonzero(~ok)
                    n0 = self.counters["no_time"]
                    self.counters["no_time"] += len(bad)
                    for j in bad[: max(0, 5 - n0)]:
                        log.warning("%s: %s: its clock register reads %r, not a time: the reading is lost",
                                    self.name, ids[j], float(t[j]))
                    ids, cols = [m for m, k in zip(ids, ok) if k], {k: v[ok] for k, v in cols.items()}
                    t = t[ok]
                ts = self._stamp(model, [self.devices[i] for i, k in zip(idx, ok) if k], t, cols)
            else:
                ts = when
            # the frame in one go (a column at a time: ~5 ms more CPU a cycle of 1,000 devices)
            out = pd.DataFrame({"meter_id": ids, "ts": ts, **cols})
            frames.append(out)
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        self.status = f"{sum(g is not None for g in res)}/{len(res)} answered"
        return frame.reset_index(drop=True)

    def _counted(self, key: str, mask: np.ndarray) -> np.ndarray:
        """Count ``mask``'s devices under the counter ``key``; returns those of them still to be
        warned of (three warnings a counter in the poller's life, however many devices)."""
        n0 = self.counters[key]
        self.counters[key] += int(mask.sum())
        return np.flatnonzero(mask)[: max(0, 3 - n0)]

    def _stamp(self, model: Model, devs: list, t: np.ndarray, cols: dict) -> pd.DatetimeIndex:
        """The time of each reading whose meter has a clock register (``t``, seconds, finite).

        A clock register counts in ticks (whole seconds for the README's ``uint32``). A meter
        polled about as often as its clock ticks (``interval_s = 1``) has two polls in one tick
        whenever the polls jitter across its edges: the second reading, new values under the same
        clock value, was stored as a conflicting re-send of the first and lost (m1s: 6 of 80 at
        1 s, the user's run 25 of 122). So:

        - a clock that moved on since the meter's last reading (or its first reading): the reading's
          time is the meter's clock, as it reads (rm1s: placing every reading by the poll times moved
          a replayed fleet's readings off their own timestamps whenever a poll came late) -- unless
          the last reading was placed inside its tick (below): then the last reading's time plus the
          poll time, clamped into the tick, until that falls back to the tick's start;
        - the same clock as the meter's last reading with other values: a reading of its own, at
          the last reading's time plus the poll time between the two clock reads, while that stays
          inside the clock's tick [clock, clock + resolution); with the same values too it is
          a re-send, given the last reading's time (a duplicate in the store);
        - a clock that reads the same for longer than its tick with other values (stopped, or
          running slow; also a clock set back, read as it is): the clock's value, as before -- the
          store keeps the first values it has for that time (counted ``clock_stood``, warned).

        The state is per meter (``Device.clk*``), kept across a restart by the checkpoint (lc:
        :meth:`position`, :meth:`restore`)."""
        us = np.round(t * 1e6).astype(np.int64)
        n = len(devs)
        if not n:
            return pd.to_datetime(us, unit="us", utc=True)
        f = next(x for x in model.fields if x.channel == "ts")
        names = sorted(cols)
        vals = np.column_stack([np.asarray(cols[c], dtype=float) for c in names]) if names else np.zeros((n, 0))
        prev = np.array([d.clk for d in devs])
        prev_us = np.array([d.clk_us for d in devs], dtype=np.int64)
        at = np.array([d.read_at for d in devs])
        prev_at = np.array([d.clk_at for d in devs])
        pv = np.stack([d.clk_vals if d.clk_vals is not None and d.clk_vals.shape == vals.shape[1:]
                       else np.full(vals.shape[1], np.nan) for d in devs]) if vals.shape[1] else vals
        same = t == prev
        # The clock's resolution (s): its scale for an integer register, the spacing of the float at
        # this value otherwise (a float32 epoch clock ticks in 128 s).
        raw = (t - f.offset) / f.scale
        step = (np.spacing(raw.astype(np.float32)).astype(float) if f.type == "float32" else
                np.spacing(raw) if f.type == "float64" else np.ones(n)) * abs(f.scale)
        step_us = np.round(step * 1e6).astype(np.int64)
        # (rm1s) A clock coarser than a second (a float32 holding epoch seconds counts in 128 s) gives
        # its readings the start of their tick: said once per meter (its first reading), not refused.
        rough = np.isnan(prev) & (step > 1.0)
        if rough.any():
            for j in self._counted("clock_rough", rough):
                log.warning("%s: %s: its clock register counts in steps of %g s (%s): its readings take the "
                            "start of their step, up to that much early; a register of whole seconds (uint32) "
                            "or finer keeps their time", self.name, devs[j].meter_id, float(step[j]),
                            "a float32 cannot hold epoch seconds" if f.type == "float32" else f"scale {f.scale:g}")
        # Where the last reading's time plus the poll time since puts this reading.
        cand = prev_us + np.maximum(np.round((at - prev_at) * 1e6).astype(np.int64), 1)
        known = ~np.isnan(prev) & (step_us >= 2)
        equal = ((vals == pv) | (np.isnan(vals) & np.isnan(pv))).all(axis=1) if vals.shape[1] else np.ones(n, bool)
        resend = same & equal
        fits = cand < us + step_us
        refine = known & same & ~equal & fits
        stood = same & ~equal & ~refine
        self.counters["clock_refined"] += int(refine.sum())
        self.counters["resent"] += int(resend.sum())
        # After a reading placed inside its tick (not at its clock's value), the next ticks are placed
        # by the polls too (the last reading's time plus the poll time, clamped into the tick) until
        # that falls back to the tick's start: a reading refined near the top of its tick must not
        # meet the next tick's reading stamped at its edge, closer than the store's jitter tolerance
        # (m1s's simulation: 2 % lost). A clock never refined (a replayed fleet) keeps its own times.
        placed = prev_us != np.round(np.where(np.isnan(prev), 0.0, prev) * 1e6).astype(np.int64)
        track = known & ~same & (t > prev) & placed
        us = np.where(resend, prev_us, np.where(refine, cand, np.where(track, np.clip(cand, us, us + step_us - 1), us)))
        if stood.any():
            for j in self._counted("clock_stood", stood):
                log.warning("%s: %s: its clock register still reads %r %.1f s after it last did, with other "
                            "values: the clock stands still or runs slow; the reading keeps that time (the "
                            "store keeps the first values it has for it)", self.name, devs[j].meter_id,
                            float(t[j]), float(at[j] - prev_at[j]))
        keep = ~stood & ~resend     # a re-send is the last reading again: its time stays the mark
        for j in np.flatnonzero(keep):
            d = devs[j]
            d.clk, d.clk_us, d.clk_at, d.clk_vals = d.clk_state = (float(t[j]), int(us[j]), float(at[j]), vals[j])
        return pd.to_datetime(us, unit="us", utc=True)

    # ------------------------------------------------------------------------------ response time

    def _watch_speed(self, d: Device, when: pd.Timestamp, ok: bool) -> None:
        """Settle each device's own median response time, then warn when the median of its last
        ``slow_recent`` polls climbs above ``slow_factor`` times it (and ``slow_min_ms`` above)."""
        if not ok:
            return
        if d.baseline_ms is None:
            d.settled += 1
            if d.settled >= self.slow_settle:
                d.baseline_ms = float(statistics.median(_last(d.times, self.slow_settle)))
            return
        if len(d.times) < self.slow_recent:   # resumed (resume_health): not enough polls of this run yet
            return
        # (statistics.median of the last few, not np.median of a copy of the deque: the same value,
        # ~9 ms less CPU a cycle of 1,000 devices)
        last = _last(d.times, self.slow_recent)
        recent = float(statistics.median(last))
        limit = max(d.baseline_ms * self.slow_factor, d.baseline_ms + self.slow_min_ms)
        # Opens when every one of the last polls was slow (a busy moment of this host is not a
        # climbing link); stays open while their median is.
        if (min(last) > limit) if d.slow is None else (recent > limit):
            if d.slow is None:
                d.slow = {"start": when, "peak": recent}
                d.counters["slow_alerts"] += 1
                self.counters["slow_alerts"] += 1
                log.warning("%s: %s (gateway %s unit %d) answers in %.0f ms, its usual is %.0f ms",
                            self.name, d.meter_id, d.gateway, d.unit, recent, d.baseline_ms)
            d.slow["peak"] = max(d.slow["peak"], recent)
            d.slow["end"], d.slow["recent"], d.slow["limit"] = when, recent, limit
            self._emit_slow(d, ended=False)
        else:
            if d.slow is not None:
                self._emit_slow(d, ended=True)
                d.slow = None
            # The usual response time follows slow drifts, never a climb.
            d.baseline_ms = 0.95 * d.baseline_ms + 0.05 * recent

    def _emit_slow(self, d: Device, ended: bool) -> None:
        from wattwatch.alerts.model import Alert, iso
        from wattwatch.codes import severity

        s = d.slow
        ratio = s["peak"] / s["limit"]
        score = round(1.0 - 0.5 ** ratio, 4)
        a = Alert(meter_id=d.meter_id, start=iso(s["start"]), end=iso(s.get("end", s["start"])), code=SLOW_CODE,
                  severity=severity(SLOW_CODE, score), score=score, detector="modbus_response_time",
                  message=f"Modbus response time climbed to {s['peak']:.0f} ms (usual {d.baseline_ms:.0f} ms) "
                          f"on gateway {d.gateway} unit {d.unit}",
                  evidence={"source": self.name, "gateway": d.gateway, "unit": d.unit,
                            "usual_ms": round(d.baseline_ms, 2), "recent_ms": round(s["recent"], 2),
                            "peak_ms": round(s["peak"], 2), "limit_ms": round(s["limit"], 2), "ended": ended})
        self._health[a.id] = a

    def resume_health(self, alerts: list) -> None:
        """The open ``WARN_LINK_SLOW`` alerts an earlier run of this source left in the store (the
        watcher restarted): each device goes on with its alert (the same start, so the same id)
        and the usual response time it was judged against, and judges it again once this run has
        ``slow_recent`` of its polls: still slow, the alert goes on; back under the limit, it ends
        (as it would have in the earlier run). Without this, a device that recovered while the
        watcher was down left its alert open for ever, and one still slow settled its usual time
        on the slow polls and said nothing. The alert of a device this source no longer has (taken
        out of the config while the watcher was down), or one without the response times to judge
        it again, is ended by the next :meth:`health` (``evidence.ended_because`` says why): nothing
        else would ever end it."""
        by = {d.meter_id: d for d in self.devices}
        for a in alerts:
            ev = a.evidence
            d = by.get(a.meter_id)
            if a.code != SLOW_CODE or ev.get("ended") or (d is not None and d.slow is not None):
                continue
            if d is None:   # nothing polls it now: nothing else would ever end its alert
                self._end_stored(a, "the device is no longer configured in this source")
                continue
            try:
                usual, peak = float(ev["usual_ms"]), float(ev["peak_ms"])
                recent, limit = float(ev["recent_ms"]), float(ev["limit_ms"])
                start, end = pd.Timestamp(a.start), pd.Timestamp(a.end)
            except (KeyError, TypeError, ValueError):
                log.warning("%s: stored alert %s of %s lacks its response times; not resumed", self.name, a.id,
                            a.meter_id)
                self._end_stored(a, "the stored alert lacks the response times to judge it again")
                continue
            d.baseline_ms, d.settled = usual, max(d.settled, self.slow_settle)
            d.slow = {"start": start, "end": end, "peak": peak, "recent": recent, "limit": limit}
            self.counters["slow_resumed"] += 1

    def _end_stored(self, a, why: str) -> None:
        """End a stored open alert this run cannot go on with (reported by the next :meth:`health`),
        once: the same alert (same id), ``ended`` and why."""
        log.warning("%s: open alert %s of %s ended at the restart: %s", self.name, a.id, a.meter_id, why)
        self._health[a.id] = replace(a, evidence={**a.evidence, "ended": True, "ended_because": why})
        self.counters["slow_ended_unresumed"] += 1

    def health(self) -> list:
        """The source's own alerts (device health) changed since the last call; an alert whose
        evidence says ``ended`` will not change again."""
        out = list(self._health.values())
        self._health.clear()
        return out

    # ------------------------------------------------------------------------------ source

    def position(self) -> dict:
        """(lc) The clock state of each meter with a clock register (:meth:`_stamp`): its last
        reading's clock value, the time given to it, when it was read (wall time: a restart's
        monotonic clock starts anew) and its values. Without it the first polls of a coarse clock
        after a restart within one of its ticks took the tick's start, the time of a reading stored
        before the restart, with other values: conflicts, readings lost."""
        wall = time.time() - time.monotonic()
        out = {}
        for d in self.devices:
            st = d.clk_state   # (one read: the event loop's thread writes it in one assignment)
            if st is not None:
                clk, us, at, vals = st
                vals = None if vals is None else [v if v == v else None for v in vals.tolist()]
                out[d.meter_id] = [clk, us, at + wall, vals]
        return {"clocks": out} if out else {}

    def restore(self, position: dict) -> None:
        """Go on with the clock state :meth:`position` saved (meters still polled; an entry that does
        not read as one is skipped: the meter's first reading takes its clock, as on a first start)."""
        clocks = position.get("clocks") if isinstance(position, dict) else None
        if not isinstance(clocks, dict):
            return
        mono = time.monotonic() - time.time()
        for m, v in clocks.items():
            d = self._by_meter.get(m)
            try:
                clk, us, at, vals = float(v[0]), int(v[1]), float(v[2]), v[3]
                vals = None if vals is None else np.array([np.nan if x is None else float(x) for x in vals])
            except (TypeError, ValueError, IndexError, OverflowError):   # (rlc: Infinity, 1e400 in the JSON)
                continue
            if d is None or not math.isfinite(clk) or not math.isfinite(at):
                continue
            d.clk, d.clk_us, d.clk_at, d.clk_vals = d.clk_state = (clk, us, at + mono, vals)
            self.counters["clock_resumed"] += 1

    def poll_paced(self):
        """Only the meters without a clock register take the poll's time (a meter's clock says
        its own, placed by :meth:`_stamp`; a fleet replayed through simulated devices keeps its)."""
        own = frozenset(d.meter_id for d in self.devices if "ts" not in d.model.channels)
        return (self.interval_s, own) if own and self.interval_s > 0 else None

    def token(self):
        return None   # nothing to acknowledge; the clock state is saved by the checkpoint (position)

    def devices_view(self) -> list[dict]:
        out = []
        for d in self.devices:
            v = {"meter_id": d.meter_id, "gateway": d.gateway, "unit": d.unit, **d.counters}
            if d.times:
                v["p50_ms"] = round(float(np.median(d.times)), 2)
            v["slow"] = d.slow is not None
            out.append(v)
        return out

    def view(self) -> dict:
        v = super().view()      # p50_ms there is of whole cycles; these are of device polls
        if self.device_ms:
            v["device_p50_ms"] = round(float(np.median(self.device_ms)), 2)
            v["device_p99_ms"] = round(float(np.percentile(self.device_ms, 99)), 2)
        v["devices"] = len(self.devices)
        v["gateways"] = len(self.gateways)
        return v

    def close(self) -> None:
        for g in self.gateways.values():
            g.close()
        self.status = "closed"


def from_spec(name: str, spec: dict, root=None) -> ModbusPoller:
    """A Modbus poller from its ``[[sources]]`` table: ``models`` (tables or a TOML file),
    ``devices`` (``meter_id``, ``host``, ``port``, ``unit``, ``model``, ``framing``), ``interval_s``,
    ``timeout_s``, ``retries``, ``backoff_s``, ``concurrency``, ``deadline_s``, ``max_gap`` and the
    response-time warning's ``slow_factor``, ``slow_min_ms``, ``slow_recent``, ``slow_settle``."""

    only(spec, {"models", "devices", "interval_s", "timeout_s", "retries", "backoff_s", "concurrency", "deadline_s",
                "max_gap", "slow_factor", "slow_min_ms", "slow_recent", "slow_settle"})
    if "models" not in spec:
        raise ValueError("models: give [models.NAME] register maps (in the site config or a file: models = \"FILE\")")
    gap = spec.get("max_gap", 0)
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= 124:
        raise ValueError(f"max_gap: must be an integer 0..124, got {gap!r}")
    models = load_models(spec["models"], root, gap)
    devices = spec.get("devices")
    if not isinstance(devices, list):
        raise ValueError("devices: give [[sources.devices]] tables (meter_id, host, port, unit, model)")
    kw = {k: spec[k] for k in ("interval_s", "timeout_s", "retries", "backoff_s", "concurrency", "deadline_s",
                               "slow_factor", "slow_min_ms", "slow_recent", "slow_settle") if k in spec}
    for k, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{k}: must be a number, got {v!r}")
    if "interval_s" in kw and not kw["interval_s"] > 0:
        # The Poller's 0 ("as fast as the engine takes it") is for files replayed at speed = 0: here it
        # would poll every device back to back, as many requests as the gateway can answer.
        raise ValueError(f"interval_s: must be > 0 seconds, got {kw['interval_s']!r} (0 polls every device back to "
                         "back, loading the gateway and the bus with every request they can answer; to replay a "
                         "file as fast as possible use a replay source with speed = 0, or poll simulated devices "
                         "at a small interval such as 0.01)")
    return ModbusPoller(name, devices, models, **kw)
