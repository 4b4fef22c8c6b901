"""Saving and loading trained learned detectors (``wattwatch train`` / ``detect --models``).

A model folder holds ``manifest.json`` (format, wattwatch and schema versions, feature names,
each detector's config, file and the file's sha256, what it was trained on) and one
``<name>.<16 hex of its sha256>.wwm`` per detector (``<name>.wwm`` in folders written before
2026-12-06; any plain name the manifest gives is read) with its fleet-wide state (scaler, model, calibrations) in the
:mod:`serialize` format: no pickles, so loading a folder cannot run code from it. Loading checks
the manifest before it reads anything else: a folder written by an incompatible version (such as
the joblib pickles of model format 3 and earlier) fails with a message that says which versions
differ and what to do, instead of a model that silently scores garbage. A manifest may only name
files directly inside its folder, and each file must match its recorded hash before it is parsed.
Training into a folder that holds models replaces the set atomically (:func:`save_models`): the
manifest is the commit, so a failed or killed train leaves the previous models as they were.

``dumps_state`` / ``loads_state`` are the same bytes for one detector's ``model_state()``, to keep
a fleet model elsewhere (a blob in the store).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import stat
import unicodedata
from contextlib import contextmanager
from pathlib import Path

from wattwatch import __version__
from wattwatch.atomicfile import fsync_dir, read_regular, write_bytes
from wattwatch.detect.learned import serialize
from wattwatch.detect.learned.detectors import LearnedDetector
from wattwatch.schema import SCHEMA_VERSION

# Bump when the saved state or the features change meaning (a new feature, another scaler).
MODEL_FORMAT = 4  # 2: the feature scaler keeps one knot per distinct training quantile; 3: baseline = mean of
# leave-one-day-out medians, evidence persistence judged only when half covered; 4: serialize archives with
# sha256 in the manifest instead of joblib pickles
MANIFEST = "manifest.json"
SUFFIX = ".wwm"
_SHA256 = re.compile(r"[0-9a-f]{64}")
# What a model folder's files may weigh (a fleet model of 2,000 meters is a few MB): a bigger file
# was not written by `train`, and reading it would only exhaust memory.
MAX_MANIFEST_BYTES = 4 << 20
MAX_MODEL_BYTES = 1 << 30


class ModelFormatError(ValueError):
    """A model folder that this version of wattwatch cannot use."""


# ------------------------------------------------------------------------------ one detector's state


def dumps_state(state: dict) -> bytes:
    """A learned detector's fleet state (``model_state()``: per grid step, the scaler, model and
    calibrations, or an ensemble's members) as bytes in the :mod:`serialize` format (no pickle);
    objects shared between members (one scaler for all) stay shared."""
    return serialize.dumps(state)


def loads_state(data: bytes) -> dict:
    """The state ``dumps_state`` stored; ``ValueError`` if ``data`` is anything else."""
    state = serialize.loads(data)
    if not (isinstance(state, dict) and all(isinstance(k, str) and k.isdigit() and isinstance(v, dict)
                                            for k, v in state.items())):
        raise ValueError("not a learned detector's fleet state (expected {grid step: state})")
    return state


# ------------------------------------------------------------------------------ model folders


def save_models(detectors: list[LearnedDetector], out: str | Path, trained_on: dict | None = None) -> Path:
    """Write the trained ``detectors`` as the model folder ``out`` (made if missing), replacing the
    set it held **atomically**: the new model files are written beside the old ones under names of
    their own (``<name>.<first 16 hex of their sha256>.wwm``, each fsynced, temporary file then
    rename), then ``manifest.json`` is replaced by one rename (fsynced): the commit. At every
    instant the folder's manifest names a complete set, the old one or the new one, so a train
    interrupted at any point (Ctrl-C, kill -9, a full disk, an exception, a power cut) leaves the
    previous models loadable and unchanged; only after the commit are the files no manifest names
    any more removed (the old set's, and any a killed train left: :func:`_sweep`, only files whose
    bytes are what their names say). On an exception before the commit the files this call wrote
    are removed again (and ``out`` and the parents it made), then the exception goes on. Two saves
    into one folder at once: the second waits for the first (:func:`_folder_lock`)."""
    out = Path(out)
    for d in detectors:
        if not d.locked:
            raise ValueError(f"{d.name}: train it before saving")
    blobs = [(d, dumps_state(d.model_state())) for d in detectors]   # every state serialised before the folder is touched
    made = [p for p in (out, *out.parents) if not (p.exists() or p.is_symlink())]   # the folders this save makes
    out.mkdir(parents=True, exist_ok=True)
    try:
        for p in reversed(made):   # (rb1) their names reach the disk before the manifest that commits into them
            fsync_dir(p.parent)
    except BaseException:
        _undo(out, [], made)
        raise
    with _folder_lock(out):
        old = _previous(out)
        kept = _named(old)
        there = _listing(out)   # (rb1) a file already there under a name this save writes is not this save's to undo
        entries, written, text = {}, [], None
        try:
            for d, data in blobs:
                digest = hashlib.sha256(data).hexdigest()
                name = f"{d.name}.{digest[:16]}{SUFFIX}"
                written.append(name)
                _write_new(out / name, data)
                features = getattr(d, "feature_names_", None) or d.config.features().names()
                entries[d.name] = {"file": name, "sha256": digest, "config": d.config.to_dict(), "features": features}
            manifest = {"format": MODEL_FORMAT, "wattwatch": __version__, "schema": SCHEMA_VERSION,
                        "detectors": entries, "trained_on": trained_on or {}}
            text = (json.dumps(manifest, indent=2, default=str) + "\n").encode()
            _write_new(out / MANIFEST, text)   # the switch from the old set to the new one
        except BaseException:
            if not _committed(out, text):
                _undo(out, [n for n in written if _fold(n) not in _folded(kept) | _folded(there)], made)
            raise
        _sweep(out, {e["file"] for e in entries.values()}, kept)
    return out


# The names `save_models` gives model files, and the temporary names of :mod:`atomicfile` for them
# and for the manifest: what a folder may hold of a train that was killed before its commit.
_CONTENT_NAME = re.compile(r"[A-Za-z0-9_.-]+\.([0-9a-f]{16})" + re.escape(SUFFIX))
_TEMP_NAME = re.compile(r"\.(?:" + re.escape(MANIFEST) + r"|[A-Za-z0-9_.-]+" + re.escape(SUFFIX) + r")\.tmp-[0-9a-f]{16}")


# (rb1) How long a save waits for another save into the same folder to finish (a save takes seconds;
# refusing outright threw away the hours of training of the second of two trains that finished together).
LOCK_WAIT_S = 60.0


@contextmanager
def _folder_lock(out: Path):
    """An exclusive ``flock`` on the folder itself while a set is written into it: a second
    ``save_models`` on the same folder meanwhile (another `wattwatch train --out` there) waits up to
    :data:`LOCK_WAIT_S` for the first to finish, then replaces its set (the last train wins, as when
    they finish apart), or is refused if the first still holds it; neither removes the other's new
    files. No lock file is made (nothing is left in the folder). Where the folder cannot be opened or
    locked (no ``fcntl``, a file system without locks), the save goes on without it."""
    import time

    try:
        import fcntl
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (ImportError, OSError):
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ModelFormatError(
                        f"{out}: another `wattwatch train` has been writing this model folder for more than "
                        f"{LOCK_WAIT_S:g} s; the models in it are left to that one (train again once it has "
                        "finished, or write to another folder with --out)") from None
                time.sleep(0.1)
            except OSError:
                break
        yield
    finally:
        os.close(fd)


def _previous(out: Path) -> dict | None:
    """The manifest ``out`` holds now (None: none, or a symlink, which is replaced, never followed);
    a regular ``manifest.json`` that no ``wattwatch train`` wrote is refused (:func:`check_folder`)."""
    old = out / MANIFEST
    if old.is_symlink() or not old.exists():
        return None
    return _ours(out, old)


def check_folder(out: str | Path) -> None:
    """``ModelFormatError`` if ``save_models`` would refuse ``out`` (not a folder, or another tool's
    ``manifest.json`` in it): asked before training, so that hours of training are not spent on a
    folder that then cannot be written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ModelFormatError(f"{out}: exists and is not a folder (train writes a model folder)")
    if out.is_symlink() and not out.exists():   # (rb1) was found only once trained: mkdir fails on it
        raise ModelFormatError(f"{out}: a symlink to {os.readlink(out)}, which does not exist (train writes a model "
                               "folder: make the folder it points to, or give another --out)")
    if out.is_dir():
        _previous(out)


def _named(manifest: dict | None) -> dict[str, str | None]:
    """The files a manifest names, each with the sha256 it records (None: none, or not one), that
    ``save_models`` may remove once they are no longer named: plain names of model files (``.wwm``,
    or the ``.joblib`` of model format 3 and earlier), as :func:`_model_file` accepts them."""
    out = {}
    for entry in (manifest or {}).get("detectors", {}).values():
        f = entry.get("file") if isinstance(entry, dict) else None
        if _plain_name(f) and f.endswith((SUFFIX, ".joblib")):
            sha = entry.get("sha256")
            out[f] = sha if isinstance(sha, str) and _SHA256.fullmatch(sha) else None
    return out


def _plain_name(f) -> bool:
    """``f`` is a plain file name a manifest may give: a string naming a file directly inside the
    folder (no path, no ``.``/``..``, no NUL)."""
    return isinstance(f, str) and f not in ("", ".", "..") and "/" not in f and "\\" not in f and "\0" not in f \
        and not Path(f).is_absolute() and Path(f).name == f


def _fold(name: str) -> str:
    """``name`` as a case-insensitive file system compares it (macOS, Windows: ``A.wwm`` is ``a.wwm``)."""
    return unicodedata.normalize("NFC", name).casefold()


def _folded(names) -> set[str]:
    return {_fold(n) for n in names}


def _listing(out: Path) -> set[str]:
    try:
        return {p.name for p in out.iterdir()}
    except OSError:
        return set()


def _sha256_of(path: Path) -> str | None:
    """The sha256 of the regular file ``path`` (not followed if a symlink), None if it is not one
    or cannot be read; read in blocks (a model file may weigh up to :data:`MAX_MODEL_BYTES`)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    h = hashlib.sha256()
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MODEL_BYTES:
            return None
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return h.hexdigest()


def _committed(out: Path, text: bytes | None) -> bool:
    """Whether ``out``'s manifest is the one this save wrote (an exception after the rename, in
    the folder's fsync say: the new set is in place and its files must stay)."""
    if text is None:
        return False
    try:
        return read_regular(out / MANIFEST, MAX_MANIFEST_BYTES, follow=False) == text
    except (OSError, ValueError):
        return False


def _unlink(path: Path) -> None:
    """Remove a file (a symlink itself, never what it points at); a folder or a file that will not
    go is let be (the set in place does not name it)."""
    try:
        if not path.is_dir() or path.is_symlink():
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _undo(out: Path, written: list[str], made: list[Path]) -> None:
    """After a failure before the commit: remove the new files (the old manifest does not name
    them), and the folders this save made (``made``), if empty."""
    for name in written:
        _unlink(out / name)
    for p in made:
        try:
            p.rmdir()
        except OSError:
            break


def _sweep(out: Path, keep: set[str], old: dict[str, str | None]) -> None:
    """After the commit: remove the files of the previous set that the new manifest does not name,
    and what trains killed before their commit left (content-named model files no manifest names,
    temporary files); then fsync the folder. Nothing else in the folder is touched (rb1): a file
    is removed only if its bytes are what its name claims (the sha256 the old manifest records for
    it; the first 16 hex of its sha256 for a content-named leftover), a legacy pickle (no sha256)
    is left, and never a name that is, on a case-insensitive file system, a file of the new set."""
    names = _listing(out)
    keep_folded = _folded(keep)
    kept_ids = set()
    for name in keep:
        try:
            st = os.lstat(out / name)
            kept_ids.add((st.st_dev, st.st_ino))
        except OSError:
            pass

    def removable(name: str) -> bool:
        if _fold(name) in keep_folded:
            return False
        try:
            st = os.lstat(out / name)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) in kept_ids:
            return False
        if _TEMP_NAME.fullmatch(name):
            return True
        if name in old:
            return old[name] is not None and _sha256_of(out / name) == old[name]
        m = _CONTENT_NAME.fullmatch(name)
        return m is not None and (_sha256_of(out / name) or "")[:16] == m.group(1)

    gone = [n for n in sorted(set(old) | names) if n in names and removable(n)]
    for name in gone:
        _unlink(out / name)
    if gone:
        try:
            fsync_dir(out)
        except OSError:
            pass


def _ours(out: Path, old: Path) -> dict | None:
    """(rst3) Refuse a folder whose ``manifest.json`` is a regular file that no ``wattwatch train``
    wrote (another tool's): the models written into it would replace it. A symlink there is
    replaced (never followed): None. Else the manifest, as read."""
    if old.is_symlink():
        return None
    try:
        man = json.loads(read_regular(old, MAX_MANIFEST_BYTES, follow=False).decode("utf-8"))
    except (ValueError, OSError, RecursionError):
        man = None
    if not (isinstance(man, dict) and "format" in man and isinstance(man.get("detectors"), dict)):
        raise ModelFormatError(f"{out}: its {MANIFEST} is not one `wattwatch train` wrote; not overwritten (remove it, "
                               "or write the models to another folder with --out)")
    return man


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` as a new file (temporary file, then rename): a symlink planted in the output
    folder is replaced, never followed to overwrite what it points at."""
    write_bytes(path, data)


def _inside_file(folder: Path, file: str, what: str, limit: int) -> Path:
    """``folder/file`` after following symlinks: a regular file directly inside ``folder`` of at
    most ``limit`` bytes (a FIFO would block the read, a device or huge file exhaust memory)."""
    root = folder.resolve()
    try:
        path = (folder / file).resolve(strict=True)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError) as exc:
        raise ModelFormatError(f"{folder}: cannot read {what} {file}: {exc}") from None
    if path.parent != root:
        raise ModelFormatError(f"{folder}: {what} {file} leads outside the model folder (to {path}); a model "
                               "folder's files must be inside it")
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelFormatError(f"{folder}: cannot read {what} {file}: {exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"{folder}: {what} {file} is not a regular file")
    if st.st_size > limit:
        raise ModelFormatError(f"{folder}: {what} {file} is {st.st_size:,} bytes, more than the {limit:,} a "
                               "wattwatch model folder holds; not a file `wattwatch train` wrote")
    return path


def _read_limited(path: Path, limit: int, folder: Path, what: str) -> bytes:
    """The bytes of *path*, already checked by :func:`_inside_file`; the read checks again what it
    opens (a FIFO, a device or a symlink put at the resolved path after the check is refused, never
    waited on or followed), and at most *limit* bytes."""
    try:
        return read_regular(path, limit, follow=False)
    except ValueError as exc:
        raise ModelFormatError(f"{folder}: {what} {path.name}: {exc} (changed while read)") from None


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: no such model folder (create one with `wattwatch train`)")
    try:
        real = _inside_file(folder, MANIFEST, "manifest", MAX_MANIFEST_BYTES)
        manifest = json.loads(_read_limited(real, MAX_MANIFEST_BYTES, folder, "manifest").decode("utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{folder}: no {MANIFEST}; not a wattwatch model folder, or one whose "
                               "`wattwatch train` did not finish (train it with `wattwatch train`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{path}: unreadable manifest: {exc}") from None
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{path}: unreadable manifest: not a JSON object")
    fmt, schema = manifest.get("format"), manifest.get("schema")
    if fmt != MODEL_FORMAT or schema != SCHEMA_VERSION:
        raise ModelFormatError(
            f"{folder}: models saved by wattwatch {manifest.get('wattwatch', '?')} (model format {fmt}, schema "
            f"{schema}) cannot be loaded by wattwatch {__version__} (model format {MODEL_FORMAT}, schema "
            f"{SCHEMA_VERSION}); retrain them with `wattwatch train`")
    if not isinstance(manifest.get("detectors"), dict):
        raise ModelFormatError(f"{path}: unreadable manifest: no detectors")
    return manifest


def _model_file(folder: Path, name: str, entry: dict) -> bytes:
    """The bytes of ``entry``'s file: a plain name directly inside ``folder`` (after following
    symlinks), matching the manifest's sha256."""
    file, digest = entry.get("file"), entry.get("sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ModelFormatError(f"{folder}: {name}: the manifest records no sha256 for its file; retrain with "
                               "`wattwatch train`")
    if not _plain_name(file):
        raise ModelFormatError(f"{folder}: {name}: the manifest names {file!r}; model files must be plain names "
                               "inside the model folder")
    try:
        path = _inside_file(folder, file, f"{name}:", MAX_MODEL_BYTES)
        data = _read_limited(path, MAX_MODEL_BYTES, folder, f"{name}:")
    except FileNotFoundError:
        raise ModelFormatError(f"{folder}: {name}: {file} is missing (named in {MANIFEST})") from None
    except OSError as exc:
        raise ModelFormatError(f"{folder}: {name}: cannot read {file}: {exc.strerror or exc}") from None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), digest):
        raise ModelFormatError(f"{folder}: {name}: {file} does not match the sha256 in {MANIFEST} (changed or "
                               "corrupted since it was saved); retrain with `wattwatch train`")
    return data


def load_models(folder: str | Path) -> list[LearnedDetector]:
    """The trained detectors of ``folder``, locked (``fit`` re-learns only per-meter baselines);
    :func:`load_folder` also gives the manifest they were read by."""
    return load_folder(folder)[0]


def load_folder(folder: str | Path) -> tuple[list[LearnedDetector], dict]:
    """The trained detectors of ``folder``, locked, and the manifest that named them.

    (rb1) A ``train --out`` into the folder meanwhile switches its manifest to a new set, then
    removes the old set's files: a load that read the old manifest and then finds a file gone (or
    refused) reads the folder again, as long as its manifest keeps changing (at most three times)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for attempt in range(3):
        try:
            return _load(folder, manifest), manifest
        except ModelFormatError:
            try:
                now = read_manifest(folder)
            except ModelFormatError:
                now = manifest
            if now == manifest or attempt == 2:
                raise
            manifest = now
    raise AssertionError("unreachable")


def _load(folder: Path, manifest: dict) -> list[LearnedDetector]:
    from wattwatch.detect import registry

    out = []
    for name, entry in manifest["detectors"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ModelFormatError(f"{folder}: {name}: unreadable manifest entry")
        try:
            d = registry.build(name, entry["config"])
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"{folder}: {name}: {exc}") from exc
        if not isinstance(d, LearnedDetector):
            raise ModelFormatError(f"{folder}: {name} is not a learned detector")
        expected = d.config.features().names()
        if entry.get("features") != expected:
            raise ModelFormatError(f"{folder}: {name} was trained on features {entry.get('features')}, this version "
                                   f"computes {expected}; retrain with `wattwatch train`")
        data = _model_file(folder, name, entry)
        try:
            d.set_model_state(loads_state(data))
        except Exception as exc:  # whatever a crafted archive provokes is a refusal, not a traceback
            raise ModelFormatError(f"{folder}: {name}: {entry['file']}: {type(exc).__name__}: {exc}") from None
        out.append(d)
    return out


# ------------------------------------------------------------------------------ provenance (mf)

# At most this many meters are listed by name (with their cadence) in a manifest: 20,000 take about
# 1 MB of the MAX_MANIFEST_BYTES; a bigger training fleet records its counts only.
MAX_LISTED_METERS = 20_000
# (rmf) ... and at most this many bytes of them as the manifest writes them: meter ids have no length
# limit, and 20,000 ids of 200 characters made a 4.46 MB manifest that `load_models` refused (a folder
# `train` wrote that `detect --models` could not read).
MAX_LISTED_BYTES = 1 << 20


def provenance(detectors: list[LearnedDetector], channels=(), config_sha256: str | None = None) -> dict:
    """What a model folder records of the meters its detectors were trained on (``trained_on``,
    beside ``readings`` and ``period``): their count, each one's cadence (s; up to
    :data:`MAX_LISTED_METERS` meters), the span of the readings trained on, the grid steps and the
    channels the training readings held, the wattwatch version and the config's sha256."""
    per: dict[str, dict] = {}
    for d in detectors:
        for m, st in getattr(d, "state_", {}).items():
            if isinstance(st, dict):
                per.setdefault(str(m), st)
    first = [st.get("first_t") for st in per.values() if isinstance(st.get("first_t"), (int, float))]
    last = [st.get("last_t") for st in per.values() if isinstance(st.get("last_t"), (int, float))]

    def iso(t):
        import pandas as pd
        return pd.Timestamp(round(float(t)), unit="s", tz="UTC").isoformat() if t is not None else None

    cad = {m: (round(float(st["cadence_s"]), 3) if isinstance(st.get("cadence_s"), (int, float))
               and st.get("cadence_s") == st.get("cadence_s") else None) for m, st in sorted(per.items())}
    out = {"meters": len(per), "span": [iso(min(first)) if first else None, iso(max(last)) if last else None],
           "grids_s": sorted({float(g) for d in detectors for g in getattr(d, "fleets_", {})}),
           "channels": sorted(set(channels)), "wattwatch": __version__, "config_sha256": config_sha256}
    if len(cad) <= MAX_LISTED_METERS and len(json.dumps(cad, indent=6)) <= MAX_LISTED_BYTES:
        out["meter_cadence_s"] = cad
    return out


def _num(x) -> float | None:
    """``x`` as a finite number (None: not one)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def _said(x, default="?") -> str:
    """(rmf) A count or version read from an untrusted manifest, as at most 40 characters of text."""
    n = _num(x)
    text = (f"{n:.15g}" if n is not None else default) if not isinstance(x, str) else x
    return text if len(text) <= 40 else text[:40] + "..."


def _cadence(c: float | None) -> str:
    return "unknown cadence" if c is None or c != c else f"{c:g} s"


def check_trained_on(folder, manifest: dict, detectors: list[LearnedDetector], meters: dict[str, float]) -> list[str]:
    """(mf) Notices for ``detect --models FOLDER`` on ``meters`` ({meter id: cadence in s}): a
    model folder applied to meters it was not trained on says so. The folder holds fleet-wide
    models only (no meter's state: each meter is judged against its own baseline, learned on its
    own first days); what is said: meters not among those trained on (their learned score comes
    from a fleet model of other meters), meters whose cadence differs from the one they were
    trained at, meters on a grid step the folder holds no model for (the learned detectors judge
    them only with a model trained here, else not at all), and a folder written before the
    provenance was recorded (nothing can be checked)."""
    names = ", ".join(d.name for d in detectors) or "the learned detectors"
    t = manifest.get("trained_on") if isinstance(manifest.get("trained_on"), dict) else {}
    notes = []
    listed = t.get("meter_cadence_s")
    if not isinstance(listed, dict):
        if "span" not in t:
            notes.append(f"{names}: the models in {folder} were written by wattwatch {_said(manifest.get('wattwatch'))}, "
                         "which did not record the meters, cadences and channels they were trained on: whether they "
                         "fit these meters cannot be checked (retrain with `wattwatch train` to record it)")
        else:
            notes.append(f"{names}: the models in {folder} were trained on {_said(t.get('meters'))} meters, too many to "
                         "be listed: which meters they fit is not checked")
        return notes
    # (a hand-edited manifest is read as far as it makes sense, never a traceback)
    listed = {str(m): _num(c) for m, c in listed.items()}
    span = t.get("span") if isinstance(t.get("span"), list) and len(t["span"]) == 2 else [None, None]
    grids = [g for g in (t.get("grids_s") if isinstance(t.get("grids_s"), list) else []) if _num(g) is not None]
    about = (f"{_said(t.get('meters'), str(len(listed)))} meter(s), {str(span[0])[:10]} .. {str(span[1])[:10]}"
             + (f", grid {'/'.join(f'{float(g):g}' for g in grids)} s" if grids else ""))
    ids = sorted(meters)
    unknown = [m for m in ids if m not in listed]
    if unknown:
        known = [c for c in listed.values() if c is not None and c > 0]
        lo, hi = (min(known), max(known)) if known else (None, None)
        odd = [m for m in unknown if lo is not None and meters[m] == meters[m]
               and not lo / 1.05 <= float(meters[m]) <= hi * 1.05]
        which = (f"none of the {len(ids)} meter(s) judged ({', '.join(unknown[:3])}{', ...' if len(unknown) > 3 else ''}) is"
                 if len(unknown) == len(ids) else
                 f"{len(unknown)} of the {len(ids)} meter(s) judged (e.g. {', '.join(unknown[:3])}) are not")
        cad = "" if not known else (f", read every {lo:g} s" if hi <= lo * 1.05 else f", read every {lo:g}-{hi:g} s")
        notes.append(f"{names}: {which} among the meters the models in {folder} were trained on ({about}{cad}): "
                     "each is judged against its own baseline (learned on its own first days) by a fleet model of "
                     "other meters, whose calibration holds for meters like those; read their learned alerts with "
                     "that in mind"
                     + (f"; {len(odd)} of them (e.g. {odd[0]} every {_cadence(meters[odd[0]])}) report at a cadence "
                        "none of the training meters had" if odd else ""))
    moved = []
    for m in ids:
        if m in listed and listed[m] is not None and meters[m] == meters[m] and \
                abs(float(meters[m]) - listed[m]) > 0.05 * abs(listed[m]):
            moved.append(m)
    if moved:
        ex = ", ".join(f"{m} {_cadence(meters[m])} now, {_cadence(listed[m])} when trained" for m in moved[:3])
        notes.append(f"{names}: {len(moved)} meter(s) report at another cadence than they were trained at ({ex}): "
                     "their readings are judged on the grid of their cadence now, by that grid's model")
    for d in detectors:
        have = set(getattr(d, "fleets_", {}))
        grid = d.config.grid_for([meters[m] for m in ids]) if ids else []
        off = sorted({float(g) for g in grid if g == g and float(g) not in have})
        if off:
            n = sum(1 for g in grid if g == g and float(g) in off)
            notes.append(f"{d.name}: {n} meter(s) are judged on a {'/'.join(f'{g:g}' for g in off)} s grid, for which "
                         f"{folder} holds no fleet model (trained at {'/'.join(f'{g:g}' for g in sorted(have))} s): "
                         "they are judged by a model trained here, if their profiles hold enough normal data, "
                         "else not by it")
    return notes
