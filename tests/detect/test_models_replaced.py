"""`wattwatch train --out DIR` into a folder that holds models (b1): the new set is written beside
the old one and switched to by replacing ``manifest.json`` (one rename), so a train that fails or is
killed at any point leaves DIR's previous models loadable and detecting exactly as before, and a
train that succeeds leaves only the new set (and whatever else the user keeps there).

Before (st3/rst3, main 0047ba3): ``save_models`` deleted the old manifest first, then wrote the new
files over the old names: any failure in between left a folder `detect --models` refuses ("no
manifest.json ... did not finish"), the previous models lost."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.store.test_integrity import fleet
from wattwatch.detect.learned import persist

ROOT = Path(__file__).resolve().parents[2]
CFG = {"pca_reconstruction": {"max_train_rows": 1000}, "isolation_forest": {"max_train_rows": 1000, "n_estimators": 10}}
NAMES = ["pca_reconstruction", "isolation_forest"]


@pytest.fixture(scope="module")
def sets():
    """Two model sets of the same two detectors, trained on two fleets (A: the user's working set;
    B: the new one), and a frame to detect on."""
    from wattwatch import api

    def trained(seed):
        got = api.fit(fleet(meters=4, days=4, seed=seed), detectors=NAMES, config=CFG, days=2, keep=False)
        dets = [d for d in got.detectors if d.locked]
        assert [d.name for d in dets] == NAMES
        return dets

    return trained(4), trained(5), fleet(meters=4, days=4, seed=6)


def _states(folder: Path) -> dict:
    return {d.name: persist.dumps_state(d.model_state()) for d in persist.load_models(folder)}


def _scores(folder: Path, frame) -> dict:
    """What ``detect --models folder`` judges with: each loaded detector, its baselines fitted on the
    first two days, scoring the whole frame."""
    prof = frame[frame["ts"] < frame["ts"].min() + np.timedelta64(2, "D")]
    return {d.name: d.fit(prof).score(frame).to_numpy() for d in persist.load_models(folder)}


def _old_folder(tmp_path: Path, a) -> tuple[Path, dict, set]:
    out = persist.save_models(a, tmp_path / "models", {"period": "A"})
    (out / "notes.txt").write_text("the user's own file")
    return out, _states(out), set(os.listdir(out))


def _fail_at(monkeypatch, point: str):
    """Make the save fail at ``point``: a Ctrl-C once the first new model file is in place, a full
    disk on the second model file, or a full disk while the new manifest is written."""
    write, seen = persist._write_new, []

    def failing(path, data):
        seen.append(path.name)
        if point == "manifest_disk_full" and path.name == persist.MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        if point == "second_model_disk_full" and len(seen) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write(path, data)
        if point == "ctrl_c_after_first_model" and len(seen) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(persist, "_write_new", failing)
    return seen


@pytest.mark.parametrize("point", ["ctrl_c_after_first_model", "second_model_disk_full", "manifest_disk_full"])
def test_a_train_failing_halfway_keeps_the_old_models_loading_and_detecting_the_same(point, sets, tmp_path,
                                                                                       monkeypatch):
    a, b, frame = sets
    out, before, listing = _old_folder(tmp_path, a)
    scored = _scores(out, frame) if point == "manifest_disk_full" else None
    seen = _fail_at(monkeypatch, point)
    with pytest.raises(KeyboardInterrupt if point.startswith("ctrl_c") else OSError):
        persist.save_models(b, out, {"period": "B"})
    assert seen, "the failure was not reached"
    assert _states(out) == before                       # the old set, byte for byte
    assert set(os.listdir(out)) == listing              # and nothing of the failed train left
    assert persist.read_manifest(out)["trained_on"] == {"period": "A"}
    if scored is not None:
        again = _scores(out, frame)
        assert all(np.array_equal(again[k], scored[k], equal_nan=True) for k in scored)


def test_a_failed_train_into_a_new_folder_leaves_no_folder(sets, tmp_path, monkeypatch):
    _, b, _ = sets
    _fail_at(monkeypatch, "manifest_disk_full")
    with pytest.raises(OSError):
        persist.save_models(b, tmp_path / "new" / "models")
    assert not (tmp_path / "new").exists()   # (rb1) nor the folder made for it


_KILL = """
import os, signal, sys
from wattwatch.detect.learned import persist
new = persist.load_models(sys.argv[1])
real = os.replace
def replace(src, dst, *a, **k):
    if os.path.basename(dst) == persist.MANIFEST:   # the new manifest written, not yet renamed
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
persist.save_models(new, sys.argv[2])
"""


def test_a_train_killed_before_its_switch_keeps_the_old_models_and_the_next_one_sweeps_its_files(sets, tmp_path):
    a, b, _ = sets
    out, before, listing = _old_folder(tmp_path, a)
    src = persist.save_models(b, tmp_path / "b")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    r = subprocess.run([sys.executable, "-c", _KILL, str(src), str(out)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-2000:])
    left = set(os.listdir(out)) - listing
    assert len(left) == 3 and any(n.startswith(f".{persist.MANIFEST}.tmp-") for n in left), left  # it died there
    assert _states(out) == before
    # The next train that succeeds switches to its set and removes the old one and the killed one's files.
    persist.save_models(b, out)
    assert _states(out) == _states(src)
    assert set(os.listdir(out)) == set(os.listdir(src)) | {"notes.txt"}


def test_a_train_that_succeeds_replaces_the_set_and_leaves_only_it(sets, tmp_path):
    a, b, frame = sets
    out, before, _ = _old_folder(tmp_path, a)
    # A folder written before content names: its files are `<name>.wwm`.
    man = json.loads((out / persist.MANIFEST).read_text())
    for name, entry in man["detectors"].items():
        (out / entry["file"]).rename(out / f"{name}{persist.SUFFIX}")
        entry["file"] = f"{name}{persist.SUFFIX}"
    (out / persist.MANIFEST).write_text(json.dumps(man))
    assert _states(out) == before
    src = persist.save_models(b, tmp_path / "b")
    persist.save_models(b, out, {"period": "B"})
    assert _states(out) == _states(src) != before
    assert set(os.listdir(out)) == set(os.listdir(src)) | {"notes.txt"}
    assert persist.read_manifest(out)["trained_on"] == {"period": "B"}
    got, want = _scores(out, frame), _scores(src, frame)
    assert all(np.array_equal(got[k], want[k], equal_nan=True) for k in want)


def test_two_trains_into_one_folder_at_once_the_second_is_refused(sets, tmp_path, monkeypatch):
    import fcntl

    a, b, _ = sets
    out, before, listing = _old_folder(tmp_path, a)
    monkeypatch.setattr(persist, "LOCK_WAIT_S", 0.3)
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)   # a train writing this folder now, for longer than a save waits
        with pytest.raises(persist.ModelFormatError, match="another `wattwatch train` has been writing"):
            persist.save_models(b, out)
    finally:
        os.close(fd)
    assert _states(out) == before and set(os.listdir(out)) == listing


def test_a_save_waits_for_another_save_into_the_folder_then_replaces_its_set(sets, tmp_path):
    """(rb1) Two trains finishing together: the second waits for the first's save (seconds) instead
    of being refused, which threw its training away; the last one's set is the folder's."""
    import fcntl
    import threading

    a, b, _ = sets
    out, _, _ = _old_folder(tmp_path, a)
    src = persist.save_models(b, tmp_path / "b")
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.4, os.close, [fd]).start()   # the other save ends
    persist.save_models(b, out)
    assert _states(out) == _states(src)


def test_the_sweep_removes_only_files_that_are_what_their_names_say(sets, tmp_path):
    """(rb1) After the switch, b1 removed every file named like a content-named model and every file
    the old manifest named: a user's file of such a name went too, and, on a case-insensitive file
    system (macOS, Windows), a name that differs from a new model file's only in case is that file."""
    a, b, _ = sets
    out, _, _ = _old_folder(tmp_path, a)
    new = {d.name: persist.dumps_state(d.model_state()) for d in b}
    theirs = {"backup.0123456789abcdef.wwm": b"the user's copy of something",   # named like a model, is not one
              "precious.wwm": b"the user's file, named by a hand-edited manifest"}
    for name, data in theirs.items():
        (out / name).write_bytes(data)
    man = json.loads((out / persist.MANIFEST).read_text())
    man["detectors"]["precious"] = {"file": "precious.wwm", "sha256": "0" * 64}
    (out / persist.MANIFEST).write_text(json.dumps(man))
    data = new["pca_reconstruction"]
    digest = persist.hashlib.sha256(data).hexdigest()[:16]
    upper = f"PCA_RECONSTRUCTION.{digest}{persist.SUFFIX}"   # on a case-insensitive disk: the new file itself
    (out / upper).write_bytes(data)
    leftover = f"isolation_forest.{persist.hashlib.sha256(b'x').hexdigest()[:16]}{persist.SUFFIX}"
    (out / leftover).write_bytes(b"x")                         # what a killed train left: its name says its bytes
    old_files = {e["file"] for k, e in man["detectors"].items() if k in new}
    persist.save_models(b, out)
    left = set(os.listdir(out))
    assert set(theirs) | {upper, "notes.txt"} <= left, left
    assert not (old_files | {leftover}) & left, left
    assert {d.name: persist.dumps_state(d.model_state()) for d in persist.load_models(out)} == new


def test_a_load_that_races_a_train_reads_the_new_set(sets, tmp_path, monkeypatch):
    """(rb1) `detect --models DIR` (or the dashboard) reads the old manifest, then a train into DIR
    switches to its set and removes the old files, then the load opens them: it reads DIR again
    (was: "... is missing (named in manifest.json)")."""
    a, b, _ = sets
    out, _, _ = _old_folder(tmp_path, a)
    src = persist.save_models(b, tmp_path / "b")
    read, raced = persist._model_file, []

    def train_meanwhile(folder, name, entry):
        if not raced:
            raced.append(persist.save_models(b, out))
        return read(folder, name, entry)

    monkeypatch.setattr(persist, "_model_file", train_meanwhile)
    assert _states(out) == _states(src) and raced


def test_train_says_the_old_models_are_kept_when_the_disk_fills(sets, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    a, _, _ = sets
    out, before, listing = _old_folder(tmp_path, a)
    csv = tmp_path / "t.csv"
    fleet(meters=4, days=4, seed=5).to_csv(csv, index=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pca_reconstruction]\nmax_train_rows = 1000\n")
    _fail_at(monkeypatch, "manifest_disk_full")
    res = CliRunner().invoke(app, ["train", str(csv), "--db", str(tmp_path / "s.duckdb"), "--detectors",
                                   "pca_reconstruction", "--config", str(cfg), "--days", "2", "--out", str(out),
                                   "--rejects", str(tmp_path / "r.csv")])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 1, (res.exit_code, err, res.exception)
    assert "no space left on device (the disk is full)" in err and f"the models in {out} are kept as they were" in err, err
    assert _states(out) == before and set(os.listdir(out)) == listing


def test_train_refuses_a_folder_holding_another_tools_manifest_before_it_trains(tmp_path):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    web = tmp_path / "web"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my app"}')
    csv = tmp_path / "t.csv"
    fleet(meters=2, days=1, seed=5).to_csv(csv, index=False)
    res = CliRunner().invoke(app, ["train", str(csv), "--db", str(tmp_path / "s.duckdb"), "--out", str(web),
                                   "--rejects", str(tmp_path / "r.csv")])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 2 and "is not one `wattwatch train` wrote" in err, (res.exit_code, err)
    assert not (tmp_path / "s.duckdb").exists()   # refused before anything was ingested or trained
    assert (web / "manifest.json").read_text() == '{"name": "my app"}'
    # (rb1) --out a symlink to a folder that is not there (an unmounted disk): refused before too (was: after
    # the training, "cannot write the model folder: File exists").
    (tmp_path / "gone").symlink_to(tmp_path / "unmounted" / "models")
    res = CliRunner().invoke(app, ["train", str(csv), "--db", str(tmp_path / "s.duckdb"), "--out",
                                   str(tmp_path / "gone"), "--rejects", str(tmp_path / "r.csv")])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 2 and "which does not exist" in err, (res.exit_code, err)
    assert not (tmp_path / "s.duckdb").exists()
    # (m1) --out a file: refused once, by the model folder's own check (the command line checked it a
    # second time before), before anything was ingested.
    res = CliRunner().invoke(app, ["train", str(csv), "--db", str(tmp_path / "s.duckdb"), "--out", str(csv),
                                   "--rejects", str(tmp_path / "r.csv")])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 2 and err.count("exists and is not a folder") == 1, (res.exit_code, err)
    assert not (tmp_path / "s.duckdb").exists()


def test_an_error_after_the_switch_keeps_the_new_set_and_train_says_so(sets, tmp_path, monkeypatch):
    """The manifest renamed, then the folder's fsync fails (EIO): the new set is in place and
    complete, so it must not be undone, and ``train`` must not say the old models were kept."""
    from wattwatch import atomicfile
    from wattwatch.app import cli

    a, b, _ = sets
    out, before, _ = _old_folder(tmp_path, a)
    old_manifest = (out / persist.MANIFEST).read_bytes()
    src = persist.save_models(b, tmp_path / "b")
    sync = atomicfile.fsync_dir

    def failing(folder):
        if Path(folder) == out and json.loads((out / persist.MANIFEST).read_text())["trained_on"] == {"period": "B"}:
            raise OSError(errno.EIO, "Input/output error")
        sync(folder)

    monkeypatch.setattr(atomicfile, "fsync_dir", failing)
    with pytest.raises(OSError, match="Input/output"):
        persist.save_models(b, out, {"period": "B"})
    assert _states(out) == _states(src)
    assert cli._models_kept(out, old_manifest) == f"the new models were written to {out} whole before the error"
    assert cli._models_kept(out, (out / persist.MANIFEST).read_bytes()) == f"the models in {out} are kept as they were"


def test_a_stopped_train_says_what_the_folder_holds_by_its_manifest_not_its_clock(sets, tmp_path, capsys):
    """A train stopped by Ctrl-C says whether DIR still holds the old set or already the new one by
    the manifest's bytes against those at the train's start (as a failed train does), not by the
    manifest's mtime against the run's start: a folder written by another train during this one, or
    a clock set back, made the mtime answer wrong. Here the manifest is the old one with an mtime
    after the run's start (touched): the old set is still what DIR holds."""
    import typer
    from datetime import datetime, timezone

    from wattwatch.app import cli

    a, b, _ = sets
    out, _, _ = _old_folder(tmp_path, a)
    before = (out / persist.MANIFEST).read_bytes()
    since = datetime.now(timezone.utc)
    os.utime(out / persist.MANIFEST)   # the same bytes, a newer mtime
    with pytest.raises(typer.Exit) as stopped:
        cli._fit_interrupted(None, since, [], models=out, before=before)
    assert stopped.value.exit_code == 130
    assert f"the models in {out} are kept as they were" in " ".join(capsys.readouterr().err.split())
    persist.save_models(b, out, {"period": "B"})
    with pytest.raises(typer.Exit):
        cli._fit_interrupted(None, since, [], models=out, before=before)
    assert f"the new models were written to {out} whole before it was stopped" in " ".join(capsys.readouterr().err.split())
