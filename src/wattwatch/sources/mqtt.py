"""MQTT subscription source: meters that push JSON readings.

Each message is one JSON object or a list of them. Fields carry canonical names (``p_kw``,
``v_l1_v`` …, SPEC §2) unless ``fields`` maps them (``{"p_kw": "power"}``) and ``scale``
converts (``{"p_kw": 0.001}`` for watts). The time is ``ts`` (ISO-8601, or epoch seconds or
milliseconds by magnitude); a message without one takes its arrival time. ``"now"`` and
``"today"`` (which pandas reads as the watcher's clock) and ``"NaT"``/``""`` are not times (malformed). The meter is the
``meter_id`` field, or the topic: ``meter = "topic:2"`` takes topic level 2 (0-based) and
``meters = {"site/a/pdu7" = "PDU-7"}`` maps whole topics.

A malformed message (not JSON, not an object, no meter, a time that cannot be read, no channel
value) is counted (``malformed``) and logged — the first few in full, then every hundredth — and
never stops the source. A channel value is read as batch ``ingest`` reads it (rev51): a number in
text ("1.5") is a number, NaN and the missing tokens ("", "n/a", "null" ...) are a missing value;
one that cannot be read (not a number, infinite, too large for a float) costs that value, not the
reading, as in batch ``ingest`` (fld46): the reading is kept with its other channels, the value
counted (``values_dropped``) and logged with the meter, time and ingest's reason ("p_kw: 'abc' is
not a number", "p_kw: infinite"; the first few, then every hundredth). Only an item whose meter or time is bad,
or which has no channel value left, is refused whole. Messages are acknowledged (QoS 1) only once their readings are in the store, on a
persistent session (``clean_session = False``, a fixed client id): after a crash or a broker
restart the broker delivers what was not stored again, and the store takes a reading delivered
twice as one. ``tls_ca`` (and ``tls_cert`` with ``tls_key`` for a client certificate) connect
over TLS.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from datetime import datetime, timezone

import pandas as pd

from wattwatch.ingest.normalize import MISSING_TOKENS
from wattwatch.schema import CHANNEL_NAMES
from wattwatch.sources.base import Batch, Source, canonical, log

# Strings pandas reads as the clock of the machine parsing them (pd.Timestamp("now"), "today"): a
# meter sending one would have its readings stored at the watcher's time as if the meter said so.
_CLOCK_WORDS = {"now", "today"}
_LOG_FIRST = 5


def logged_nth(n: int) -> bool:
    """Whether the ``n``-th (1-based) of a source's repeated problems is logged: the first
    ``_LOG_FIRST``, then every hundredth (a device that keeps sending it does not flood the log;
    the counter has them all)."""
    return n <= _LOG_FIRST or n % 100 == 0


def _number(channel: str, v) -> tuple[float | None, str | None]:
    """A JSON value as batch ``ingest`` reads it (rev51): ``(value, None)``, ``(None, None)`` for a
    missing one (NaN, or text such as "", "n/a", "null": ``normalize.MISSING_TOKENS``) or ``(None,
    reason)`` worded as ingest words it ("p_kw: 'abc' is not a number", "p_kw: infinite"). A number
    in text ("1.5", " 2e3 ") is a number, as DuckDB's cast reads it; a bool, list or object is not."""
    if isinstance(v, str):
        t = v.strip()
        if t.lower() in MISSING_TOKENS:
            return None, None
        try:
            x = float(t) if t.isascii() else None     # DuckDB reads no digits but ASCII ones
        except ValueError:
            x = None
        if x is None:
            return None, f"{channel}: '{v}' is not a number"[:160]
    elif isinstance(v, bool) or not isinstance(v, (int, float)):
        shown = str(v) if isinstance(v, bool) else json.dumps(v, separators=(", ", ": "))
        return None, f"{channel}: '{shown}' is not a number"[:160]
    else:
        try:
            x = float(v)
        except OverflowError:   # an integer of hundreds of digits is valid JSON; DuckDB reads it as inf
            return None, f"{channel}: infinite"
    if math.isnan(x):
        return None, None
    if math.isinf(x):
        return None, f"{channel}: infinite"
    return x, None


class MqttSource(Source):
    kind = "mqtt"

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 1883, topics=("#",), qos: int = 1,
                 meter: str | None = None, meters: dict | None = None, fields: dict | None = None,
                 scale: dict | None = None, client_id: str | None = None, username: str | None = None,
                 password: str | None = None, batch_s: float = 0.2, keepalive: int = 30,
                 tls_ca: str | None = None, tls_cert: str | None = None, tls_key: str | None = None):
        super().__init__(name)
        if qos not in (0, 1, 2):
            raise ValueError(f"source {name}: qos must be 0, 1 or 2, got {qos}")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port: must be an integer 1..65535, got {port!r}")
        self.host, self.port, self.qos = host, int(port), int(qos)
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise ValueError(f"source {name}: give at least one topic")
        for t in self.topics:   # paho raises on a bad filter in its network thread (at connect): say it here
            why = _filter_error(t)
            if why:
                raise ValueError(f"topics: {t!r} is not a valid MQTT topic filter ({why})")
        self.meter_level = None
        if meter is not None:
            if not (isinstance(meter, str) and meter.startswith("topic:") and meter[6:].lstrip("-").isdigit()):
                raise ValueError(f"source {name}: meter must look like 'topic:N' (topic level N), got {meter!r}")
            self.meter_level = int(meter[6:])
        self.meters = dict(meters or {})
        self.fields = dict(fields or {})
        # A key that is not a channel would be ignored: a typo'd scale = { pkw = 0.001 } stored watts as kW.
        for key, table, names in (("fields", self.fields, ("meter_id", "ts", *CHANNEL_NAMES)),
                                  ("scale", dict(scale or {}), CHANNEL_NAMES)):
            for k, v in table.items():
                if k not in names:
                    raise ValueError(f"{key}: {k!r} is not a canonical channel (one of {', '.join(names)})")
                if key == "fields" and not (isinstance(v, str) and v):
                    raise ValueError(f"fields.{k}: must be the message's field name, got {v!r}")
                if key == "scale" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                    raise ValueError(f"scale.{k}: must be a number, got {v!r}")
        self.scale = {k: float(v) for k, v in (scale or {}).items()}
        self.batch_s = float(batch_s)
        self.keepalive = int(keepalive)
        self.client_id = client_id or f"wattwatch-{name}"
        self.username, self.password = username, password
        if (tls_cert is None) != (tls_key is None):
            raise ValueError(f"source {name}: give tls_cert and tls_key together (a client certificate)")
        self.tls_ca, self.tls_cert, self.tls_key = tls_ca, tls_cert, tls_key
        self._rows: list[dict] = []
        self._acks: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._client = None
        self.refused: str | None = None   # the broker's reason while it refuses the connection (paho's thread)

    # ---------------------------------------------------------------- paho callbacks (its thread)

    def _on_connect(self, client, userdata, flags, reason, properties=None):
        if getattr(reason, "is_failure", False):
            # paho calls on_disconnect right after a refused CONNACK: the reason is kept for it
            # (the silence watch's source alert says why the broker refused, not "reconnecting").
            self.refused = str(reason)
            self.status = f"refused: {reason}"
            self.counters["refused"] += 1
            n = self.counters["refused"]
            if logged_nth(n):
                log.error("%s: the broker %s:%d refused the connection (#%d): %s", self.name, self.host, self.port,
                          n, reason)
            return
        self.refused = None
        self.counters["connects"] += 1
        client.subscribe([(t, self.qos) for t in self.topics])
        self.status = "connected"
        log.info("%s: connected to %s:%d (session %s)", self.name, self.host, self.port,
                 "resumed" if getattr(flags, "session_present", False) else "new")

    def _on_subscribe(self, client, userdata, mid, reasons, properties=None):
        bad = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if bad:
            self.counters["refused"] += 1
            log.error("%s: subscription refused by the broker: %s", self.name, ", ".join(bad))
            return
        self.status = "subscribed"
        log.info("%s: subscribed to %s", self.name, ", ".join(self.topics))

    def _on_disconnect(self, client, userdata, flags, reason, properties=None):
        self.counters["disconnects"] += 1
        if self.refused is not None:   # the end of a refused attempt: still refused, tried again
            self.status = f"refused: {self.refused}"
            return
        self.status = "reconnecting"
        log.warning("%s: disconnected from %s:%d (%s); reconnecting", self.name, self.host, self.port, reason)

    def _on_connect_fail(self, client, userdata):
        """The broker could not be reached (refused at TCP, unreachable, TLS): a refusal said before
        is no longer why."""
        if self.refused is not None:
            self.refused = None
            self.status = "reconnecting"

    def _on_message(self, client, userdata, msg):
        self.counters["messages"] += 1
        drops: list[tuple] = []
        try:
            rows, bad = self.parse_items(msg.topic, msg.payload, drops)
        except Exception as exc:  # noqa: BLE001 - raised here it would end paho's network thread
            rows, bad, drops = [], [str(exc) if isinstance(exc, ValueError) else
                                    f"cannot be read ({type(exc).__name__}: {exc})"], []
        if drops:
            self._say_drops(msg.topic, drops)
        if bad:
            n = self.counters["malformed"] = self.counters["malformed"] + 1
            if logged_nth(n):
                kept = f" ({len(rows)} of its {len(rows) + len(bad)} readings kept)" if rows else ""
                log.warning("%s: malformed message #%d on %s: %s%s", self.name, n, msg.topic,
                            "; ".join(bad[:3]) + ("; ..." if len(bad) > 3 else ""), kept)
        with self._lock:
            self._rows.extend(rows)
            if msg.qos > 0:
                if rows:
                    self._acks.append((msg.mid, msg.qos))
                else:  # nothing to store: acknowledge at once (a bad message is never sent again)
                    client.ack(msg.mid, msg.qos)

    def _say_drops(self, topic: str, drops: list[tuple]) -> None:
        """Count and log values dropped from kept readings: by meter, time, field and reason, the
        source's first five, then every hundredth (as the engine logs a rejected reading)."""
        n0 = self.counters["values_dropped"]
        self.counters["values_dropped"] += len(drops)
        for j, (meter, ts, field, why) in enumerate(drops):
            n = n0 + j + 1
            if logged_nth(n):
                log.warning("%s: reading kept without a value (#%d, on %s): meter %r at %s: %s", self.name,
                            n, topic[:200], meter, ts, why)

    # ---------------------------------------------------------------- parsing

    def parse(self, topic: str, payload: bytes) -> list[dict]:
        """Readings of one message (raises ValueError saying what is wrong with it; a value dropped
        from a kept reading is not an error: the reading comes without it)."""
        rows, bad = self.parse_items(topic, payload)
        if bad:
            raise ValueError(bad[0])
        return rows

    def parse_items(self, topic: str, payload: bytes, drops: list | None = None) -> tuple[list[dict], list[str]]:
        """The readable readings of one message and what is wrong with each other item (a list
        message whose item 3 is broken keeps items 1, 2, 4 ...); raises ValueError when the message
        as a whole cannot be read (not JSON, an empty list). A channel value that cannot be read is
        left out of its reading and, when ``drops`` is a list, added to it as ``(meter, ts, field,
        reason)``."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        except RecursionError:   # '[[[[...' a few thousand deep: the parser's recursion, not a reading
            raise ValueError("JSON nested too deeply") from None
        items = doc if isinstance(doc, list) else [doc]
        if not items:
            raise ValueError("an empty list")
        now = datetime.now(timezone.utc)
        out, bad = [], []
        for k, item in enumerate(items):
            where = f"item {k}: " if isinstance(doc, list) else ""
            lost: list[tuple[str, str]] = []
            try:
                row = self._reading(topic, item, now, where, lost)
            except ValueError as exc:
                bad.append(str(exc))
                continue
            out.append(row)
            if drops is not None:
                drops.extend((row["meter_id"], row["ts"], f, why) for f, why in lost)
        return out, bad

    def _reading(self, topic: str, item, now: datetime, where: str, lost: list | None = None) -> dict:
        """One item of a message as a reading (ValueError saying what is wrong with it). A channel
        value that cannot be read is left out and added to ``lost`` as ``(field, reason)``; the item
        is refused only when its meter or time is bad or no channel value is left (fld46's rule)."""
        if not isinstance(item, dict):
            raise ValueError(f"{where}expected a JSON object, got {type(item).__name__}")
        row = {"meter_id": self._meter(topic, item, where), "ts": self._ts(item, now, where)}
        n = 0
        gone: list[tuple[str, str]] = []
        for c in CHANNEL_NAMES:
            src = self.fields.get(c, c)
            if src in item and item[src] is not None:
                v, why = _number(c, item[src])
                if why is not None:
                    gone.append((src, why))
                    continue
                if v is None:        # NaN, "", "n/a", "null" ...: a missing value, as in batch ingest
                    continue
                v *= self.scale.get(c, 1.0)
                if not math.isfinite(v):
                    gone.append((src, f"{c}: infinite"))
                    continue
                row[c] = v
                n += 1
        if n == 0:
            if gone:
                raise ValueError(f"{where}" + "; ".join(w for _, w in gone)[:200] + "; no channel value left")
            raise ValueError(f"{where}no channel value (expected fields such as p_kw, v_l1_v)")
        if lost is not None:
            lost.extend(gone)
        return row

    def _meter(self, topic: str, item: dict, where: str) -> str:
        src = self.fields.get("meter_id", "meter_id")
        if src in item:
            m = item[src]
            if not isinstance(m, (str, int)) or isinstance(m, bool) or str(m) == "":
                raise ValueError(f"{where}meter_id must be text or a whole number, got {m!r}"[:200])
            return str(m)
        if topic in self.meters:
            return str(self.meters[topic])
        if self.meter_level is not None:
            parts = topic.split("/")
            try:
                m = parts[self.meter_level]
            except IndexError:
                raise ValueError(f"topic {topic!r} has no level {self.meter_level}") from None
            if m:
                return m
        raise ValueError(f"{where}no meter: no {src!r} field and topic {topic!r} is not mapped")

    def _ts(self, item: dict, now: datetime, where: str):
        src = self.fields.get("ts", "ts")
        if src not in item or item[src] is None:
            return now
        v = item[src]
        try:
            if isinstance(v, bool):
                raise ValueError
            if isinstance(v, (int, float)):
                if not math.isfinite(v):
                    raise ValueError
                unit = "ms" if abs(v) > 1e11 else "s"
                t = pd.Timestamp(v, unit=unit, tz="UTC")
            elif isinstance(v, str):
                if v.strip().lower() in _CLOCK_WORDS:   # pandas: this machine's clock, not the meter's time
                    raise ValueError(f"{where}field {src!r}: not a time: {v!r} (read as the wall clock of the "
                                     "watcher, not a time the meter gives; send ISO-8601 or epoch seconds)")
                t = pd.Timestamp(v)
                if t is pd.NaT:                         # "NaT", "": no time at all
                    raise ValueError
                t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
            else:
                raise ValueError
            # "2300-01-01" is a Timestamp of second resolution; the batch's column is nanoseconds
            # (1677..2262): out of that it raised in drain() and stopped the source (rev41).
            t = t.as_unit("ns")
        except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
            if "wall clock" in str(exc):
                raise
            raise ValueError(f"{where}field {src!r}: not a time: {v!r}"[:200]) from None
        return t

    # ---------------------------------------------------------------- source

    def _connect(self):
        import paho.mqtt.client as mqtt

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False,
                        manual_ack=True)
        if self.username:
            c.username_pw_set(self.username, self.password)
        if self.tls_ca or self.tls_cert:
            import ssl

            c.tls_set(ca_certs=self.tls_ca, certfile=self.tls_cert, keyfile=self.tls_key,
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_connect_fail = self._on_connect_fail
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.reconnect_delay_set(0.2, 5)
        c.connect_async(self.host, self.port, keepalive=self.keepalive)
        c.loop_start()
        self._client = c

    async def run(self, emit, stop: asyncio.Event) -> None:
        self.status = "connecting"
        self._connect()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.batch_s)
            except asyncio.TimeoutError:
                pass
            batch = self.drain()
            if batch is not None:
                await emit(batch)

    def drain(self) -> Batch | None:
        with self._lock:
            rows, acks = self._rows, self._acks
            self._rows, self._acks = [], []
        if not rows:
            return None
        self.counters["readings"] += len(rows)
        return Batch(self.name, canonical(pd.DataFrame(rows), self.name), arrived=time.monotonic(), token=acks)

    def committed(self, token) -> None:
        c = self._client
        if c is None:
            return
        for mid, qos in token or ():
            c.ack(mid, qos)

    def close(self) -> None:
        c = self._client
        if c is not None:
            c.disconnect()
            c.loop_stop()
            self._client = None
        self.status = "closed"


def _filter_error(t) -> str | None:
    """Why ``t`` is not an MQTT topic filter (None if it is one)."""
    if not isinstance(t, str):
        return "not text"
    if not t or len(t.encode("utf-8")) > 65535 or "\x00" in t:
        return "empty, too long or holding a NUL"
    levels = t.split("/")
    for k, lv in enumerate(levels):
        if "#" in lv and (lv != "#" or k != len(levels) - 1):
            return "'#' must be a whole level and the last"
        if "+" in lv and lv != "+":
            return "'+' must be a whole level"
    return None


def from_spec(name: str, spec: dict, root=None) -> MqttSource:
    """An MQTT source from its ``[[sources]]`` table."""
    from wattwatch.sources import only

    only(spec, {"host", "port", "topics", "qos", "meter", "meters", "fields", "scale", "client_id", "username",
                "password", "password_env", "batch_s", "keepalive", "tls_ca", "tls_cert", "tls_key"})
    return MqttSource(name, **password_from_env(tls_paths(spec, root)))


def password_from_env(spec: dict) -> dict:
    """``spec`` with ``password_env = "VAR"`` replaced by the password it names (ValueError when unset):
    a broker password need not sit in clear in the site config."""
    if "password_env" not in spec:
        return spec
    spec = dict(spec)
    env = spec.pop("password_env")
    if not isinstance(env, str) or not env:
        raise ValueError(f"password_env: must name an environment variable, got {env!r}")
    if "password" in spec:
        raise ValueError("give password or password_env, not both")
    pw = os.environ.get(env)
    if not pw:
        raise ValueError(f"password_env: the environment variable {env} is not set (or empty)")
    spec["password"] = pw
    return spec


def tls_paths(spec: dict, root) -> dict:
    """``spec`` with its TLS files (``tls_ca``, ``tls_cert``, ``tls_key``) relative to the config."""
    from wattwatch.sources import resolve

    spec = dict(spec)
    for k in ("tls_ca", "tls_cert", "tls_key"):
        if k in spec:
            if not isinstance(spec[k], str):
                raise ValueError(f"{k} must be a file path")
            spec[k] = str(resolve(spec[k], root))
    return spec
