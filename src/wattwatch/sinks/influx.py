"""InfluxDB 1.x sink for ``wattwatch watch`` (``[[sinks]] type = "influx"``).

```toml
[[sinks]]
type = "influx"
name = "tsdb"
url = "http://127.0.0.1:8086"     # http or https only; the one server this sink talks to
database = "wattwatch"
measurement = "readings"           # readings: tag meter_id, one float field per channel
alerts_measurement = "alerts"      # alert versions (tags meter_id, code, detector); "" = none
retention = "30d"                  # retention policy `rp` (default "wattwatch"), the database default
downsample = "readings_1h"         # CQ: hourly mean/max/min per meter and channel into this measurement
downsample_rp = "autogen"          # ... kept under this (existing) policy
precision = "ms"                   # s, ms, u, ns
buffer = "influx-buffer"           # folder of the on-disk buffer (relative to the config file)
max_buffer_mb = 512                # full: new readings are dropped and counted (`dropped`)
```

**Every committed batch goes through the on-disk buffer**: :meth:`InfluxSink.readings` (the
engine's worker thread) encodes the batch as line protocol and appends it, as one record, to the
active segment file of the buffer folder; that is all it does (no network I/O). A writer thread
reads the records in order from a persisted cursor, sends them in batches of up to
``batch_points`` points to ``/write``, and advances the cursor only when InfluxDB accepted them.
When InfluxDB is down the records simply stay on disk (retries with exponential backoff up to
``retry_max_s``) and are sent in order when it is back; a watcher killed with ``kill -9`` finds
them on the next start. Because the buffer is written before anything is sent, a reading the store
has committed is never only in memory. A batch sent again after a crash (sent, cursor not yet saved)
rewrites the same points (same measurement, tags and time): InfluxDB keeps each point once.

**fsync policy**: the appended records are in the page cache at once (a killed process loses
nothing); the writer thread fsyncs the active segment every ``fsync_s`` seconds (default 1; also
while it backs off from an unreachable InfluxDB, however long the backoff) and the cursor file on
every advance (write, fsync, rename), so a power loss loses at most the last ``fsync_s`` of appends.
``fsync_s = 0`` fsyncs every append in the engine thread.

Record layout: ``WWLP`` magic, payload length, CRC-32 and point count (little-endian uint32), then
the payload (line protocol). A torn last record (a crash mid-append) fails its length or CRC check
and is cut off on start (counted ``torn``).

Counters (``view()``): ``written`` (points InfluxDB accepted), ``buffered`` (points that had to wait
on disk because InfluxDB was unreachable or a backlog was waiting), ``flushed`` (points of such a
backlog written later), ``retries``, ``dropped`` (buffer full, or refused by InfluxDB with a 4xx),
``empty`` (readings without a finite value: no point), ``backlog`` (points on disk not yet written),
``last_error``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import pandas as pd

from wattwatch import influx
from wattwatch.atomicfile import write_text
from wattwatch.sinks import Output

log = logging.getLogger("wattwatch.watch")

_HEAD = struct.Struct("<4sIII")
_MAGIC = b"WWLP"


class DiskBuffer:
    """An append-only set of segment files with a persisted read cursor. ``append`` from one
    thread, ``read``/``ack`` from another (a lock guards the shared positions)."""

    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int = 16 << 20, fsync_s: float = 1.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.segment_bytes, self.fsync_s = int(max_bytes), int(segment_bytes), float(fsync_s)
        self.lock = threading.Lock()
        self.torn = 0
        # One writer per folder: a second watcher on the same buffer would interleave its records.
        self._lockfd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lockfd)
            raise ValueError(f"buffer {self.folder}: in use by another running watcher (give each sink its own "
                             "buffer folder)") from None
        cur = self._load_cursor()
        segs = self._segments()
        for s in segs:
            if s < cur[0]:
                (self.folder / _name(s)).unlink()
        segs = [s for s in segs if s >= cur[0]] or [cur[0]]
        self.read_pos = cur                                       # (segment, offset) of the next unsent record
        self.points = 0                                           # points in unsent records
        self.bytes = 0
        for s in segs:  # count what is waiting; cut a torn tail
            path = self.folder / _name(s)
            start = cur[1] if s == cur[0] else 0
            end, n = self._scan(path, start)
            size = path.stat().st_size if path.exists() else 0
            if end < size:
                self.torn += size - end
                with open(path, "r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            self.points += n
            self.bytes += max(end - start, 0)
        self.write_seg = segs[-1]
        self._fd = os.open(self.folder / _name(self.write_seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.write_off = os.fstat(self._fd).st_size
        self._dirty = False
        self._last_sync = time.monotonic()

    # -------------------------------------------------------------------- files

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.folder.glob("*.seg") if p.stem.isdigit())

    def _load_cursor(self) -> tuple[int, int]:
        p = self.folder / "cursor.json"
        if not p.exists():
            segs = self._segments()
            return (segs[0] if segs else 1, 0)
        try:
            d = json.loads(p.read_text())
            return int(d["segment"]), int(d["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{p}: unreadable buffer cursor ({exc}); move the folder aside to start afresh") from None

    def _save_cursor(self) -> None:
        write_text(self.folder / "cursor.json", json.dumps({"segment": self.read_pos[0], "offset": self.read_pos[1]}))

    @staticmethod
    def _scan(path: Path, start: int) -> tuple[int, int]:
        """(offset after the last whole record, points in the whole records) from ``start``."""
        if not path.exists():
            return start, 0
        n, off = 0, start
        with open(path, "rb") as f:
            f.seek(start)
            while True:
                head = f.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    break
                magic, size, crc, pts = _HEAD.unpack(head)
                body = f.read(size)
                if magic != _MAGIC or len(body) < size or zlib.crc32(body) != crc:
                    break
                off += _HEAD.size + size
                n += pts
        return off, n

    # -------------------------------------------------------------------- both sides

    def append(self, payload: bytes, points: int) -> bool:
        """Append one record; False (nothing written) when the buffer would exceed its bound."""
        rec = _HEAD.pack(_MAGIC, len(payload), zlib.crc32(payload), points) + payload
        with self.lock:
            if self.bytes + len(rec) > self.max_bytes:
                return False
            if self.write_off >= self.segment_bytes:
                os.fsync(self._fd)
                os.close(self._fd)
                self.write_seg += 1
                self._fd = os.open(self.folder / _name(self.write_seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                self.write_off = 0
            os.write(self._fd, rec)
            self.write_off += len(rec)
            self.bytes += len(rec)
            self.points += points
            self._dirty = True
            if self.fsync_s <= 0:
                os.fsync(self._fd)
                self._dirty = False
        return True

    def sync(self, force: bool = False) -> None:
        with self.lock:
            if self._dirty and (force or time.monotonic() - self._last_sync >= self.fsync_s):
                os.fsync(self._fd)
                self._dirty = False
                self._last_sync = time.monotonic()

    def read(self, max_points: int, max_bytes: int) -> tuple[bytes, int, tuple[int, int], int]:
        """The next unsent records, whole, up to the limits (at least one): ``(payload, points,
        position after them, bytes)``; empty payload when nothing waits."""
        with self.lock:
            seg, off = self.read_pos
            end_seg, end_off = self.write_seg, self.write_off
        parts, pts, used = [], 0, 0
        while (seg, off) < (end_seg, end_off) and pts < max_points and used < max_bytes:
            path = self.folder / _name(seg)
            limit = end_off if seg == end_seg else path.stat().st_size
            if off >= limit:
                seg, off = seg + 1, 0
                continue
            with open(path, "rb") as f:
                f.seek(off)
                while off < limit and pts < max_points and used < max_bytes:
                    magic, size, crc, n = _HEAD.unpack(f.read(_HEAD.size))
                    body = f.read(size)
                    if magic != _MAGIC or zlib.crc32(body) != crc:
                        raise ValueError(f"{path}: record at byte {off} is damaged")
                    parts.append(body)
                    pts += n
                    off += _HEAD.size + size
                    used += _HEAD.size + size
        return b"".join(parts), pts, (seg, off), used

    def ack(self, pos: tuple[int, int], points: int, used: int) -> None:
        """Records up to ``pos`` were written: advance and persist the cursor, drop sent segments."""
        with self.lock:
            old = self.read_pos[0]
            self.read_pos = pos
            self.points -= points
            self.bytes -= used
            write_seg = self.write_seg
        self._save_cursor()
        for s in range(old, min(pos[0], write_seg + 1)):
            if s < pos[0]:
                (self.folder / _name(s)).unlink(missing_ok=True)

    def close(self) -> None:
        with self.lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                os.close(self._lockfd)  # releases the flock


_UNITS = {"ns": 1, "u": 1_000, "us": 1_000, "\u00b5s": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


def _ns(duration: str) -> int:
    """An InfluxQL duration (``30d``, ``INF``) or the Go duration SHOW RETENTION POLICIES says
    (``720h0m0s``; ``0s`` = INF) in nanoseconds, 0 for infinite."""
    if duration.upper() == "INF":
        return 0
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ns|us|\u00b5s|u|ms|s|m|h|d|w)", duration))


def _name(seg: int) -> str:
    return f"{seg:08d}.seg"


def denied_why(exc: Exception) -> str:
    """What a 401/403 from InfluxDB means to an operator, told by the answer's HTTP status (not by
    the message, whose URL may hold "403" in its port: a 401 from port 23403 read as a privilege)."""
    if getattr(exc, "status", None) == 403:
        return "lacks a privilege (fix its grants, or give a user that has them)"
    return "refused the credentials (check user and password / password_env)"


def alert_states(todo: dict, report, engine) -> dict[str, str]:
    """id -> the ``state`` field of each alert point written: what the engine holds of it after the
    step, as the console and the checkpoint say it. ``ended``/``withdrawn`` in the step that ends it
    (``continued`` for one withdrawn because a re-judging found it continuing another alert,
    ``evidence.continued_by``: the same change, told under that alert's id);
    ``stopped`` for a provisional alert back to normal whose verdict is pending (pc: told in the step
    it stops; le: also when it is written again meanwhile, a changed score, which wrote ``open`` until
    the verdict); ``open`` for the alerts that may still grow (the final ones the stitcher holds open,
    al: a final head whose pending provisional follower is open, the health alerts of sources, the
    provisional ones not stopped; rle: an edge meter's tamper or noisy-signal report until the meter's
    ``cleared``/``signal_ok`` one); any other alert written is over (``ended``: a final alert rewritten
    after its end, one found already closed, an hour's refused reports or clock skew). An engine that keeps no open set (a stand-in) leaves every other
    alert ``open``, as before."""
    from wattwatch.sources.tamper import ongoing

    withdrawn = getattr(report, "withdrawn", None) or {}
    state = {i: "stopped" for i in getattr(report, "stopped", ())}
    state.update({i: "withdrawn" if i in withdrawn else "ended" for i in report.ended})
    state.update(dict.fromkeys(withdrawn, "withdrawn"))   # (le2: also one that had ended before)
    # (pf) a follower a re-judging found continuing a head: the same change, under the head's id
    state.update({i: "continued" for i, a in withdrawn.items() if (a.evidence or {}).get("continued_by")})
    if not hasattr(engine, "open_ids"):
        return state
    prov = set(getattr(engine, "provisional", ()))
    open_ = set(engine.open_ids) | set(getattr(engine, "health_open", ())) | \
        (set(getattr(engine, "provisional_open", ())) & prov)
    for i in todo:
        if i not in state:
            state[i] = "open" if i in open_ or ongoing(todo[i]) else "stopped" if i in prov else "ended"
    return state


class InfluxSink(Output):
    kind = "influx"

    def __init__(self, name: str, *, url: str, database: str, buffer: Path, measurement: str = "readings",
                 alerts_measurement: str = "alerts", rp: str = "wattwatch", retention: str = "30d",
                 downsample: str = "readings_1h", downsample_rp: str = "autogen", precision: str = "ms",
                 gzip: bool = False, user: str | None = None, password: str | None = None,
                 max_buffer_mb: float = 512, segment_mb: float = 16, batch_points: int = 5000,
                 fsync_s: float = 1.0, retry_min_s: float = 0.5, retry_max_s: float = 30.0,
                 timeout_s: float = 10.0, close_timeout_s: float = 10.0):
        super().__init__(name)
        if precision not in influx.PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(influx.PRECISIONS)}, got {precision!r}")
        for key, v in (("measurement", measurement), ("database", database), ("rp", rp)):
            if not isinstance(v, str) or not v:
                raise ValueError(f"{key} must be a non-empty name")
        if not (max_buffer_mb > 0 and segment_mb > 0 and batch_points > 0 and retry_min_s > 0
                and retry_max_s >= retry_min_s and timeout_s > 0 and fsync_s >= 0 and close_timeout_s >= 0):
            raise ValueError("max_buffer_mb, segment_mb, batch_points, retry_min_s, timeout_s must be > 0, "
                             "retry_max_s >= retry_min_s, fsync_s and close_timeout_s >= 0")
        self.client = influx.Client(url, user, password, timeout_s)
        self.db, self.rp, self.retention = database, rp, retention
        self.measurement, self.alerts_measurement = measurement, alerts_measurement
        self.downsample, self.downsample_rp = downsample, downsample_rp
        self.precision, self.gzip = precision, bool(gzip)
        self.batch_points, self.retry_min_s, self.retry_max_s = int(batch_points), retry_min_s, retry_max_s
        self.close_timeout_s = close_timeout_s
        self.buf = DiskBuffer(buffer, int(max_buffer_mb * (1 << 20)), int(segment_mb * (1 << 20)), fsync_s)
        self.counters.update({"written": 0, "buffered": 0, "flushed": 0, "retries": 0, "dropped": 0})
        if self.buf.torn:
            self.counters["torn"] += self.buf.torn
            log.warning("%s: cut a torn record (%d bytes) at the end of the buffer in %s", name, self.buf.torn, buffer)
        if self.buf.points:
            self.counters["buffered"] += self.buf.points    # left by an earlier run: sent first, in order
        self.last_error = ""
        self.status = "starting"
        self._down = bool(self.buf.points)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = False
        self.note = ""                 # what setup could not make (an admin has to): shown in the status
        self._said_unchecked = False
        self._said = ""
        self._thread = threading.Thread(target=self._run, name=f"influx:{name}", daemon=True)
        self._started = False

    def _start(self) -> None:
        """The writer thread starts with the first call of the engine (not when the config is read)."""
        if not self._started:
            self._started = True
            self._thread.start()

    # -------------------------------------------------------------------- engine side (no network)

    def _put(self, body: bytes, n: int) -> None:
        if not n:
            return
        with self._lock:  # with _fail: a point is counted `buffered` once, when it has to wait
            if not self.buf.append(body, n):
                self.counters["dropped"] += n
                self.counters["buffer_full"] += 1
                full = self.counters["buffer_full"]
                if full in (1, 10) or full % 100 == 0:
                    log.error("%s: on-disk buffer full (%d MB): %d points dropped", self.name,
                              self.buf.max_bytes >> 20, n)
                return
            if self._down:
                self.counters["buffered"] += n
        self._wake.set()

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.counters[key] += n

    def readings(self, frame: pd.DataFrame) -> None:
        self._start()
        body, n, empty = influx.reading_lines(frame, self.measurement, self.precision)
        self.counters["empty"] += empty
        self._put(body, n)

    def alerts(self, report, engine) -> None:
        self._start()
        if not self.alerts_measurement:
            return
        todo = {a.id: a for a in report.alerts}
        # (pv) a withdrawn provisional alert (issue 16) is no longer in the engine's alerts (its row
        # deleted): its point is overwritten from the report's copy, state "withdrawn"
        withdrawn = getattr(report, "withdrawn", None) or {}
        stopped = [i for i in getattr(report, "stopped", ()) if i not in report.ended]
        # (le2) a final alert a re-judging withdrew after its end is in ``withdrawn`` only
        # (ah) one open again after its end: its point says so even when no new version was written
        for i in (list(report.ended) + stopped + [i for i in withdrawn if i not in report.ended]
                  + [i for i in getattr(report, "reopened", ()) if i not in todo]):
            a = withdrawn.get(i) or engine.alerts.get(i)
            if a is not None:
                todo[i] = a
        if not todo:
            return
        state = alert_states(todo, report, engine)
        body, n = influx.alert_lines(list(todo.values()), self.alerts_measurement, self.precision, state)
        self._put(body, n)

    def close(self) -> None:
        """Send what waits for up to ``close_timeout_s``; what is left stays on disk for the next start."""
        self._start()
        self._stop.set()
        self._wake.set()
        self._thread.join(self.close_timeout_s + self.client.timeout_s + 1)
        self.buf.close()
        if self.buf.points:
            log.warning("%s: %d points stay in %s until the next start", self.name, self.buf.points, self.buf.folder)

    def view(self) -> dict:
        v = super().view()
        v["backlog"] = self.buf.points
        v["last_error"] = self.last_error
        return v

    # -------------------------------------------------------------------- writer thread

    def setup(self) -> None:
        """Make sure the database, the retention policy ``rp`` (the database default) and the hourly
        downsample CQ exist, making or fixing what this user may (an admin may all of it; making them
        again with the same definition changes nothing, a different retention is altered, a
        different CQ replaced).

        Least privilege: a user with only WRITE on the database (an admin made the rest) may create
        nothing, and sees the databases it may write to but not the policies or CQs (InfluxDB wants
        READ for those). Its policy is checked by an empty write to it, which InfluxDB refuses when
        the database or policy does not exist (404 / 500) and which writes nothing. What is missing
        and this user may not make raises :class:`influx.Missing` naming the statement an admin has
        to run (the points wait on disk; nothing is written to another policy). A duration or a CQ
        it may not fix is said once and writing goes on; ``self.note`` (shown in the status) says
        what is still to ask for."""
        c, db, q = self.client, self.db, influx.ident
        who = f"user {self.client.user!r}" if self.client.user else "this connection"
        notes, said = [], []
        dbs = influx._frame(c.query("SHOW DATABASES"))[0]
        if not (len(dbs) and "name" in dbs and db in set(dbs["name"])):
            grant = f"; GRANT WRITE ON {q(db)} TO {q(self.client.user)}" if self.client.user else ""
            if not self._may(f"CREATE DATABASE {q(db)}"):
                raise influx.Missing(f"database {db!r} does not exist, or {who} has no privilege on it, and {who} "
                                     f"may not create it: ask an InfluxDB admin to run: CREATE DATABASE {q(db)}{grant}")
        try:   # an empty write: is this user allowed to write at all (a 403 before anything else)
            c.write(b"", db, None, self.precision)
        except influx.Missing:
            pass   # the database has no default policy: the write to ``rp`` below is what counts
        # Shards of a day, or of an hour under two days (InfluxDB's own default there: it refuses a
        # policy shorter than its shards).
        short = self.retention != "INF" and _ns(self.retention) < 2 * _UNITS["d"]
        shard = " SHARD DURATION 1h" if short else " SHARD DURATION 1d" if self.retention != "INF" else ""
        make_rp = f"CREATE RETENTION POLICY {q(self.rp)} ON {q(db)} DURATION {self.retention} REPLICATION 1{shard} DEFAULT"
        alter_rp = (f"ALTER RETENTION POLICY {q(self.rp)} ON {q(db)} DURATION {self.retention} REPLICATION 1"
                    f"{' SHARD DURATION 1h' if short else ''} DEFAULT")
        try:
            rps = influx._frame(c.query(f"SHOW RETENTION POLICIES ON {q(db)}", db))[0]
        except influx.Denied:
            rps = None
            said.append(f"the duration of retention policy {self.rp!r}")
        if rps is None:
            pass                                   # cannot see it: the empty write below checks it exists
        elif not (len(rps) and self.rp in set(rps["name"])):
            if not self._may(make_rp):
                raise influx.Missing(f"retention policy {self.rp!r} does not exist on database {db!r} and {who} may "
                                     f"not create it: ask an InfluxDB admin to run: {make_rp}")
        else:
            row = rps[rps["name"] == self.rp].iloc[0]
            same = _ns(str(row["duration"])) == _ns(self.retention)
            if not same or not bool(row["default"]):
                if not self._may(alter_rp):
                    # Say only what differs: a policy of the configured duration is not "another retention".
                    what = ([] if same else [f"keeps {row['duration']}, not retention {self.retention} as configured"]) \
                        + ([] if bool(row["default"]) else ["is not the database default"])
                    log.warning("%s: retention policy %r on %r %s, and %s may not change it: writing on; to change "
                                "it ask an InfluxDB admin to run: %s", self.name, self.rp, db, " and ".join(what), who,
                                alter_rp)
        if self.downsample:
            name = f"{self.downsample}_cq"
            body = (f"SELECT mean(*), max(*), min(*) INTO {q(db)}.{q(self.downsample_rp)}."
                    f"{q(self.downsample)} FROM {q(db)}.{q(self.rp)}."
                    f"{q(self.measurement)} GROUP BY time(1h), {q('meter_id')}")
            make_cq = f"CREATE CONTINUOUS QUERY {q(name)} ON {q(db)} BEGIN {body} END"
            try:
                shown = c.query("SHOW CONTINUOUS QUERIES", db)
            except influx.Denied:
                shown = None
                said.append(f"the downsample CQ {name!r} (if it is not there, readings are not downsampled: "
                            f"ask an InfluxDB admin to run: {make_cq})")
            if shown is not None:
                have = {}
                for r in shown:
                    for s in r.get("series", []) or []:
                        if s.get("name") == db:
                            have.update({row[0]: row[1] for row in s.get("values", [])})
                ok = True
                if name in have and body.replace('"', "") not in have[name].replace('"', ""):
                    ok = self._may(f"DROP CONTINUOUS QUERY {q(name)} ON {q(db)}")
                    if ok:
                        have.pop(name)
                if ok and name not in have:
                    ok = self._may(make_cq)
                if not ok:
                    why = "differs from the configured one" if name in have else "does not exist"
                    log.warning("%s: the downsample CQ %r on %r %s and %s may not make it: readings are written, "
                                "not downsampled; ask an InfluxDB admin to run: %s%s", self.name, name, db, why, who,
                                f"DROP CONTINUOUS QUERY {q(name)} ON {q(db)}; " if name in have else "", make_cq)
                    notes.append(f"no downsample CQ {name}: ask an InfluxDB admin")
        try:   # an empty write: InfluxDB checks the database, the policy and the write privilege, stores nothing
            c.write(b"", db, self.rp, self.precision)
        except influx.Missing as exc:
            if "retention policy" not in str(exc):
                raise
            raise influx.Missing(f"retention policy {self.rp!r} does not exist on database {db!r} ({who} may not "
                                 f"see or create policies): ask an InfluxDB admin to run: {make_rp}") from None
        if said and not self._said_unchecked:
            log.info("%s: %s may not read %s (that needs READ on %r, or an admin): not checked, writing on",
                     self.name, who, " nor ".join(said), db)
            self._said_unchecked = True
        self.note = "; ".join(notes)
        self._ready = True

    def _may(self, statement: str) -> bool:
        """Run a statement that needs admin; False when InfluxDB refuses it for want of the privilege."""
        try:
            self.client.query(statement, self.db, write=True)
            return True
        except influx.Denied:
            return False

    def _ready_status(self) -> str:
        return f"ready ({self.note})" if self.note else "ready"

    def downsample_query(self, start, end) -> str:
        """The CQ's statement for one explicit window (to backfill, or to check it)."""
        lo, hi = pd.Timestamp(start).value, pd.Timestamp(end).value
        return (f"SELECT mean(*), max(*), min(*) INTO {influx.ident(self.db)}.{influx.ident(self.downsample_rp)}."
                f"{influx.ident(self.downsample)} FROM {influx.ident(self.db)}.{influx.ident(self.rp)}."
                f"{influx.ident(self.measurement)} WHERE time >= {lo} AND time < {hi} "
                f"GROUP BY time(1h), {influx.ident('meter_id')}")

    def _fail(self, exc: Exception) -> None:
        self.last_error = str(exc)
        denied = isinstance(exc, (influx.Denied, influx.Missing))
        with self._lock:
            # Said when it starts, and again when an operator's reason changes (one thing made, the next missing).
            if not self._down or (denied and str(exc) != self._said):
                if isinstance(exc, influx.Missing):
                    log.warning("%s: InfluxDB lacks what the sink writes to; buffering on disk until then: %s",
                                self.name, exc)
                elif denied:   # 401/403: the network is fine, the user or its privileges are not
                    why = denied_why(exc)
                    log.warning("%s: InfluxDB %s; buffering on disk until then: %s", self.name, why, exc)
                else:
                    log.warning("%s: InfluxDB unreachable, buffering on disk: %s", self.name, exc)
                self._said = str(exc)
            if not self._down:
                self.counters["buffered"] += self.buf.points   # what waits now: it is flushed later
                self._down = True
        ask = str(exc)[str(exc).find("ask an InfluxDB admin"):] if "ask an InfluxDB admin" in str(exc) else ""
        self.status = (f"refused: buffering ({ask})" if ask else "refused: buffering") if denied else "down: buffering"

    def _backoff(self, delay: float) -> None:
        """Wait ``delay`` before the next try (a stop cuts it short), fsyncing what the engine appends
        meanwhile every ``fsync_s``: a backoff longer than ``fsync_s`` (16 s, then ``retry_max_s``,
        in a minute's outage at the defaults) must not stretch the fsync policy."""
        if self._stop.is_set():
            time.sleep(min(delay, 0.2))
            return
        end = time.monotonic() + delay
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            self._stop.wait(min(left, self.buf.fsync_s) if self.buf.fsync_s > 0 else left)
            self.buf.sync()

    def _run(self) -> None:
        delay = self.retry_min_s
        give_up = None
        while True:
            if self._stop.is_set():
                give_up = give_up or time.monotonic() + self.close_timeout_s
                if not self.buf.points or time.monotonic() >= give_up:
                    break
            self.buf.sync()
            try:
                if not self._ready:
                    self.setup()
                    self.status = self._ready_status()
                body, n, pos, used = self.buf.read(self.batch_points, 8 << 20)
                if not n:
                    with self._lock:
                        if self._down and not self.buf.points:
                            log.warning("%s: InfluxDB back; the buffer is flushed", self.name)
                            self._down = False
                    self.status = self._ready_status()
                    self._wake.wait(min(self.buf.fsync_s, 0.5) if self.buf.fsync_s > 0 else 0.5)
                    self._wake.clear()
                    continue
                try:
                    self.client.write(body, self.db, self.rp, self.precision, self.gzip)
                except influx.Missing:
                    self._ready = False   # database/policy dropped while running: setup says what to make
                    raise
                except influx.Denied:
                    raise       # credentials: the points wait on disk until an operator fixes them
                except influx.Refused as exc:
                    # Bad data (a 400: field type conflict, beyond the retention): retrying cannot help;
                    # counted, said, not kept.
                    # A partial write ("points beyond retention policy dropped=N") kept the others.
                    m = re.search(r"dropped=(\d+)", str(exc))
                    lost = min(int(m.group(1)), n) if m and "partial write" in str(exc) else n
                    self._count("dropped", lost)
                    self._count("written", n - lost)
                    self.last_error = str(exc)
                    log.error("%s: InfluxDB refused %d of %d points: %s", self.name, lost, n, exc)
                    self.buf.ack(pos, n, used)
                    continue
                self.buf.ack(pos, n, used)
                self._count("written", n)
                if self._down:
                    self._count("flushed", n)
                    self.status = "flushing"
                delay = self.retry_min_s
            except (influx.Unreachable, influx.Denied, influx.Missing) as exc:
                self._count("retries", 1)
                self._fail(exc)
                self._backoff(delay)
                delay = min(delay * 2, self.retry_max_s)
            except Exception as exc:  # noqa: BLE001 - the writer thread never dies silently
                self._count("retries", 1)
                self._fail(exc)
                log.exception("%s: writer error", self.name)
                self._backoff(delay)
                delay = min(delay * 2, self.retry_max_s)
        self.buf.sync(force=True)
        self.status = "closed" if not self.buf.points else f"closed ({self.buf.points} points on disk)"


_KEYS = {"url", "database", "measurement", "alerts_measurement", "rp", "retention", "downsample", "downsample_rp",
         "precision", "gzip", "user", "password", "password_env", "buffer", "max_buffer_mb", "segment_mb",
         "batch_points", "fsync_s", "retry_min_s", "retry_max_s", "timeout_s", "close_timeout_s"}


def from_spec(name: str, spec: dict, root=None) -> InfluxSink:
    """An InfluxDB sink from its ``[[sinks]]`` table (ValueError naming the key)."""
    from wattwatch.sources import only, resolve

    only(spec, _KEYS)
    for key in ("url", "database"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ValueError(f"{key} is required (text)")
    kw = dict(spec)
    kw["buffer"] = resolve(str(kw.get("buffer", f"{name}-buffer")), root)
    env = kw.pop("password_env", None)
    if env:
        if env not in os.environ:
            raise ValueError(f"password_env: environment variable {env} is not set")
        kw["password"] = os.environ[env]
    for key in ("max_buffer_mb", "segment_mb", "fsync_s", "retry_min_s", "retry_max_s", "timeout_s", "close_timeout_s"):
        if key in kw:
            if isinstance(kw[key], bool) or not isinstance(kw[key], (int, float)):
                raise ValueError(f"{key} must be a number, got {kw[key]!r}")
            kw[key] = float(kw[key])
    if "batch_points" in kw and (isinstance(kw["batch_points"], bool) or not isinstance(kw["batch_points"], int)):
        raise ValueError(f"batch_points must be an integer, got {kw['batch_points']!r}")
    if "retention" in kw and not (isinstance(kw["retention"], str)
                                  and re.fullmatch(r"INF|(\d+(ns|u|ms|s|m|h|d|w))+", kw["retention"])):
        raise ValueError(f"retention must be an InfluxQL duration such as 30d, 52w or INF, got {kw['retention']!r}")
    if "retention" in kw and kw["retention"] != "INF" and _ns(kw["retention"]) < _UNITS["h"]:
        raise ValueError(f"retention must be at least 1h (InfluxDB's least), got {kw['retention']!r}")
    for key in ("measurement", "alerts_measurement", "rp", "downsample", "downsample_rp", "precision", "user",
                "password", "database"):
        if key in kw and not isinstance(kw[key], str):
            raise ValueError(f"{key} must be text, got {kw[key]!r}")
    return InfluxSink(name, **kw)


__all__ = ["InfluxSink", "DiskBuffer", "from_spec"]
