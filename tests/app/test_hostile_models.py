"""Hostile model folders (`detect --models DIR`, issue 12 item 10): nothing outside the folder is
read, nothing in it is executed, and every refusal says which file and why.

The manifests are written with the format and schema of the code under test, so that the old
loader (joblib pickles, any path the manifest named) is exercised on the same folders."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wattwatch.app.cli import app
from wattwatch.detect import registry
from wattwatch.detect.learned import persist
from wattwatch.schema import SCHEMA_VERSION

NAME = "pca_reconstruction"


class _Boom:
    """Unpickling this creates ``path``: proof that loading ran code from the folder."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _manifest(folder: Path, file: str, data: bytes | None = None, sha: str | None = None) -> None:
    d = registry.build(NAME)
    entry = {"file": file, "config": d.config.to_dict(), "features": d.config.features().names()}
    if data is not None or sha is not None:
        entry["sha256"] = sha or hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({
        "format": persist.MODEL_FORMAT, "wattwatch": "test", "schema": SCHEMA_VERSION,
        "detectors": {NAME: entry}, "trained_on": {}}, default=str))


def _refused(folder: Path, *words: str) -> str:
    with pytest.raises(Exception) as err:
        persist.load_models(folder)
    assert isinstance(err.value, ValueError), f"{type(err.value).__name__}: {err.value}"
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    return msg


def _pickle_bomb(path: Path, marker: Path) -> bytes:
    data = pickle.dumps({"model_": _Boom(str(marker))})
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".wwm"])
def test_a_pickle_in_the_folder_is_never_executed(tmp_path, suffix):
    marker = tmp_path / "pwned"
    folder = tmp_path / "models"
    folder.mkdir()
    data = _pickle_bomb(folder / f"evil{suffix}", marker)
    _manifest(folder, f"evil{suffix}", data)  # the right hash: only the format can refuse it
    _refused(folder, "evil")
    assert not marker.exists(), "loading the model folder ran code from a pickle"


def test_a_manifest_naming_a_file_outside_the_folder_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside.joblib"
    data = _pickle_bomb(outside, marker)
    for file in ("../outside.joblib", str(outside), "sub/../../outside.joblib"):
        folder = tmp_path / f"m{abs(hash(file))}"
        _manifest(folder, file, data)
        _refused(folder, "outside.joblib")
        assert not marker.exists(), f"{file!r}: a file outside the folder was loaded"


def test_a_symlink_leading_out_of_the_folder_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    outside = tmp_path / "secret.joblib"
    data = _pickle_bomb(outside, marker)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.wwm").symlink_to(outside)
    _manifest(folder, "model.wwm", data)
    _refused(folder, "outside the model folder")
    assert not marker.exists()


def test_a_manifest_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    _manifest(elsewhere, "x.wwm", b"x")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "manifest.json").symlink_to(elsewhere / "manifest.json")
    _refused(folder, "outside the model folder")


def _load_in_thread(folder: Path, blocked: str) -> list[Exception]:
    """``load_models(folder)`` in a thread given 10 s: fails with *blocked* if it is still waiting;
    else the exceptions it raised."""
    import threading

    got: list[Exception] = []

    def load():
        try:
            persist.load_models(folder)
        except Exception as exc:  # noqa: BLE001 - the caller checks the refusal
            got.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), blocked
    return got


def test_a_manifest_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / "manifest.json")
    got = _load_in_thread(folder, "reading the manifest blocked on a FIFO")
    assert got and isinstance(got[0], ValueError) and "not a regular file" in str(got[0])


def test_a_file_that_does_not_match_its_hash_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    if not hasattr(persist, "dumps_state"):
        pytest.fail("no hash check: the loader has no archive format")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.wwm").write_bytes(b"PK\x03\x04 not what was saved")
    _manifest(folder, "model.wwm", sha="0" * 64)
    parsed = []
    monkeypatch.setattr(persist, "loads_state", lambda data: parsed.append(data))
    _refused(folder, "sha256")
    assert not parsed


def test_a_manifest_without_a_hash_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.wwm").write_bytes(b"PK\x03\x04")
    _manifest(folder, "model.wwm")
    _refused(folder, "sha256")


def test_a_huge_model_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    big = folder / "model.wwm"
    with open(big, "wb") as fh:  # sparse: takes no disk
        fh.truncate(getattr(persist, "MAX_MODEL_BYTES", 1 << 30) + 1)
    _manifest(folder, "model.wwm", sha="0" * 64)
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self) or real(self))
    _refused(folder, "bytes")
    assert not read


def test_a_huge_manifest_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    with open(folder / "manifest.json", "wb") as fh:
        fh.truncate(getattr(persist, "MAX_MANIFEST_BYTES", 4 << 20) + 1)
    _refused(folder, "manifest")


@pytest.mark.parametrize("manifest", [
    "[]", "null", '{"format": 4}', "{", '{"format": 4, "schema": 1, "detectors": []}',
    '{"format": 4, "schema": 1, "detectors": {"pca_reconstruction": 5}}',
    '{"format": 4, "schema": 1, "detectors": {"no_such_detector": {"config": {}}}}',
    '{"format": 4, "schema": 1, "detectors": {"neutral_tamper": {"config": {}}}}',
    '{"format": 4, "schema": 1, "detectors": {"pca_reconstruction": {"config": {"alpha": "x"}}}}',
])
def test_malformed_manifests_are_clear_refusals_through_the_cli(tmp_path, manifest):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "manifest.json").write_text(manifest.replace('"schema": 1', f'"schema": {SCHEMA_VERSION}')
                                          .replace('"format": 4', f'"format": {persist.MODEL_FORMAT}'))
    data = tmp_path / "t.csv"
    data.write_text("meter_id,ts,v_l1_v,i_l1_a,p_kw\nM1,2025-01-06T00:00:00Z,230,1,0.2\n")
    res = CliRunner().invoke(app, ["detect", str(data), "--models", str(folder), "--out", str(tmp_path / "a.jsonl")])
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert str(folder) in res.stderr.replace("\n", "")


def test_a_model_folder_written_by_train_still_loads(tmp_path):
    from wattwatch.sim import SimConfig, simulate

    frame = simulate(SimConfig(meters=3, days=4, seed=8, step="15min", fault_share=0.0))["frame"]
    d = registry.build(NAME, {"max_train_rows": 4000, "min_fleet_meter_days": 1.0}).train(frame)
    folder = persist.save_models([d], tmp_path / "m")
    (loaded,) = persist.load_models(folder)
    assert loaded.locked and set(loaded.fleets_) == set(d.fleets_)


def test_saving_into_a_folder_with_planted_symlinks_never_writes_through_them(tmp_path):
    from wattwatch.sim import SimConfig, simulate

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "m"
    out.mkdir()
    (out / "manifest.json").symlink_to(victim)
    (out / f"{NAME}{getattr(persist, 'SUFFIX', '.joblib')}").symlink_to(victim)
    frame = simulate(SimConfig(meters=3, days=4, seed=8, step="15min", fault_share=0.0))["frame"]
    d = registry.build(NAME, {"max_train_rows": 4000, "min_fleet_meter_days": 1.0}).train(frame)
    persist.save_models([d], out)
    assert victim.read_text() == "precious"
    assert not (out / "manifest.json").is_symlink()
    assert len(persist.load_models(out)) == 1


@pytest.mark.parametrize("swap", ["fifo", "symlink"])
def test_a_file_swapped_after_its_check_is_refused_without_blocking(tmp_path, monkeypatch, swap):
    """The folder's files are checked (inside, regular, not too large) and then read: a FIFO or a
    symlink put at the checked path in between is refused by the read itself (before: ``open`` waited
    on the FIFO for ever, and followed the symlink out of the folder)."""
    folder = tmp_path / "m"
    _manifest(folder, "model.bin", b"x")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    checked = persist._inside_file

    def check_then_swap(folder_, file, what, limit):
        path = checked(folder_, file, what, limit)
        path.unlink()
        if swap == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(outside)
        return path

    monkeypatch.setattr(persist, "_inside_file", check_then_swap)
    got = _load_in_thread(folder, "reading the manifest blocked on a FIFO swapped in after its check")
    assert got and isinstance(got[0], ValueError), got
    msg = str(got[0])
    assert "manifest" in msg and ("changed while read" if swap == "fifo" else "symbolic link") in msg, msg
