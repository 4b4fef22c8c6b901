"""``python -m wattwatch`` is the ``wattwatch`` command (a venv's script may not be on PATH)."""

import subprocess
import sys


def test_python_dash_m_wattwatch_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "wattwatch", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "detect" in r.stdout and "watch" in r.stdout
