"""SNMPv3 poller for PDUs and UPSes (``type = "snmp"`` in ``[[sources]]``).

Every ``interval_s`` each device is asked, at most ``max_concurrent`` at once, with SNMPv3
(pysnmp's asyncio high-level API, User-based Security Model: ``authPriv`` with SHA and AES-128 by
default, SHA-2 and AES-192/256 available): its *scalars* in one GET (the device's own meter, e.g.
``pdu1``), its *tables* walked with GETBULK, every column of a table in the same request, one
meter per table row (``meter = "{device}/outlet{index}"``: ``pdu1/outlet3``). What each OID is
comes from a *model* (an OID map per device model):

.. code-block:: toml

    [models.apc_rpdu2.scalars]          # GET; the device's meter
    v_l1_v = { oid = "1.3.6.1.4.1.318.1.1.26.6.3.1.6.1" }               # rPDU2PhaseStatusVoltage, V
    [models.apc_rpdu2.tables.outlet]     # GETBULK walk; one meter per row
    meter = "{device}/outlet{index}"
    inherit = ["v_l1_v"]                 # scalars copied onto every row's meter (the outlet's supply)
    columns.i_l1_a = { oid = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6", scale = 0.1 }    # 0.1 A
    columns.p_kw = { oid = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7", scale = 0.001 }    # W

A channel is canonical (SPEC §2: ``v_l1_v``, ``i_l1_a``, ``p_kw`` …) or an extra channel with its
unit in the name (``ups_battery_pct``, ``ups_mode_1``). ``value * scale + offset`` gives it in its
unit. :data:`BUILTIN_MODELS` has ``apc_rpdu2`` (APC PowerNet-MIB rack PDU, metered outlets) and
``ups_mib`` (RFC 1628 UPS-MIB); a site adds or replaces models in a ``models = "file.toml"`` it
names (``[models.X]`` tables) or inline under the source (``[sources.models.X]``).

Credentials: ``user``, ``auth_key`` / ``priv_key`` or, so that they need not sit in the TOML,
``auth_key_env`` / ``priv_key_env`` (names of environment variables), per source or per device.

Nothing is invented: a device that does not answer in time, refuses the credentials or sends what
cannot be read gives no reading for that cycle (the core's packet-loss rule sees the gap). Counted
per device and in total: ``device_polls``, ``answered``, ``lost`` (device polls without a
reading), ``timeouts``, ``auth_failures`` (wrong key, unknown user, decryption failure, …),
``malformed`` (error status, an OID the device lacks, a value that is not a number, a walk whose
OIDs do not increase), ``errors``, ``rediscoveries``, the response time (p50/p99 over the last 256
polls) and ``slow_polls``: a device whose response time climbs well above its own usual time (or
past half the request timeout) is warned about once and shown as ``slow`` while it lasts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import re
import time
from wattwatch.tomlfile import read_toml
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.schema import COLUMNS, KEY_COLUMNS, extra_channel_error
from wattwatch.sources import only
from wattwatch.sources.base import Poller, canonical

log = logging.getLogger("wattwatch.watch")

_LOG_FIRST = 5
MAX_ROWS = 4096          # a table walk stops here (a device that never ends its table)
REDISCOVER_AFTER = 3     # polls in a row without an answer before the device's engine is discovered again
REDISCOVER_S = 30.0      # at most this often per device
NORMAL_POLLS = 8         # answered polls that set a device's usual response time
SLOW_WINDOW = 5          # answers whose median is compared with it
SLOW_FACTOR, SLOW_MIN_MS = 3.0, 100.0  # slow: above 3x the usual time and at least 100 ms more

# The OID maps shipped with wattwatch. OIDs: APC PowerNet-MIB rPDU2 (phase voltage, metered
# outlets), RFC 1628 UPS-MIB.
BUILTIN_MODELS: dict[str, dict] = {
    "apc_rpdu2": {
        "description": "APC rack PDU (PowerNet-MIB rPDU2), metered outlets",
        "scalars": {
            "v_l1_v": {"oid": "1.3.6.1.4.1.318.1.1.26.6.3.1.6.1"},       # rPDU2PhaseStatusVoltage.1, V
        },
        "tables": {
            "outlet": {
                "meter": "{device}/outlet{index}",
                "inherit": ["v_l1_v"],
                "columns": {
                    "i_l1_a": {"oid": "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6", "scale": 0.1},   # MeteredStatusCurrent, 0.1 A
                    "p_kw": {"oid": "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7", "scale": 0.001},   # MeteredStatusPower, W
                },
            },
        },
    },
    "ups_mib": {
        "description": "UPS (RFC 1628 UPS-MIB), single-phase input and output",
        "scalars": {
            "ups_battery_status_1": {"oid": "1.3.6.1.2.1.33.1.2.1.0"},      # upsBatteryStatus: 2 ok, 3 low, 4 empty
            "ups_on_battery_s": {"oid": "1.3.6.1.2.1.33.1.2.2.0"},          # upsSecondsOnBattery, s (0 on mains)
            "ups_runtime_s": {"oid": "1.3.6.1.2.1.33.1.2.3.0", "scale": 60.0},  # upsEstimatedMinutesRemaining
            "ups_battery_pct": {"oid": "1.3.6.1.2.1.33.1.2.4.0"},           # upsEstimatedChargeRemaining, %
            "temp_c": {"oid": "1.3.6.1.2.1.33.1.2.7.0"},                    # upsBatteryTemperature, °C
            "ups_mode_1": {"oid": "1.3.6.1.2.1.33.1.4.1.0"},                # upsOutputSource: 3 normal, 5 battery
            "v_l1_v": {"oid": "1.3.6.1.2.1.33.1.3.3.1.3.1"},                # upsInputVoltage.1, V
            "i_l1_a": {"oid": "1.3.6.1.2.1.33.1.4.4.1.3.1", "scale": 0.1},  # upsOutputCurrent.1, 0.1 A
            "p_kw": {"oid": "1.3.6.1.2.1.33.1.4.4.1.4.1", "scale": 0.001},  # upsOutputPower.1, W
        },
        "tables": {},
    },
}

AUTH_PROTOCOLS = {"sha": "usmHMACSHAAuthProtocol", "sha224": "usmHMAC128SHA224AuthProtocol",
                  "sha256": "usmHMAC192SHA256AuthProtocol", "sha384": "usmHMAC256SHA384AuthProtocol",
                  "sha512": "usmHMAC384SHA512AuthProtocol"}
PRIV_PROTOCOLS = {"aes": "usmAesCfb128Protocol", "aes128": "usmAesCfb128Protocol",
                  "aes192": "usmAesCfb192Protocol", "aes256": "usmAesCfb256Protocol", "none": "usmNoPrivProtocol"}

_HASHES = {"sha": hashlib.sha1, "sha224": hashlib.sha224, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
           "sha512": hashlib.sha512}


def master_key(passphrase: str, auth_protocol: str) -> bytes:
    """RFC 3414 A.2 password-to-key (before localisation): the hash of the pass phrase repeated over
    1 MiB. pysnmp does it 64 bytes at a time in Python (tens of ms per key, per engine, which made
    the first poll of a cycle miss its deadline on a busy machine); one hashlib call is ~2 ms."""
    b = passphrase.encode("utf-8")
    return _HASHES[auth_protocol]((b * (1048576 // len(b) + 1))[:1048576]).digest()


# errorIndication class names that mean "the agent did not accept who we are".
_AUTH_ERRORS = {"WrongDigest", "UnknownUserName", "DecryptionError", "AuthenticationFailure", "AuthenticationError",
                "UnsupportedSecurityLevel", "UnknownSecurityName", "NotInTimeWindow", "UnknownEngineID"}
# What to check in the site config for each refusal (the agent's report names the failing step).
_AUTH_HINTS = {"WrongDigest": "check auth_key and auth_protocol", "AuthenticationFailure": "check auth_key and auth_protocol",
               "AuthenticationError": "check auth_key and auth_protocol",
               "DecryptionError": "check priv_key and priv_protocol",
               "UnknownUserName": "check user", "UnknownSecurityName": "check user",
               "UnsupportedSecurityLevel": "the agent's user has another security level: check priv_protocol "
                                           "(\"none\" = authNoPriv) and the keys"}
_OID_RE = re.compile(r"\.?(\d+)(\.\d+)+")
_TEMPLATE_RE = re.compile(r"\{([^{}]*)\}")


# ------------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class Column:
    channel: str
    oid: tuple[int, ...]
    scale: float = 1.0
    offset: float = 0.0

    @property
    def dotted(self) -> str:
        return ".".join(map(str, self.oid))


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    meter: str = "{device}/{table}{index}"
    inherit: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    """An OID map: scalars (one GET, the device's meter) and tables (GETBULK, a meter per row)."""

    name: str
    scalars: tuple[Column, ...] = ()
    tables: tuple[Table, ...] = ()
    description: str = ""


def parse_oid(text, where: str) -> tuple[int, ...]:
    if not isinstance(text, str) or not _OID_RE.fullmatch(text.strip()):
        raise ValueError(f"{where}: oid must be dotted numbers like \"1.3.6.1.2.1.33.1.2.4.0\", got {text!r}"[:200])
    return tuple(int(x) for x in text.strip().lstrip(".").split("."))


def _channel(name, where: str) -> str:
    if name in KEY_COLUMNS:
        raise ValueError(f"{where}: {name!r} is a key column, not a channel")
    if name not in COLUMNS:
        err = extra_channel_error(name)
        if err:
            raise ValueError(f"{where}: not a canonical channel (v_l1_v, i_l1_a, p_kw, ...) "
                             f"nor an extra channel: {err}")
    return name


def _column(channel: str, spec, where: str) -> Column:
    where = f"{where}.{channel}"
    _channel(channel, where)
    if isinstance(spec, str):
        spec = {"oid": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected {{ oid = \"...\", scale = 1.0 }}, got {type(spec).__name__}")
    only(spec, {"oid", "scale", "offset"}, where)
    nums = {}
    for k in ("scale", "offset"):
        v = spec.get(k, 1.0 if k == "scale" else 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}.{k}: must be a finite number, got {v!r}"[:200])
        nums[k] = float(v)
    return Column(channel, parse_oid(spec.get("oid"), f"{where}.oid"), nums["scale"], nums["offset"])


def parse_model(name: str, spec, where: str = "models") -> Model:
    """A :class:`Model` from its table (ValueError naming the key)."""
    where = f"{where}.{name}"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a table")
    only(spec, {"scalars", "tables", "description"}, where)
    scal = spec.get("scalars", {})
    if not isinstance(scal, dict):
        raise ValueError(f"{where}.scalars: expected a table of channel = {{ oid = ... }}")
    scalars = tuple(_column(ch, s, f"{where}.scalars") for ch, s in scal.items())
    tabs = spec.get("tables", {})
    if not isinstance(tabs, dict):
        raise ValueError(f"{where}.tables: expected [{where}.tables.NAME] tables")
    tables = []
    for tname, t in tabs.items():
        tw = f"{where}.tables.{tname}"
        if not isinstance(t, dict):
            raise ValueError(f"{tw}: expected a table")
        only(t, {"columns", "meter", "inherit"}, tw)
        cols = t.get("columns")
        if not isinstance(cols, dict) or not cols:
            raise ValueError(f"{tw}.columns: give at least one channel = {{ oid = ... }}")
        meter = t.get("meter", "{device}/{table}{index}")
        if not isinstance(meter, str) or "{index}" not in meter:
            raise ValueError(f"{tw}.meter: must be text containing {{index}} (e.g. \"{{device}}/outlet{{index}}\")")
        bad = [p for p in _TEMPLATE_RE.findall(meter) if p not in ("device", "index", "table")]
        if bad:
            raise ValueError(f"{tw}.meter: unknown placeholder(s) {bad}; known: {{device}}, {{table}}, {{index}}")
        inherit = t.get("inherit", [])
        if not isinstance(inherit, list) or any(i not in {c.channel for c in scalars} for i in inherit):
            raise ValueError(f"{tw}.inherit: must list channels of {where}.scalars, got {inherit!r}"[:200])
        tables.append(Table(tname, tuple(_column(ch, c, f"{tw}.columns") for ch, c in cols.items()), meter,
                            tuple(inherit)))
    if not scalars and not tables:
        raise ValueError(f"{where}: give scalars or tables")
    return Model(name, scalars, tuple(tables), str(spec.get("description", "")))


def load_models(models=None, root: Path | None = None) -> dict[str, Model]:
    """The built-in models updated with ``models``: a TOML file (path relative to ``root``) with
    ``[models.X]`` tables, or a dict of them (inline ``[sources.models.X]``)."""
    from wattwatch.sources import resolve

    out = {n: parse_model(n, s, "models") for n, s in BUILTIN_MODELS.items()}
    if models is None:
        return out
    if isinstance(models, str):
        p = resolve(models, root)
        doc = read_toml(p, "models file (SNMP OID maps)", ValueError)
        extra, where = doc.get("models"), f"{p}: models"
        if not isinstance(extra, dict) or set(doc) - {"models"}:
            raise ValueError(f"models {p}: expected only [models.NAME] tables")
    elif isinstance(models, dict):
        extra, where = models, "models"
    else:
        raise ValueError(f"models: a TOML file or [models.NAME] tables, got {type(models).__name__}")
    out.update({n: parse_model(n, s, where) for n, s in extra.items()})
    return out


def meter_name(table: Table, device: str, index: tuple[int, ...]) -> str:
    idx = ".".join(map(str, index))
    return table.meter.replace("{device}", device).replace("{table}", table.name).replace("{index}", idx)


# ------------------------------------------------------------------------------------ devices


@dataclass
class Device:
    name: str
    host: str
    port: int
    model: Model
    user: str
    auth_key: str = field(repr=False)
    priv_key: str | None = field(repr=False)
    auth_protocol: str = "sha"
    priv_protocol: str = "aes"
    context: str = ""
    counters: Counter = field(default_factory=Counter)
    response_ms: deque = field(default_factory=lambda: deque(maxlen=256))
    status: str = "new"
    _target: object = None
    _auth: object = None
    _engine: object = None
    rows: dict = field(default_factory=dict)   # table -> rows at its last walk (sizes the next GETBULK)
    failing: int = 0            # consecutive polls without an answer
    normal_ms: float | None = None   # its usual response time (median of its first answered polls)
    slow: bool = False
    reset_at: float = 0.0       # monotonic time of the last rediscovery
    asked: bool = False         # this cycle: its poll got its turn (past max_concurrent) and sent a request
    heard: bool = False         # this cycle: one of its requests was answered
    # The silence watch's view of the agent (runners/silence.py, ``SnmpSource.silence_links``): when
    # (wall time) it stopped answering at all and why; the meters its polls gave (its own, its rows').
    down_wall: float | None = None
    down_why: str = ""
    tried: bool = False
    meters: set = field(default_factory=set)
    listed: set = field(default_factory=set)   # (lc) the meters its last answered poll gave

    @property
    def credentials(self) -> tuple:
        return (self.user, self.auth_protocol, self.auth_key, self.priv_protocol, self.priv_key)

    def view(self) -> dict:
        v = {"name": self.name, "kind": "snmp", "status": self.status, "model": self.model.name, **self.counters}
        if self.response_ms:
            a = np.asarray(self.response_ms)
            v["p50_ms"] = round(float(np.percentile(a, 50)), 2)
            v["p99_ms"] = round(float(np.percentile(a, 99)), 2)
        return v


def _owner_templates(devices: list[Device]) -> list[tuple]:
    """(le) For :meth:`SnmpSource._owner`: per distinct table ``meter`` template (``{table}`` filled
    in), ``(regex, first, order)``: the regex matches a row meter of any device using it, its named
    group ``device`` (the alternation of their names in config order, so a meter two devices could
    both name goes to the first, as device by device) naming which; ``order`` maps that name to
    ``(device position, table position, device)``; a template without ``{device}`` has no group and
    ``first`` is its first device's entry."""
    idx = r"[0-9]+(?:\.[0-9]+)*"
    by_key: dict[str, dict] = {}
    for k, d in enumerate(devices):
        for j, t in enumerate(d.model.tables):
            key = t.meter.replace("{table}", t.name)
            order = by_key.setdefault(key, {})
            if d.name not in order or (k, j) < order[d.name][:2]:
                order[d.name] = (k, j, d)
    out = []
    for key, order in by_key.items():
        names = sorted(order, key=lambda n: order[n][:2])
        parts = [re.escape(p) for p in key.split("{device}")]
        rx = "".join(p + ("" if i == len(parts) - 1 else
                          "(?P<device>" + "|".join(map(re.escape, names)) + ")" if i == 0 else "(?P=device)")
                     for i, p in enumerate(parts))
        rx = rx.replace(re.escape("{index}"), idx)
        out.append((re.compile(rx), None if len(parts) > 1 else order[names[0]], order))
    return out


def _secret(spec: dict, key: str, where: str) -> str | None:
    """``key`` from the table or from the environment variable ``key_env`` names."""
    direct, env = spec.get(key), spec.get(f"{key}_env")
    if direct is not None and env is not None:
        raise ValueError(f"{where}: give {key} or {key}_env, not both")
    if env is not None:
        if not isinstance(env, str) or not env:
            raise ValueError(f"{where}.{key}_env: must name an environment variable")
        if env not in os.environ:
            raise ValueError(f"{where}.{key}_env: environment variable {env} is not set")
        direct = os.environ[env]
    if direct is not None:
        if not isinstance(direct, str) or len(direct) < 8:
            raise ValueError(f"{where}.{key}: SNMPv3 keys are text of at least 8 characters")
    return direct


_DEVICE_KEYS = {"name", "host", "port", "model", "user", "auth_key", "auth_key_env", "priv_key", "priv_key_env",
                "auth_protocol", "priv_protocol", "context"}


def _device(spec, defaults: dict, models: dict[str, Model], where: str) -> Device:

    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a table")
    try:
        only(spec, _DEVICE_KEYS)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    merged = {**defaults, **spec}
    for k in ("auth_key", "priv_key"):  # a device's own key (or its _env) replaces the default pair
        if k in spec or f"{k}_env" in spec:
            merged.pop(k, None)
            merged.pop(f"{k}_env", None)
            merged.update({kk: spec[kk] for kk in (k, f"{k}_env") if kk in spec})
    name = merged.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{where}.name: must be text without '/', got {name!r}")
    model = merged.get("model")
    if model not in models:
        raise ValueError(f"{where}.model: must be one of {', '.join(sorted(models))}, got {model!r}")
    port = merged.get("port", 161)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"{where}.port: must be 1..65535, got {port!r}")
    auth_p = str(merged.get("auth_protocol", "sha")).lower()
    priv_p = str(merged.get("priv_protocol", "aes")).lower()
    if auth_p not in AUTH_PROTOCOLS:
        raise ValueError(f"{where}.auth_protocol: one of {', '.join(AUTH_PROTOCOLS)}, got {auth_p!r}")
    if priv_p not in PRIV_PROTOCOLS:
        raise ValueError(f"{where}.priv_protocol: one of {', '.join(PRIV_PROTOCOLS)}, got {priv_p!r}")
    user = merged.get("user")
    if not isinstance(user, str) or not user:
        raise ValueError(f"{where}.user: the SNMPv3 user name is required")
    auth_key = _secret(merged, "auth_key", where)
    if auth_key is None:
        raise ValueError(f"{where}: auth_key or auth_key_env is required (SNMPv3 authPriv)")
    priv_key = _secret(merged, "priv_key", where)
    if priv_p != "none" and priv_key is None:
        raise ValueError(f"{where}: priv_key or priv_key_env is required (or priv_protocol = \"none\")")
    host = merged.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ValueError(f"{where}.host: must be text")
    ctx = merged.get("context", "")
    if not isinstance(ctx, str):
        raise ValueError(f"{where}.context: must be text")
    return Device(name, host, int(port), models[model], user, auth_key, priv_key, auth_p, priv_p, ctx)


# ------------------------------------------------------------------------------------ values


def _number(val) -> float | None:
    """A numeric SNMP value as float; None for what is not a number (noSuchInstance, text …)."""
    from pyasn1.type import univ

    from pysnmp.proto import rfc1902

    if isinstance(val, (rfc1902.Integer32, rfc1902.Integer, rfc1902.Gauge32, rfc1902.Counter32,
                        rfc1902.Counter64, rfc1902.Unsigned32, rfc1902.TimeTicks, univ.Integer)):
        try:
            return float(int(val))
        except Exception:  # noqa: BLE001 - an empty value
            return None
    if isinstance(val, rfc1902.OctetString) and not isinstance(val, rfc1902.IpAddress):
        try:
            x = float(bytes(val).decode("ascii").strip())  # PDUs that report "12.3"
        except (UnicodeDecodeError, ValueError):
            return None
        return x if math.isfinite(x) else None
    return None


class _Refused(Exception):
    """A request that failed: ``kind`` is the counter it goes to."""

    def __init__(self, kind: str, why: str):
        super().__init__(why)
        self.kind = kind


# ------------------------------------------------------------------------------------ source


class SnmpSource(Poller):
    kind = "snmp"

    def __init__(self, name: str, devices: list[Device], *, interval_s: float = 10.0,
                 request_timeout_s: float | None = None, retries: int = 0, max_concurrent: int = 32,
                 max_repetitions: int = 25, max_get: int = 32):
        if not interval_s > 0:
            raise ValueError(f"source {name}: interval_s must be > 0, got {interval_s}")
        # The base cancels a poll after timeout_s; this one ends its cycle at 0.9 interval itself,
        # keeping what answered, so the base's limit only catches a stuck event loop.
        super().__init__(name, interval_s, timeout_s=interval_s + 2.0)
        if not devices:
            raise ValueError(f"source {name}: give at least one [[sources.devices]] table")
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError(f"source {name}: device names must be unique")
        self.devices = devices
        # One request may take at most this (UDP: a lost datagram is a timeout, retried `retries` times).
        self.request_timeout_s = float(request_timeout_s) if request_timeout_s else min(2.0, 0.4 * self.interval_s)
        if not self.request_timeout_s > 0:
            raise ValueError(f"source {name}: request_timeout_s must be > 0")
        if not (isinstance(retries, int) and 0 <= retries <= 5):
            raise ValueError(f"source {name}: retries must be 0..5, got {retries!r}")
        if not (isinstance(max_concurrent, int) and max_concurrent >= 1):
            raise ValueError(f"source {name}: max_concurrent must be >= 1")
        if not (isinstance(max_repetitions, int) and 1 <= max_repetitions <= 1000):
            raise ValueError(f"source {name}: max_repetitions must be 1..1000")
        if not (isinstance(max_get, int) and max_get >= 1):
            raise ValueError(f"source {name}: max_get must be >= 1")
        self.retries, self.max_concurrent = retries, max_concurrent
        self.max_repetitions, self.max_get = max_repetitions, max_get
        self._engines: dict | None = None
        self._vbs: dict = {}
        self._sem: asyncio.Semaphore | None = None
        self.status = "ready"

    # -------------------------------------------------------------- pysnmp plumbing

    async def _prepare(self, engine_cls) -> None:
        """One SNMP engine per set of credentials (pysnmp keeps one key per user name in an engine),
        every device's user and target configured before the first request: building an engine
        loads MIB modules for a few hundred ms, which inside a poll would let other devices'
        requests time out."""
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD

        engines: dict = {}
        for d in self.devices:
            if d.credentials not in engines:
                engines[d.credentials] = engine_cls()
            d._engine = engines[d.credentials]
            LCD.configure(d._engine, self._auth(d), await self._target(d), d.context.encode())
        self._sem = asyncio.Semaphore(self.max_concurrent)
        self._engines = engines

    async def run(self, emit, stop) -> None:
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        if self._engines is None:  # before the first cycle's deadline starts
            self.status = "preparing"
            await self._prepare(SnmpEngine)
        await super().run(emit, stop)

    def polled_meters(self) -> list[str]:
        return [d.name for d in self.devices]   # its scalars' meter (its outlets are NAME/...)

    def _owner(self, meter: str) -> Device | None:
        """The configured device a meter id is read from: its own (scalars) or a row of one of its
        tables (the table's ``meter`` template with any index); the first such device in the config's
        order (and its first such table). (le) One regex per distinct template, the devices that use
        it as one alternation in that order (the device a match names found by a dict), not one
        regex per device and table: restart-time matching of the store's known meters grew with
        devices x meters (0.44 s CPU at 200 PDUs x 24,800 meters)."""
        if getattr(self, "_templates", None) is None:
            self._templates = _owner_templates(self.devices)
            self._by_name = {d.name: d for d in self.devices}
        d = self._by_name.get(meter)
        if d is not None:
            return d
        best = None
        for rx, first, order in self._templates:
            m = rx.fullmatch(meter)
            if m is not None:
                hit = order[m.group("device")] if first is None else first
                if best is None or hit[:2] < best[:2]:
                    best = hit
        return None if best is None else best[2]

    def polls(self, meter: str) -> bool:
        """(lc) Whether this source reads ``meter`` (the silence watch ends at a restart the open
        alert of a meter no configured device gives: taken out of the config)."""
        return self._owner(str(meter)) is not None

    def expect(self, meter: str) -> bool:
        """(lc) A row meter an earlier run heard (the silence watch, at a restart): counted among its
        device's meters (``silence_links``: held with them while the agent is down) when a configured
        device's table names it; whether one does."""
        d = self._owner(str(meter))
        if d is not None:
            d.meters.add(str(meter))
        return d is not None

    def silence_facts(self, meter: str) -> dict:
        """(lc) Why a meter of this source is silent, for its alert: an outlet the agent no longer
        lists while it answers is a lost outlet (removed from its table, or its index changed); an
        agent that answers nothing says why (its meters are one alert then: ``silence_links``)."""
        d = self._owner(str(meter))
        if d is None:
            return {}
        if d.status in ("ok", "slow") and meter != d.name and meter not in d.listed:
            return {"agent": d.name, "why": "the agent answers but no longer lists it in its table "
                                            "(outlet removed, or its index changed)", "lost_outlet": True}
        return {"agent": d.name, "why": d.down_why or ("no answer in time" if d.status != "ok" else "not in its answer")}

    def forget(self, meter: str) -> None:
        """(le) A lost outlet retired by the silence watch (cleared: removed for good): no longer one
        of its agent's units (``silence_links``) until a poll lists it again."""
        d = self._owner(str(meter))
        if d is not None and meter != d.name:
            d.meters.discard(str(meter))

    def _agent_down(self, dev: Device, why: str) -> None:
        if dev.down_wall is None:
            dev.down_wall = time.time()
        dev.down_why = why

    def silence_links(self) -> dict:
        """Per device (agent), what the silence watch needs to tell an agent that does not answer at
        all from its outlets (runners/silence.py): ``up`` False while its last poll got no answer to
        any request (timeouts, or the credentials refused: the agent's own state, every meter it
        gives lost by the one cause), True once one was answered, None before this run asked it;
        ``since`` (wall time), ``why`` and its ``units``: its own meter and each row meter its polls
        gave (outlets), unit None."""
        return {d.name: {"up": None if not d.tried else d.down_wall is None, "since": d.down_wall, "why": d.down_why,
                         "label": "agent", "units": [(m, None) for m in [d.name, *sorted(d.meters - {d.name})]]}
                for d in self.devices}

    def _watch_speed(self, dev: Device) -> None:
        """A device whose response time climbs (a long cable run, an overloaded agent or gateway) is
        said once, while it lasts (status ``slow``, ``slow_polls`` counted): the median of its last
        ``SLOW_WINDOW`` answers above ``SLOW_FACTOR`` times its usual time (and ``SLOW_MIN_MS`` more),
        or above half the request timeout (a little more and the poll is lost)."""
        ms = dev.response_ms
        if dev.normal_ms is None:
            if len(ms) >= NORMAL_POLLS:
                dev.normal_ms = float(np.median(ms))
            return
        recent = float(np.median(list(ms)[-SLOW_WINDOW:]))
        limit = min(max(SLOW_FACTOR * dev.normal_ms, dev.normal_ms + SLOW_MIN_MS), 500.0 * self.request_timeout_s)
        slow = recent > limit
        if slow:
            dev.counters["slow_polls"] += 1
            self.counters["slow_polls"] += 1
        if slow and not dev.slow:
            log.warning("%s: %s (%s:%d) answers slowly: %.0f ms (usually %.0f ms, timeout %.0f ms)", self.name,
                        dev.name, dev.host, dev.port, recent, dev.normal_ms, 1000 * self.request_timeout_s)
        elif dev.slow and not slow:
            log.info("%s: %s answers at its usual speed again (%.0f ms)", self.name, dev.name, recent)
        dev.slow = slow

    def _maybe_rediscover(self, dev: Device) -> None:
        """After ``REDISCOVER_AFTER`` polls in a row without an answer, forget what was learned of
        the device (engine ID, boots, time): a replaced or factory-reset agent has a new engine ID,
        which a client that keeps the old one never reaches again. At most once per ``REDISCOVER_S``."""
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD

        now = time.monotonic()
        if dev.failing < REDISCOVER_AFTER or now - dev.reset_at < REDISCOVER_S:
            return
        dev.reset_at = now
        old = self._engines.pop(("own", dev.name), None)  # its own from now on; a shared one serves the others
        if old is not None:
            old.close_dispatcher()
        dev._engine = self._engines[("own", dev.name)] = SnmpEngine()
        LCD.configure(dev._engine, self._auth(dev), dev._target, dev.context.encode())
        dev.counters["rediscoveries"] += 1
        self.counters["rediscoveries"] += 1
        log.info("%s: %s: no answer %d times in a row; discovering its engine again", self.name, dev.name,
                 dev.failing)

    def _auth(self, dev: Device):
        import pysnmp.hlapi.v3arch.asyncio as h

        if dev._auth is None:
            master = h.USM_KEY_TYPE_MASTER
            priv = master_key(dev.priv_key, dev.auth_protocol) if dev.priv_key else None
            dev._auth = h.UsmUserData(dev.user, master_key(dev.auth_key, dev.auth_protocol), priv,
                                      authProtocol=getattr(h, AUTH_PROTOCOLS[dev.auth_protocol]),
                                      privProtocol=getattr(h, PRIV_PROTOCOLS[dev.priv_protocol]),
                                      authKeyType=master, privKeyType=master)
        return dev._auth

    async def _target(self, dev: Device):
        import pysnmp.hlapi.v3arch.asyncio as h

        if dev._target is None:
            dev._target = await h.UdpTransportTarget.create((dev.host, dev.port), timeout=self.request_timeout_s,
                                                            retries=self.retries)
        return dev._target

    def _check(self, dev: Device, res) -> list:
        """The var-binds of a response, or :class:`_Refused` saying why there are none."""
        err_ind, err_status, err_index, var_binds = res
        if err_ind is not None:
            cls = type(err_ind).__name__
            if cls == "RequestTimedOut":
                raise _Refused("timeouts", str(err_ind))
            if cls in _AUTH_ERRORS:
                hint = _AUTH_HINTS.get(cls)
                raise _Refused("auth_failures", f"{err_ind} (user {dev.user!r}{'; ' + hint if hint else ''})")
            raise _Refused("errors", f"{cls}: {err_ind}")
        if err_status:
            at = f" at {var_binds[int(err_index) - 1][0]}" if err_index and int(err_index) <= len(var_binds) else ""
            raise _Refused("malformed", f"error status {err_status.prettyPrint()}{at}")
        return list(var_binds)

    def _malformed(self, dev: Device, why: str) -> None:
        dev.counters["malformed"] += 1
        n = self.counters["malformed"] = self.counters["malformed"] + 1
        if n <= _LOG_FIRST or n % 100 == 0:
            log.warning("%s: %s: malformed response #%d: %s", self.name, dev.name, n, why)

    def _vb(self, oid: tuple[int, ...]):
        """A request var-bind for ``oid``, resolved once and reused: pysnmp resolves every request
        OID against its MIB view (a third of a poll's CPU); answers are taken as raw OIDs
        (``lookupMib=False``), which is all the OID map needs."""
        vb = self._vbs.get(oid)
        if vb is None:
            import pysnmp.hlapi.v3arch.asyncio as h

            if len(self._vbs) > 4096:
                self._vbs.clear()
            vb = self._vbs[oid] = h.ObjectType(h.ObjectIdentity(oid))
        return vb

    async def _get(self, dev: Device, cols: tuple[Column, ...]) -> dict[str, float]:
        import pysnmp.hlapi.v3arch.asyncio as h

        out: dict[str, float] = {}
        target = await self._target(dev)
        for k in range(0, len(cols), self.max_get):
            part = cols[k:k + self.max_get]
            res = await h.get_cmd(dev._engine, self._auth(dev), target, h.ContextData(contextName=dev.context),
                                  *[self._vb(c.oid) for c in part], lookupMib=False)
            vbs = self._check(dev, res)
            dev.heard = True
            got = {tuple(o): v for o, v in vbs}
            for c in part:
                x = _number(got.get(c.oid))
                if x is None:
                    self._malformed(dev, f"{c.dotted} ({c.channel}): "
                                         f"{'missing' if c.oid not in got else got[c.oid].prettyPrint()!r}"[:200])
                    continue
                out[c.channel] = x * c.scale + c.offset
        return out

    async def _walk(self, dev: Device, table: Table) -> dict[tuple, dict[str, float]]:
        """GETBULK over every column of ``table`` at once: row index -> channel -> value."""
        import pysnmp.hlapi.v3arch.asyncio as h

        target = await self._target(dev)
        cols = table.columns
        cursor = {i: c.oid for i, c in enumerate(cols)}       # columns still being walked: last OID
        rows: dict[tuple, dict[str, float]] = {}
        seen = 0
        # As many repetitions as the table had rows last time (+1 to see its end): an agent answers
        # every repetition asked for, and encoding them is most of a poll (74 -> 22 ms for 8 outlets).
        reps = min(self.max_repetitions, dev.rows.get(table.name, self.max_repetitions - 1) + 1)
        while cursor:
            active = sorted(cursor)
            res = await h.bulk_cmd(dev._engine, self._auth(dev), target, h.ContextData(contextName=dev.context),
                                   0, reps,
                                   *[self._vb(cursor[i]) for i in active], lookupMib=False)
            vbs = self._check(dev, res)
            dev.heard = True
            if not vbs:
                raise _Refused("malformed", f"table {table.name}: empty GETBULK response")
            for j, (oid, val) in enumerate(vbs):
                i = active[j % len(active)]
                if i not in cursor:
                    continue
                o, col = tuple(oid), cols[i]
                n = len(col.oid)
                if type(val).__name__ == "EndOfMibView" or o[:n] != col.oid or len(o) == n:
                    del cursor[i]
                    continue
                if o <= cursor[i]:
                    raise _Refused("malformed", f"table {table.name}: OID not increasing at {oid}")
                cursor[i] = o
                seen += 1
                x = _number(val)
                if x is None:
                    self._malformed(dev, f"{oid} ({col.channel}): {val.prettyPrint()!r}"[:200])
                    continue
                rows.setdefault(o[n:], {})[col.channel] = x * col.scale + col.offset
            if seen > MAX_ROWS * len(cols):
                raise _Refused("malformed", f"table {table.name}: more than {MAX_ROWS} rows")
            reps = self.max_repetitions  # the table grew: walk on at full size
        dev.rows[table.name] = len(rows)
        return rows

    async def _poll_device(self, dev: Device, ts) -> list[dict]:
        async with self._sem:
            dev.asked = True
            t0 = time.monotonic()
            dev.counters["polls"] += 1
            self.counters["device_polls"] += 1
            try:
                rows = []
                m = dev.model
                scal = await self._get(dev, m.scalars) if m.scalars else {}
                if scal:
                    rows.append({"meter_id": dev.name, "ts": ts, **scal})
                for t in m.tables:
                    inherit = {c: scal[c] for c in t.inherit if c in scal}
                    for idx, vals in sorted((await self._walk(dev, t)).items()):
                        if vals:
                            rows.append({"meter_id": meter_name(t, dev.name, idx), "ts": ts, **inherit, **vals})
            except _Refused as exc:
                dev.failing += 1
                dev.tried = True
                if exc.kind in ("timeouts", "auth_failures") and not dev.heard:   # the agent answered nothing
                    self._agent_down(dev, "no answer to its requests" if exc.kind == "timeouts" else
                                     f"refused the credentials: {exc}")
                elif dev.heard:                                                    # it answers (a bad cell, a bad walk)
                    dev.down_wall, dev.down_why = None, ""
                if exc.kind in ("timeouts", "auth_failures"):
                    self._maybe_rediscover(dev)
                dev.counters[exc.kind] += 1
                dev.counters["lost"] += 1
                self.counters[exc.kind] += 1
                self.counters["lost"] += 1
                dev.status = {"timeouts": "no response", "auth_failures": "refused"}.get(exc.kind, exc.kind)
                n = dev.counters[exc.kind]
                if n <= _LOG_FIRST or n % 100 == 0:
                    log.warning("%s: %s (%s:%d): %s #%d: %s", self.name, dev.name, dev.host, dev.port,
                                exc.kind.rstrip("s").replace("_", " "), n, exc)
                return []
            dev.failing = 0
            dev.tried = True
            dev.down_wall, dev.down_why = None, ""
            dev.listed = {r["meter_id"] for r in rows}
            dev.meters.update(dev.listed)
            took = (time.monotonic() - t0) * 1000.0
            dev.response_ms.append(took)
            self._watch_speed(dev)
            dev.counters["answered"] += 1
            self.counters["answered"] += 1
            dev.status = "slow" if dev.slow else "ok"
            return rows

    async def poll(self) -> pd.DataFrame:
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        if self._engines is None:
            await self._prepare(SnmpEngine)
        ts = pd.Timestamp.now(tz="UTC").floor("ms")
        for d in self.devices:
            d.asked = d.heard = False
        tasks = {asyncio.ensure_future(self._poll_device(d, ts)): d for d in self.devices}
        # Every device answers within the cycle or is lost for it: what did answer is kept.
        done, pending = await asyncio.wait(tasks, timeout=0.9 * self.interval_s)
        for t in pending:
            t.cancel()
            d = tasks[t]
            d.counters["timeouts"] += 1
            d.counters["lost"] += 1
            self.counters["timeouts"] += 1
            self.counters["lost"] += 1
            d.status = "no response"
        rows = [r for t in done if not t.cancelled() and t.exception() is None for r in t.result()]
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                tasks[t].counters["errors"] += 1
                self.counters["errors"] += 1
                log.warning("%s: %s: poll failed: %s: %s", self.name, tasks[t].name, type(exc).__name__, exc)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            # A poll the cycle cut while its device was asked and said nothing is a poll without an
            # answer too: with retries the request timeouts may add up past the cycle (retries 2 x
            # 0.4 s at 1 s), and a replaced agent must still be discovered again after
            # REDISCOVER_AFTER of them. (rs1) Not so a device that answered part of the poll (a slow
            # agent, a long walk: it is reached with what the source knows of it) nor one never
            # asked (queued behind max_concurrent): neither is a sign that its engine changed.
            for t in pending:
                d = tasks[t]
                if d.heard:
                    d.failing = 0
                    d.tried = True
                    d.down_wall, d.down_why = None, ""
                elif d.asked:
                    d.failing += 1
                    d.tried = True
                    self._agent_down(d, "no answer within the poll cycle")
                    self._maybe_rediscover(d)
        ok = sum(d.status == "ok" for d in self.devices)
        self.status = f"{ok}/{len(self.devices)} answering"
        if not rows:
            return pd.DataFrame()
        return canonical(pd.DataFrame(rows), self.name)

    def view(self) -> dict:
        v = super().view()
        ms = [x for d in self.devices for x in d.response_ms]
        if ms:
            v["p50_ms"] = round(float(np.percentile(ms, 50)), 2)
            v["p99_ms"] = round(float(np.percentile(ms, 99)), 2)
        return v

    def device_views(self) -> list[dict]:
        return [d.view() for d in self.devices]

    def close(self) -> None:
        for e in (self._engines or {}).values():
            try:
                e.close_dispatcher()
            except Exception as exc:  # noqa: BLE001
                log.debug("%s: closing an SNMP engine: %s", self.name, exc)
        self._engines = None
        for d in self.devices:
            d._target = d._engine = None
        self.status = "closed"


_SOURCE_KEYS = {"interval_s", "request_timeout_s", "retries", "max_concurrent", "max_repetitions", "max_get",
                "models", "devices", "user", "auth_key", "auth_key_env", "priv_key", "priv_key_env",
                "auth_protocol", "priv_protocol", "context", "port"}


def from_spec(name: str, spec: dict, root=None) -> SnmpSource:
    """An SNMPv3 source from its ``[[sources]]`` table and its ``[[sources.devices]]``."""

    only(spec, _SOURCE_KEYS)
    models = load_models(spec.get("models"), root)
    devs = spec.get("devices")
    if not isinstance(devs, list) or not devs:
        raise ValueError("devices: give at least one [[sources.devices]] table (name, host, port, model)")
    defaults = {k: spec[k] for k in ("user", "auth_key", "auth_key_env", "priv_key", "priv_key_env",
                                     "auth_protocol", "priv_protocol", "context", "port") if k in spec}
    devices = [_device(d, defaults, models, f"devices[{k}]") for k, d in enumerate(devs)]
    kw = {k: spec[k] for k in ("request_timeout_s", "retries", "max_concurrent", "max_repetitions", "max_get")
          if k in spec}
    interval = spec.get("interval_s", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise ValueError(f"interval_s: must be a number of seconds, got {interval!r}")
    return SnmpSource(name, devices, interval_s=float(interval), **kw)
