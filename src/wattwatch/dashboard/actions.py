"""What the dashboard writes — acknowledge, clear, upload, run — each behind :func:`require_operator`.

These functions are the only path from the page to the store's write lock; each checks the
session itself (anonymous, viewer, expired or read-only sessions are refused before the store is
opened), so hiding a button is a convenience, not the guard. Every write and every refusal is
logged with the user's name.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from wattwatch.dashboard.auth import Session, require_operator
from wattwatch.dashboard.data import LOCK, open_store

log = logging.getLogger("wattwatch.dashboard.audit")

UPLOAD_SUFFIXES = (".csv", ".gz", ".parquet", ".json", ".jsonl", ".db", ".sqlite", ".sqlite3")
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
# Uploads (and the mapping an ingest kept beside one) are removed when an upload is saved: those older
# than a week, then the oldest until the folder's uploads fit 4 GiB. A week is longer than any
# session (8 h at most), so an upload a signed-in operator is still ingesting outlives its lifetime;
# only the cap can take one that young (after ~8 uploads of 512 MB), and its ingest then says so.
UPLOAD_LIFETIME_S = 7 * 86400
UPLOAD_FOLDER_BYTES = 4 * 1024 ** 3
_UPLOAD_RE = re.compile(r"^(upload-[0-9a-f]{12})\.")


def set_status(session: Session, db, ids: Sequence[str], status: str, note: str | None = None) -> list[dict]:
    """Acknowledge or clear the alerts ``ids`` in the store (the lifecycle ``wattwatch alerts``
    uses: the detector re-learns the meter after each). Per id: the result, or ``error``."""
    from wattwatch.alerts import store as alert_store

    verb = {"acknowledged": "acknowledge", "cleared": "clear"}.get(status)
    if verb is None:
        raise ValueError("status must be acknowledged or cleared")
    user = require_operator(session, f"{verb} {len(ids)} alert(s)")
    if not ids:
        return []
    text = f"[{user}] {note.strip()}" if note and note.strip() else f"[{user}]"
    out = []
    from wattwatch.runners import control

    ctx = open_store(db, write=True)
    s = control.open_or_hand_over(db, ctx.__enter__)
    if s is None:
        # `watch` holds the store: hand each change to it (it applies them between steps and
        # re-learns the meters, runners/control.py).
        for aid in ids:
            res = control.ask(db, {"op": "set_status", "id": str(aid), "status": status, "note": text})
            if not res.pop("ok", False):
                res = {"id": str(aid), "error": res.get("error") or "refused"}
            out.append(res)
            log.info("%s by %s (through the running watcher): %s -> %s", verb, user, aid,
                     res.get("error") or res["status"])
        return out
    with _entered(ctx, s) as s:
        for aid in ids:
            try:
                res = alert_store.set_status(s.con, str(aid), status, text)
            except (KeyError, ValueError) as exc:
                res = {"id": str(aid), "error": str(exc.args[0]) if exc.args else str(exc)}
            out.append(res)
            log.info("%s by %s: %s -> %s", verb, user, aid, res.get("error") or res["status"])
    return out


class _entered:
    """A context manager already entered (``open_store``'s, entered to see whether it opens)."""

    def __init__(self, ctx, value):
        self.ctx, self.value = ctx, value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return self.ctx.__exit__(*exc)


def _safe_name(name: str) -> str:
    """A file name of our own for an upload: a random stem and the upload's (checked) suffix —
    the uploaded name never becomes a path."""
    low = str(name).lower()
    for suf in (".csv.gz", *UPLOAD_SUFFIXES):
        if low.endswith(suf):
            return f"upload-{secrets.token_hex(6)}{suf}"
    raise ValueError(f"{name}: not a telemetry file (csv, csv.gz, parquet, json, jsonl, SQLite .db)")


def save_upload(session: Session, folder: Path, name: str, data: bytes) -> Path:
    """Keep an uploaded file in the dashboard's upload folder (operators only)."""
    user = require_operator(session, f"upload {name!r}")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"{name}: {len(data):,} bytes is more than the {MAX_UPLOAD_BYTES:,} an upload may have")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _safe_name(name)
    path.write_bytes(data)
    log.info("upload by %s: %r (%d bytes) -> %s", user, name, len(data), path.name)
    prune_uploads(folder, keep=path)
    return path


def prune_uploads(folder: Path, keep: Path | None = None, now: float | None = None) -> list[str]:
    """Remove the uploads of ``folder`` older than :data:`UPLOAD_LIFETIME_S`, then the oldest until
    the rest fit :data:`UPLOAD_FOLDER_BYTES`; an upload goes with the files named after it (its
    ``.mapping.toml``). Only files named as :func:`_safe_name` names them are touched; ``keep`` (the
    upload just saved) never is. Returns the names removed (each logged)."""
    now = time.time() if now is None else now
    groups: dict[str, list] = {}
    for p in Path(folder).iterdir():
        m = _UPLOAD_RE.match(p.name)
        if m is None or not p.is_file() or p.is_symlink():
            continue
        try:
            st_ = p.stat()
        except OSError:
            continue
        g = groups.setdefault(m.group(1), [0.0, 0, []])
        g[0], g[1] = max(g[0], st_.st_mtime), g[1] + st_.st_size
        g[2].append(p)
    kept = _UPLOAD_RE.match(keep.name).group(1) if keep is not None and _UPLOAD_RE.match(keep.name) else None
    removed, total = [], sum(g[1] for g in groups.values())
    for stem, (mtime, size, files) in sorted(groups.items(), key=lambda kv: kv[1][0]):  # oldest first
        if stem == kept or (now - mtime <= UPLOAD_LIFETIME_S and total <= UPLOAD_FOLDER_BYTES):
            continue
        for p in files:
            try:
                p.unlink()
                removed.append(p.name)
            except OSError as exc:
                log.warning("upload %s not removed: %s", p.name, exc)
        total -= size
    if removed:
        log.info("removed upload(s) older than %d days or over the folder's %d MiB: %s",
                 UPLOAD_LIFETIME_S // 86400, UPLOAD_FOLDER_BYTES >> 20, ", ".join(sorted(removed)))
    return removed


def ingest(session: Session, db, path: Path, mapping_toml: str | None = None) -> list:
    """Ingest a saved upload into the store with an optional TOML mapping (operators only)."""
    from wattwatch import api

    user = require_operator(session, f"ingest {Path(path).name}")
    mapping = None
    if mapping_toml and mapping_toml.strip():
        mapping = Path(path).with_suffix(".mapping.toml")
        mapping.write_text(mapping_toml, encoding="utf-8")
    with LOCK:
        counts = api.ingest(Path(path), db, mapping=mapping)
    log.info("ingest by %s: %s: %s", user, Path(path).name,
             [(c.read, c.stored, c.rejected) if hasattr(c, "read") else c for c in counts])
    return counts


def run_detection(session: Session, db, detectors: Sequence[str] | None = None,
                  on_progress: Callable[[int], None] | None = None,
                  on_stage: Callable[[str, float | None], None] | None = None,
                  model_folder: str | None = None, models_root: Path | None = None):
    """``api.detect`` on the store, alerts kept in it (operators only). Meters are judged with the
    state the store keeps (``wattwatch fit``); with ``model_folder`` (a name listed under
    ``models_root``, see :mod:`wattwatch.dashboard.models`) a model folder's fleet models are used
    as ``detect --models`` uses them, or a fitted store's state as ``detect(state=...)`` uses a
    ``fit``'s. A name that is not listed is refused before anything is read."""
    from wattwatch import api
    from wattwatch.dashboard import models

    user = require_operator(session, "run detection")
    folder = None
    if model_folder is not None:
        try:
            folder = models.resolve(models_root, model_folder, exclude=db)
        except models.OutsideRoot as exc:
            log.warning("refused detect by %s: model folder %r: %s", user, model_folder, exc)
            raise
    what = "kept in the store" if folder is None else \
        f"{'model folder' if folder.kind == 'models' else 'fitted store'} {folder.name} ({folder.path})"
    log.info("detect by %s: detectors %s, state %s", user, list(detectors) if detectors else "default", what)
    names = list(detectors) if detectors else None
    with LOCK:
        if folder is not None and folder.kind == "state":
            dets = api.build_detectors(names)
            notices = models.load_state(folder, dets)
            res = api.detect(db, state=dets, on_progress=on_progress, on_stage=on_stage)
            res.notices[:0] = notices
            return res
        return api.detect(db, detectors=names, on_progress=on_progress, on_stage=on_stage,
                          models=folder.path if folder else None)
