"""Commands to a running watcher: ``alerts ack|clear|show`` while ``watch`` holds the store.

DuckDB lets one process write a store; a running ``watch`` is that process. So a command that
finds the store locked hands itself to the watcher through a folder next to the store,
``STORE.watch/`` (created by the watcher, mode 0700):

- the watcher writes ``watcher.json`` (its pid and start time) there, and removes it on a clean
  stop; a command goes through the folder only while that pid is alive;
- a command writes its request as JSON to a temporary name and renames it (atomic) to
  ``req-<32 hex>.json``; the watcher, between steps (at least every second), reads each request
  (at most 64 KB, JSON only, checked field by field: an operation of a fixed list, an id, a
  status, a note — nothing in it is executed or used as a path), applies it in its own
  transaction, and answers in ``res-<same hex>.json`` (temporary name, then rename);
- the command waits for its answer (default 30 s) and removes it.

Operations: ``set_status`` (acknowledge or clear: the store's lifecycle, then the live re-learning
``detect`` would do, :mod:`wattwatch.runners.rejudge`), ``show`` (one alert and its actions) and
``list`` (the alerts by status, meter, least severity and least score, as ``alerts list``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

from wattwatch.atomicfile import write_text

log = logging.getLogger("wattwatch.watch")

MAX_REQUEST = 64 * 1024
_REQ = re.compile(r"^req-([0-9a-f]{32})\.json$")
OPS = ("set_status", "show", "list")


class NoWatcher(RuntimeError):
    """No running watcher holds the store (nothing to hand the command to)."""


def folder(store_path) -> Path:
    p = Path(store_path)
    return p.with_name(p.name + ".watch")


# ------------------------------------------------------------------------------------ watcher side


class Channel:
    """The watcher's end: :meth:`serve` between steps, :meth:`close` on stop."""

    def __init__(self, store_path):
        self.dir = folder(store_path)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for p in self.dir.glob("res-*.json"):   # answers nobody collected (a command that gave up)
            p.unlink(missing_ok=True)
        _write(self.dir / "watcher.json", {"pid": os.getpid(), "started": time.time()})
        self.served = 0

    def serve(self, engine) -> int:
        """Apply every pending request (oldest first); returns how many."""
        reqs = []
        for p in self.dir.iterdir():
            m = _REQ.match(p.name)
            if m:
                try:
                    reqs.append((p.stat().st_mtime, m.group(1), p))
                except FileNotFoundError:
                    continue
        for _, key, p in sorted(reqs):
            try:
                raw = p.read_bytes()[:MAX_REQUEST + 1]
                ans = apply(engine, parse(raw))
            except (ValueError, KeyError) as exc:
                ans = {"ok": False, "error": str(exc.args[0]) if exc.args else str(exc)}
            except Exception as exc:  # noqa: BLE001 - a request never stops the watcher
                log.warning("request %s failed: %s: %s", key, type(exc).__name__, exc)
                ans = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            _write(self.dir / f"res-{key}.json", ans)
            p.unlink(missing_ok=True)
            self.served += 1
            engine.counters["requests"] += 1
        return len(reqs)

    def close(self) -> None:
        (self.dir / "watcher.json").unlink(missing_ok=True)


def parse(raw: bytes) -> dict:
    """A request checked field by field (ValueError saying what is wrong)."""
    if len(raw) > MAX_REQUEST:
        raise ValueError(f"request larger than {MAX_REQUEST} bytes")
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"request is not JSON: {exc}") from None
    except RecursionError:
        raise ValueError("request is not JSON: nested too deeply") from None
    if not isinstance(req, dict):
        raise ValueError("request must be a JSON object")
    op = req.get("op")
    if op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}, got {op!r}")
    allowed = {"set_status": {"op", "id", "status", "note"}, "show": {"op", "id"},
               "list": {"op", "status", "meter", "min_severity", "min_score"}}[op]
    extra = set(req) - allowed
    if extra:
        raise ValueError(f"{op}: unknown field(s) {sorted(extra)}")
    if op == "list":
        for k in ("status", "meter", "min_severity"):
            v = req.get(k)
            if v is not None and (not isinstance(v, str) or len(v) > 256):
                raise ValueError(f"{k} must be text of at most 256 characters")
        ms = req.get("min_score")
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms != ms):
            raise ValueError("min_score must be a number")
        return req
    aid = req.get("id")
    if not isinstance(aid, str) or not aid or len(aid) > 256:
        raise ValueError("id must be an alert id (text, at most 256 characters)")
    if op == "set_status":
        if req.get("status") not in ("acknowledged", "cleared"):
            raise ValueError("status must be acknowledged or cleared")
        note = req.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 4096):
            raise ValueError("note must be text of at most 4096 characters")
    return req


def apply(engine, req: dict) -> dict:
    """Apply a checked request to ``engine``'s store (the caller is the engine's thread)."""
    from wattwatch.alerts import store as alert_store

    con = engine.store.con
    if req["op"] == "list":
        from wattwatch.alerts.model import record

        df = alert_store.list_alerts(con, req.get("status") or "open", req.get("meter"), req.get("min_severity"),
                                     req.get("min_score"))
        return {"ok": True, "alerts": json.loads(json.dumps([record(r) for r in df.to_dict("records")], default=str))}
    if req["op"] == "show":
        from wattwatch.actions.base import actions_for
        from wattwatch.alerts import withdrawn

        rec = withdrawn.show(con, req["id"])   # (al) a withdrawn alert too
        acts = actions_for(con, rec["id"])
        return {"ok": True, "alert": json.loads(json.dumps(rec, default=str)),
                "actions": json.loads(acts.to_json(orient="records", date_format="iso"))}
    con.execute("BEGIN TRANSACTION")
    try:
        res = alert_store.set_status(con, req["id"], req["status"], req.get("note"))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if not res.get("unchanged"):
        from wattwatch.runners import rejudge

        for d in res.get("detectors") or [res["detector"]]:   # (rxd) a continued alert's every detector
            rejudge.note_reset(engine, res["meter_id"], d, res["reset_at"])
        mark = getattr(engine, "mark_settled", None)
        if mark is not None:
            mark(res["id"])
        a = engine.alerts.get(res["id"])
        if a is not None:
            a.status = res["status"]
        log.info("alert %s %s (by request); %s re-learns %s from %s", res["id"], res["status"],
                 " and ".join(res.get("detectors") or [res["detector"]]), res["meter_id"], res["reset_at"])
    return {"ok": True, **res}


# ------------------------------------------------------------------------------------ command side


def watcher(store_path) -> dict | None:
    """The running watcher of ``store_path`` (``watcher.json``), or None."""
    p = folder(store_path) / "watcher.json"
    try:
        info = json.loads(p.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return info


def request(store_path, req: dict, timeout_s: float = 30.0) -> dict:
    """Hand ``req`` to the watcher of ``store_path`` and wait for its answer.

    Raises NoWatcher (none running), TimeoutError (no answer in time)."""
    parse(json.dumps(req).encode())   # refuse here what the watcher would refuse
    if watcher(store_path) is None:
        raise NoWatcher(f"{store_path}: no running `wattwatch watch` holds this store")
    d = folder(store_path)
    key = secrets.token_hex(16)
    res = d / f"res-{key}.json"
    _write(d / f"req-{key}.json", req)
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if res.exists():
            try:
                ans = json.loads(res.read_text())
            except (OSError, json.JSONDecodeError):
                time.sleep(0.05)   # written by rename: complete once seen; retry a torn read anyway
                continue
            res.unlink(missing_ok=True)
            return ans
        if watcher(store_path) is None:
            (d / f"req-{key}.json").unlink(missing_ok=True)
            raise NoWatcher(f"{store_path}: the watcher stopped before answering")
        time.sleep(0.05)
    (d / f"req-{key}.json").unlink(missing_ok=True)
    raise TimeoutError(f"{store_path}: the running watcher did not answer within {timeout_s:g} s")


def open_or_hand_over(store_path, open_store):
    """What ``open_store()`` opens, or None when it raises ``StoreError`` while a running watcher
    holds ``store_path`` (the command is then handed to it: :func:`ask`). Without a watcher the
    ``StoreError`` (missing, locked by another process, not a store) is the caller's."""
    from wattwatch.store import StoreError

    try:
        return open_store()
    except StoreError:
        if watcher(store_path) is None:
            raise
        return None


def ask(store_path, req: dict, timeout_s: float = 30.0) -> dict:
    """:func:`request`, with a watcher that is gone, silent or a request it would refuse as an
    answer ``{"ok": False, "error": ...}`` like the watcher's own refusals."""
    try:
        return request(store_path, req, timeout_s)
    except (NoWatcher, TimeoutError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}


def _write(path: Path, obj) -> None:
    write_text(path, json.dumps(obj), mode=0o600)
