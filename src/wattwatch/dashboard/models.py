"""The saved state a detection run on the Data page may use: the state ``wattwatch fit`` kept in the
store itself, or, found under the dashboard's ``--models-dir``, a model folder (``wattwatch train
--out``) or another store that ``wattwatch fit --db`` fitted (its meters' state is used, read-only).

A page names one only by its path relative to that root, as listed here; :func:`resolve` turns the
name back into a path and refuses anything that is not listed: an absolute path, ``..``, a symlink
leading out of the root (symlinks are never followed), a folder without a manifest. A model folder
is read by :func:`wattwatch.detect.learned.persist.load_models` exactly as ``detect --models`` reads
it (no pickles: nothing in a model folder runs; its files must be inside it and match their
sha256); a fitted store is opened read-only and its state rows are JSON and checked serialize blobs
(:mod:`wattwatch.detect.state`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from wattwatch.detect.learned.persist import MANIFEST, ModelFormatError, read_manifest

# How deep under the root model folders are looked for (root/site/models is depth 2), and at most
# how many are listed: the page lists them, it does not index a disk.
DEPTH = 3
LIMIT = 200
STORE_SUFFIX = ".duckdb"
_STORES: dict = {}   # path -> ((mtime_ns, size), description): a fitted store is opened once per change


class OutsideRoot(ValueError):
    """A model folder name that is not a folder listed under the models root."""


@dataclass(frozen=True)
class ModelFolder:
    name: str                      # the path relative to the root, "/"-separated ("." for the root)
    path: Path                     # resolved, inside the root
    detectors: tuple = ()
    trained_on: dict = field(default_factory=dict)
    wattwatch: str = ""
    problem: str | None = None     # why it cannot be used (another model format ...), else None
    kind: str = "models"           # "models": a `train` folder; "state": a store `fit` wrote

    def label(self) -> str:
        if self.problem:
            return f"{self.name} (unusable: {self.problem})"
        t = self.trained_on or {}
        if self.kind == "state":
            return (f"{self.name}: state of {t.get('meters', 0):,} meter(s) ({', '.join(self.detectors)}), "
                    f"fitted {str(t.get('fitted_at'))[:19]}")
        on = ", ".join(f"{k} {t[k]:,}" if isinstance(t[k], int) else f"{k} {t[k]}" for k in
                       ("meters", "readings", "period") if k in t)
        return f"{self.name}: {', '.join(self.detectors)}" + (f" (trained on {on})" if on else "")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _describe(name: str, path: Path) -> ModelFolder:
    try:
        m = read_manifest(path)
    except ModelFormatError as exc:
        return ModelFolder(name, path, problem=str(exc).removeprefix(f"{path}: "))
    return ModelFolder(name, path, tuple(sorted(m["detectors"])),
                       m.get("trained_on") if isinstance(m.get("trained_on"), dict) else {},
                       str(m.get("wattwatch", "")))


def _describe_store(name: str, path: Path) -> ModelFolder | None:
    """A store under the root with fitted state (None: a store without state is not listed)."""
    from wattwatch.errors import StoreError

    try:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size)
        hit = _STORES.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        kept = store_state(path)
    except (OSError, StoreError) as exc:
        return ModelFolder(name, path, problem=str(exc).removeprefix(f"{path}: "), kind="state")
    out = None if not kept["meters"] else ModelFolder(
        name, path, tuple(kept["detectors"]), {"meters": kept["meters"], "fitted_at": kept["fitted_at"],
                                               "how": kept["how"]}, kind="state")
    _STORES[path] = (key, out)
    return out


def folders(root: str | Path | None, exclude: str | Path | None = None) -> list[ModelFolder]:
    """The model folders (a folder holding ``manifest.json``) and fitted stores (``*.duckdb`` with
    kept state; ``exclude``, the dashboard's own store, left out) under ``root``, at most
    :data:`DEPTH` levels down, sorted by name; symlinks are not followed, and anything whose real
    path is outside the root is left out."""
    if root is None:
        return []
    root = Path(root).resolve()
    if not root.is_dir():
        return []
    skip = Path(exclude).resolve() if exclude is not None else None
    out = []
    for here, dirs, files in os.walk(root, followlinks=False):
        rel = Path(here).relative_to(root)
        depth = 0 if str(rel) == "." else len(rel.parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < DEPTH else []
        if MANIFEST in files:
            real = Path(here).resolve()
            if _inside(real, root):
                out.append(_describe(rel.as_posix(), real))
        for f in sorted(files):
            p = Path(here) / f
            if not f.endswith(STORE_SUFFIX) or p.is_symlink() or p.resolve() == skip or not p.is_file():
                continue
            d = _describe_store((rel / f).as_posix(), p.resolve())
            if d is not None:
                out.append(d)
        if len(out) >= LIMIT:
            break
    return sorted(out, key=lambda f: f.name)


def resolve(root: str | Path | None, name: str, exclude: str | Path | None = None) -> ModelFolder:
    """The usable model folder or fitted store listed under ``root`` as ``name``; :class:`OutsideRoot`
    for a name that is not one (a path typed or forged by a client never reaches a loader)."""
    if root is None:
        raise OutsideRoot("no models folder is configured (start the dashboard with --models-dir DIR)")
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name or Path(name).is_absolute() \
            or ".." in Path(name).parts:
        raise OutsideRoot(f"{name!r}: not a model folder under the models root (a name from the list is expected)")
    real_root = Path(root).resolve()
    try:
        path = (real_root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        raise OutsideRoot(f"{name!r}: no such model folder under the models root") from None
    if not _inside(path, real_root):
        raise OutsideRoot(f"{name!r} leads outside the models root (to {path}); refused")
    found = {f.name: f for f in folders(real_root, exclude)}
    f = found.get(Path(name).as_posix())
    if f is None or f.path != path:
        raise OutsideRoot(f"{name!r}: not a model folder or fitted store listed under the models root")
    if f.problem:
        raise ModelFormatError(f"{name}: {f.problem}")
    return f


def load_state(folder: ModelFolder, detectors) -> list[str]:
    """Give ``detectors`` the state a fitted store keeps (every meter it has, and its fleet models),
    read-only; returns the notices (state of another version or settings)."""
    from wattwatch.dashboard.data import open_store
    from wattwatch.detect import state

    with open_store(folder.path) as s:
        meters = [r[0] for r in s.con.execute("SELECT DISTINCT meter_id FROM meter_state ORDER BY 1").fetchall()]
        return state.load(s.con, detectors, meters) + state.load_fleets(s.con, detectors)


def store_state(db) -> dict:
    """What ``wattwatch fit`` (or earlier runs) kept in the store: meters with state per detector,
    when fitted and how, and the fleet models; empty when the store keeps none."""
    from wattwatch.dashboard.data import open_store

    with open_store(db) as s:
        have = {r[0] for r in s.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "meter_state" not in have:
            return {"meters": 0, "detectors": {}, "how": {}, "fitted_at": None, "fleet_models": []}
        per = s.con.execute("SELECT detector, count(DISTINCT meter_id) FROM meter_state GROUP BY detector "
                            "ORDER BY detector").fetchall()
        how = s.con.execute("SELECT how, count(DISTINCT meter_id) FROM meter_state GROUP BY how ORDER BY how").fetchall()
        n, last = s.con.execute("SELECT count(DISTINCT meter_id), max(fitted_at) FROM meter_state").fetchone()
        fleets = (s.con.execute("SELECT detector, grid_s FROM fleet_models ORDER BY detector, grid_s").fetchall()
                  if "fleet_models" in have else [])
    return {"meters": int(n or 0), "detectors": {d: int(k) for d, k in per}, "how": {h: int(k) for h, k in how},
            "fitted_at": last, "fleet_models": [f"{d} @ {g:g} s" for d, g in fleets]}


__all__ = ["ModelFolder", "OutsideRoot", "folders", "resolve", "load_state", "store_state", "DEPTH", "LIMIT"]
