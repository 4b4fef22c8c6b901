"""InfluxDB 1.x over its HTTP API (standard library only): a small client, line protocol for
canonical readings and alerts, and the reader ``detect``/``fit --influx`` use.

- :class:`Client`: ``/ping``, ``/query`` (InfluxQL, JSON) and ``/write`` (line protocol, optional
  gzip) on the one http(s) base URL the config gives; basic auth when a user is given. Errors say
  the URL, the status and InfluxDB's own message; :class:`Unreachable` (connection refused, timeout,
  5xx) is worth a retry, :class:`Refused` (4xx: bad data, auth) is not.
- :func:`reading_lines` / :func:`alert_lines`: vectorised line protocol (measurement, tag
  ``meter_id``, one float field per channel, time in the chosen precision); NaN and infinite values
  are left out (a field InfluxDB cannot hold), a reading with no finite value is no point.
- :func:`read`: ``influx://[USER[:PASSWORD]@]HOST:PORT/DB?measurement=M[&rp=RP][&chunk=1D]`` (``influxs://``
  for https) read back in time chunks with InfluxQL into the canonical frame (``meter_id``, ``ts``
  UTC, channels).
"""

from __future__ import annotations

import base64
import gzip as _gzip
import json
import math
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRECISIONS = {"s": 1_000_000_000, "ms": 1_000_000, "u": 1_000, "ns": 1}


class InfluxError(Exception):
    """A request InfluxDB did not accept (``status``: its HTTP status, where it answered one)."""

    status: int | None = None


class Unreachable(InfluxError):
    """Connection refused, timed out, or a 5xx: try again later."""


class Refused(InfluxError):
    """A 4xx (bad line protocol, bad query): retrying the same request does not help."""


class Denied(Refused):
    """401/403: the user or password is wrong or lacks the right; fixed by the operator, not the data."""


class Missing(Refused):
    """The database or retention policy written to does not exist (InfluxDB 1.x answers a 404
    "database not found" or a 500 "retention policy not found"); an admin has to create it."""


@dataclass
class Client:
    url: str                     # http(s)://HOST:PORT (a path prefix is kept)
    user: str | None = None
    password: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self):
        u = urllib.parse.urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"url must be http(s)://HOST:PORT, got {self.url!r}")
        self.url = self.url.rstrip("/")

    def _request(self, path: str, params: dict, data: bytes | None = None, headers: dict | None = None,
                 method: str = "GET") -> tuple[int, bytes]:
        qs = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        req = urllib.request.Request(f"{self.url}{path}?{qs}" if qs else f"{self.url}{path}", data=data,
                                     method=method, headers=dict(headers or {}))
        if self.user:
            tok = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
            req.add_header("Authorization", f"Basic {tok}")
        where = f"{self.url}{path}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:  # noqa: S310 - http(s) only, checked above
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()[:500].decode("utf-8", "replace")
            try:
                body = json.loads(body).get("error", body)
            except (ValueError, AttributeError):
                pass
            # Missing: InfluxDB's own "database not found: …" (404; 500 if dropped mid-write) / "retention
            # policy not found: …" (500), told by status and how the message starts (a 400 may echo a tag
            # value or a line holding those words: bad data, dropped, not held for ever as a database to wait for).
            text = str(body).strip()
            missing = ((exc.code == 404 or exc.code >= 500)
                       and text.startswith(("database not found", "retention policy not found")))
            cls = (Missing if missing
                   else Unreachable if exc.code >= 500 else Denied if exc.code in (401, 403) else Refused)
            err = cls(f"{where}: HTTP {exc.code}: {body}".strip())
            err.status = exc.code
            raise err from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"{where}: {type(reason).__name__}: {reason}") from None

    def ping(self) -> bool:
        try:
            status, _ = self._request("/ping", {})
            return status == 204
        except InfluxError:
            return False

    def query(self, q: str, db: str | None = None, *, write: bool = False, epoch: str | None = "ns") -> list[dict]:
        """The ``results`` of an InfluxQL query (POST for statements that change things). Raises
        :class:`Refused` naming the statement when InfluxDB reports an error in a result."""
        params = {"q": q, "db": db, "epoch": epoch}
        if write:
            status, body = self._request("/query", {}, data=urllib.parse.urlencode(
                {k: v for k, v in params.items() if v is not None}).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST")
        else:
            status, body = self._request("/query", params)
        doc = json.loads(body or b"{}")
        if "error" in doc:
            raise Refused(f"{self.url}/query: {doc['error']} (in: {q[:200]})")
        results = doc.get("results", [])
        for r in results:
            if "error" in r:
                raise Refused(f"{self.url}/query: {r['error']} (in: {q[:200]})")
        return results

    def write(self, body: bytes, db: str, rp: str | None = None, precision: str = "ms", gzip: bool = False) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzip:
            body = _gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        status, out = self._request("/write", {"db": db, "rp": rp, "precision": precision}, data=body,
                                    headers=headers, method="POST")
        if status != 204:
            raise Refused(f"{self.url}/write: HTTP {status}: {out[:200]!r}")


def ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + str(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    """An InfluxQL string literal, single-quoted."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


# ------------------------------------------------------------------------------------ line protocol


def _esc_measurement(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def _esc_key(s: pd.Series | str):
    """Tag keys, tag values and field keys: backslash, comma, equals and space escaped."""
    if isinstance(s, str):
        return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return (s.str.replace("\\", "\\\\", regex=False).str.replace(",", "\\,", regex=False)
            .str.replace("=", "\\=", regex=False).str.replace(" ", "\\ ", regex=False))


def _esc_str(s: pd.Series) -> pd.Series:
    """String field values: backslash and double quote escaped, quoted."""
    return '"' + s.str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False) + '"'


def _times(ts, precision: str) -> np.ndarray:
    import pyarrow as pa

    if isinstance(getattr(ts, "dtype", None), pd.DatetimeTZDtype):  # canonical: UTC already (no parsing)
        ns = np.asarray(pa.array(ts).cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()))
    else:
        ns = pd.to_datetime(ts, utc=True).to_numpy("datetime64[ns]").astype(np.int64)
    return ns // PRECISIONS[precision]


def _esc_arrow(values) -> "pa.Array":
    """Tag values as an Arrow string array, escaped (backslash, comma, equals, space)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    a = pa.array(values, pa.string()) if not isinstance(values, pa.Array) else values.cast(pa.string())
    if pc.any(pc.match_substring_regex(a, r"[\\, =]")).as_py():
        for ch in ("\\", ",", "=", " "):
            a = pc.replace_substring(a, ch, "\\" + ch)
    return a


def channel_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("meter_id", "ts") and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])]


def reading_lines(frame: pd.DataFrame, measurement: str, precision: str = "ms") -> tuple[bytes, int, int]:
    """Line protocol for canonical readings: ``(body, points, empty)`` — ``empty`` readings had no
    finite value (InfluxDB has no point without a field). Vectorised in Arrow with a fixed number
    of calls whatever the number of channels (a live step's small batch costs little): every
    value of every channel formatted at once in its shortest round-trip form, missing and
    non-finite values dropped, the rest joined per reading."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(frame):
        return b"", 0, 0
    cols = channel_columns(frame)
    if not cols:
        return b"", 0, len(frame)
    v = np.column_stack([frame[c].to_numpy(dtype=float, na_value=np.nan) for c in cols]).ravel()  # row-major
    ok = np.isfinite(v)
    per_row = ok.reshape(len(frame), len(cols)).sum(axis=1)
    keep = per_row > 0
    n = int(keep.sum())
    if not n:
        return b"", 0, len(frame)
    keys = pa.array([_esc_key(str(c)) + "=" for c in cols], pa.string())
    which = np.tile(np.arange(len(cols), dtype=np.int32), len(frame))[ok]
    kv = pc.binary_join_element_wise(pc.take(keys, pa.array(which)),
                                      pc.cast(pa.array(v[ok], pa.float64()), pa.string()), "")
    offsets = np.concatenate([[0], np.cumsum(per_row[keep])]).astype(np.int32)
    fields = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), kv), ",")
    m = frame["meter_id"]
    meter = m.to_numpy(object) if m.dtype == object else m.astype(str).to_numpy(object)
    t = pc.cast(pa.array(_times(frame["ts"], precision)[keep], pa.int64()), pa.string())
    return _join_lines(_esc_arrow(meter[keep]), fields, t, measurement), n, len(frame) - n


def _join_lines(meter, fields, t, measurement: str) -> bytes:
    import pyarrow as pa
    import pyarrow.compute as pc

    head = pc.binary_join_element_wise(_esc_measurement(measurement) + ",meter_id=", meter, "")
    lines = pc.binary_join_element_wise(head, fields, t, " ")
    lines = pc.binary_join_element_wise(lines, "", "\n")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = lines.buffers()[1]
    data = lines.buffers()[2]
    o = np.frombuffer(offsets, dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return data.to_pybytes()[o[0]:o[-1]]


def alert_lines(alerts: list, measurement: str, precision: str = "ms", state: dict | None = None) -> tuple[bytes, int]:
    """Line protocol for alert versions: one point per alert at its start (a later version of the
    same alert overwrites it), tags ``meter_id``, ``code``, ``detector``; fields ``id``, ``severity``,
    ``score``, ``end``, ``message``, ``state`` (``open``/``ended``, ``withdrawn`` for an alert the stream
    withdrew -- a provisional one, or one late readings no longer make, also after its end (le2) --,
    ``continued`` for one a re-judging found continuing another alert, told under that one's id (pf):
    ``state`` maps id -> it)."""
    if not alerts:
        return b"", 0
    state = state or {}
    d = pd.DataFrame({"meter_id": [a.meter_id for a in alerts], "code": [a.code for a in alerts],
                      "detector": [a.detector for a in alerts], "id": [a.id for a in alerts],
                      "severity": [a.severity for a in alerts], "end": [str(a.end) for a in alerts],
                      "message": [a.message for a in alerts], "state": [state.get(a.id, "open") for a in alerts],
                      "score": [float(a.score) if a.score is not None and math.isfinite(float(a.score)) else 0.0
                                for a in alerts],
                      "ts": pd.to_datetime([a.start for a in alerts], utc=True)})
    head = (_esc_measurement(measurement) + ",code=" + _esc_key(d["code"].astype(str)) + ",detector="
            + _esc_key(d["detector"].astype(str)) + ",meter_id=" + _esc_key(d["meter_id"].astype(str)))
    body = ("id=" + _esc_str(d["id"]) + ",severity=" + _esc_str(d["severity"]) + ",score=" + d["score"].astype(str)
            + ",end=" + _esc_str(d["end"]) + ",message=" + _esc_str(d["message"].str.replace("\n", " ", regex=False))
            + ",state=" + _esc_str(d["state"]))
    lines = head + " " + body + " " + pd.Series(_times(d["ts"], precision)).astype(str)
    return ("\n".join(lines.tolist()) + "\n").encode(), len(d)


# ------------------------------------------------------------------------------------ reader


@dataclass
class Target:
    client: Client
    db: str
    measurement: str
    rp: str | None = None
    chunk: pd.Timedelta = pd.Timedelta("1D")

    @property
    def source(self) -> str:
        return (f"{ident(self.db)}." + (ident(self.rp) if self.rp else "") + "." + ident(self.measurement))


def parse_url(url: str) -> Target:
    """``influx://[USER[:PASSWORD]@]HOST:PORT/DB?measurement=M[&rp=RP][&chunk=1D][&timeout_s=30]``
    (``influxs://``: https). ValueError naming the part that is wrong."""
    u = urllib.parse.urlsplit(str(url))
    if u.scheme not in ("influx", "influxs"):
        raise ValueError(f"{url}: expected influx://HOST:PORT/DB?measurement=M (or influxs:// for https)")
    if not u.hostname:
        raise ValueError(f"{url}: no host")
    try:
        port = u.port or 8086
    except ValueError:
        raise ValueError(f"{url}: the port is not a number") from None
    db = urllib.parse.unquote(u.path.lstrip("/"))
    if not db or "/" in db:
        raise ValueError(f"{url}: give the database as the path (influx://HOST:PORT/DB)")
    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
    unknown = set(q) - {"measurement", "rp", "chunk", "timeout_s"}
    if unknown:
        raise ValueError(f"{url}: unknown parameter(s) {sorted(unknown)}; known: chunk, measurement, rp, timeout_s")
    if not q.get("measurement", [""])[0]:
        raise ValueError(f"{url}: measurement=NAME is required")
    try:
        chunk = pd.Timedelta(q.get("chunk", ["1D"])[0])
    except ValueError:
        raise ValueError(f"{url}: chunk must be a duration (1D, 6h), got {q['chunk'][0]!r}") from None
    if chunk <= pd.Timedelta(0):
        raise ValueError(f"{url}: chunk must be > 0")
    try:
        timeout = float(q.get("timeout_s", ["30"])[0])
    except ValueError:
        raise ValueError(f"{url}: timeout_s must be a number") from None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    client = Client(f"{'https' if u.scheme == 'influxs' else 'http'}://{host}:{port}",
                    urllib.parse.unquote(u.username) if u.username else None,
                    urllib.parse.unquote(u.password) if u.password else None, timeout)
    return Target(client, db, q["measurement"][0], q.get("rp", [None])[0] or None, chunk)


def _frame(results: list[dict]) -> tuple[pd.DataFrame, bool]:
    frames, partial = [], False
    for r in results:
        partial |= bool(r.get("partial"))
        for s in r.get("series", []) or []:
            partial |= bool(s.get("partial"))
            f = pd.DataFrame(s.get("values", []), columns=s["columns"])
            for k, v in (s.get("tags") or {}).items():
                f[k] = v
            frames.append(f)
    if not frames:
        return pd.DataFrame(), partial
    return pd.concat(frames, ignore_index=True), partial


def _edge(t: Target, order: str, where: str) -> int | None:
    res = t.client.query(f"SELECT * FROM {t.source}{where} ORDER BY time {order} LIMIT 1", t.db)
    f, _ = _frame(res)
    return None if f.empty else int(f["time"].iloc[0])


def read(url: str | Target, *, start=None, end=None, meters=None) -> pd.DataFrame:
    """Readings of a measurement in ``[start, end)`` (all when None), queried one time chunk at a
    time (a chunk InfluxDB answers only in part — its row limit — is split in two and asked again),
    as the canonical frame: ``meter_id`` (text), ``ts`` (UTC), one float column per field. String
    fields are left out. Raises :class:`InfluxError` / ValueError naming the URL."""
    t = url if isinstance(url, Target) else parse_url(url)
    flt = ""
    if meters:
        flt = " AND (" + " OR ".join(f'"meter_id" = {literal(m)}' for m in meters) + ")"
    lo = None if start is None else int(pd.Timestamp(start).tz_localize("UTC").value if pd.Timestamp(start).tzinfo is None
                                        else pd.Timestamp(start).value)
    hi = None if end is None else int(pd.Timestamp(end).tz_localize("UTC").value if pd.Timestamp(end).tzinfo is None
                                      else pd.Timestamp(end).value)
    conds = ([f"time >= {lo}"] if lo is not None else []) + ([f"time < {hi}"] if hi is not None else [])
    where = (" WHERE " + " AND ".join(conds) + flt) if conds else (" WHERE " + flt[5:] if flt else "")
    first = _edge(t, "ASC", where)
    if first is None:
        return _canonical(pd.DataFrame(columns=["time", "meter_id"]))
    last = _edge(t, "DESC", where)
    step = int(t.chunk.value)
    windows = [(a, min(a + step, last + 1)) for a in range(first, last + 1, step)]
    frames = []
    while windows:
        a, b = windows.pop(0)
        res = t.client.query(f"SELECT * FROM {t.source} WHERE time >= {a} AND time < {b}{flt}", t.db)
        f, partial = _frame(res)
        if partial:
            if b - a <= 1:
                raise InfluxError(f"{t.client.url}: a single instant has more rows than the server's row limit")
            mid = a + (b - a) // 2
            windows[:0] = [(a, mid), (mid, b)]
            continue
        if len(f):
            frames.append(f)
    return _canonical(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["time", "meter_id"]))


def _canonical(f: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"meter_id": f["meter_id"].astype(str).to_numpy() if len(f) else np.array([], dtype=object),
                        "ts": pd.to_datetime(f["time"].astype("int64") if len(f) else [], unit="ns", utc=True)})
    for c in f.columns:
        if c in ("time", "meter_id"):
            continue
        v = pd.to_numeric(f[c], errors="coerce")
        if f[c].notna().any() and v.notna().sum() < f[c].notna().sum():
            continue  # a string field (an alert's id, message): not a channel
        out[c] = v.astype(float).to_numpy()
    return out.sort_values(["meter_id", "ts"], kind="stable").reset_index(drop=True)


__all__ = ["Client", "InfluxError", "Unreachable", "Refused", "Denied", "reading_lines", "alert_lines", "read", "parse_url",
           "ident", "literal", "PRECISIONS"]
