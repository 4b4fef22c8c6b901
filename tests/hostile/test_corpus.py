"""The hostile-input corpus (see README.md here): every case through the real CLI, no traceback,
the refusal it should give, and every good row kept."""

from __future__ import annotations

import csv
import hashlib
import shutil
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wattwatch.app.cli import app

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.parent for p in CORPUS.glob("*/*/case.toml"))


def _fill(x, case: Path, tmp: Path):
    if isinstance(x, str):
        return x.replace("{case}", str(case)).replace("{tmp}", str(tmp))
    if isinstance(x, list):
        return [_fill(v, case, tmp) for v in x]
    return x


def _invoke(args: list[str]):
    runner = CliRunner()
    return runner.invoke(app, args, catch_exceptions=True)


def _readings(db: Path) -> int:
    import duckdb

    if not db.exists():   # (m1s) a failed first ingest removes the store it made: nothing stored
        return 0
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM readings_raw").fetchall()[0][0])
    finally:
        con.close()


def _rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return max(sum(1 for _ in csv.reader(f)) - 1, 0)


def _check_run(res, what: str) -> None:
    exc = res.exception
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pytest.fail(f"{what}: traceback\n{tb}")
    out = (res.stdout or "") + (getattr(res, "stderr", "") or "")
    assert "Traceback" not in out, f"{what}: traceback in the output\n{out}"


def _setup_key(spec: dict, case: Path) -> tuple | None:
    """What a case's set-up commands do, independent of the case: each ``{case}`` argument named by
    its file's bytes. Cases whose set-up reads the same bytes with the same commands (61 of the 105
    with a set-up ingest the same 45-line CSV) get what it made, made once; None when an argument
    is a ``{case}`` path that is not a file (never shared)."""
    key = []
    for step in spec["setup"]:
        for arg in step:
            if "{case}" in arg:
                path = Path(_fill(arg, case, case))
                if not path.is_file():
                    return None
                arg = hashlib.sha256(path.read_bytes()).hexdigest()
            key.append(arg)
        key.append(None)
    return tuple(key)


def _listing(folder: Path) -> list[tuple]:
    return sorted((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns) for f in folder.rglob("*"))


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[dict, Path]:
    """Set-ups already run in this module: key -> a copy of the ``{tmp}`` folder they left (tt11)."""
    return {}, tmp_path_factory.mktemp("setups")


def _run_setup(spec: dict, work: Path, tmp: Path, made: tuple[dict, Path]) -> None:
    """The case's set-up commands, each asserted to succeed; a set-up that an earlier case ran on
    the same bytes is not run again: its ``{tmp}`` folder (the store it made) is copied instead.
    The copy differs from a fresh one only where the set-up wrote the path of the case that made it
    (a store's ``ingest_log.source``, read only to say what a Ctrl-C left stored; a ``--rejects``
    file's ``file`` column, which no case reads back) and in the times things were written (rtt11
    compared every case's copy with a fresh set-up, table by table and file by file). A case that
    checks such a path must not share; a set-up that writes into ``{case}`` (which is not copied)
    is not shared."""
    done, root = made
    key = _setup_key(spec, work)
    if key is not None and key in done:
        shutil.copytree(done[key], tmp, dirs_exist_ok=True)
        return
    case_before = _listing(work)
    for step in spec["setup"]:
        res = _invoke(_fill(step, work, tmp))
        _check_run(res, f"setup {step}")
        assert res.exit_code == 0, f"setup {step} exited {res.exit_code}:\n{res.output}"
    if key is not None and _listing(work) == case_before:
        done[key] = root / str(len(done))
        shutil.copytree(tmp, done[key])


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 300, f"{len(CASES)} cases"


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_hostile_input(case: Path, tmp_path: Path, made):
    spec = tomllib.loads((case / "case.toml").read_text())
    work = tmp_path / "case"
    shutil.copytree(case, work)  # the committed corpus is never written to
    tmp = tmp_path / "t"
    tmp.mkdir()
    before = {}
    for p in spec.get("unchanged", []):
        path = Path(_fill(p, work, tmp))
        before[path] = path.read_bytes() if path.exists() else None
    if spec.get("setup"):
        _run_setup(spec, work, tmp, made)
    args = _fill(spec["args"], work, tmp)
    res = _invoke(args)
    _check_run(res, " ".join(args))
    out, err = res.stdout or "", getattr(res, "stderr", "") or ""
    want = spec.get("exit", 0)
    if want == "nonzero":
        assert res.exit_code != 0, f"expected a refusal, got exit 0:\n{out}\n{err}"
    else:
        assert res.exit_code == want, f"exit {res.exit_code}, expected {want}:\n{out}\n{err}"
    for s in spec.get("stderr", []):
        assert _fill(s, work, tmp).lower() in err.lower().replace("\n", ""), f"{s!r} not in stderr:\n{err}"
    for s in spec.get("stdout", []):
        assert _fill(s, work, tmp).lower() in out.lower().replace("\n", ""), f"{s!r} not in stdout:\n{out}"
    if "stored" in spec:
        assert _readings(tmp / "s.duckdb") == spec["stored"]
    if "rejects" in spec:
        rej = tmp / "rejects.csv"
        assert (_rows(rej) if rej.exists() else 0) == spec["rejects"]
    for path, data in before.items():
        assert (path.read_bytes() if path.exists() else None) == data, f"{path} changed"
    for p in spec.get("absent", []):
        assert not Path(_fill(p, work, tmp)).exists(), f"{p} exists"
