"""Hostile simulator arguments (issue 12): every cadence from 1 s to 1 day works (steps of 8 h
and more looped forever), anything else is a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import wattwatch
from wattwatch.app.cli import app
from wattwatch.sim import SimConfig


def _run_python(code: str, timeout: float):
    env = {**os.environ, "PYTHONPATH": str(Path(wattwatch.__file__).parents[1])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("step", ["8h", "12h", "1D"])
def test_coarse_steps_with_intermittent_faults_finish(step):
    code = ("from wattwatch.sim import SimConfig, simulate\n"
            f"r = simulate(SimConfig(meters=4, days=6, seed=3, step={step!r}, faults=('neutral_bypass',), "
            "fault_share=1.0, commercial_share=0.0))\n"
            "print(r['rows'])\n")
    try:
        res = _run_python(code, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"simulate --step {step} did not finish in 60 s (endless loop)")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) > 0


@pytest.mark.parametrize("step", ["1s", "1min", "1h", "1D", "24h"])
def test_every_normal_cadence_is_accepted(step):
    assert SimConfig(meters=1, days=2, step=step).step_s > 0


@pytest.mark.parametrize("args, words", [
    (["--step", "0s"], ["step", "between 1 s and 1 day"]),
    (["--step", "-5min"], ["step", "between 1 s and 1 day"]),
    (["--step", "1ns"], ["step", "between 1 s and 1 day"]),
    (["--step", "2D"], ["step", "between 1 s and 1 day"]),
    (["--step", "soon"], ["step", "not a duration"]),
    (["--start", "garbage"], ["start", "not a time"]),
    (["--start", "9999-12-31"], ["start", "between"]),
    (["--start", "0001-01-01"], ["start", "between"]),
    (["--start", ""], ["start"]),
    (["--days", "1e12"], ["between"]),
    (["--days", "inf"], ["days"]),
    (["--seed", "-1"], ["seed"]),
    (["--faults", "nope"], ["unknown fault"]),
    (["--format", "xml"], ["--format"]),
])
def test_bad_simulate_arguments_are_clear_errors(tmp_path, args, words):
    out = tmp_path / "f"
    res = CliRunner().invoke(app, ["simulate", str(out), "--meters", "1", "--days", "1", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.stderr.replace("\n", ""), res.stderr
    assert not out.exists()


def test_an_unwritable_or_file_output_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    res = CliRunner().invoke(app, ["simulate", str(f), "--meters", "1", "--days", "1"])
    assert res.exit_code == 2 and "not a folder" in res.stderr.replace("\n", ""), res.output
    assert f.read_text() == "x"
    res = CliRunner().invoke(app, ["simulate", str(f / "sub"), "--meters", "1", "--days", "1"])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2 and "cannot write" in res.stderr.replace("\n", ""), res.output
