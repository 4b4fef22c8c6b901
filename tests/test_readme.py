"""The README's Python example runs as written (on the simulator's output)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from wattwatch.sim import SimConfig, simulate

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_api_example_runs(tmp_path: Path):
    text = README.read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    simulate(SimConfig(meters=30, days=21, seed=0), tmp_path / "fleet", formats=("csv",))
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            scope: dict = {}
            exec(compile(code, str(README), "exec"), scope)
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    assert "recall" in printed and "precision" in printed
    assert len(scope["alerts"]) > 0 and scope["ev"]["recall"] > 0.5
    assert set(scope["scores"].columns) >= {"meter_id", "ts", "neutral_tamper", "learned_ensemble"}
